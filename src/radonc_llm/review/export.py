"""`radonc-llm review export`: ratings (CSV and JSONL), the audit log and review_metrics.json.

The export only reads the database, in one read transaction that sees a single snapshot:
ratings saved while it runs are in all four files or in none. Everything is read and
computed, then the four files are written (and fsynced) into a temporary folder inside the
output folder, and only then renamed into place one after the other, `review_metrics.json`
last. A failure or a kill before the renames leaves any earlier export untouched; the files
of one export name each other: `review_metrics.json` records the SHA-256 of the other three,
so a set mixed by a kill during the renames (a window of four renames) is detectable.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from radonc_llm.errors import RadoncInputError
from radonc_llm.review.db import (
    check_schema,
    create_db_engine,
    database_error,
    definition_sha256,
    display_url,
    parse_db_url,
    sqlite_file,
)
from radonc_llm.review.metrics import review_metrics
from radonc_llm.review.models import (
    RATING_SCORES,
    Assignment,
    AuditEvent,
    Item,
    Rating,
    StudyRecord,
    User,
)
from radonc_llm.review.ratings import progress, rating_records
from radonc_llm.review.settings import ReviewSettings
from radonc_llm.review.study import StudyDefinition, read_study
from radonc_llm.storage import (
    atomic_open,
    file_in_the_way,
    file_sha256,
    remove_temporaries_of,
    write_json_atomic,
    write_jsonl_atomic,
)

RATING_COLUMNS = (
    "study_id",
    "assignment_id",
    "item_id",
    "case_id",
    "source",
    "reviewer",
    "position",
    "rating",
    "rating_score",
    "reason",
    "comment",
    "corrected_regimen",
    "rated_by",
    "created_at",
    "updated_at",
    "n_changes",
)
# The files of one export, in the order they are renamed into place: the metrics, which
# record the others' hashes and are what `report` reads, come last.
EXPORT_FILES = ("ratings.csv", "ratings.jsonl", "audit_log.jsonl", "review_metrics.json")
STAGING_NAME = "review_export"


@dataclass(frozen=True)
class ExportSummary:
    out_dir: Path
    n_ratings: int
    n_audit_events: int
    metrics: dict[str, Any]


def rating_rows(session: Session, study_id: str) -> list[dict[str, Any]]:
    changes = dict(
        session.execute(
            select(AuditEvent.assignment_id, func.count()).group_by(AuditEvent.assignment_id)
        ).all()
    )
    rows = session.execute(
        select(Rating, Assignment, Item, User.username)
        .join(Assignment, Rating.assignment_id == Assignment.id)
        .join(Item, Assignment.item_id == Item.id)
        .join(User, Rating.rated_by == User.id)
        .order_by(Assignment.reviewer, Assignment.position)
    ).all()
    return [
        {
            "study_id": study_id,
            "assignment_id": assignment.public_id,
            "item_id": item.item_key,
            "case_id": item.case_id,
            "source": item.source,
            "reviewer": assignment.reviewer,
            "position": assignment.position,
            "rating": rating.rating,
            "rating_score": RATING_SCORES[rating.rating],
            "reason": rating.reason,
            "comment": rating.comment,
            "corrected_regimen": rating.corrected_regimen,
            "rated_by": username,
            "created_at": rating.created_at.isoformat(),
            "updated_at": rating.updated_at.isoformat(),
            "n_changes": changes.get(assignment.id, 0),
        }
        for rating, assignment, item, username in rows
    ]


def audit_rows(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(AuditEvent, Assignment.public_id)
        .join(Assignment, AuditEvent.assignment_id == Assignment.id)
        .order_by(AuditEvent.id)
    ).all()
    return [
        {
            "event_id": event.id,
            "at": event.at.isoformat(),
            "username": event.username,
            "assignment_id": public_id,
            "action": event.action,
            "old": event.old_value,
            "new": event.new_value,
        }
        for event, public_id in rows
    ]


def _begin_snapshot(session: Session) -> None:
    """Start a read transaction whose every query sees the same committed state.

    PostgreSQL: REPEATABLE READ (READ COMMITTED, the default, takes a new snapshot per
    statement). SQLite: Python's sqlite3 begins no transaction before a SELECT, so each
    query would read the newest state; an explicit BEGIN makes WAL keep one snapshot.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
    else:
        session.connection().exec_driver_sql("BEGIN")


