"""Patient-level, stratified, seeded split."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.data.cases import Case, write_cases
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


def _case(number: int, patient_id: str, **fields) -> Case:
    return Case(
        case_id=f"c{number}",
        patient_id=patient_id,
        diagnosis_text="note",
        regimen="60 Gy in 30 fractions",
        modality=fields.pop("modality", "photon"),
        icd10="C61",
        **fields,
    )


def test_ids_differing_only_in_case_or_whitespace_are_one_patient(tmp_path):
    spellings = ["P{}", " P{}", "p{}", "P{} ", "P{}\t", "\uff30{}"]  # the last: a full-width P
    cases = [
        _case(100 * i + k, spelling.format(i))
        for i in range(30)
        for k, spelling in enumerate(spellings)
    ]
    with pytest.warns(UserWarning, match="30 patient"):
        summary = write_splits(cases, tmp_path, seed=5)
    splits = split_cases(cases, seed=5)
    owners: dict[str, set[str]] = {}
    for name, split in splits.items():
        for case in split:
            owners.setdefault(case.patient_id.strip().upper().replace("\uff30", "P"), set()).add(
                name
            )
    assert all(len(names) == 1 for names in owners.values()), owners
    assert sum(block["patients"] for block in summary["splits"].values()) == 30
    assert len(summary["merged_patient_ids"]) == 30
    # every case is kept, its id as written
    assert sorted(c.patient_id for s in splits.values() for c in s) == sorted(
        c.patient_id for c in cases
    )


def test_clean_ids_split_as_before_patient_ids_were_normalised():
    # Assignment of seed 0 on _cases(40), as the split wrote it before ids were normalised.
    test_ids = [c.case_id for c in split_cases(_cases(40), seed=0)["test"]]
    assert test_ids == ["c28-0", "c22-0", "c36-0", "c36-1", "c17-0"]


@pytest.mark.parametrize("fractions", [(math.nan, 0.0, 1.0), (math.inf, 0.0, 0.0)])
def test_non_finite_fractions_are_refused(fractions):
    with pytest.raises(RadoncInputError, match="fractions") as error:
        split_cases(_cases(10), fractions=fractions)
    assert "[" not in error.value.reason  # the CLI prints through rich: "[nan" is markup


def test_a_share_that_gets_no_patient_is_named(tmp_path):
    with pytest.warns(UserWarning, match="test got no patient: 37 patient"):
        summary = write_splits(_cases(50)[:50], tmp_path, fractions=(0.98, 0.01, 0.01))
    assert summary["empty_splits"] == ["test"]
    with pytest.raises(RadoncInputError, match="val, test got no patient: 2 patient"):
        write_splits(_cases(3)[:3], tmp_path / "strict", allow_empty=False)
    assert not (tmp_path / "strict").exists()  # nothing written


def test_a_split_asked_to_be_empty_is_not_warned_about(tmp_path, recwarn):
    summary = write_splits(_cases(20), tmp_path, fractions=(1, 0, 0))
    assert summary["empty_splits"] == [] and not recwarn.list
    assert summary["splits"]["train"]["cases"] == len(_cases(20))


def test_the_summary_names_modalities_and_sites_a_split_lacks(tmp_path):
    cases = [_case(i, f"p{i}", site="prostate") for i in range(20)]
    cases.append(_case(99, "p99", modality="proton", site="brain"))
    summary = write_splits(cases, tmp_path, seed=0)
    absent = [summary["splits"][name]["absent"] for name in ("train", "val", "test")]
    missing = [block for block in absent if "proton" in block["modality"]]
    assert len(missing) == 2 and all(block["site"] == ["brain"] for block in missing)


def test_an_output_that_is_a_file_fails_naming_it(tmp_path):
    (tmp_path / "taken").write_text("")
    for out in (tmp_path / "taken", tmp_path / "taken" / "sub"):
        with pytest.raises(RadoncInputError, match="is a file, not a folder") as error:
            write_splits(_cases(10), out)
        assert error.value.file == str(tmp_path / "taken")


def test_the_cli_prints_a_file_in_the_way_without_a_traceback(tmp_path):
    cases = tmp_path / "cases.jsonl"
    write_cases(cases, _cases(10))
    (tmp_path / "taken").write_text("")
    result = CliRunner().invoke(
        app, ["split", "--cases", str(cases), "--out", str(tmp_path / "taken")]
    )
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
