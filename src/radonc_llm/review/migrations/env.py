"""Alembic environment: migrations run programmatically on a connection the app passes in.

`radonc_llm.review.db.migrate` sets `config.attributes["connection"]`; there is no
alembic.ini, so no database URL (or password) is ever written to a file.
"""

from __future__ import annotations

from alembic import context

from radonc_llm.review.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Emit SQL instead of running it (`alembic upgrade --sql`), for a DBA to review."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run migrations through radonc_llm.review.db.migrate (it passes the connection)"
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
