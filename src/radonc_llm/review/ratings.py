"""A reviewer's queue and saving a rating together with its audit event.

Every query here is scoped to one reviewer: an assignment of somebody else is simply not
found, which the app turns into 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from radonc_llm.review.metrics import RatingRecord
from radonc_llm.review.models import Assignment, AuditEvent, Item, Rating, User, utcnow
from radonc_llm.review.schemas import RatingCreate


class AssignmentNotFound(LookupError):
    """No such item in this reviewer's queue."""


class RatingChangedElsewhere(Exception):
    """The rating was changed (another tab or window) after the form being saved was opened."""


@dataclass(frozen=True)
class QueueProgress:
    rated: int
    total: int

    @property
    def done(self) -> bool:
        return self.rated >= self.total


def queue(session: Session, reviewer: str) -> list[Assignment]:
    return list(
        session.scalars(
            select(Assignment).where(Assignment.reviewer == reviewer).order_by(Assignment.position)
        ).unique()
    )


def progress(session: Session, reviewer: str) -> QueueProgress:
    total, rated = session.execute(
        select(func.count(Assignment.id), func.count(Rating.id))
        .select_from(Assignment)
        .outerjoin(Rating, Rating.assignment_id == Assignment.id)
        .where(Assignment.reviewer == reviewer)
    ).one()
    return QueueProgress(rated=rated, total=total)


def own_assignment(session: Session, reviewer: str, public_id: str) -> Assignment:
    found = session.scalar(
        select(Assignment).where(Assignment.public_id == public_id, Assignment.reviewer == reviewer)
    )
    if found is None:
        raise AssignmentNotFound(public_id)
    return found


def neighbour(session: Session, reviewer: str, position: int, step: int) -> Assignment | None:
    """The assignment `step` (+1 or -1) places away in the reviewer's queue, if any."""
    return session.scalar(
        select(Assignment).where(
            Assignment.reviewer == reviewer, Assignment.position == position + step
        )
    )


def next_unrated(session: Session, reviewer: str, *, after: int = 0) -> Assignment | None:
    """The first unrated assignment after `after` (wrapping around), or None when all done."""
    unrated = (
        select(Assignment)
        .outerjoin(Rating, Rating.assignment_id == Assignment.id)
        .where(Assignment.reviewer == reviewer, Rating.id.is_(None))
        .order_by(Assignment.position)
        .limit(1)
    )
    found = session.scalar(unrated.where(Assignment.position > after))
    return found if found is not None else session.scalar(unrated)


def save_rating(
    session: Session,
    user: User,
    public_id: str,
    submitted: RatingCreate,
    *,
    seen_revision: int | None = None,
) -> tuple[Assignment, bool]:
    """Store the rating and, when it changed anything, an audit event, in one transaction.

    Returns the assignment and whether anything changed. The first statement is the UPDATE
    of the assignment's revision: it locks the row (PostgreSQL) or takes the write lock
    (SQLite), so concurrent saves of one item run one after the other and each audit event's
    old value is exactly the value the save replaced.

    `seen_revision` is the revision the form was opened at: when another save came in between
    (a second tab) and this one would change the rating, `RatingChangedElsewhere` is raised
    and nothing is saved, so a stale form never silently replaces a newer rating. The same
    values sent again (a double click) are simply no change.
    """
    found = session.execute(
        update(Assignment)
        .where(Assignment.public_id == public_id, Assignment.reviewer == user.username)
        .values(revision=Assignment.revision + 1)
        .returning(Assignment.id, Assignment.revision)
    ).one_or_none()
    if found is None:
        session.rollback()
        raise AssignmentNotFound(public_id)
    locked, revision = found
    current = session.scalar(
        select(Rating)
        .where(Rating.assignment_id == locked)
        .execution_options(populate_existing=True)
    )
    new_value = submitted.audit_value()
    old_value = current.audit_value() if current is not None else None
    if old_value == new_value:
        session.rollback()
        return own_assignment(session, user.username, public_id), False
    if seen_revision is not None and seen_revision != revision - 1:
        session.rollback()
        raise RatingChangedElsewhere(public_id)
    now = utcnow()
    if current is None:
        session.add(
            Rating(
                assignment_id=locked,
                rated_by=user.id,
                created_at=now,
                updated_at=now,
                **new_value,
            )
        )
    else:
        for key, value in new_value.items():
            setattr(current, key, value)
        current.rated_by = user.id
        current.updated_at = now
    session.add(
        AuditEvent(
            at=now,
            user_id=user.id,
            username=user.username,
            assignment_id=locked,
            action="create" if current is None else "update",
            old_value=old_value,
            new_value=new_value,
        )
    )
    session.commit()
    return own_assignment(session, user.username, public_id), True


def rating_records(session: Session) -> list[RatingRecord]:
    """Every current rating with its item's case and (hidden from reviewers) source."""
    rows = session.execute(
        select(Item.item_key, Item.case_id, Item.source, Assignment.reviewer, Rating.rating)
        .join(Assignment, Assignment.item_id == Item.id)
        .join(Rating, Rating.assignment_id == Assignment.id)
        .order_by(Item.item_key, Assignment.reviewer)
    ).all()
    return [RatingRecord(*row) for row in rows]
