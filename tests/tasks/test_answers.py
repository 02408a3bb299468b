"""Reference answers: never a placeholder an export wrote for a missing value, every case kept
in a task file or listed with its reason, ICD-10 answers as official title and code."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.data.cases import Case, write_cases
from radonc_llm.errors import RadoncInputError
from radonc_llm.infer.extract import extract_answer
from radonc_llm.storage import read_jsonl
from radonc_llm.tasks.build import (
    build_task_example,
    regimen_problem,
    task_target,
    write_task_datasets,
)


def _case(number: int, regimen: str = "70 Gy in 35 fractions", **fields) -> Case:
    return Case(
        case_id=fields.pop("case_id", f"c{number}"),
        patient_id=f"p{number}",
        diagnosis_text=fields.pop("diagnosis_text", f"note {number}: oropharynx SCC T2N1"),
        regimen=regimen,
        modality=fields.pop("modality", "photon"),
        icd10=fields.pop("icd10", "C10.9"),
        **fields,
    )


@pytest.mark.parametrize(
    "regimen",
    [
        "None Gy in nan fractions",  # a table's empty cells, rendered
        "60 Gy in nan fractions",
        "nan Gy in 30 fractions",
        "70 Gy in None fractions IMRT",
        "60 Gy in 0 fractions",
        "0 Gy in 30 fractions",
        "70 Gy in 35 fractions with concurrent ",  # an empty drug list
        "70 Gy in 35 fractions with concurrent",
        "70 Gy in 35 fractions with concurrent , cisplatin",
        "70 Gy in 35 fractions with concurrent None",
        "70 Gy in 35 fractions with concurrent NaN",
        "50 Gy in 25 fractions with boost nan Gy",
        "60 Gy in 30.5 fractions",
        "60 Gy/30.5 fx",
        "Observation",
        "Active surveillance",
        "Declined RT",
        "nan",
        "None",
        "N/A",
        "#N/A",
        "NULL",
        "-",
        "?",
        "unknown",
        "{}",
    ],
)
def test_placeholders_are_no_regimen(regimen):
    assert regimen_problem(regimen) is not None


@pytest.mark.parametrize(
    "regimen",
    [
        "70 Gy in 35 fractions IMRT with concurrent weekly cisplatin",
        "60 Gy in 30 fractions with concurrent and adjuvant temozolomide",
        "40.05 Gy in 15 fractions 3D-CRT with boost 10 Gy in 5 fractions",
        "50 Gy in 25 fractions with tumour bed boost",
        "50.4 Gy in 28 fractions (1.8 Gy/fx) with concurrent capecitabine",
        "8 Gy in 1 fraction 3D-CRT",
        "20 Gy single fraction SRS",
        "7 Gy x 3 HDR",
        "145 Gy LDR I-125 seed implant",
        "70 GyRBE in 35 fractions",
        "78 Gy in 39 fractions IMRT with concurrent ADT",
        "70 Gy in 35 fractions with concurrent EGFR inhibitor",
        "60 Gy in 30 fractions, concurrent: none",  # a clinician saying there is none
        "36 Gy in 36 fractions TSEBT",
        "60.0 Gy in 30.0 fractions",
        "60 Gy in 30 fractions then observation",
    ],
)
def test_clinical_regimens_are_answers(regimen):
    assert regimen_problem(regimen) is None


def test_a_case_without_a_usable_regimen_is_skipped_for_that_task_only(tmp_path):
    cases = [
        _case(0),
        _case(1, "None Gy in nan fractions"),
        _case(2, "70 Gy in 35 fractions with concurrent "),
        _case(3, "70 Gy in 35 fractions with concurrent cisplatin"),
    ]
    with pytest.warns(UserWarning, match=r"regimen: 2 of 4 case\(s\) skipped.*case c1"):
        counts = write_task_datasets(cases, tmp_path, source="cases.jsonl")
    assert counts == {"regimen": 2, "modality": 4, "icd10": 4}
    regimen = read_jsonl(tmp_path / "regimen.jsonl")
    assert [row["case_id"] for row in regimen] == ["c0", "c3"]
    assert all(row["messages"][-1]["content"] == row["answer"] for row in regimen)
    skipped = read_jsonl(tmp_path / "skipped.jsonl")
    assert [(row["case_id"], row["task"], row["field"]) for row in skipped] == [
        ("c1", "regimen", "regimen"),
        ("c2", "regimen", "regimen"),
    ]
    assert skipped[0]["value"] == "None Gy in nan fractions"
    assert "missing" in skipped[0]["reason"] and "names no drug" in skipped[1]["reason"]
    assert all(row["file"] == "cases.jsonl" for row in skipped)
    # every case is in the task file or in the ledger, once
    for task in ("regimen", "modality", "icd10"):
        written = [row["case_id"] for row in read_jsonl(tmp_path / f"{task}.jsonl")]
        listed = [row["case_id"] for row in skipped if row["task"] == task]
        assert sorted(written + listed) == [case.case_id for case in cases]


def test_a_rerun_with_nothing_skipped_removes_the_old_ledger(tmp_path, recwarn):
    with pytest.warns(UserWarning, match="skipped"):
        write_task_datasets([_case(0), _case(1, "nan")], tmp_path)
    assert (tmp_path / "skipped.jsonl").is_file()
    write_task_datasets([_case(0)], tmp_path)
    assert not (tmp_path / "skipped.jsonl").exists()


def test_one_example_of_an_unusable_regimen_is_refused_naming_the_case():
    with pytest.raises(RadoncInputError, match="case 'c5': regimen .*zero") as error:
        build_task_example(_case(5, "60 Gy in 0 fractions"), "regimen")
    assert error.value.field == "regimen"
    assert build_task_example(_case(5, "60 Gy in 0 fractions"), "modality")["answer"] == "photon"


def test_the_regimen_answer_is_the_record_without_whitespace_or_invisibles_around_it():
    example = build_task_example(_case(1, "\ufeff 70 Gy in 35 fractions\u200b\n"), "regimen")
    assert example["answer"] == example["messages"][-1]["content"] == "70 Gy in 35 fractions"


@pytest.mark.parametrize("code", ["C10.9", "C32.0", "C01", "C50.412", "C61", "C4A.4", "C79.51"])
def test_icd10_targets_are_the_official_title_then_the_code(code):
    case = _case(1, icd10=code)
    target = task_target(case, "icd10")
    assert target.endswith(f" ({code})") and target.startswith(("Malignant", "Merkel", "Second"))
    assert extract_answer("icd10", target).prediction == code


def test_repeated_notes_are_kept_and_warned_about(tmp_path):
    cases = [_case(0), _case(1, diagnosis_text="note 0: oropharynx SCC T2N1", case_id="copy")]
    with pytest.warns(UserWarning, match=r"1 case\(s\) have the diagnosis note of an earlier"):
        counts = write_task_datasets(cases, tmp_path)
    assert counts == {"regimen": 2, "modality": 2, "icd10": 2}


def test_the_cli_says_what_it_skipped_and_exits_cleanly(tmp_path):
    path = tmp_path / "cases.jsonl"
    write_cases(path, [_case(0), _case(1, "None Gy in None fractions")])
    result = CliRunner().invoke(app, ["tasks", "--cases", str(path), "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "1 of 2 case(s) skipped" in result.output.replace("\n", "")
    rows = (tmp_path / "t" / "skipped.jsonl").read_text().splitlines()
    assert [json.loads(row)["case_id"] for row in rows] == ["c1"]
