"""The pages: sign-in, the reviewer's queue and item pages, and the admin's progress page.

Order of checks on a form post: signed in (else redirect to sign-in), CSRF token (403),
item in the reviewer's own queue (404), field validation (422 with the reasons), save.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from radonc_llm.review.accounts import (
    authenticate,
    end_session,
    find_session,
    login_blocked,
    start_session,
)
from radonc_llm.review.db import driver_reason
from radonc_llm.review.deps import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CsrfForm,
    CurrentAdmin,
    CurrentLogin,
    CurrentReviewer,
    SessionDep,
    SettingsDep,
    tokens_match,
)
from radonc_llm.review.metrics import acceptability_by_source
from radonc_llm.review.models import USERNAME_MAX, AuditEvent, LoginSession, User
from radonc_llm.review.ratings import (
    AssignmentNotFound,
    RatingChangedElsewhere,
    neighbour,
    next_unrated,
    own_assignment,
    progress,
    queue,
    rating_records,
    save_rating,
)
from radonc_llm.review.schemas import RatingCreate, RatingPublic, describe_rating_errors
from radonc_llm.review.settings import ReviewSettings

logger = logging.getLogger(__name__)
router = APIRouter()
RATING_FIELDS = tuple(RatingCreate.model_fields)
SIGN_IN_ENDED = (
    "Your sign-in has expired or ended, so the rating you sent was not saved. "
    "Sign in again to go on."
)


def render(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(
        request, name, context, status_code=status_code
    )


def set_cookie(
    response: Response, name: str, value: str, *, settings: ReviewSettings, path: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
    )


def small_count(value: object) -> int | None:
    """A position or revision sent back by the browser, or None when it is not one.

    ASCII digits only: `str.isdigit` also accepts '²', which `int` then refuses.
    """
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value):
        return int(value)
    return None


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)


@router.get("/healthz")
def healthz(db: SessionDep) -> JSONResponse:
    db.execute(text("SELECT 1"))
    return JSONResponse({"status": "ok"})


def login_form(
    request: Request, settings: ReviewSettings, *, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    """The sign-in page with a fresh double-submit CSRF token (cookie + hidden field)."""
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {"csrf_token": token, "error": error, "user": None},
        status_code=status_code,
    )
    set_cookie(response, LOGIN_CSRF_COOKIE, token, settings=settings, path="/login", max_age=3600)
    return response


@router.get("/login")
def login_page(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    if find_session(db, request.cookies.get(SESSION_COOKIE)) is not None:
        return redirect("/")
    ended = request.query_params.get("expired") == "1"
    return login_form(request, settings, error=SIGN_IN_ENDED if ended else None)


@router.post("/login")
def login(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not tokens_match(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE)):
        raise HTTPException(
            403, "The sign-in form expired or did not come from this site. Reload and sign in."
        )
    # No account name is longer or holds NUL (which PostgreSQL text refuses); cleaning here
    # keeps the per-account limit exact and the failure row storable.
    username = username.replace("\x00", "").strip()[:USERNAME_MAX]
    client = request.client.host if request.client else "unknown"
    if login_blocked(db, username, client, settings):
        logger.warning("sign-in refused: too many wrong passwords (user %r)", username)
        minutes = round(settings.login_window_minutes)
        return login_form(
            request,
            settings,
            error=f"Too many wrong passwords. Wait {minutes} minutes, then try again.",
            status_code=429,
        )
    user = authenticate(db, username, password, client=client, settings=settings)
    if user is None:
        logger.info("wrong password or unknown user %r", username)
        return login_form(request, settings, error="Wrong username or password.", status_code=401)
    token = start_session(db, user, settings=settings)
    response = redirect("/")
    set_cookie(
        response,
        SESSION_COOKIE,
        token,
        settings=settings,
        path="/",
        max_age=int(settings.session_hours * 3600),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(db: SessionDep, login: CurrentLogin, form: CsrfForm) -> Response:
    end_session(db, login)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def home(login: CurrentLogin) -> Response:
    return redirect("/admin" if login.user.is_admin else "/resume")


@router.get("/resume")
def resume(db: SessionDep, user: CurrentReviewer) -> Response:
    """Where the reviewer stopped: the first unrated item, or the queue when all are done."""
    found = next_unrated(db, user.username)
    return redirect(f"/items/{found.public_id}" if found else "/queue")


@router.get("/queue")
def queue_page(
    request: Request, db: SessionDep, user: CurrentReviewer, login: CurrentLogin
) -> HTMLResponse:
    entries = queue(db, user.username)
    return render(
        request,
        "queue.html",
        {
            "user": user,
            "csrf_token": login.csrf_token,
            "entries": entries,
            "progress": progress(db, user.username),
            "resume": next_unrated(db, user.username),
        },
    )


def item_page(
    request: Request,
    db: SessionDep,
    user: User,
    login: LoginSession,
    public_id: str,
    *,
    values: dict[str, str] | None = None,
    errors: list[str] | None = None,
    revision: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The item page; a re-shown form keeps the `revision` it was first opened at."""
    try:
        assignment = own_assignment(db, user.username, public_id)
    except AssignmentNotFound:
        raise HTTPException(404) from None
    saved = RatingPublic.model_validate(assignment.rating) if assignment.rating else None
    if values is None:
        values = saved.model_dump() if saved else {}
        values = {key: values.get(key) or "" for key in RATING_FIELDS}
    previous = neighbour(db, user.username, assignment.position, -1)
    following = neighbour(db, user.username, assignment.position, +1)
    return render(
        request,
        "item.html",
        {
            "user": user,
            "csrf_token": login.csrf_token,
            "assignment": assignment,
            "item": assignment.item,
            "saved": saved,
            "values": values,
            "errors": errors or [],
            "revision": assignment.revision if revision is None else revision,
            "progress": progress(db, user.username),
            "previous": previous,
            "following": following,
            "just_saved": small_count(request.query_params.get("saved")),
        },
        status_code=status_code,
    )


