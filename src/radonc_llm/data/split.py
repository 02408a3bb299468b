"""Patient-level train/val/test split, stratified by modality and site, seeded.

All cases of a patient go to the same split. Patients are shuffled within each
(modality, site) stratum, the strata are laid end to end, and each patient in turn goes to
the split furthest below its target share: every stratum is then divided in the target
proportions to within one patient, and rare strata are spread over the splits instead of
all landing in the training split.

Patient ids that differ only in letter case, Unicode form or whitespace (" P1", "p1", "P1")
are one patient here: an export that writes the same patient two ways must not put them in
two splits. Such ids are counted in split.json and warned about, as curation should have
caught them.

The same cases, seed and fractions always give the same split; another seed or other
fractions assign every patient anew. The `split` command (`write_splits`) keeps the split a
case already carries (an importer's source split, RADCURE's challenge training/test; the files
an earlier split wrote): such a patient stays where it was, and the seed and fractions divide
only the patients whose cases carry none. So new patients join an existing split by running
`split` on the earlier train/val/test files concatenated with the new cases, and no patient
moves. Which patient went where is in the output files themselves (each case's `patient_id`
and `split`); split.json counts the patients that kept a given split (`given_split`).
"""

from __future__ import annotations

import math
import random
import unicodedata
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from radonc_llm.data.cases import Case, write_cases
from radonc_llm.errors import RadoncInputError
from radonc_llm.storage import check_output_folder, write_json_atomic

SPLITS = ("train", "val", "test")


def patient_key(patient_id: str) -> str:
    """The patient an id names: case, Unicode form and whitespace do not tell patients apart."""
    return " ".join(unicodedata.normalize("NFKC", patient_id).split()).casefold()


def _shares(fractions: Sequence[float]) -> str:
    # No square brackets: the CLI prints errors through rich, which reads "[nan, ...]" as markup.
    return " / ".join(f"{share:g}" for share in fractions)


def _patients(cases: Sequence[Case]) -> dict[str, list[Case]]:
    by_patient: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_patient[patient_key(case.patient_id)].append(case)
    return by_patient


def _given_splits(by_patient: dict[str, list[Case]]) -> dict[str, str]:
    """The split each patient's cases already carry, for the patients whose cases carry one."""
    given: dict[str, str] = {}
    for key, patient_cases in by_patient.items():
        named = {case.split for case in patient_cases if case.split is not None}
        if len(named) > 1:
            listed = ", ".join(
                f"{case.case_id} in {case.split}" for case in patient_cases if case.split
            )
            raise RadoncInputError(
                f"patient '{patient_cases[0].patient_id}' has cases given to more than one "
                f"split ({listed}); a patient belongs to one split: correct the cases' split "
                "field, or remove it to let the split assign the patient",
                field="split",
            )
        if named:
            given[key] = named.pop()
    return given


def split_cases(
    cases: Sequence[Case],
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    keep_given: bool = False,
) -> dict[str, list[Case]]:
    """Assign every case to train/val/test; returns the cases of each split (split field set).

    With `keep_given`, a patient whose cases carry a split keeps it (all of them, its cases
    without one included) and the fractions divide the other patients; a patient whose cases
    carry two splits is refused. Without it, every patient is assigned anew.
    """
    valid = len(fractions) == 3 and all(math.isfinite(f) and f >= 0 for f in fractions)
    if not valid or abs(sum(fractions) - 1) > 1e-6:
        raise RadoncInputError(
            "split fractions must be three non-negative numbers summing to 1, got "
            f"{_shares(fractions)}",
            field="fractions",
        )
    by_patient = _patients(cases)
    given = _given_splits(by_patient) if keep_given else {}
    # A patient is sorted by its smallest id as written, so that clean ids (one spelling per
    # patient) are shuffled exactly as before patient_key existed: same seed, same split.
    strata: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for key, patient_cases in by_patient.items():
        if key in given:
            continue
        first = patient_cases[0]
        label = min(case.patient_id for case in patient_cases)
        strata[(first.modality, first.site or "")].append((label, key))

    rng = random.Random(seed)
    order: list[str] = []
    for stratum in sorted(strata):
        patients = [key for _, key in sorted(strata[stratum])]
        rng.shuffle(patients)
        order.extend(patients)

    result: dict[str, list[Case]] = {name: [] for name in SPLITS}
    for key, name in given.items():
        result[name].extend(case.model_copy(update={"split": name}) for case in by_patient[key])
    assigned: Counter[str] = Counter()
    for position, key in enumerate(order, start=1):
        name = max(SPLITS, key=lambda s: fractions[SPLITS.index(s)] * position - assigned[s])
        assigned[name] += 1
        result[name].extend(case.model_copy(update={"split": name}) for case in by_patient[key])
    return result


