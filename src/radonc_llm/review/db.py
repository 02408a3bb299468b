"""Engines, migrations and study loading for SQLite (WAL) and PostgreSQL (psycopg 3).

Transactions on SQLite: Python's sqlite3 module opens a transaction only at the first
INSERT/UPDATE/DELETE, so a save that starts with its UPDATE takes the write lock before it
reads anything and waits (busy timeout) instead of failing on a stale snapshot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.util import asbool

from radonc_llm.errors import RadoncInputError
from radonc_llm.review.models import Assignment, Base, Item, StudyRecord, utcnow
from radonc_llm.review.study import StudyDefinition
from radonc_llm.storage import file_in_the_way

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30
# Any fixed 64-bit number: serialises concurrent migrations on one PostgreSQL database.
PG_MIGRATION_LOCK = 7_410_225_831
PSYCOPG_URL = "postgresql+psycopg://USER@HOST/DB"
# Hints for the driver errors a user can fix, keyed by the start of SQLite's message.
SQLITE_HINTS = {
    "database is locked": "another program holds its write lock (a second `radonc-llm "
    "review` command, a backup or a database browser?); close it and try again",
    "attempt to write a readonly database": "the file or its folder is read-only; SQLite "
    "also writes the -wal and -shm files beside it, so make the folder writable too",
    "unable to open database file": "the file or its folder cannot be opened; check the "
    "path and its permissions",
}


def parse_db_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise RadoncInputError(
            "not a database URL; use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
            field="db",
        ) from None


def display_url(url: str) -> str:
    """The URL with any password masked, for messages and logs.

    A SQLite URL has no password; its path is shown as the file system spells it, where
    SQLAlchemy's rendering would percent-escape every ':' and non-ASCII letter.
    """
    parsed = parse_db_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.host or parsed.username:
        return parsed.render_as_string(hide_password=True)
    query = "&".join(
        f"{key}={value}"
        for key, values in parsed.query.items()
        for value in (values if isinstance(values, tuple) else (values,))
    )
    return f"{parsed.drivername}:///{parsed.database or ''}" + (f"?{query}" if query else "")


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL names, or None for an in-memory database.

    `sqlite:///PATH` names PATH. With `uri=true` in its query the database is an SQLite URI
    (`sqlite:///file:PATH?mode=rwc&uri=true`), whose path is percent-decoded as SQLite does;
    `mode=memory` or `:memory:` there is a database in memory too.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    database = parsed.database or ""
    if not is_sqlite_uri(parsed):
        return None if database in ("", ":memory:") else Path(database)
    path = unquote(urlsplit(database).path)
    if parsed.query.get("mode") == "memory" or path in ("", ":memory:"):
        return None
    return Path(path)


def is_sqlite_uri(parsed: URL) -> bool:
    """Whether the database of a SQLite URL is an SQLite URI (`uri=true`, as pysqlite reads it)."""
    value = parsed.query.get("uri", False)
    return asbool(value[-1] if isinstance(value, tuple) else value)


def create_db_engine(url: str, *, pool_size: int = 20, max_overflow: int = 30) -> Engine:
    """An engine for `sqlite:///PATH` (WAL, foreign keys, busy timeout) or PostgreSQL.

    A plain SQLite path gets its folder created; an SQLite URI (`uri=true`) is passed to
    SQLite as it is, since its path is SQLite's to read.
    """
    parsed = parse_db_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.host or parsed.username or parsed.port:
            # `sqlite://review.db` reads review.db as a server name.
            raise RadoncInputError(
                f"a SQLite URL has no server part ('{parsed.host or parsed.username}'): write "
                "sqlite:///relative/path.db or sqlite:////absolute/path.db (three slashes "
                "before the path)",
                field="db",
            )
        path = sqlite_file(parsed)
        if path is None:
            raise RadoncInputError(
                "use a SQLite file (sqlite:///PATH), not memory: ratings kept in memory are "
                "lost when the command or the server stops",
                field="db",
            )
        if not is_sqlite_uri(parsed):
            _make_database_folder(path.parent)
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername not in ("postgresql", "postgresql+psycopg"):
            driver = parsed.get_driver_name()
            raise RadoncInputError(
                f"the PostgreSQL driver '{driver}' is not the one radonc-llm uses; write the "
                f"URL as {PSYCOPG_URL} (psycopg 3)",
                field="db",
            )
        parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
        )
    fix = (
        f"write {PSYCOPG_URL}" if backend == "postgres" else f"use sqlite:///PATH or {PSYCOPG_URL}"
    )
    raise RadoncInputError(f"unsupported database '{backend}'; {fix}", field="db")


def _make_database_folder(folder: Path) -> None:
    blocking = file_in_the_way(folder)
    if blocking is not None:
        raise RadoncInputError(
            "cannot create the database's folder: this is a file, not a folder; choose "
            "another path",
            file=blocking,
            field="db",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RadoncInputError(
            f"cannot create the database's folder ({exc.strerror})", file=folder, field="db"
        ) from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed rating survives a power cut too, as an audit trail should.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.close()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def check_schema(connection: Connection, *, migrating: bool) -> None:
    """Refuse, naming the fix, a database whose schema this version cannot use.

    A revision this version does not know was written by a newer radonc-llm (migrating it
    would fail inside Alembic); review tables without a revision record were not made by
    these migrations. Without `migrating` (the read-only export) an older revision is refused
    too, since the export never migrates.
    """
    current = MigrationContext.configure(connection).get_current_revision()
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    if current is None:
        ours = set(Base.metadata.tables) & set(inspect(connection).get_table_names())
        if ours:
            raise RadoncInputError(
                f"the database has review tables ({', '.join(sorted(ours))}) but no schema "
                "revision (no alembic_version table): it was not made by `radonc-llm review`; "
                "give the study a new database",
                field="db",
            )
        if not migrating:
            raise RadoncInputError(
                "the database holds no review schema; run `radonc-llm review create-study` "
                "or `review serve` first",
                field="db",
            )
        return
    if current not in {script.revision for script in scripts.walk_revisions()}:
        raise RadoncInputError(
            f"the database's schema is at revision '{current}', which this radonc-llm does "
            f"not know (its newest is '{head}'): a newer radonc-llm made it; upgrade "
            "radonc-llm to use it",
            field="db",
        )
    if not migrating and current != head:
        raise RadoncInputError(
            f"the database's schema is at revision '{current}', older than this radonc-llm's "
            f"'{head}'; `radonc-llm review serve` or `review add-user` migrates it",
            field="db",
        )


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK}
            )
        check_schema(connection, migrating=True)
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def definition_sha256(study: StudyDefinition) -> str:
    content = study.model_dump(mode="json", exclude={"created_at"})
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def load_study(session: Session, study: StudyDefinition) -> bool:
    """Load items and queues once; True when loaded now, False when already there.

    A database holds one study: a different study (or an edited study.json) is refused.
    """
    existing = session.scalars(select(StudyRecord)).all()
    digest = definition_sha256(study)
    if existing:
        record = existing[0]
        if record.study_id != study.study_id or record.definition_sha256 != digest:
            raise RadoncInputError(
                f"the database already holds study '{record.study_id}', not this "
                f"'{study.study_id}'; give each study its own database",
                field="db",
            )
        return False
    session.add(
        StudyRecord(
            study_id=study.study_id,
            seed=study.seed,
            definition_sha256=digest,
            loaded_at=utcnow(),
        )
    )
    rows = {
        item.item_id: Item(
            item_key=item.item_id,
            case_id=item.case_id,
            source=item.source,
            diagnosis_text=item.diagnosis_text,
            regimen_text=item.regimen_text,
        )
        for item in study.items
    }
    session.add_all(rows.values())
    session.flush()
    for reviewer, queue in study.queues.items():
        session.add_all(
            Assignment(
                public_id=entry.public_id,
                item_id=rows[entry.item_id].id,
                reviewer=reviewer,
                position=position,
                revision=0,
            )
            for position, entry in enumerate(queue, start=1)
        )
    session.commit()
    return True


def database_error(exc: DBAPIError, url: str) -> RadoncInputError:
    """A driver error (unreachable server, read-only or non-database file) as a clear message.

    The URL is shown with its password masked; the driver's messages do not carry it.
    """
    return RadoncInputError(
        f"cannot use the database {display_url(url)}: {driver_reason(exc)}", field="db"
    )


def driver_reason(exc: DBAPIError) -> str:
    """The first line of the driver's message, with a hint where the user can fix it."""
    lines = str(exc.orig).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    hint = next((text for start, text in SQLITE_HINTS.items() if reason.startswith(start)), None)
    return f"{reason} ({hint})" if hint else reason


def prepare_database(url: str, study: StudyDefinition) -> Engine:
    """Migrate the database at `url` and load `study` into it; returns the engine."""
    engine = create_db_engine(url)
    try:
        migrate(engine)
        with Session(engine) as session:
            load_study(session, study)
    except DBAPIError as exc:
        engine.dispose()
        raise database_error(exc, url) from None
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        yield session


def count_rows(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0
