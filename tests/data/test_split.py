"""Patient-level, stratified, seeded split."""

from __future__ import annotations

import json
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
    with pytest.warns(UserWarning, match="test split holds no proton case"):
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


def _given(number: int, split: str | None, **fields) -> Case:
    return _case(number, fields.pop("patient_id", f"p{number}"), split=split, **fields)


def _where(splits: dict[str, list[Case]]) -> dict[str, str]:
    return {case.case_id: name for name, cases in splits.items() for case in cases}


def test_a_split_the_cases_carry_is_kept_and_the_fractions_divide_the_rest(tmp_path):
    # As RADCURE imports: the challenge's training and test patients, and patients outside it.
    cases = [_given(i, "train") for i in range(60)] + [_given(i, "test") for i in range(60, 80)]
    cases += [_given(i, None) for i in range(80, 120)]
    with pytest.warns(UserWarning, match=r"80 patient\(s\) keep the split .*train 60, test 20"):
        summary = write_splits(cases, tmp_path, seed=0)
    where = {
        row["case_id"]: name
        for name in ("train", "val", "test")
        for row in map(json.loads, (tmp_path / f"{name}.jsonl").read_text().splitlines())
    }
    assert all(where[f"c{i}"] == "train" for i in range(60))
    assert all(where[f"c{i}"] == "test" for i in range(60, 80))
    rest = Counter(where[f"c{i}"] for i in range(80, 120))
    assert rest == {"train": 32, "val": 4, "test": 4}  # 0.8 / 0.1 / 0.1 of the 40 without one
    assert summary["given_split"] == {"train": 60, "val": 0, "test": 20}
    assert sorted(where) == sorted(case.case_id for case in cases)  # each case once


def test_new_patients_join_an_earlier_split_without_moving_anyone(tmp_path):
    first = split_cases(_cases(100), seed=0)
    earlier = [case for cases in first.values() for case in cases]
    new = [_given(1000 + i, None, modality="proton") for i in range(30)]
    with pytest.warns(UserWarning, match="divide the other 30"):
        write_splits(earlier + new, tmp_path / "again", seed=7, fractions=(0.6, 0.2, 0.2))
    again = {
        row["case_id"]: row["split"]
        for name in ("train", "val", "test")
        for row in map(json.loads, (tmp_path / "again" / f"{name}.jsonl").read_text().splitlines())
    }
    assert {cid: again[cid] for cid in _where(first)} == _where(first)
    assert Counter(again[case.case_id] for case in new) == {"train": 18, "val": 6, "test": 6}


def test_every_patient_given_a_split_is_said_to_leave_seed_and_fractions_unused(tmp_path):
    cases = [_given(i, ("train", "val", "test")[i % 3]) for i in range(9)]
    with pytest.warns(UserWarning, match="seed and fractions were not used"):
        summary = write_splits(cases, tmp_path, seed=3)
    assert summary["empty_splits"] == []
    assert {name: block["patients"] for name, block in summary["splits"].items()} == {
        "train": 3,
        "val": 3,
        "test": 3,
    }


def test_a_patient_given_one_split_takes_its_other_cases_along(tmp_path):
    cases = [_given(1, "test", patient_id="P7"), _given(2, None, patient_id="p7 ")]
    cases += [_given(i, None) for i in range(10, 30)]
    with pytest.warns(UserWarning):
        write_splits(cases, tmp_path)
    test_ids = [json.loads(row)["case_id"] for row in (tmp_path / "test.jsonl").open()]
    assert {"c1", "c2"} <= set(test_ids)


def test_a_patient_given_two_splits_is_refused_naming_patient_cases_and_file(tmp_path):
    cases = [_given(1, "train", patient_id="P7"), _given(2, "test", patient_id="P7")]
    cases += [_given(i, None) for i in range(10, 20)]
    with pytest.raises(RadoncInputError) as error:
        write_splits(cases, tmp_path / "out", source="cases.jsonl")
    assert error.value.field == "split" and error.value.file == "cases.jsonl"
    assert "patient 'P7'" in error.value.reason and "c1 in train, c2 in test" in error.value.reason
    assert not (tmp_path / "out").exists()


def test_split_cases_without_keep_given_assigns_every_patient_anew():
    # What a study's validation carve needs: its training patients all carry split "train".
    cases = [_given(i, "train") for i in range(50)]
    carved = split_cases(cases, fractions=(0.8, 0.2, 0.0), seed=1)
    assert (len(carved["train"]), len(carved["val"]), len(carved["test"])) == (40, 10, 0)
    assert all(case.split == "val" for case in carved["val"])


@pytest.mark.parametrize("patients", [1, 2, 3, 9])
def test_tiny_cohorts_put_every_case_in_exactly_one_split(tmp_path, patients, recwarn):
    cases = _cases(patients)
    summary = write_splits(cases, tmp_path, seed=0)
    written = [
        json.loads(row)["case_id"]
        for name in ("train", "val", "test")
        for row in (tmp_path / f"{name}.jsonl").read_text().splitlines()
    ]
    assert sorted(written) == sorted(case.case_id for case in cases)
    empty = summary["empty_splits"]
    assert bool(empty) == (patients < 9)  # 9 patients: 7 / 1 / 1
    assert any("got no patient" in str(w.message) for w in recwarn.list) == bool(empty)


def test_a_modality_missing_from_the_test_split_is_warned_about(tmp_path):
    cases = [_case(i, f"p{i}") for i in range(30)] + [_case(99, "p99", modality="electron")]
    with pytest.warns(UserWarning, match="test split holds no electron case"):
        summary = write_splits(cases, tmp_path, seed=0)
    assert summary["splits"]["test"]["absent"]["modality"] == ["electron"]


def test_the_cli_keeps_an_imported_source_split(tmp_path):
    cases = [_given(i, "test" if i < 5 else None, site="oropharynx") for i in range(40)]
    path = tmp_path / "radcure.jsonl"
    write_cases(path, cases)
    result = CliRunner().invoke(
        app, ["split", "--cases", str(path), "--out", str(tmp_path / "s"), "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    assert "5 patient(s) keep the split their cases carry (test 5)" in result.output
    test_ids = {json.loads(row)["case_id"] for row in (tmp_path / "s" / "test.jsonl").open()}
    assert {f"c{i}" for i in range(5)} <= test_ids and len(
        test_ids
    ) == 5 + 3  # 0.1 of 35, rounded down