def _check_loaded(session: Session, study: StudyDefinition, url: str) -> None:
    check_schema(session.connection(), migrating=False)
    record = session.scalar(select(StudyRecord))
    if record is None:
        raise RadoncInputError(
            f"the database {display_url(url)} holds no study; run `radonc-llm review "
            "create-study` or `review serve` first",
            field="db",
        )
    if record.study_id != study.study_id or record.definition_sha256 != definition_sha256(study):
        raise RadoncInputError(
            f"the database holds study '{record.study_id}', not '{study.study_id}'", field="db"
        )


def export_review(
    study_dir: str | Path,
    out_dir: str | Path,
    *,
    database_url: str | None = None,
    treatment: str = "finetuned",
    control: str = "base",
) -> ExportSummary:
    """Write ratings.csv, ratings.jsonl, audit_log.jsonl and review_metrics.json."""
    study = read_study(study_dir)
    url = ReviewSettings(study_dir=study_dir, database_url=database_url).resolved_database_url()
    parsed = parse_db_url(url)
    if parsed.get_backend_name() == "sqlite":
        # The export never creates a database: a missing file is named, not made empty.
        path = sqlite_file(parsed)
        if path is not None and path.is_dir():
            raise RadoncInputError("is a folder, not a review database file", file=path, field="db")
        if path is not None and not path.exists():
            raise RadoncInputError("no review database here", file=path, field="db")
    out_dir = Path(out_dir)
    blocking = file_in_the_way(out_dir)
    if blocking is not None:
        raise RadoncInputError(
            "is a file, not a folder; choose a folder for the export", file=blocking
        )
    engine = create_db_engine(url, pool_size=1, max_overflow=0)
    try:
        with Session(engine) as session:
            _begin_snapshot(session)
            _check_loaded(session, study, url)
            ratings = rating_rows(session, study.study_id)
            audit = audit_rows(session)
            records = rating_records(session)
            per_reviewer = {name: progress(session, name) for name in study.reviewers}
    except DBAPIError as exc:
        raise database_error(exc, url) from None
    finally:
        engine.dispose()

    metrics = {
        "study_id": study.study_id,
        "generated_at": datetime.now(UTC).isoformat(),
        "sources": study.sources,
        "progress": {
            "assigned": sum(p.total for p in per_reviewer.values()),
            "rated": sum(p.rated for p in per_reviewer.values()),
            "per_reviewer": {
                name: {"rated": p.rated, "total": p.total} for name, p in per_reviewer.items()
            },
        },
        "n_audit_events": len(audit),
        **review_metrics(
            records,
            treatment=treatment,
            control=control,
            sources=study.sources,
            reviewers=study.reviewers,
        ),
    }
    try:
        write_export_files(out_dir, ratings, audit, metrics)
    except OSError as exc:
        failed = Path(exc.filename) if exc.filename else out_dir
        if out_dir in failed.parents:  # a staged file's random name means nothing to the user
            failed = out_dir
        raise RadoncInputError(
            f"cannot write the export ({exc.strerror or exc}); give --out a folder you can "
            "write to",
            file=failed,
        ) from None
    return ExportSummary(
        out_dir=out_dir, n_ratings=len(ratings), n_audit_events=len(audit), metrics=metrics
    )


def write_export_files(
    out_dir: Path, ratings: list[dict[str, Any]], audit: list[dict[str, Any]], metrics: dict
) -> None:
    """Write the four files into a temporary folder in `out_dir`, then rename them into place.

    Adds `metrics["files"]`: the SHA-256 and row count of the other three files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    # Leftovers of an export killed before its renames (its own, or older per-file ones).
    remove_temporaries_of(out_dir / STAGING_NAME)
    for name in EXPORT_FILES:
        remove_temporaries_of(out_dir / name)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{STAGING_NAME}.", suffix=".tmp"))
    try:
        with atomic_open(staging / "ratings.csv") as handle:
            writer = csv.DictWriter(handle, fieldnames=RATING_COLUMNS)
            writer.writeheader()
            writer.writerows(ratings)
        write_jsonl_atomic(staging / "ratings.jsonl", ratings)
        write_jsonl_atomic(staging / "audit_log.jsonl", audit)
        rows = {"ratings.csv": len(ratings), "ratings.jsonl": len(ratings)}
        rows["audit_log.jsonl"] = len(audit)
        metrics["files"] = {
            name: {"sha256": file_sha256(staging / name), "rows": count}
            for name, count in rows.items()
        }
        write_json_atomic(staging / "review_metrics.json", metrics)
        for name in EXPORT_FILES:
            os.replace(staging / name, out_dir / name)
        _fsync_folder(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fsync_folder(folder: Path) -> None:
    # The renames are durable only once the folder's entry list is on disk.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
