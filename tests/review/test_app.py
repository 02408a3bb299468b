"""The review pages through FastAPI's TestClient, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from radonc_llm.review.models import (
    COMMENT_MAX_CHARS,
    Assignment,
    AuditEvent,
    Item,
    LoginFailure,
    Rating,
)
from tests.review.conftest import HOSTILE_DIAGNOSIS, csrf_of, sign_in


def item_url(response) -> str:
    assert response.status_code == 303, response.text
    return response.headers["location"].split("?")[0]


def open_first_item(client) -> tuple[str, str]:
    """Follow sign-in -> / -> /resume to the first unrated item; returns (url, page html)."""
    home = client.get("/")
    resume = client.get(home.headers["location"])
    url = item_url(resume)
    page = client.get(url)
    assert page.status_code == 200
    return url, page.text


def rate(client, url: str, html: str, **fields):
    data = {"csrf_token": csrf_of(html), "rating": "acceptable", **fields}
    return client.post(url, data=data)


def assignment_of(session: Session, url: str) -> Assignment:
    public_id = url.rsplit("/", 1)[1]
    return session.scalar(select(Assignment).where(Assignment.public_id == public_id))


def alices_assignment_where(session: Session, condition) -> Assignment:
    return session.scalar(
        select(Assignment).join(Item).where(condition, Assignment.reviewer == "alice")
    )


def test_reviewer_rates_resumes_and_every_change_is_audited(app_client, new_client, engine):
    response = sign_in(app_client, "alice")
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie

    url, html = open_first_item(app_client)
    assert "Item 1 of 18" in html  # 6 cases x 3 sources, overlap 2 over 2 reviewers
    # Blinded: no source name and no internal item id on the page.
    assert not re.search(r"\bbase\b|finetuned|\breference\b", html, re.IGNORECASE)
    with Session(engine) as session:
        first = assignment_of(session, url)
        assert first.item.item_key not in html
        assert first.item.diagnosis_text.split()[-1] in html

    saved = rate(app_client, url, html, rating="unacceptable", reason="dose", comment="too low")
    second_url = item_url(saved)
    assert second_url != url
    assert "Saved item 1" in app_client.get(saved.headers["location"]).text

    # Change the first rating: one update event with the old and the new value.
    page = app_client.get(url)
    assert 'value="unacceptable" data-key="3" checked' in page.text
    rate(app_client, url, page.text, rating="minor_edits", reason="fractionation")
    # Saving the same values again is not a change and adds no event.
    assert (
        rate(app_client, url, page.text, rating="minor_edits", reason="fractionation").status_code
        == 303
    )
    with Session(engine) as session:
        first = assignment_of(session, url)
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.assignment_id == first.id).order_by(AuditEvent.id)
        ).all()
        assert [event.action for event in events] == ["create", "update"]
        assert events[0].old_value is None
        assert events[0].new_value["rating"] == "unacceptable"
        assert events[1].old_value == events[0].new_value
        assert events[1].new_value == {
            "rating": "minor_edits",
            "reason": "fractionation",
            "comment": "",
            "corrected_regimen": "",
        }
        assert events[1].username == "alice"
        assert first.rating.rating == "minor_edits"

    # Sign out: the old cookie no longer works anywhere; signing in again resumes at item 2.
    page = app_client.get(second_url)
    old_cookie = app_client.cookies.get("radonc_review_session")
    assert app_client.post("/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    stale = new_client()
    stale.cookies.set("radonc_review_session", old_cookie)
    assert stale.get(second_url).headers["location"] == "/login"
    sign_in(app_client, "alice")
    resumed_url, resumed = open_first_item(app_client)
    assert resumed_url == second_url
    assert "Item 2 of 18" in resumed and "1 rated" in resumed
    queue = app_client.get("/queue").text
    assert "1 of 18 items rated" in queue and "Acceptable with minor edits" in queue


def test_case_text_and_comments_are_escaped(app_client, engine):
    sign_in(app_client, "alice")
    with Session(engine) as session:
        hostile = alices_assignment_where(session, Item.diagnosis_text == HOSTILE_DIAGNOSIS)
        url = f"/items/{hostile.public_id}"
    page = app_client.get(url)
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text
    comment = '<img src=x onerror="alert(1)"></textarea><script>alert(2)</script>'
    rate(app_client, url, page.text, rating="unacceptable", reason="other", comment=comment)
    again = app_client.get(url).text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&lt;/textarea&gt;" in again
    assert "<img" not in again and "<script>alert(2)" not in again
    # Every script on the page carries the nonce of the Content-Security-Policy.
    policy = app_client.get(url).headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'nonce-" in policy


def test_other_reviewers_items_are_not_found(app_client, engine):
    sign_in(app_client, "alice")
    _, own = open_first_item(app_client)
    with Session(engine) as session:
        bobs = session.scalar(select(Assignment).where(Assignment.reviewer == "bob"))
        url = f"/items/{bobs.public_id}"
    assert app_client.get(url).status_code == 404
    posted = app_client.post(url, data={"csrf_token": csrf_of(own), "rating": "acceptable"})
    assert posted.status_code == 404
    assert app_client.get("/items/not-an-id").status_code == 404
    with Session(engine) as session:
        assert session.scalar(select(Rating).where(Rating.assignment_id == bobs.id)) is None
    # A reviewer does not see the admin page, and an admin has no queue.
    assert app_client.get("/admin").status_code == 403


def test_missing_or_forged_csrf_is_refused(app_client, new_client, engine):
    sign_in(app_client, "alice")
    url, html = open_first_item(app_client)
    assert app_client.post(url, data={"rating": "acceptable"}).status_code == 403
    forged = app_client.post(url, data={"rating": "acceptable", "csrf_token": "x" * 43})
    assert forged.status_code == 403
    assert "security token" in forged.text
    # Another signed-in user's token does not work either: tokens belong to sessions.
    bob = new_client()
    sign_in(bob, "bob")
    bobs_token = csrf_of(bob.get("/queue").text)
    assert (
        app_client.post(url, data={"rating": "acceptable", "csrf_token": bobs_token}).status_code
        == 403
    )
    assert app_client.post("/logout", data={}).status_code == 403
    with Session(engine) as session:
        assert session.scalars(select(Rating)).all() == []
    assert app_client.get(url).status_code == 200  # still signed in
    # The sign-in form has its own token (double-submit cookie).
    stranger = new_client()
    refused = stranger.post(
        "/login", data={"username": "alice", "password": "x", "csrf_token": "y"}
    )
    assert refused.status_code == 403


def test_wrong_passwords_are_rate_limited(app_client, engine, settings):
    for _ in range(settings.login_max_failures):
        assert sign_in(app_client, "alice", "wrong password!").status_code == 401
    blocked = sign_in(app_client, "alice")  # right password, but too late
    assert blocked.status_code == 429
    assert "Too many wrong passwords" in blocked.text
    assert "radonc_review_session" not in blocked.headers.get("set-cookie", "")
    # Unknown users get the same answer as wrong passwords.
    unknown = sign_in(app_client, "mallory", "whatever123")
    assert unknown.status_code == 401 and "Wrong username or password." in unknown.text
    # Once the failures are older than the window, the account works again.
    with Session(engine) as session:
        session.execute(update(LoginFailure).values(at=datetime(2000, 1, 1, tzinfo=UTC)))
        session.commit()
    assert sign_in(app_client, "alice").status_code == 303


def test_oversized_and_invalid_fields_are_refused_with_a_message(app_client, engine, settings):
    sign_in(app_client, "alice")
    url, html = open_first_item(app_client)
    too_long = rate(
        app_client,
        url,
        html,
        rating="unacceptable",
        reason="dose",
        comment="x" * (COMMENT_MAX_CHARS + 1),
    )
    assert too_long.status_code == 422
    assert (
        f"Comment is too long: {COMMENT_MAX_CHARS + 1} characters, the limit is {COMMENT_MAX_CHARS}."
        in too_long.text
    )
    no_reason = rate(app_client, url, html, rating="unacceptable")
    assert no_reason.status_code == 422
    assert "Choose a reason category" in no_reason.text
    bad_rating = rate(app_client, url, html, rating="great")
    assert bad_rating.status_code == 422 and "Choose a rating" in bad_rating.text
    huge = rate(app_client, url, html, comment="y" * settings.max_body_bytes)
    assert huge.status_code == 413
    assert "too large" in huge.text and f"{settings.max_body_bytes:,} bytes" in huge.text
    with Session(engine) as session:
        assert session.scalars(select(Rating)).all() == []
        assert session.scalars(select(AuditEvent)).all() == []


def test_admin_sees_progress_and_results(app_client, new_client):
    alice = new_client()
    sign_in(alice, "alice")
    url, html = open_first_item(alice)
    rate(alice, url, html, rating="acceptable")
    sign_in(app_client, "admin")
    home = app_client.get("/")
    assert home.headers["location"] == "/admin"
    page = app_client.get("/admin")
    assert page.status_code == 200
    assert re.search(r"<td>alice</td><td>1</td><td>18</td><td>yes</td>", page.text)
    assert "100% (" in page.text  # one acceptable rating so far
    assert app_client.get(url).status_code == 403


def test_audit_log_is_append_only_in_the_database(app_client, new_client, engine):
    sign_in(app_client, "alice")
    url, html = open_first_item(app_client)
    rate(app_client, url, html, rating="acceptable")
    for statement in ("UPDATE audit_events SET username = 'mallory'", "DELETE FROM audit_events"):
        with engine.connect() as connection, pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text(statement))
    with Session(engine) as session:
        assert [event.username for event in session.scalars(select(AuditEvent))] == ["alice"]


def test_every_page_needs_a_sign_in_and_shows_nothing_before(app_client, engine):
    with Session(engine) as session:
        public_id = session.scalar(select(Assignment.public_id))
    # A rating sent without a live session is not saved, and the sign-in page says so.
    for method, path, target in [
        ("GET", "/", "/login"),
        ("GET", "/queue", "/login"),
        ("GET", "/resume", "/login"),
        ("GET", "/admin", "/login"),
        ("GET", f"/items/{public_id}", "/login"),
        ("POST", f"/items/{public_id}", "/login?expired=1"),
        ("POST", "/logout", "/login"),
    ]:
        response = app_client.request(method, path, data={"rating": "acceptable"})
        assert (response.status_code, response.headers.get("location")) == (303, target), path
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert app_client.get(path).status_code == 404
    with Session(engine) as session:
        assert session.scalars(select(Rating)).all() == []


def test_nul_characters_are_a_form_error_not_a_server_error(app_client, engine):
    # PostgreSQL text cannot hold NUL: before the fix both posts were HTTP 500 there.
    page = app_client.get("/login")
    refused = app_client.post(
        "/login",
        data={"username": "ali\x00ce", "password": "x\x00", "csrf_token": csrf_of(page.text)},
    )
    assert refused.status_code == 401 and "Wrong username or password." in refused.text
    sign_in(app_client, "alice")
    url, html = open_first_item(app_client)
    posted = rate(app_client, url, html, comment="fine\x00", corrected_regimen="60 Gy\x00")
    assert posted.status_code == 422
    assert "Comment: contains a NUL character" in posted.text
    assert "Corrected regimen: contains a NUL character" in posted.text
    with Session(engine) as session:
        assert session.scalars(select(Rating)).all() == []


def test_a_json_or_text_body_is_refused_without_saving(app_client, engine):
    sign_in(app_client, "alice")
    url, html = open_first_item(app_client)
    body = {"csrf_token": csrf_of(html), "rating": "acceptable"}
    as_json = app_client.post(url, json=body)
    assert as_json.status_code == 403 and "security token" in as_json.text
    as_text = app_client.post(url, content=b"\xff\xfe", headers={"content-type": "text/plain"})
    assert as_text.status_code == 403
    upload = app_client.post(url, data=body, files={"comment": ("c.txt", b"hi")})
    assert upload.status_code == 400 and "without file uploads" in upload.text
    with Session(engine) as session:
        assert session.scalars(select(Rating)).all() == []


def test_model_output_with_markup_is_shown_escaped_and_without_its_source(app_client, engine):
    sign_in(app_client, "alice")
    with Session(engine) as session:
        garbled = alices_assignment_where(session, Item.regimen_text == "garbled <b>output</b>")
        url, item_key = f"/items/{garbled.public_id}", garbled.item.item_key
    page = app_client.get(url).text
    assert "garbled &lt;b&gt;output&lt;/b&gt;" in page and "<b>output" not in page
    assert item_key not in page and not re.search(r"\bbase\b", page)
