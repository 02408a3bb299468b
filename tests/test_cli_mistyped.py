"""What a user who mistypes gets from `radonc-llm`: one specific message, the right exit status,
nothing written where they did not mean it, and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from radonc_llm.cli import app


def _invoke(args: list[str]):
    result = CliRunner().invoke(app, args)
    assert "Traceback" not in result.output
    return result


def _flat(text: str) -> str:
    """Click draws usage errors in a box; the words without the frame and line breaks."""
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize(
    "args",
    [
        ["synth", "--patients", "3", "--out", ""],
        ["synth", "--patients", "3", "--out="],
        ["split", "--cases", "cases.jsonl", "--out", "  "],
        ["tasks", "--cases", "", "--out", "t"],
        ["run", ""],
        ["import", "radcure", "", "--out", "x.jsonl"],
    ],
)
def test_an_empty_path_is_refused_not_read_as_the_current_folder(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("cases.jsonl").write_text(json.dumps({"case_id": "c1"}) + "\n")
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    assert "is empty" in _flat(result.output)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cases.jsonl"]


def test_an_empty_value_of_a_list_option_is_refused(tmp_path):
    result = _invoke(
        ["predict", "--cases", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "p.jsonl"),
         "--tasks", "", "--backend", "openai"]
    )  # fmt: skip
    assert result.exit_code == 2
    assert "'--tasks': is empty" in _flat(result.output)


def test_a_tilde_the_shell_left_unexpanded_means_home_not_a_folder_named_tilde(
    tmp_path, monkeypatch
):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    result = _invoke(["synth", "--patients", "3", "--out=~/raw"])  # bash leaves this ~ alone
    assert result.exit_code == 0, result.output
    assert (home / "raw" / "patients.csv").exists()
    assert list(work.iterdir()) == []


def test_a_missing_tilde_path_is_named_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    result = _invoke(["split", "--cases=~/nowhere.jsonl", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'nowhere.jsonl'}: file not found" in result.output


def test_an_error_goes_to_stderr_so_a_redirected_summary_does_not_swallow_it(tmp_path):
    result = _invoke(["split", "--cases", str(tmp_path / "none.jsonl"), "--out", "s"])
    assert result.exit_code == 2
    assert "file not found" in result.stderr
    assert "file not found" not in result.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["curate", "--raw", "r", "--out", "o", "--date-order", "ymd"], "--date-order"),
        (["curate", "--raw", "r", "--out", "o", "--encoding", "utf9"], "--encoding"),
        (["synth", "--patients", "0", "--out", "o"], "--patients"),
        (["split", "--cases", "c.jsonl", "--out", "o", "--fractions", "a,b,c"], "--fractions"),
    ],
)
def test_a_bad_option_value_is_named_by_its_option_not_an_internal_field(
    args, option, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    Path("r").mkdir()
    Path("c.jsonl").write_text("")
    result = _invoke(args)
    assert result.exit_code == 2
    assert f"error: {option}: " in result.output and "field '" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--limit", "0"],
        ["predict", "--limit", "-5"],
        ["split", "--seed", "-1"],
        ["synth", "--seed", "-1"],
        ["split", "--seed", str(2**32)],
        ["baseline", "--batch-size", "0"],
        ["review", "serve", "--port", "99999"],
        ["review", "serve", "--workers", "0"],
    ],
)
def test_numbers_out_of_range_are_usage_errors_before_any_work(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke(args)
    assert result.exit_code == 2
    text = _flat(result.output)
    assert f"Invalid value for '{args[-2]}'" in text
    assert "greater than or equal to" in text or "less than or equal to" in text


def test_an_unknown_backend_is_named_before_the_cases_are_read(tmp_path):
    result = _invoke(
        ["predict", "--cases", str(tmp_path / "missing.jsonl"), "--out", "p.jsonl",
         "--backend", "vllm"]
    )  # fmt: skip
    assert result.exit_code == 2
    assert "unknown backend 'vllm'" in result.output and "not found" not in result.output


@pytest.mark.parametrize("command", ["predict", "baseline"])
def test_a_prediction_file_under_a_file_is_refused_before_any_model_loads(command, tmp_path):
    (tmp_path / "afile").write_text("keep")
    cases = tmp_path / "cases.jsonl"
    cases.write_text("")
    extra = ["--model", "no-such-model"] if command == "predict" else ["--train", str(cases)]
    if command == "baseline":
        extra += ["--kind", "few-shot", "--model", "no-such-model"]
    result = _invoke(
        [command, "--cases", str(cases), "--out", str(tmp_path / "afile" / "p.jsonl"), *extra]
    )
    assert result.exit_code == 2
    assert f"{tmp_path / 'afile'}: is a file, not a folder" in result.output
    assert (tmp_path / "afile").read_text() == "keep"


def test_help_of_predict_names_the_default_tasks_and_the_hub_id():
    result = CliRunner().invoke(app, ["predict", "--help"], env={"COLUMNS": "200"})
    text = _flat(result.output)
    assert "default: all three" in text and "hub id" in text


def test_a_mistyped_option_suggests_the_right_one():
    result = _invoke(["split", "--case", "x.jsonl", "--out", "y"])
    assert result.exit_code == 2 and "Possible options: --cases" in _flat(result.output)


def test_a_tilde_of_no_such_user_is_left_as_written(tmp_path):
    result = _invoke(["split", "--cases", "~nosuchuser0/c.jsonl", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "~nosuchuser0/c.jsonl: file not found" in result.output


@pytest.mark.parametrize(
    "args,expected",
    [
        (["curate", "--raw", "afile", "--out", "cur"], "is a file, not a folder; give the folder"),
        (["report", "--run", "afile"], "is a file; give a run folder"),
        (["synth", "--patients", "99999999999", "--out", "raw"], "1000000"),
    ],
)
def test_a_file_for_a_folder_and_an_absurd_size_are_named(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("x\n")
    result = _invoke(args)
    assert result.exit_code == 2
    assert expected in _flat(result.output)
    assert not Path("cur").exists() and not Path("raw").exists()


def test_tasks_of_only_commas_name_no_task():
    from radonc_llm.errors import RadoncInputError
    from radonc_llm.infer.predict import parse_tasks

    with pytest.raises(RadoncInputError, match="names no task"):
        parse_tasks([",", " , "])


def test_a_file_named_as_the_review_study_folder_is_named_as_the_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("x\n")
    Path("cases.jsonl").write_text("")
    Path("pred.jsonl").write_text("")
    result = _invoke(
        ["review", "create-study", "--cases", "cases.jsonl", "--predictions", "a=pred.jsonl",
         "--reviewers", "2", "--study", "afile"]
    )  # fmt: skip
    assert result.exit_code == 2
    output = _flat(result.output)
    assert "afile" in output and "is a file, not a folder" in output and "db" not in output


@pytest.mark.parametrize(
    "command", [["add-user", "--username", "alice"], ["serve"], ["export", "--out", "e"]]
)
def test_a_file_given_as_an_existing_study_folder_is_named(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("study.json").write_text("{}")
    result = _invoke(["review", command[0], "--study", "study.json", *command[1:]])
    assert result.exit_code == 2
    output = _flat(result.output)
    assert "study.json: is a file; give the study folder" in output
    assert "Review of" not in output and "study.json/study.json" not in output