def merged_patient_ids(cases: Sequence[Case]) -> list[list[str]]:
    """Groups of patient ids written differently that name one patient (see patient_key)."""
    spellings: dict[str, set[str]] = defaultdict(set)
    for case in cases:
        spellings[patient_key(case.patient_id)].add(case.patient_id)
    return [sorted(ids) for ids in spellings.values() if len(ids) > 1]


def empty_splits(splits: dict[str, list[Case]], *, fractions: Sequence[float]) -> list[str]:
    """The splits that were given a share but got no patient (too few patients)."""
    return [
        name
        for name, share in zip(SPLITS, fractions, strict=True)
        if share > 0 and not splits[name]
    ]


def split_summary(splits: dict[str, list[Case]], *, seed: int, fractions: Sequence[float]) -> dict:
    """Counts per split, by modality, site and ICD-10 chapter: the make-up the report shows."""
    from radonc_llm.data import icd10

    everything = [case for cases in splits.values() for case in cases]
    all_modalities = sorted({case.modality for case in everything})
    all_sites = sorted({case.site or "unknown" for case in everything})
    summary: dict = {
        "seed": seed,
        "fractions": list(fractions),
        "merged_patient_ids": merged_patient_ids(everything),
        "empty_splits": empty_splits(splits, fractions=fractions),
        "splits": {},
    }
    for name, cases in splits.items():
        modalities = Counter(case.modality for case in cases)
        sites = Counter(case.site or "unknown" for case in cases)
        summary["splits"][name] = {
            "cases": len(cases),
            "patients": len({patient_key(case.patient_id) for case in cases}),
            "modality": dict(modalities.most_common()),
            "site": dict(sites.most_common()),
            "icd10_chapter": dict(
                Counter(icd10.chapter(case.icd10) for case in cases).most_common()
            ),
            # What the cohort holds but this split does not: metrics there cannot cover it.
            "absent": {
                "modality": [m for m in all_modalities if m not in modalities],
                "site": [site for site in all_sites if site not in sites],
            },
        }
    return summary


def write_splits(
    cases: Sequence[Case],
    out_dir: str | Path,
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    allow_empty: bool = True,
    keep_given: bool = True,
    source: str | Path | None = None,
) -> dict:
    """Write train.jsonl, val.jsonl, test.jsonl and split.json; returns the summary.

    A patient whose cases already carry a split keeps it (see `split_cases`), counted in
    split.json as `given_split`. A split given a share that gets no patient is warned about,
    or with `allow_empty=False` (a study, which trains, validates and tests) fails before
    anything is written. `source`, the case file, is named in errors about its cases.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    try:
        given = _given_splits(_patients(cases)) if keep_given else {}
    except RadoncInputError as exc:
        raise RadoncInputError(exc.reason, file=source, field=exc.field) from None
    splits = split_cases(cases, fractions=fractions, seed=seed, keep_given=keep_given)
    summary = split_summary(splits, seed=seed, fractions=fractions)
    patients = sum(split["patients"] for split in summary["splits"].values())
    if given:
        kept = Counter(given.values())
        summary["given_split"] = {name: kept[name] for name in SPLITS}
        counts = ", ".join(f"{name} {kept[name]}" for name in SPLITS if kept[name])
        rest = (
            f"seed {seed} and shares {_shares(fractions)} divide the other {patients - len(given)}"
            if patients > len(given)
            else "seed and fractions were not used; remove the split field to split anew"
        )
        warnings.warn(
            f"{len(given)} patient(s) keep the split their cases carry ({counts}); {rest}",
            stacklevel=2,
        )
    if summary["empty_splits"]:
        assigned = f"{patients} patient(s)"
        if given:
            assigned = f"{patients - len(given)} patient(s) without a given split"
        message = (
            f"split(s) {', '.join(summary['empty_splits'])} got no patient: {assigned} "
            f"are too few for shares {_shares(fractions)}"
        )
        if not allow_empty:
            raise RadoncInputError(f"{message}; use more patients", field="fractions")
        warnings.warn(message, stacklevel=2)
    test = summary["splits"]["test"]
    if test["cases"] and test["absent"]["modality"]:
        absent = test["absent"]["modality"]
        warnings.warn(
            f"the test split holds no {' or '.join(absent)} case: evaluation cannot score "
            f"{'it' if len(absent) == 1 else 'them'} (all such patients went to other splits)",
            stacklevel=2,
        )
    if summary["merged_patient_ids"]:
        groups = summary["merged_patient_ids"]
        examples = "; ".join(" = ".join(repr(pid) for pid in ids) for ids in groups[:3])
        warnings.warn(
            f"{len(groups)} patient(s) have ids written more than one way ({examples}); each "
            "is kept in one split. Curation should have merged them.",
            stacklevel=2,
        )
    try:
        for name, split in splits.items():
            write_cases(out_dir / f"{name}.jsonl", split)
        write_json_atomic(out_dir / "split.json", summary)
    except OSError as exc:
        raise RadoncInputError(
            f"cannot write the split ({exc.strerror})", file=exc.filename or out_dir
        ) from None
    return summary
