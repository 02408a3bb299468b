"""Alembic migrations of the review database, applied by `radonc_llm.review.db.migrate`."""
