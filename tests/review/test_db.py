"""Migrations, study loading and concurrent saves on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from radonc_llm.errors import RadoncInputError
from radonc_llm.review.accounts import add_user
from radonc_llm.review.db import count_rows, create_db_engine, load_study, prepare_database
from radonc_llm.review.models import Assignment, AuditEvent, Base, Item, Rating, User
from radonc_llm.review.ratings import save_rating
from radonc_llm.review.schemas import RatingCreate, UserCreate
from radonc_llm.review.study import create_study, read_study
from tests.review.conftest import PASSWORD


@pytest.fixture
def prepared(study_dir, db_url, settings):
    engine = prepare_database(db_url, read_study(study_dir))
    with Session(engine) as session:
        add_user(session, UserCreate(username="alice", password=PASSWORD), settings=settings)
    yield engine
    engine.dispose()


def test_migrations_create_exactly_the_models_schema(prepared):
    with prepared.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_study_loads_once_and_a_different_study_is_refused(
    prepared, study_dir, cases_file, prediction_files
):
    study = read_study(study_dir)
    with Session(prepared) as session:
        assert count_rows(session, Item) == 18 and count_rows(session, Assignment) == 36
        assert load_study(session, study) is False  # already there: nothing added
        assert count_rows(session, Assignment) == 36
        other = create_study(cases_file, prediction_files, reviewers=["alice"], seed=99)
        with pytest.raises(RadoncInputError, match="already holds study"):
            load_study(session, other)


def test_concurrent_saves_of_one_item_keep_a_gapless_audit_chain(prepared):
    """8 threads save 6 different ratings each on the same item at the same time."""
    with Session(prepared) as session:
        target = session.scalar(
            select(Assignment).where(Assignment.reviewer == "alice", Assignment.position == 1)
        )
        public_id = target.public_id
    threads, errors = [], []
    start = threading.Barrier(8)

    def worker(number: int) -> None:
        try:
            with Session(prepared, expire_on_commit=False) as session:
                user = session.scalar(select(User).where(User.username == "alice"))
                start.wait()
                for step in range(6):
                    comment = f"thread {number} step {step}"
                    save_rating(
                        session, user, public_id, RatingCreate(rating="acceptable", comment=comment)
                    )
        except Exception as exc:  # reported below: a thread's exception would vanish
            errors.append(exc)

    for number in range(8):
        threads.append(threading.Thread(target=worker, args=(number,)))
        threads[-1].start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session(prepared) as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert len(events) == 48
        assert sorted(e.new_value["comment"] for e in events) == sorted(
            f"thread {n} step {s}" for n in range(8) for s in range(6)
        )
        # Each event's old value is exactly the previous event's new value.
        assert events[0].old_value is None
        for before, after in zip(events, events[1:], strict=False):
            assert after.old_value == before.new_value
        rating = session.scalar(select(Rating))
        assert count_rows(session, Rating) == 1
        assert rating.comment == events[-1].new_value["comment"]
        assert (
            session.scalar(select(Assignment.revision).where(Assignment.public_id == public_id))
            == 48
        )


def test_unsupported_database_urls_are_clear_errors(tmp_path):
    with pytest.raises(RadoncInputError, match="unsupported database 'mysql'"):
        create_db_engine("mysql://u@h/db")
    with pytest.raises(RadoncInputError, match="not a database URL"):
        create_db_engine("review.db")
