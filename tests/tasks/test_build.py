"""Instruction datasets: one chat example per case and task, answers never in the prompt."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.data.cases import Case, write_cases
from radonc_llm.infer.extract import extract_answer
from radonc_llm.tasks.build import build_task_example
from radonc_llm.tasks.prompts import PROMPT_VERSION, SYSTEM_PROMPT, TASK_PROMPTS

CASE = Case(
    case_id="c1",
    patient_id="p1",
    diagnosis_text="58F L breast UOQ IDC pT1cN0, ER+/PR+/HER2-, s/p lumpectomy",
    regimen="40.05 Gy in 15 fractions",
    modality="photon",
    icd10="c50412",
)


def test_each_task_has_system_user_assistant_and_the_answer():
    icd10_target = "Malignant neoplasm of upper-outer quadrant of left female breast (C50.412)"
    for task, answer, target in (
        ("regimen", CASE.regimen, CASE.regimen),
        ("modality", "photon", "photon"),
        ("icd10", "C50.412", icd10_target),  # the model writes the title, then the code
    ):
        example = build_task_example(CASE, task)
        roles = [m["role"] for m in example["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert example["messages"][0]["content"] == SYSTEM_PROMPT
        assert example["messages"][-1]["content"] == target
        assert example["answer"] == answer
        assert extract_answer(task, target).prediction == answer
        assert CASE.diagnosis_text in example["messages"][1]["content"]
        assert TASK_PROMPTS[task].instruction in example["messages"][1]["content"]
        assert example["prompt_version"] == PROMPT_VERSION
        assert example["stratum"] == "C50"  # the diagnosis group, for tempered sampling


def test_cli_writes_three_task_files(tmp_path):
    write_cases(tmp_path / "cases.jsonl", [CASE])
    result = CliRunner().invoke(
        app, ["tasks", "--cases", str(tmp_path / "cases.jsonl"), "--out", str(tmp_path / "t")]
    )
    assert result.exit_code == 0, result.output
    for task in ("regimen", "modality", "icd10"):
        rows = [json.loads(x) for x in (tmp_path / "t" / f"{task}.jsonl").read_text().splitlines()]
        assert len(rows) == 1 and rows[0]["task"] == task


def test_case_file_errors_name_file_line_and_field(tmp_path):
    path = tmp_path / "cases.jsonl"
    good = CASE.model_dump(exclude_none=True)
    bad = {**good, "case_id": "c2", "modality": "neutron"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    result = CliRunner().invoke(app, ["tasks", "--cases", str(path), "--out", str(tmp_path / "t")])
    assert result.exit_code == 2
    assert "cases.jsonl, row 2, field 'modality'" in result.output


def _tasks(tmp_path, content: bytes):
    path = tmp_path / "cases.jsonl"
    path.write_bytes(content)
    return CliRunner().invoke(app, ["tasks", "--cases", str(path), "--out", str(tmp_path / "t")])


def test_modality_in_any_case_is_the_same_class(tmp_path):
    rows = [{**CASE.model_dump(exclude_none=True), "modality": m} for m in ("Photon", "PROTON ")]
    rows[1]["case_id"] = "c2"
    result = _tasks(tmp_path, "".join(json.dumps(r) + "\n" for r in rows).encode())
    assert result.exit_code == 0, result.output
    answers = (tmp_path / "t" / "modality.jsonl").read_text().splitlines()
    assert [json.loads(line)["answer"] for line in answers] == ["photon", "proton"]
    # Written as curation reads a recorded modality: a synonym of one class is that class.
    rows = [{**rows[0], "case_id": f"s{i}", "modality": m}
            for i, m in enumerate(("Photons", "IMRT", "HDR brachytherapy", "electrons"))]  # fmt: skip
    result = _tasks(tmp_path, "".join(json.dumps(r) + "\n" for r in rows).encode())
    assert result.exit_code == 0, result.output
    answers = (tmp_path / "t" / "modality.jsonl").read_text().splitlines()
    assert [json.loads(line)["answer"] for line in answers] == [
        "photon", "photon", "brachytherapy", "electron"
    ]  # fmt: skip
    for unclear in ("photon/proton", "carbon ions", "radiotherapy"):
        row = {**rows[0], "modality": unclear}
        result = _tasks(tmp_path, (json.dumps(row) + "\n").encode())
        assert result.exit_code == 2 and "row 1, field 'modality'" in result.output


def test_blank_note_empty_file_and_array_are_explained_a_bom_is_read(tmp_path):
    good = CASE.model_dump(exclude_none=True)
    result = _tasks(tmp_path, (json.dumps({**good, "diagnosis_text": "  \t"}) + "\n").encode())
    assert result.exit_code == 2
    assert "row 1, field 'diagnosis_text': is blank" in result.output
    invisible = {**good, "regimen": "\u200b\ufeff"}  # zero-width space, BOM: nothing to read
    result = _tasks(tmp_path, (json.dumps(invisible) + "\n").encode())
    assert result.exit_code == 2 and "row 1, field 'regimen': is blank" in result.output
    result = _tasks(tmp_path, b"")
    assert result.exit_code == 2 and "holds no cases" in result.output
    assert not (tmp_path / "t").exists()
    result = _tasks(tmp_path, json.dumps([good], indent=1).encode())
    assert result.exit_code == 2 and "looks like a JSON array" in result.output
    result = _tasks(tmp_path, b"\xef\xbb\xbf" + json.dumps(good).encode() + b"\n")
    assert result.exit_code == 0, result.output  # a byte-order mark is not part of the data
    result = CliRunner().invoke(app, ["tasks", "--cases", str(tmp_path), "--out", "t"])
    assert result.exit_code == 2 and "is a folder" in result.output
