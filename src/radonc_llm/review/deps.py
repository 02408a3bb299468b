"""FastAPI dependencies as `Annotated` aliases: the database session, who is signed in, CSRF."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from radonc_llm.review.accounts import find_session
from radonc_llm.review.models import LoginSession, User
from radonc_llm.review.settings import ReviewSettings

SESSION_COOKIE = "radonc_review_session"
LOGIN_CSRF_COOKIE = "radonc_review_login_csrf"


class LoginRequired(Exception):
    """No live session: the app answers with a redirect to the sign-in page."""


# Dependencies without I/O are `async def`: FastAPI then calls them on the event loop instead
# of handing each to the thread pool.
async def get_settings(request: Request) -> ReviewSettings:
    return request.app.state.settings


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


SettingsDep = Annotated[ReviewSettings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_db)]


def get_login(request: Request, db: SessionDep) -> LoginSession:
    login = find_session(db, request.cookies.get(SESSION_COOKIE))
    if login is None:
        raise LoginRequired
    return login


CurrentLogin = Annotated[LoginSession, Depends(get_login)]


async def get_reviewer(login: CurrentLogin) -> User:
    if login.user.is_admin:
        raise HTTPException(403, "This page is for reviewers; admins see the progress page.")
    return login.user


async def get_admin(login: CurrentLogin) -> User:
    if not login.user.is_admin:
        raise HTTPException(403, "Only an admin can see this page.")
    return login.user


CurrentReviewer = Annotated[User, Depends(get_reviewer)]
CurrentAdmin = Annotated[User, Depends(get_admin)]


def tokens_match(sent: object, expected: str | None) -> bool:
    if not isinstance(sent, str) or not sent or not expected:
        return False
    return secrets.compare_digest(sent.encode(), expected.encode())


async def get_csrf_form(request: Request, login: CurrentLogin) -> FormData:
    """The posted form, once its CSRF token matches the session's; 403 otherwise."""
    form = await request.form()
    if not tokens_match(form.get("csrf_token"), login.csrf_token):
        raise HTTPException(
            403, "The form's security token is missing or wrong. Reload the page and try again."
        )
    return form


CsrfForm = Annotated[FormData, Depends(get_csrf_form)]
