"""Patient-level, stratified, seeded split."""

from __future__ import annotations

from collections import Counter

import pytest

from radonc_llm.data.cases import Case
from radonc_llm.data.split import split_cases, write_splits
from radonc_llm.errors import RadoncInputError


def _cases(n_patients: int = 400) -> list[Case]:
    modalities = ["photon"] * 7 + ["proton", "electron", "brachytherapy"]
    cases = []
    for i in range(n_patients):
        for course in range(1 + (i % 3 == 0)):  # a third of the patients have two cases
            cases.append(
                Case(
                    case_id=f"c{i}-{course}",
                    patient_id=f"p{i}",
                    diagnosis_text="note",
                    regimen="60 Gy in 30 fractions",
                    modality=modalities[i % len(modalities)],
                    icd10="C61",
                    site=["prostate", "breast", "lung", "skin"][i % 4],
                )
            )
    return cases


def test_no_patient_is_in_two_splits():
    splits = split_cases(_cases(), seed=3)
    owners = {}
    for name, cases in splits.items():
        for case in cases:
            assert owners.setdefault(case.patient_id, name) == name
            assert case.split == name
    assert sum(len(cases) for cases in splits.values()) == len(_cases())


def test_proportions_hold_within_each_stratum():
    splits = split_cases(_cases(), seed=0)
    patients = {name: {c.patient_id for c in cases} for name, cases in splits.items()}
    assert (
        len(patients["train"]) == 320 and len(patients["val"]) == 40 and len(patients["test"]) == 40
    )
    for name in ("val", "test"):
        modalities = Counter(c.modality for c in splits[name] if c.case_id.endswith("-0"))
        assert set(modalities) == {"photon", "proton", "electron", "brachytherapy"}
        assert modalities["photon"] == 28


def test_seed_changes_assignment_but_is_reproducible():
    first = split_cases(_cases(), seed=1)
    again = split_cases(_cases(), seed=1)
    other = split_cases(_cases(), seed=2)
    ids = lambda s: [c.case_id for c in s["test"]]  # noqa: E731
    assert ids(first) == ids(again)
    assert ids(first) != ids(other)


def test_bad_fractions_name_the_field():
    with pytest.raises(RadoncInputError, match="fractions"):
        split_cases(_cases(10), fractions=(0.5, 0.5, 0.5))


def test_write_splits_writes_three_files_and_summary(tmp_path):
    summary = write_splits(_cases(), tmp_path, seed=0)
    assert {p.name for p in tmp_path.iterdir()} == {
        "train.jsonl",
        "val.jsonl",
        "test.jsonl",
        "split.json",
    }
    assert summary["splits"]["test"]["patients"] == 40
    assert summary["splits"]["train"]["icd10_chapter"]
