"""The reviewer pages in headless Chromium (Debian's `chromium`, driven by Playwright).

Signs in, rates items with the keyboard only, signs out, signs in again and resumes; each
step saves a screenshot into the test's tmp folder and checks the page's essential elements.
Fails (never skips) when Chromium is missing: CI installs it.
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from radonc_llm.review.accounts import add_user
from radonc_llm.review.app import create_app
from radonc_llm.review.db import prepare_database
from radonc_llm.review.models import Assignment, AuditEvent, Item, Rating
from radonc_llm.review.schemas import UserCreate
from radonc_llm.review.study import read_study
from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.review.conftest import HOSTILE_DIAGNOSIS, PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def db_url(tmp_path) -> str:
    """The browser test runs on SQLite only (overrides the two-backend fixture)."""
    return f"sqlite:///{tmp_path / 'review.db'}"


@pytest.fixture
def live_server(settings, study_dir) -> Iterator[str]:
    """The app under uvicorn on a loopback port, in a thread of this process."""
    engine = prepare_database(settings.resolved_database_url(), read_study(study_dir))
    with Session(engine) as session:
        add_user(session, UserCreate(username="alice", password=PASSWORD), settings=settings)
    engine.dispose()
    # Bound before the server starts: connections wait in the backlog, no polling needed.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists() or shutil.which("chromium"), (
        f"{CHROMIUM} not found: install Debian's Chromium with `apt-get install -y chromium` "
        "(never `playwright install`)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.problems = []
        page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
        page.on("dialog", lambda d: (page.problems.append(f"dialog: {d.message}"), d.dismiss()))
        yield page
        browser.close()


def shot(page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as image:
        low, high = image.convert("L").getextrema()
        assert image.width >= 1000 and high - low > 100, f"{path.name} looks blank"
    return path


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")


def test_sign_in_rate_with_keyboard_sign_out_and_resume(live_server, page, tmp_path, settings):
    from playwright.sync_api import expect

    page.goto(f"{live_server}/login")
    expect(page.get_by_label("Username")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shot(page, tmp_path / "1-login.png")

    sign_in(page, live_server)
    expect(page.locator("#position")).to_have_text("Item 1 of 18")
    for element in ("#diagnosis", "#regimen", "#rating-form", "#shortcuts", "progress"):
        expect(page.locator(element)).to_be_visible()
    expect(page.get_by_role("radio", name="Unacceptable")).to_be_visible()
    shot(page, tmp_path / "2-item.png")

    # Item 1: 3 = unacceptable, 4 = dose, c = comment box, Esc, Enter = save.
    page.keyboard.press("3")
    page.keyboard.press("4")
    expect(page.get_by_role("radio", name="Unacceptable")).to_be_checked()
    page.keyboard.press("c")
    page.keyboard.type("Dose too low <b>for</b> this stage")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    expect(page.locator("#saved-note")).to_have_text("Saved item 1.")
    expect(page.locator("#position")).to_have_text("Item 2 of 18")
    # Item 2: acceptable as is needs no reason.
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#position")).to_have_text("Item 3 of 18")
    # Item 3: minor edits without a reason is refused with a message, then fixed.
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#form-errors")).to_contain_text("Choose a reason category")
    shot(page, tmp_path / "3-refused.png")
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    expect(page.locator("#position")).to_have_text("Item 4 of 18")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.goto(f"{live_server}/queue")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()  # signed out for real

    sign_in(page, live_server)
    expect(page.locator("#position")).to_have_text("Item 4 of 18")  # resumed
    expect(page.locator("#progress-text")).to_have_text("3 rated")
    shot(page, tmp_path / "4-resumed.png")
    page.keyboard.press("p")
    expect(page.locator("#position")).to_have_text("Item 3 of 18")
    expect(page.locator("#current-rating")).to_contain_text("Acceptable with minor edits")
    expect(page.get_by_role("radio", name="Fractionation")).to_be_checked()
    page.goto(f"{live_server}/queue")
    expect(page.locator("#progress-text")).to_have_text("3 of 18 items rated")
    shot(page, tmp_path / "5-queue.png")

    from sqlalchemy import create_engine

    engine = create_engine(settings.resolved_database_url())
    with Session(engine) as session:
        saved = session.execute(
            select(Assignment.position, Rating.rating, Rating.reason, Rating.comment)
            .join(Rating, Rating.assignment_id == Assignment.id)
            .order_by(Assignment.position)
        ).all()
        assert [tuple(row) for row in saved] == [
            (1, "unacceptable", "dose", "Dose too low <b>for</b> this stage"),
            (2, "acceptable", None, ""),
            (3, "minor_edits", "fractionation", ""),
        ]
        assert len(session.scalars(select(AuditEvent)).all()) == 3
        hostile = session.scalar(
            select(Assignment.public_id)
            .join(Item)
            .where(Item.diagnosis_text == HOSTILE_DIAGNOSIS, Assignment.reviewer == "alice")
        )
    engine.dispose()

    # Script in a case text is shown as text, never run.
    page.goto(f"{live_server}/items/{hostile}")
    expect(page.locator("#diagnosis")).to_have_text(HOSTILE_DIAGNOSIS)
    shot(page, tmp_path / "6-hostile.png")
    expected = [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]
    assert page.problems == expected  # the refused form only: no dialog, CSP violation, ...
