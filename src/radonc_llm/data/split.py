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


def split_cases(
    cases: Sequence[Case], *, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[Case]]:
    """Assign every case to train/val/test; returns the cases of each split (split field set)."""
    valid = len(fractions) == 3 and all(math.isfinite(f) and f >= 0 for f in fractions)
    if not valid or abs(sum(fractions) - 1) > 1e-6:
        raise RadoncInputError(
            "split fractions must be three non-negative numbers summing to 1, got "
            f"{_shares(fractions)}",
            field="fractions",
        )
    by_patient = _patients(cases)
    # A patient is sorted by its smallest id as written, so that clean ids (one spelling per
    # patient) are shuffled exactly as before patient_key existed: same seed, same split.
    strata: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for key, patient_cases in by_patient.items():
        first = patient_cases[0]
        label = min(case.patient_id for case in patient_cases)
        strata[(first.modality, first.site or "")].append((label, key))

    rng = random.Random(seed)
    order: list[str] = []
    for stratum in sorted(strata):
        patients = [key for _, key in sorted(strata[stratum])]
        rng.shuffle(patients)
        order.extend(patients)

    assigned: Counter[str] = Counter()
    result: dict[str, list[Case]] = {name: [] for name in SPLITS}
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
) -> dict:
    """Write train.jsonl, val.jsonl, test.jsonl and split.json; returns the summary.

    A split given a share that gets no patient is warned about, or with `allow_empty=False`
    (a study, which trains, validates and tests) fails before anything is written.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    splits = split_cases(cases, fractions=fractions, seed=seed)
    summary = split_summary(splits, seed=seed, fractions=fractions)
    patients = sum(split["patients"] for split in summary["splits"].values())
    if summary["empty_splits"]:
        message = (
            f"split(s) {', '.join(summary['empty_splits'])} got no patient: {patients} "
            f"patient(s) are too few for shares {_shares(fractions)}"
        )
        if not allow_empty:
            raise RadoncInputError(f"{message}; use more patients", field="fractions")
        warnings.warn(message, stacklevel=2)
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
