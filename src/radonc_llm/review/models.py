"""Database tables of the review app (SQLAlchemy 2 typed models).

The schema itself is created by the Alembic migrations in `migrations/`; a test checks that
the migrations and these models agree. `audit_events` is append-only: database triggers
refuse UPDATE and DELETE on it (see the first migration).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

RATINGS: dict[str, str] = {
    "acceptable": "Acceptable as is",
    "minor_edits": "Acceptable with minor edits",
    "unacceptable": "Unacceptable",
}
# Ordinal scores for the paired test and the agreement statistics: higher is better.
RATING_SCORES: dict[str, int] = {"acceptable": 2, "minor_edits": 1, "unacceptable": 0}
ACCEPTABLE_RATINGS: frozenset[str] = frozenset({"acceptable", "minor_edits"})
REASONS: dict[str, str] = {
    "dose": "Dose",
    "fractionation": "Fractionation",
    "technique": "Technique",
    "target": "Target",
    "concurrent_therapy": "Concurrent therapy",
    "other": "Other",
}
ROLES: tuple[str, ...] = ("reviewer", "admin")
REFERENCE_SOURCE = "reference"

USERNAME_MAX = 64
CASE_ID_MAX = 128
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
COMMENT_MAX_CHARS = 4000
CORRECTED_REGIMEN_MAX_CHARS = 1000


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class StudyRecord(Base):
    """The one study this database holds; loading another study into it is refused."""

    __tablename__ = "study"

    study_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seed: Mapped[int] = mapped_column(Integer)
    definition_sha256: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Item(Base):
    """One thing to judge: a case's diagnosis with one regimen from one (hidden) source."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_key: Mapped[str] = mapped_column(String(32), unique=True)
    case_id: Mapped[str] = mapped_column(String(CASE_ID_MAX), index=True)
    source: Mapped[str] = mapped_column(String(64))
    diagnosis_text: Mapped[str] = mapped_column(Text)
    regimen_text: Mapped[str] = mapped_column(Text)


class Assignment(Base):
    """An item in one reviewer's queue; `public_id` is the only id a reviewer ever sees."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("reviewer", "position", name="uq_assignments_reviewer_position"),
        UniqueConstraint("reviewer", "item_id", name="uq_assignments_reviewer_item"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    reviewer: Mapped[str] = mapped_column(String(USERNAME_MAX), index=True)
    position: Mapped[int] = mapped_column(Integer)
    # Bumped by every save: the UPDATE takes the row lock that serialises saves of one item.
    revision: Mapped[int] = mapped_column(Integer, default=0)

    item: Mapped[Item] = relationship(lazy="joined")
    rating: Mapped[Rating | None] = relationship(back_populates="assignment", lazy="joined")


class Rating(Base):
    """The current rating of one assignment; its history lives in `audit_events`."""

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), unique=True)
    rating: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    corrected_regimen: Mapped[str] = mapped_column(Text, default="")
    rated_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    assignment: Mapped[Assignment] = relationship(back_populates="rating")

    def audit_value(self) -> dict[str, Any]:
        return {
            "rating": self.rating,
            "reason": self.reason,
            "comment": self.comment,
            "corrected_regimen": self.corrected_regimen,
        }


class AuditEvent(Base):
    """One rating change: who, when, the old value (null on creation) and the new one."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    username: Mapped[str] = mapped_column(String(USERNAME_MAX))
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    old_value: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    new_value: Mapped[dict[str, Any]] = mapped_column(JSON)


class LoginSession(Base):
    """A signed-in browser: the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class LoginFailure(Base):
    """A wrong password, counted per account and per client address for rate limiting."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
