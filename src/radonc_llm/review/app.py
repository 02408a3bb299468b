"""The FastAPI application: factory, security middleware, error pages and `serve`.

The pages themselves are in `pages.py`. Every response carries a strict Content-Security-
Policy: scripts and styles run only with the per-request nonce the templates put on their
inline `<script>`/`<style>` (there are no external assets at all).
"""

from __future__ import annotations

import html
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from radonc_llm.review.db import create_db_engine, display_url, driver_reason, prepare_database
from radonc_llm.review.deps import LoginRequired
from radonc_llm.review.models import RATINGS, REASONS
from radonc_llm.review.settings import ReviewSettings
from radonc_llm.review.study import read_study

logger = logging.getLogger(__name__)
TEMPLATES_DIR = Path(__file__).parent / "templates"


def build_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template, whatever its extension: texts are escaped
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(RATINGS=RATINGS, REASONS=REASONS)
    return Jinja2Templates(env=env)


class SecurityHeaders:
    """Adds CSP (with a fresh nonce per request), no-store and anti-framing headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        policy = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", policy.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimit:
    """Refuses request bodies over the limit (413) before anything parses them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is None and b"transfer-encoding" in headers:
            await _plain_page(411, "Send the form with a Content-Length.")(scope, receive, send)
            return
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            size = int(length) if length.isdigit() else 0
            message = (
                f"The submitted form is too large ({size:,} bytes; the limit is "
                f"{self.max_bytes:,} bytes). Shorten the comment or the corrected regimen."
            )
            await _plain_page(413, message)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _plain_page(status: int, message: str) -> HTMLResponse:
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Error</title></head>"
        f"<body><h1>Error {status}</h1><p role='alert'>{html.escape(message)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status)


def create_app(settings: ReviewSettings | None = None) -> FastAPI:
    """The review app; without `settings` they come from `RADONC_REVIEW_*` variables."""
    from radonc_llm.review.pages import router

    settings = settings or ReviewSettings()  # type: ignore[call-arg]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        study = read_study(settings.study_dir)
        url = settings.resolved_database_url()
        if settings.migrate_on_startup:
            engine = prepare_database(url, study)
        else:
            engine = create_db_engine(url)
        logger.info("review app: study %s, database %s", study.study_id, display_url(url))
        app.state.study = study
        app.state.sessionmaker = sessionmaker(engine, expire_on_commit=False)
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="radonc-llm review",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.templates = build_templates()
    app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        # A form sent after the session ended: say that it was not saved, do not just vanish.
        ended = request.method == "POST" and request.url.path != "/logout"
        return RedirectResponse("/login?expired=1" if ended else "/login", status_code=303)

    @app.exception_handler(DBAPIError)
    async def _database_down(request: Request, exc: DBAPIError) -> HTMLResponse:
        logger.error("database error on %s %s: %s", request.method, request.url.path, exc.orig)
        detail = (
            f"The review database cannot be used right now ({driver_reason(exc)}). Nothing "
            "was changed; try again in a moment, and tell the study coordinator if this "
            "keeps happening."
        )
        return app.state.templates.TemplateResponse(
            request, "error.html", {"status": 503, "detail": detail, "user": None}, status_code=503
        )

    @app.exception_handler(StarletteHTTPException)
    async def _error_page(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        detail = exc.detail if exc.status_code != 404 else "Not found."
        return app.state.templates.TemplateResponse(
            request,
            "error.html",
            {"status": exc.status_code, "detail": detail, "user": None},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app


def settings_environ(settings: ReviewSettings) -> dict[str, str]:
    """The settings as `RADONC_REVIEW_*` variables, for worker processes to read back."""
    environ = {}
    for name in ReviewSettings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        environ[f"RADONC_REVIEW_{name.upper()}"] = str(value)
    return environ


def serve(settings: ReviewSettings, *, host: str, port: int, workers: int = 1) -> None:
    """Migrate and load the study once, then run uvicorn (its workers skip the migration)."""
    import uvicorn

    engine = prepare_database(settings.resolved_database_url(), read_study(settings.study_dir))
    engine.dispose()
    worker_settings = settings.model_copy(update={"migrate_on_startup": False})
    os.environ.update(settings_environ(worker_settings))
    uvicorn.run(
        "radonc_llm.review.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        server_header=False,
    )
