"""Messy real-world input to the review commands: each gets one clear message, nothing is lost.

Prediction files with odd rows, bad passwords and usernames, study and export folders that
are files, databases that are not databases, and an export that fails half-way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.errors import RadoncInputError
from radonc_llm.review import export as export_module
from radonc_llm.review.db import prepare_database
from radonc_llm.review.export import export_review
from radonc_llm.review.schemas import UserCreate
from radonc_llm.review.study import create_study, read_regimen_predictions, write_study
from tests.review.conftest import prediction_rows, write_jsonl

runner = CliRunner()


def cli(*args: str, input: str | None = None):
    result = runner.invoke(app, list(args), input=input)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    return result


def regimen_row(case_id: str, prediction: str | None, raw: str) -> dict:
    return {
        "case_id": case_id,
        "task": "regimen",
        "prediction": prediction,
        "raw": raw,
        "malformed": prediction is None,
    }


def test_a_folder_given_as_a_jsonl_file_is_named(tmp_path, cases_file, prediction_files):
    with pytest.raises(RadoncInputError, match="is a folder") as caught:
        create_study(cases_file, {"base": tmp_path}, reviewers=["a"])
    assert caught.value.file == str(tmp_path)
    with pytest.raises(RadoncInputError, match="is a folder"):
        create_study(tmp_path, prediction_files, reviewers=["a"])


def test_rows_for_unknown_cases_name_their_count_and_first_line(tmp_path, cases_file):
    rows = prediction_rows({f"case{n}": "50 Gy/25 fx" for n in range(1, 7)})
    rows[3:3] = [regimen_row("ghost", "1 Gy", "1 Gy")]  # line 4
    rows.append(regimen_row("ghost2", "2 Gy", "2 Gy"))
    path = write_jsonl(tmp_path / "extra.jsonl", rows)
    with pytest.raises(RadoncInputError, match="2 regimen row.*'ghost'") as caught:
        create_study(cases_file, {"base": path}, reviewers=["a"])
    assert (caught.value.file, caught.value.row, caught.value.field) == (str(path), 4, "case_id")


def test_blank_predictions_fall_back_to_raw_and_whitespace_does_not_hint_the_source(tmp_path):
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            regimen_row("c1", "   ", "  60 Gy/30 fx\n"),  # blank prediction: the raw text
            regimen_row("c2", " 50 Gy/25 fx\n", "x"),
            regimen_row("c3", None, "\n \n"),  # nothing at all: the page says "no answer"
        ],
    )
    assert read_regimen_predictions(path) == {"c1": "60 Gy/30 fx", "c2": "50 Gy/25 fx", "c3": ""}


def test_a_prediction_file_without_regimen_rows_says_what_it_holds(tmp_path, cases_file):
    only_modality = [row for row in prediction_rows({"case1": "1 Gy"}) if row["task"] != "regimen"]
    path = write_jsonl(tmp_path / "modality.jsonl", only_modality)
    with pytest.raises(RadoncInputError, match="no regimen rows, only 1 of task modality"):
        create_study(cases_file, {"base": path}, reviewers=["a"])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(RadoncInputError, match="no prediction rows at all") as caught:
        create_study(cases_file, {"base": empty}, reviewers=["a"])
    assert caught.value.file == str(empty)


def test_a_case_id_longer_than_the_database_keeps_is_refused_on_every_backend(tmp_path):
    long_id = "case-" + "x" * 200
    case = {
        "case_id": long_id,
        "patient_id": "p1",
        "diagnosis_text": "Prostate adenocarcinoma, low risk",
        "regimen": "60 Gy/20 fx",
        "modality": "photon",
        "icd10": "C61",
    }
    cases = write_jsonl(tmp_path / "cases.jsonl", [case])
    predictions = write_jsonl(tmp_path / "p.jsonl", prediction_rows({long_id: "70 Gy/28 fx"}))
    with pytest.raises(RadoncInputError, match="has 205 characters; .* at most 128") as caught:
        create_study(cases, {"base": predictions}, reviewers=["a"])
    assert (caught.value.file, caught.value.field) == (str(cases), "case_id")


def test_markup_and_very_long_model_output_reach_the_study_unchanged(tmp_path, cases_file):
    texts = {f"case{n}": "50 Gy/25 fx" for n in range(1, 7)}
    texts["case1"] = '<script>alert(1)</script> 70 Gy/28 fx — "PSA" ≤ 10 ng/ml 🙂'
    texts["case2"] = "60 Gy/30 fx " * 20_000
    path = write_jsonl(tmp_path / "p.jsonl", prediction_rows(texts))
    study = create_study(cases_file, {"base": path}, reviewers=["a"], include_reference=False)
    shown = {item.case_id: item.regimen_text for item in study.items}
    assert shown["case1"] == texts["case1"]
    assert shown["case2"] == texts["case2"].strip()


def test_nul_characters_are_refused_before_the_database(tmp_path, cases_file):
    texts = {f"case{n}": "50 Gy/25 fx" for n in range(1, 7)}
    texts["case4"] = "50 Gy\x00/25 fx"
    path = write_jsonl(tmp_path / "nul.jsonl", prediction_rows(texts))
    with pytest.raises(RadoncInputError, match="case 'case4' has a NUL") as caught:
        create_study(cases_file, {"base": path}, reviewers=["a"])
    assert (caught.value.file, caught.value.field) == (str(path), "prediction")
    rows = [json.loads(line) for line in cases_file.read_text().splitlines()]
    rows[1]["diagnosis_text"] += "\x00"
    cases = write_jsonl(tmp_path / "cases_nul.jsonl", rows)
    clean = write_jsonl(tmp_path / "clean.jsonl", prediction_rows({**texts, "case4": "1 Gy"}))
    with pytest.raises(RadoncInputError, match="case 'case2' has a NUL") as caught:
        create_study(cases, {"base": clean}, reviewers=["a"], include_reference=False)
    assert (caught.value.file, caught.value.field) == (str(cases), "diagnosis_text")


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("alice", "", "the password is empty or only spaces"),
        ("alice", " " * 12, "the password is empty or only spaces"),
        ("alice", "short", "the password has 5 characters; use at least 10"),
        ("alice", "x" * 1025, "longer than 1024"),
        ("alice", "long enough\x00pw", "NUL"),
        ("dr smith", "long enough pw", "'dr smith' is not a valid username"),
        ("Dr_Müller", "long enough pw", "not a valid username"),
        ("", "long enough pw", "not a valid username"),
        ("-rf", "long enough pw", "not a valid username"),
        ("alice\n", "long enough pw", "not a valid username"),
        ("a" * 65, "long enough pw", "not a valid username"),
    ],
)
def test_bad_accounts_are_refused_with_a_specific_reason(username, password, message):
    with pytest.raises(ValidationError) as caught:
        UserCreate(username=username, password=password)
    error = RadoncInputError.from_validation_error(caught.value)
    assert message in error.reason
    if password.strip():
        assert password not in error.message  # the password never appears in a message


def test_unicode_passwords_and_dotted_usernames_are_fine():
    user = UserCreate(username="dr.o-brien_2", password="pässwörd-🔑-ünïcode")
    assert user.password.get_secret_value() == "pässwörd-🔑-ünïcode"


def test_cli_study_folder_that_is_a_file_and_a_database_that_is_not(
    tmp_path, cases_file, prediction_files
):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    common = (
        "review", "create-study", "--cases", str(cases_file),
        "--predictions", f"base={prediction_files['base']}", "--reviewers", "1",
    )  # fmt: skip
    as_file = cli(*common, "--study", str(blocker))
    assert as_file.exit_code == 2 and "is a file, not a folder" in as_file.output
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a database\n")
    not_db = cli(*common, "--study", str(tmp_path / "s"), "--db", f"sqlite:///{garbage}")
    assert not_db.exit_code == 2 and "file is not a database" in not_db.output
    assert not (tmp_path / "s" / "study.json").exists()
    unreachable = cli(
        *common, "--study", str(tmp_path / "s"),
        "--db", "postgresql+psycopg://u:hunter2secret@127.0.0.1:1/db",
    )  # fmt: skip
    assert unreachable.exit_code == 2 and "cannot use the database" in unreachable.output
    assert "hunter2secret" not in unreachable.output and "u:***@" in unreachable.output


@pytest.fixture
def loaded_study(tmp_path, cases_file, prediction_files) -> tuple[Path, str]:
    study = create_study(cases_file, prediction_files, reviewers=["alice", "bob"], overlap=2)
    folder = tmp_path / "study"
    write_study(study, folder)
    url = f"sqlite:///{folder / 'review.db'}"
    prepare_database(url, study).dispose()
    return folder, url


def test_export_without_ratings_names_every_unrated_source(loaded_study, tmp_path):
    folder, _ = loaded_study
    out = tmp_path / "export"
    summary = export_review(folder, out)
    assert summary.n_ratings == 0
    metrics = json.loads((out / "review_metrics.json").read_text())
    assert metrics["acceptability"] == {}
    assert metrics["unrated_sources"] == ["reference", "base", "finetuned"]
    assert metrics["progress"]["per_reviewer"]["alice"] == {"rated": 0, "total": 18}
    assert (out / "ratings.csv").read_text().startswith("study_id,assignment_id")
    assert (out / "ratings.jsonl").read_text() == ""
    other = export_review(folder, tmp_path / "e2", treatment="tuned")
    assert "no source 'tuned' to compare" in other.metrics["comparison"]["note"]


def test_export_to_a_file_or_an_unreachable_database_is_one_message(loaded_study, tmp_path):
    folder, _ = loaded_study
    blocker = tmp_path / "out.txt"
    blocker.write_text("keep me")
    refused = cli("review", "export", "--study", str(folder), "--out", str(blocker))
    assert refused.exit_code == 2 and "is a file, not a folder" in refused.output
    assert blocker.read_text() == "keep me"
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a database\n")
    not_db = cli(
        "review", "export", "--study", str(folder), "--out", str(tmp_path / "o"),
        "--db", f"sqlite:///{garbage}",
    )  # fmt: skip
    assert not_db.exit_code == 2 and "file is not a database" in not_db.output


def test_a_failed_export_leaves_the_previous_export_whole(loaded_study, tmp_path, monkeypatch):
    folder, _ = loaded_study
    out = tmp_path / "export"
    export_review(folder, out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    def broken_metrics(*args, **kwargs):
        raise KeyboardInterrupt  # a kill while computing: nothing written yet

    monkeypatch.setattr(export_module, "review_metrics", broken_metrics)
    with pytest.raises(KeyboardInterrupt):
        export_review(folder, out)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    monkeypatch.undo()

    def broken_jsonl(path, rows):
        raise KeyboardInterrupt  # a kill while writing: each file is whole, old or new

    monkeypatch.setattr(export_module, "write_jsonl_atomic", broken_jsonl)
    with pytest.raises(KeyboardInterrupt):
        export_review(folder, out)
    assert sorted(path.name for path in out.iterdir()) == sorted(before)  # no temp files left
    assert (out / "review_metrics.json").read_bytes() == before["review_metrics.json"]
