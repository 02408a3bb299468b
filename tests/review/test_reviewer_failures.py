"""What goes wrong for a reviewer mid-study: a sign-in that ends while a form is open, a
database that will not take a save, and whether anything a reviewer can fetch names a source.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from radonc_llm.review import db as db_module
from radonc_llm.review.models import Assignment, AuditEvent, Item, LoginSession, Rating, utcnow
from radonc_llm.review.pages import SIGN_IN_ENDED
from tests.review.conftest import csrf_of, sign_in
from tests.review.test_app import open_first_item


def ratings_in(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Rating))


def test_a_form_sent_after_the_sign_in_expired_says_it_was_not_saved(app_client, engine):
    sign_in(app_client, "alice")
    url, html = open_first_item(app_client)
    with Session(engine) as session:
        session.execute(update(LoginSession).values(expires_at=utcnow() - timedelta(minutes=1)))
        session.commit()
    sent = app_client.post(
        url, data={"csrf_token": csrf_of(html), "rating": "unacceptable", "reason": "dose"}
    )
    assert sent.status_code == 303 and sent.headers["location"] == "/login?expired=1"
    page = app_client.get(sent.headers["location"])
    assert page.status_code == 200
    assert SIGN_IN_ENDED.replace("'", "&#39;") in page.text
    assert ratings_in(engine) == 0
    # A page opened (not a form sent) after expiry just asks to sign in.
    assert app_client.get(url).headers["location"] == "/login"
    assert "expired" not in app_client.get("/login").text
    # Signing in again leads back to the same unrated item.
    sign_in(app_client, "alice")
    assert open_first_item(app_client)[0] == url


@pytest.fixture
def short_busy_timeout(monkeypatch):
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_S", 0.05)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_locked_database_keeps_the_reviewers_answers_in_the_form(
    short_busy_timeout, app_client, engine, settings
):
    sign_in(app_client, "alice")
    url, html = open_first_item(app_client)
    path = settings.resolved_database_url().removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # e.g. an admin's database browser writing
    form = {
        "csrf_token": csrf_of(html),
        "rating": "minor_edits",
        "reason": "fractionation",
        "comment": "Prefer 60 Gy/20 fx (CHHiP)",
    }
    try:
        refused = app_client.post(url, data=form)
    finally:
        holder.close()
    assert refused.status_code == 503
    assert "database is locked" in refused.text and "Nothing was saved" in refused.text
    assert "Prefer 60 Gy/20 fx (CHHiP)</textarea>" in refused.text
    assert 'value="minor_edits" data-key="2" checked' in refused.text
    assert ratings_in(engine) == 0
    # Sent again once the lock is gone, it is saved once, with one audit event.
    assert app_client.post(url, data=form).status_code == 303
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1
    assert ratings_in(engine) == 1


def test_nothing_a_reviewer_can_fetch_names_a_source_or_an_internal_id(app_client, engine):
    with Session(engine) as session:
        rows = session.execute(
            select(Assignment.public_id, Item.item_key, Item.case_id, Item.source)
            .join(Item)
            .where(Assignment.reviewer == "alice")
        ).all()
    hidden = {key for row in rows for key in row[1:3]} | {row[3] for row in rows}
    pattern = re.compile("|".join(rf"\b{re.escape(word)}\b" for word in hidden), re.IGNORECASE)
    sign_in(app_client, "alice")
    pages = [app_client.get("/queue"), app_client.get("/resume")]
    for public_id, *_ in rows:
        page = app_client.get(f"/items/{public_id}")
        pages.append(page)
        # A refused form (422) shows the same page with the errors.
        sent = {"csrf_token": csrf_of(page.text), "rating": "nonsense", "source": "base"}
        pages.append(app_client.post(f"/items/{public_id}", data=sent))
    assert {page.status_code for page in pages} <= {200, 303, 422}
    for page in pages:
        shown = page.text + page.headers.get("location", "")  # URLs too
        assert not pattern.search(shown), pattern.search(shown).group(0)
    assert ratings_in(engine) == 0
