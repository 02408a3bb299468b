"""The export under concurrent writes and kills, and databases a user gets wrong.

An export reads one snapshot, so ratings saved while it runs are in all of its files or in
none; its four files are renamed into place together and name each other by hash. A database
of a newer version, review tables without a migration record, a PostgreSQL driver radonc-llm
does not use and a locked SQLite file are each one message naming the fix.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from radonc_llm.errors import RadoncInputError
from radonc_llm.review import db as db_module
from radonc_llm.review import export as export_module
from radonc_llm.review.accounts import add_user
from radonc_llm.review.db import create_db_engine, driver_reason, prepare_database
from radonc_llm.review.export import EXPORT_FILES, export_review
from radonc_llm.review.models import Assignment, User
from radonc_llm.review.ratings import save_rating
from radonc_llm.review.schemas import RatingCreate, UserCreate
from radonc_llm.review.settings import ReviewSettings
from radonc_llm.review.study import read_study
from tests.review.conftest import PASSWORD


@pytest.fixture
def rated(study_dir, db_url, settings):
    """The study loaded, alice signed up and her first item rated once."""
    engine = prepare_database(db_url, read_study(study_dir))
    with Session(engine, expire_on_commit=False) as session:
        add_user(session, UserCreate(username="alice", password=PASSWORD), settings=settings)
    rate_position(engine, 1, "unacceptable")
    yield engine
    engine.dispose()


def rate_position(engine, position: int, rating: str) -> None:
    with Session(engine, expire_on_commit=False) as session:
        user = session.scalar(select(User).where(User.username == "alice"))
        public_id = session.scalar(
            select(Assignment.public_id).where(
                Assignment.reviewer == "alice", Assignment.position == position
            )
        )
        save_rating(session, user, public_id, RatingCreate(rating=rating, reason="dose"))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_consistent(out: Path) -> dict:
    """The four files of one export agree with each other; returns the metrics."""
    metrics = json.loads((out / "review_metrics.json").read_text())
    for name, recorded in metrics["files"].items():
        assert sha256_of(out / name) == recorded["sha256"], name
    ratings = [json.loads(line) for line in (out / "ratings.jsonl").read_text().splitlines()]
    with (out / "ratings.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(ratings)
    audit = (out / "audit_log.jsonl").read_text().splitlines()
    assert metrics["n_ratings"] == len(ratings) == metrics["progress"]["rated"]
    assert metrics["n_audit_events"] == len(audit) == sum(row["n_changes"] for row in ratings)
    return metrics


def test_ratings_saved_during_an_export_are_in_all_its_files_or_none(
    rated, study_dir, db_url, tmp_path, monkeypatch
):
    """A rating is saved (and another changed) after the ratings are read, before the audit
    log is: every file of the export still shows the state when it began."""
    real_audit_rows = export_module.audit_rows

    def audit_rows_after_a_save(session):
        rate_position(rated, 2, "acceptable")
        rate_position(rated, 1, "minor_edits")
        return real_audit_rows(session)

    monkeypatch.setattr(export_module, "audit_rows", audit_rows_after_a_save)
    out = tmp_path / "export"
    export_review(study_dir, out, database_url=db_url)
    metrics = check_consistent(out)
    assert metrics["n_ratings"] == 1 and metrics["n_audit_events"] == 1
    assert metrics["rating_counts"] == {"unacceptable": 1}
    monkeypatch.undo()
    # The next export sees both saves, again consistently.
    export_review(study_dir, out, database_url=db_url)
    metrics = check_consistent(out)
    assert metrics["n_ratings"] == 2 and metrics["n_audit_events"] == 3


def test_an_export_killed_while_renaming_is_detectable_and_the_next_one_repairs_it(
    rated, study_dir, db_url, tmp_path, monkeypatch
):
    out = tmp_path / "export"
    export_review(study_dir, out, database_url=db_url)
    old = {name: (out / name).read_bytes() for name in EXPORT_FILES}
    rate_position(rated, 2, "acceptable")
    real_replace = os.replace
    renamed: list[str] = []

    def killed_at_the_third_rename(source, target):
        if Path(target).parent == out:
            if len(renamed) == 2:
                raise KeyboardInterrupt
            renamed.append(Path(target).name)
        return real_replace(source, target)

    monkeypatch.setattr(export_module.os, "replace", killed_at_the_third_rename)
    with pytest.raises(KeyboardInterrupt):
        export_review(study_dir, out, database_url=db_url)
    monkeypatch.undo()
    assert renamed == ["ratings.csv", "ratings.jsonl"]
    # The metrics (what `report` reads) are still the old, whole ones, and their recorded
    # hashes show that ratings.csv is from another export.
    assert (out / "review_metrics.json").read_bytes() == old["review_metrics.json"]
    assert (out / "audit_log.jsonl").read_bytes() == old["audit_log.jsonl"]
    recorded = json.loads(old["review_metrics.json"])["files"]["ratings.csv"]["sha256"]
    assert sha256_of(out / "ratings.csv") != recorded
    export_review(study_dir, out, database_url=db_url)
    assert sorted(path.name for path in out.iterdir()) == sorted(EXPORT_FILES)  # no leftovers
    assert check_consistent(out)["n_ratings"] == 2


def test_an_export_killed_before_its_renames_changes_nothing(
    rated, study_dir, db_url, tmp_path, monkeypatch
):
    out = tmp_path / "export"
    export_review(study_dir, out, database_url=db_url)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    rate_position(rated, 2, "acceptable")

    def killed(path, obj, **kwargs):
        raise KeyboardInterrupt  # the last file written: the other three are staged

    monkeypatch.setattr(export_module, "write_json_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        export_review(study_dir, out, database_url=db_url)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_exporting_twice_into_the_study_folder_keeps_the_study(rated, study_dir, db_url):
    export_review(study_dir, study_dir, database_url=db_url)
    export_review(study_dir, study_dir, database_url=db_url)
    names = {path.name for path in study_dir.iterdir()}
    assert set(EXPORT_FILES) | {"study.json"} <= names
    assert not [name for name in names if name.endswith(".tmp")]
    assert check_consistent(study_dir)["n_ratings"] == 1
    read_study(study_dir)  # still whole


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (  # written by a newer radonc-llm
            "UPDATE alembic_version SET version_num = '0099'",
            "schema is at revision '0099', which this radonc-llm does not know.*upgrade",
        ),
        ("DROP TABLE alembic_version", "has review tables .*no schema revision"),
    ],
)
def test_a_schema_this_version_cannot_use_is_refused_by_every_command(
    rated, study_dir, db_url, change, message
):
    with rated.begin() as connection:
        connection.execute(text(change))
    with pytest.raises(RadoncInputError, match=message):
        prepare_database(db_url, read_study(study_dir))
    with pytest.raises(RadoncInputError, match=message):
        export_review(study_dir, study_dir / "out", database_url=db_url)


def test_an_empty_database_is_not_exported(study_dir, tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(RadoncInputError, match="holds no review schema"):
        export_review(study_dir, tmp_path / "out", database_url=f"sqlite:///{empty}")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg2://u@localhost/db", "driver 'psycopg2' is not the one"),
        ("postgresql+asyncpg://u@localhost/db", "driver 'asyncpg' is not the one"),
        ("postgres://u@localhost/db", "write postgresql\\+psycopg://"),
    ],
)
def test_postgresql_urls_with_another_driver_name_the_fix(url, message):
    with pytest.raises(RadoncInputError, match=message):
        create_db_engine(url)


def test_a_locked_sqlite_database_says_what_holds_it(study_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    path = tmp_path / "locked.db"
    settings = ReviewSettings(
        study_dir=study_dir, database_url=f"sqlite:///{path}", password_memory_kib=64
    )
    engine = prepare_database(settings.resolved_database_url(), read_study(study_dir))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # e.g. a database browser or a second command writing
    try:
        with (
            Session(engine) as session,
            pytest.raises(RadoncInputError, match="alice.*database is locked \\(another program"),
        ):
            add_user(session, UserCreate(username="alice", password=PASSWORD), settings=settings)
    finally:
        holder.close()
        engine.dispose()
    with Session(create_db_engine(f"sqlite:///{path}")) as session:
        assert session.scalar(select(User)) is None


def test_a_read_only_database_names_the_files_sqlite_writes():
    refused = OperationalError(
        "INSERT", {}, sqlite3.OperationalError("attempt to write a readonly database")
    )
    reason = driver_reason(refused)
    assert reason.startswith("attempt to write a readonly database (")
    assert "-wal and -shm" in reason
    assert driver_reason(OperationalError("SELECT", {}, Exception("server closed"))) == (
        "server closed"
    )
