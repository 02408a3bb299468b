"""Accounts, sign-in sessions and the wrong-password limit.

Passwords are hashed with Argon2id (argon2-cffi). A session cookie holds a random opaque
token; the database keeps only its SHA-256, the owner, the session's CSRF token and the
expiry, so a leaked database does not leak usable cookies and signing out ends the session
on the server.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from radonc_llm.errors import RadoncInputError
from radonc_llm.review.db import driver_reason
from radonc_llm.review.models import LoginFailure, LoginSession, User, utcnow
from radonc_llm.review.schemas import UserCreate
from radonc_llm.review.settings import ReviewSettings


def password_hasher(settings: ReviewSettings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.password_time_cost,
        memory_cost=settings.password_memory_kib,
        parallelism=settings.password_parallelism,
    )


def add_user(
    session: Session,
    user: UserCreate,
    *,
    settings: ReviewSettings,
    reset_password: bool = False,
) -> User:
    """Create an account, or with `reset_password` give an existing one a new password.

    Resetting also ends the account's sessions and clears its wrong-password count.
    """
    existing = session.scalar(select(User).where(User.username == user.username))
    if existing is not None and not reset_password:
        raise RadoncInputError(
            f"user '{user.username}' exists; pass --reset-password to change the password",
            field="username",
        )
    hashed = password_hasher(settings).hash(user.password.get_secret_value())
    try:
        if existing is not None:
            existing.password_hash = hashed
            existing.role = user.role
            existing.is_active = True
            session.execute(delete(LoginSession).where(LoginSession.user_id == existing.id))
            session.execute(delete(LoginFailure).where(LoginFailure.username == user.username))
            session.commit()
            return existing
        row = User(
            username=user.username,
            password_hash=hashed,
            role=user.role,
            is_active=True,
            created_at=utcnow(),
        )
        session.add(row)
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        raise RadoncInputError(
            f"cannot save the account '{user.username}': {driver_reason(exc)}", field="db"
        ) from None
    return row


def login_blocked(session: Session, username: str, client: str, settings: ReviewSettings) -> bool:
    """True when the account or the client address had too many recent wrong passwords."""
    since = utcnow() - timedelta(minutes=settings.login_window_minutes)
    by_user, by_client = session.execute(
        select(
            func.count().filter(LoginFailure.username == username),
            func.count().filter(LoginFailure.client == client),
        ).where(
            LoginFailure.at >= since,
            or_(LoginFailure.username == username, LoginFailure.client == client),
        )
    ).one()
    return (
        by_user >= settings.login_max_failures
        or by_client >= settings.login_max_failures_per_client
    )


# Verifying against this keeps the time of a sign-in with an unknown username the same as
# with a known one, so timing does not reveal which usernames exist.
_UNKNOWN_USER_HASH: dict[tuple[int, int, int], str] = {}


def authenticate(
    session: Session, username: str, password: str, *, client: str, settings: ReviewSettings
) -> User | None:
    """The user when the password is right; otherwise records a failure and returns None."""
    hasher = password_hasher(settings)
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
        dummy = _UNKNOWN_USER_HASH.setdefault(key, hasher.hash(secrets.token_hex(16)))
        _verify(hasher, dummy, password)
        user = None
    elif not _verify(hasher, user.password_hash, password):
        user = None
    if user is None:
        session.add(LoginFailure(username=username, client=client[:64], at=utcnow()))
        session.commit()
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))
    session.commit()
    return user


def _verify(hasher: PasswordHasher, hashed: str, password: str) -> bool:
    try:
        return hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, *, settings: ReviewSettings) -> str:
    """Create a server-side session; returns the cookie token (shown nowhere else)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    # Housekeeping on the rare write path: expired sessions and stale failures go.
    session.execute(delete(LoginSession).where(LoginSession.expires_at <= now))
    stale = now - timedelta(minutes=settings.login_window_minutes)
    session.execute(delete(LoginFailure).where(LoginFailure.at < stale))
    session.add(
        LoginSession(
            token_sha256=token_digest(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(hours=settings.session_hours),
        )
    )
    session.commit()
    return token


def find_session(session: Session, token: str | None) -> LoginSession | None:
    """The live session for a cookie token, or None (unknown, expired or user disabled)."""
    if not token or len(token) > 128:
        return None
    row = session.scalar(
        select(LoginSession).where(LoginSession.token_sha256 == token_digest(token))
    )
    if row is None or row.expires_at <= utcnow() or not row.user.is_active:
        return None
    return row


def end_session(session: Session, login: LoginSession) -> None:
    session.execute(delete(LoginSession).where(LoginSession.id == login.id))
    session.commit()
