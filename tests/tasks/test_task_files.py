"""`radonc-llm tasks` output folders: stale files, files in the way, unusual notes, determinism."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.data.cases import Case, write_cases
from radonc_llm.storage import read_jsonl
from radonc_llm.tasks.build import write_task_datasets
from radonc_llm.tasks.prompts import note_text

NOTES = [
    "58F L breast UOQ IDC pT1cN0. " + "Long history. " * 1500,  # ~21,000 characters
    "Left breast \x07\x1b[31m IDC\u200b \u202ereversed\u202c 😀 سرطان الثدي\r\nnext\u2028line",
]
CASES = [
    Case(case_id=f"c{i}", patient_id=f"p{i}", diagnosis_text=note, regimen="50 Gy in 25 fractions",
         modality="photon", icd10="C50.412")
    for i, note in enumerate(NOTES)
]  # fmt: skip


def test_a_task_file_left_by_a_run_with_more_tasks_is_removed(tmp_path):
    write_task_datasets(CASES, tmp_path)
    other = tmp_path / "notes.jsonl"  # not a task file: left alone
    other.write_text("{}\n")
    counts = write_task_datasets(CASES[:1], tmp_path, tasks=("icd10",))
    assert counts == {"icd10": 1}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["icd10.jsonl", "notes.jsonl"]


def test_an_output_that_is_a_file_fails_naming_it(tmp_path):
    cases = tmp_path / "cases.jsonl"
    write_cases(cases, CASES)
    (tmp_path / "taken").write_text("")
    for out in ("taken", "taken/sub"):
        result = CliRunner().invoke(
            app, ["tasks", "--cases", str(cases), "--out", str(tmp_path / out)]
        )
        assert result.exit_code == 2, result.output
        assert f"{tmp_path / 'taken'}: is a file, not a folder" in result.output.replace("\n", "")


def test_long_and_unusual_notes_reach_the_prompt_whole_and_the_output_is_deterministic(
    tmp_path,
):
    first, second = tmp_path / "a", tmp_path / "b"
    write_task_datasets(CASES, first)
    write_task_datasets(list(CASES), second)
    for task in ("regimen", "modality", "icd10"):
        assert (first / f"{task}.jsonl").read_bytes() == (second / f"{task}.jsonl").read_bytes()
        rows = read_jsonl(first / f"{task}.jsonl")  # U+2028 in a note does not split a row
        assert [row["case_id"] for row in rows] == ["c0", "c1"]
        for row, note in zip(rows, NOTES, strict=True):
            assert note_text(note) in row["messages"][1]["content"]
        # Every word of the unusual note is there, in the one form the model reads: controls,
        # the bidi override and the zero-width space gone, line ends as "\n".
        assert (
            "Left breast [31m IDC reversed 😀 سرطان الثدي\nnext\nline"
            in rows[1]["messages"][1]["content"]
        )
    raw = (first / "regimen.jsonl").read_bytes()
    assert raw.count(b"\n") == 2 and json.loads(raw.split(b"\n")[1])["case_id"] == "c1"
