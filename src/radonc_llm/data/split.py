"""Patient-level train/val/test split, stratified by modality and site, seeded.

All cases of a patient go to the same split. Patients are shuffled within each
(modality, site) stratum, the strata are laid end to end, and each patient in turn goes to
the split furthest below its target share: every stratum is then divided in the target
proportions to within one patient, and rare strata are spread over the splits instead of
all landing in the training split.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from radonc_llm.data.cases import Case, write_cases
from radonc_llm.errors import RadoncInputError
from radonc_llm.storage import write_json_atomic

SPLITS = ("train", "val", "test")


def split_cases(
    cases: Sequence[Case], *, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[Case]]:
    """Assign every case to train/val/test; returns the cases of each split (split field set)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise RadoncInputError(
            f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}",
            field="fractions",
        )
    by_patient: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_patient[case.patient_id].append(case)
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for patient_id, patient_cases in by_patient.items():
        first = patient_cases[0]
        strata[(first.modality, first.site or "")].append(patient_id)

    rng = random.Random(seed)
    order: list[str] = []
    for key in sorted(strata):
        patients = sorted(strata[key])
        rng.shuffle(patients)
        order.extend(patients)

    assigned: Counter[str] = Counter()
    result: dict[str, list[Case]] = {name: [] for name in SPLITS}
    for position, patient_id in enumerate(order, start=1):
        name = max(SPLITS, key=lambda s: fractions[SPLITS.index(s)] * position - assigned[s])
        assigned[name] += 1
        result[name].extend(
            case.model_copy(update={"split": name}) for case in by_patient[patient_id]
        )
    return result


def split_summary(splits: dict[str, list[Case]], *, seed: int, fractions: Sequence[float]) -> dict:
    """Counts per split, by modality, site and ICD-10 chapter: the make-up the report shows."""
    from radonc_llm.data import icd10

    summary: dict = {"seed": seed, "fractions": list(fractions), "splits": {}}
    for name, cases in splits.items():
        summary["splits"][name] = {
            "cases": len(cases),
            "patients": len({case.patient_id for case in cases}),
            "modality": dict(Counter(case.modality for case in cases).most_common()),
            "site": dict(Counter(case.site or "unknown" for case in cases).most_common()),
            "icd10_chapter": dict(
                Counter(icd10.chapter(case.icd10) for case in cases).most_common()
            ),
        }
    return summary


def write_splits(
    cases: Sequence[Case],
    out_dir: str | Path,
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict:
    """Write train.jsonl, val.jsonl, test.jsonl and split.json; returns the summary."""
    out_dir = Path(out_dir)
    splits = split_cases(cases, fractions=fractions, seed=seed)
    for name, split in splits.items():
        write_cases(out_dir / f"{name}.jsonl", split)
    summary = split_summary(splits, seed=seed, fractions=fractions)
    write_json_atomic(out_dir / "split.json", summary)
    return summary