@router.get("/items/{public_id}")
def show_item(
    request: Request, db: SessionDep, user: CurrentReviewer, login: CurrentLogin, public_id: str
) -> HTMLResponse:
    return item_page(request, db, user, login, public_id)


@router.post("/items/{public_id}")
def rate_item(
    request: Request,
    db: SessionDep,
    user: CurrentReviewer,
    login: CurrentLogin,
    form: CsrfForm,
    public_id: str,
) -> Response:
    try:
        own_assignment(db, user.username, public_id)
    except AssignmentNotFound:
        raise HTTPException(404) from None
    values = {key: form.get(key, "") for key in RATING_FIELDS}
    if not all(isinstance(value, str) for value in values.values()):
        raise HTTPException(400, "Send the rating as a plain form, without file uploads.")
    # The revision the page was opened at (a form without one is not checked).
    seen = small_count(form.get("revision"))

    def refused(errors: list[str], status_code: int, *, revision: int | None) -> HTMLResponse:
        # The form again, with the reviewer's answers and what stopped the save.
        return item_page(
            request,
            db,
            user,
            login,
            public_id,
            values=values,
            errors=errors,
            revision=revision,
            status_code=status_code,
        )

    try:
        submitted = RatingCreate.model_validate(values)
    except ValidationError as exc:
        return refused(describe_rating_errors(exc), 422, revision=seen)
    try:
        assignment, _changed = save_rating(db, user, public_id, submitted, seen_revision=seen)
    except AssignmentNotFound:
        raise HTTPException(404) from None
    except RatingChangedElsewhere:
        # Two tabs of one item: the newer rating stays until the reviewer chooses; the page
        # shown carries the new revision, so saving it again replaces the rating on purpose.
        logger.info("stale rating form of %s by %s refused", public_id, user.username)
        current = own_assignment(db, user.username, public_id).rating
        now = f" to '{RatingPublic.model_validate(current).rating_label}'" if current else ""
        message = (
            f"This item's rating was changed{now} in another tab or window after you opened "
            "this page. Nothing was saved from this form; your answers are still in it: press "
            "Save again to replace the saved rating with them."
        )
        return refused([message], 409, revision=None)
    except DBAPIError as exc:
        # A locked, read-only or unreachable database: the reviewer keeps what they typed.
        db.rollback()
        logger.error("rating of %s by %s not saved: %s", public_id, user.username, exc.orig)
        message = (
            f"The review database did not take the rating ({driver_reason(exc)}). Nothing "
            "was saved; your answers are still in the form: press Save again in a moment, and "
            "tell the study coordinator if this keeps happening."
        )
        return refused([message], 503, revision=seen)
    following = next_unrated(db, user.username, after=assignment.position)
    if following is None:
        return redirect(f"/queue?saved={assignment.position}")
    return redirect(f"/items/{following.public_id}?saved={assignment.position}")


@router.get("/admin")
def admin_page(
    request: Request, db: SessionDep, user: CurrentAdmin, login: CurrentLogin
) -> HTMLResponse:
    study = request.app.state.study
    accounts = set(db.scalars(select(User.username)))
    reviewers = [
        {"name": name, "progress": progress(db, name), "has_account": name in accounts}
        for name in study.reviewers
    ]
    return render(
        request,
        "admin.html",
        {
            "user": user,
            "csrf_token": login.csrf_token,
            "study": study,
            "reviewers": reviewers,
            "acceptability": acceptability_by_source(rating_records(db)),
            "audit_events": db.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        },
    )
