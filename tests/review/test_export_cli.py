"""`radonc-llm review create-study / add-user / export`, end to end, and their bad input."""

from __future__ import annotations

import csv
import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.errors import RadoncInputError
from radonc_llm.review.accounts import authenticate
from radonc_llm.review.db import create_db_engine, prepare_database
from radonc_llm.review.models import Assignment, User
from radonc_llm.review.ratings import save_rating
from radonc_llm.review.schemas import RatingCreate
from radonc_llm.review.settings import ReviewSettings
from radonc_llm.review.study import read_study

runner = CliRunner()
# Rating by source: the reference is acceptable, the fine-tuned model needs minor edits,
# the original model is unacceptable; bob calls one reference "minor edits".
BY_SOURCE = {"reference": "acceptable", "finetuned": "minor_edits", "base": "unacceptable"}


def cli(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def test_cli_builds_a_study_adds_users_and_exports_metrics(
    tmp_path, cases_file, prediction_files, db_url
):
    study = tmp_path / "study"
    created = cli(
        "review", "create-study", "--cases", str(cases_file),
        "--predictions", f"base={prediction_files['base']}",
        "--predictions", f"finetuned={prediction_files['finetuned']}",
        "--reviewers", "alice,bob", "--overlap", "2", "--seed", "5",
        "--study", str(study), "--db", db_url,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "18 items from sources reference, base, finetuned" in created.output
    for name in ("alice", "bob"):
        added = cli(
            "review", "add-user", "--study", str(study), "--username", name,
            "--password-stdin", "--db", db_url, input="a long enough password\n",
        )  # fmt: skip
        assert added.exit_code == 0, added.output
    short = cli(
        "review", "add-user", "--study", str(study), "--username", "carol",
        "--password-stdin", "--db", db_url, input="short\n",
    )  # fmt: skip
    assert short.exit_code == 2 and "field 'password'" in short.output
    again = cli(
        "review", "add-user", "--study", str(study), "--username", "alice",
        "--password-stdin", "--db", db_url, input="a long enough password\n",
    )  # fmt: skip
    assert again.exit_code == 2 and "--reset-password" in again.output

    engine = prepare_database(db_url, read_study(study))
    settings = ReviewSettings(study_dir=study, database_url=db_url)
    with Session(engine, expire_on_commit=False) as session:
        assert authenticate(
            session, "alice", "a long enough password", client="t", settings=settings
        )
        users = {user.username: user for user in session.scalars(select(User))}
        assignments = session.scalars(select(Assignment)).unique().all()
        for assignment in assignments:
            rating = BY_SOURCE[assignment.item.source]
            if (
                assignment.reviewer == "bob"
                and assignment.item.case_id == "case1"
                and rating == "acceptable"
            ):
                rating = "minor_edits"
            reason = None if rating == "acceptable" else "dose"
            save_rating(
                session, users[assignment.reviewer], assignment.public_id,
                RatingCreate(rating=rating, reason=reason, comment="=cmd|' /C calc'!A0, \"q\"\nx"),
            )  # fmt: skip
    engine.dispose()

    out = tmp_path / "export"
    exported = cli("review", "export", "--study", str(study), "--out", str(out), "--db", db_url)
    assert exported.exit_code == 0, exported.output
    assert "one-sided Wilcoxon p =" in exported.output
    assert (
        "Cohen's kappa, alice and bob:" in exported.output
        and "(18 shared items)" in exported.output
    )
    metrics = json.loads((out / "review_metrics.json").read_text())
    assert metrics["n_ratings"] == 36 and metrics["progress"]["rated"] == 36
    acceptability = metrics["acceptability"]
    assert acceptability["base"]["acceptable_rate"] == 0.0
    assert acceptability["finetuned"]["acceptable_rate"] == 1.0
    assert acceptability["finetuned"]["as_is_rate"] == 0.0
    assert acceptability["reference"]["as_is_rate"] == pytest.approx(11 / 12)
    comparison = metrics["comparison"]
    assert comparison["n_cases"] == 6 and comparison["n_nonzero"] == 6
    assert comparison["p_value"] < 0.05
    agreement = metrics["agreement"]
    assert agreement["cohen_kappa"][0]["reviewers"] == ["alice", "bob"]
    assert agreement["cohen_kappa"][0]["n"] == 18
    assert 0.8 < agreement["fleiss_kappa"]["value"] < 1.0
    assert agreement["krippendorff_alpha"]["n_items"] == 18

    with (out / "ratings.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 36
    assert rows[0]["comment"] == "=cmd|' /C calc'!A0, \"q\"\nx"  # round-trips through CSV
    assert {row["source"] for row in rows} == {"reference", "base", "finetuned"}
    jsonl = [json.loads(line) for line in (out / "ratings.jsonl").read_text().splitlines()]
    assert len(jsonl) == 36 and all(row["n_changes"] == 1 for row in jsonl)
    audit = (out / "audit_log.jsonl").read_text().splitlines()
    assert len(audit) == 36 and json.loads(audit[0])["old"] is None


def test_cli_bad_input_is_one_clear_message(tmp_path, cases_file, prediction_files):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"case_id": "case1", "task": "regimen", "raw": "x", "malformed": false}\n')
    result = cli(
        "review", "create-study", "--cases", str(cases_file), "--predictions", f"base={bad}",
        "--reviewers", "2", "--study", str(tmp_path / "s"),
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"{bad}, row 1, field 'prediction'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "s" / "study.json").exists()
    missing = cli("review", "export", "--study", str(tmp_path / "nowhere"), "--out", str(tmp_path))
    assert missing.exit_code == 2 and "no study.json here" in missing.output
    # A study without a database yet.
    ok = cli(
        "review", "create-study", "--cases", str(cases_file),
        "--predictions", f"base={prediction_files['base']}", "--reviewers", "1",
        "--study", str(tmp_path / "s2"),
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    (tmp_path / "s2" / "review.db").unlink()
    no_db = cli("review", "export", "--study", str(tmp_path / "s2"), "--out", str(tmp_path / "o"))
    assert no_db.exit_code == 2 and "no review database here" in no_db.output
    exists = cli(
        "review", "create-study", "--cases", str(cases_file),
        "--predictions", f"base={prediction_files['base']}", "--reviewers", "1",
        "--study", str(tmp_path / "s2"),
    )  # fmt: skip
    assert exists.exit_code == 2 and "a study exists here" in exists.output
    with pytest.raises(RadoncInputError, match="not memory"):
        create_db_engine("sqlite://")
