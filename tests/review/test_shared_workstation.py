"""A real review on a shared workstation: two tabs of one item, a restart, an export while
the server runs, SQLite URLs of every form, folders that cannot be written and studies that
give some reviewers nothing (or one reviewer everything)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from radonc_llm.cli import app as cli_app
from radonc_llm.errors import RadoncInputError
from radonc_llm.review.accounts import add_user
from radonc_llm.review.app import create_app
from radonc_llm.review.db import create_db_engine, display_url, prepare_database
from radonc_llm.review.export import EXPORT_FILES, export_review
from radonc_llm.review.metrics import RatingRecord, agreement, review_metrics
from radonc_llm.review.models import AuditEvent, Rating
from radonc_llm.review.schemas import UserCreate
from radonc_llm.review.settings import ReviewSettings
from radonc_llm.review.study import build_study, create_study, read_study, write_study
from tests.review.conftest import PASSWORD, csrf_of, prediction_rows, sign_in, write_jsonl
from tests.review.test_app import open_first_item
from tests.review.test_export_and_database_failures import rate_position

runner = CliRunner()
NEEDS_TWO = "Cohen's kappa needs at least two reviewers who rated shared items"


def cli(*args: str):
    result = runner.invoke(cli_app, list(args))
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    return result


# --- Agreement with a single reviewer ----------------------------------------------------


def test_agreement_with_one_reviewer_says_why_there_is_no_kappa():
    one = [RatingRecord(f"i{n}", f"c{n}", "base", "alice", "acceptable") for n in range(4)]
    block = agreement(one, reviewers=["alice"])
    assert block["cohen_kappa"] == [] and block["n_reviewers"] == 1
    note = block["cohen_kappa_note"]
    assert note.startswith(NEEDS_TWO)
    assert "1 reviewer (alice)" in note and "the study has 1 reviewer" in note
    assert "no reviewer has rated" in agreement([], reviewers=["a", "b"])["cohen_kappa_note"]
    # Two reviewers on different items: a pair with n = 0, and the note says so too.
    apart = one + [RatingRecord("j1", "c9", "base", "bob", "acceptable")]
    block = agreement(apart)
    assert block["cohen_kappa"][0]["n"] == 0 and block["n_reviewers"] == 2
    assert "the 2 reviewers who rated (alice, bob) share fewer than 2" in block["cohen_kappa_note"]
    shared = one + [RatingRecord(f"i{n}", f"c{n}", "base", "bob", "acceptable") for n in range(4)]
    assert agreement(shared)["cohen_kappa_note"] is None
    metrics = review_metrics(
        one, treatment="base", control="x", sources=["base"], reviewers=["alice", "bob"]
    )
    assert "the study has 2 reviewers" in metrics["agreement"]["cohen_kappa_note"]


def test_an_export_with_one_reviewer_says_so_in_the_file_and_on_the_console(
    tmp_path, cases_file, prediction_files
):
    study = create_study(cases_file, prediction_files, reviewers=["alice"], seed=3)
    folder = tmp_path / "study"
    write_study(study, folder)
    url = f"sqlite:///{folder / 'review.db'}"
    engine = prepare_database(url, study)
    with Session(engine) as session:
        add_user(
            session,
            UserCreate(username="alice", password=PASSWORD),
            settings=ReviewSettings(study_dir=folder, password_memory_kib=64),
        )
    for position in (1, 2, 3):
        rate_position(engine, position, "unacceptable")
    engine.dispose()

    export_review(folder, tmp_path / "e1")
    block = json.loads((tmp_path / "e1" / "review_metrics.json").read_text())["agreement"]
    assert block["cohen_kappa"] == [] and block["n_reviewers"] == 1
    assert "1 reviewer (alice)" in block["cohen_kappa_note"]

    exported = cli("review", "export", "--study", str(folder), "--out", str(tmp_path / "e2"))
    assert exported.exit_code == 0, exported.output
    output = " ".join(exported.output.split())
    assert NEEDS_TWO in output and "1 reviewer (alice)" in output
    assert "Fleiss' kappa: none (no item rated twice)" in output


# --- SQLite URLs -------------------------------------------------------------------------


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_an_sqlite_uri_is_passed_to_sqlite_and_creates_no_folder(in_tmp, study_dir):
    url = "sqlite:///file:review.db?mode=rwc&uri=true"
    prepare_database(url, read_study(study_dir)).dispose()
    assert (in_tmp / "review.db").is_file()
    # The export finds the URI's file (it said "no review database here" before).
    summary = export_review(study_dir, in_tmp / "out", database_url=url)
    assert summary.n_ratings == 0 and (in_tmp / "out" / "review_metrics.json").is_file()
    absolute = f"sqlite:///file:{in_tmp / 'abs.db'}?mode=rwc&uri=true"
    prepare_database(absolute, read_study(study_dir)).dispose()
    assert (in_tmp / "abs.db").is_file()
    # A URI into a folder that does not exist: SQLite's own refusal, no folder named 'file:'.
    with pytest.raises(RadoncInputError, match="unable to open database file"):
        prepare_database("sqlite:///file:dbs/review.db?mode=rwc&uri=true", read_study(study_dir))
    assert not [path.name for path in in_tmp.iterdir() if path.name.startswith("file:")]
    with pytest.raises(RadoncInputError, match="no review database here") as caught:
        export_review(
            study_dir, in_tmp / "o2", database_url="sqlite:///file:missing.db?mode=ro&uri=true"
        )
    assert caught.value.file == "missing.db"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file:shared?mode=memory&cache=shared&uri=true",
    ],
)
def test_a_database_in_memory_is_refused(in_tmp, url):
    with pytest.raises(RadoncInputError, match="not memory: ratings kept in memory are lost"):
        create_db_engine(url)
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "server"), [("sqlite://review.db", "review.db"), ("sqlite://data/review.db", "data")]
)
def test_a_sqlite_url_with_two_slashes_names_the_fix(in_tmp, url, server):
    # The second was a traceback from SQLAlchemy; the first called a file "memory".
    with pytest.raises(RadoncInputError, match=f"no server part \\('{server}'\\).*three slashes"):
        create_db_engine(url)


def test_a_plain_sqlite_path_gets_its_folder_and_a_blocked_one_a_clear_error(in_tmp, monkeypatch):
    create_db_engine("sqlite:///a/b/review.db").dispose()
    assert (in_tmp / "a" / "b").is_dir()
    (in_tmp / "blocker").write_text("")
    with pytest.raises(RadoncInputError, match="cannot create the database's folder") as caught:
        create_db_engine("sqlite:///blocker/sub/review.db")
    assert caught.value.file == "blocker"

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refused)
    with pytest.raises(RadoncInputError, match=r"folder \(Permission denied\)") as caught:
        create_db_engine("sqlite:///shared/ro/review.db")
    assert caught.value.file == "shared/ro"


@pytest.mark.parametrize("name", ["dose?v2", "50% sample", "Dr Müller #2"])
def test_the_default_database_stays_in_a_study_folder_with_url_characters(
    tmp_path, cases_file, prediction_files, name
):
    # '?' started a URL query (the database went to the parent folder, named 'dose') and
    # '%20' was decoded: the database landed outside the study folder.
    folder = tmp_path / name
    study = create_study(cases_file, prediction_files, reviewers=["alice"])
    write_study(study, folder)
    url = ReviewSettings(study_dir=folder).resolved_database_url()
    assert make_url(url).database == str((folder / "review.db").resolve())
    prepare_database(url, study).dispose()
    assert (folder / "review.db").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["cases.jsonl", "base.jsonl", "tuned.jsonl", name]
    )
    assert export_review(folder, tmp_path / "out").n_ratings == 0
    assert display_url(url) == f"sqlite:///{(folder / 'review.db').resolve()}"


# --- Two tabs, a restart, an export while serving ---------------------------------------


def rate(client: TestClient, url: str, html: str, **fields):
    """Send the page's form as a browser does: with its hidden fields."""
    revision = re.search(r'name="revision" value="([0-9]+)"', html)
    assert revision, "the rating form has no revision field"
    data = {"csrf_token": csrf_of(html), "revision": revision.group(1), **fields}
    return client.post(url, data=data)


@pytest.fixture
def two_tabs(app_client, new_client) -> tuple[str, str, TestClient, str]:
    """Alice's first item open in two browsers: (url, first page, second client, its page)."""
    sign_in(app_client, "alice")
    url, first_tab = open_first_item(app_client)
    second = new_client()
    sign_in(second, "alice")
    return url, first_tab, second, second.get(url).text


def test_a_stale_tab_does_not_silently_replace_a_newer_rating(app_client, two_tabs, engine):
    url, first_tab, second, second_tab = two_tabs
    # Tab 1 rates with a comment; tab 2, opened before, then sends a different rating.
    assert (
        rate(
            app_client, url, first_tab, rating="unacceptable", reason="dose", comment="too low"
        ).status_code
        == 303
    )
    stale = rate(second, url, second_tab, rating="acceptable")
    assert stale.status_code == 409
    assert "changed to &#39;Unacceptable&#39; in another tab" in stale.text
    assert 'value="acceptable" data-key="1" checked' in stale.text  # the answer is kept
    with Session(engine) as session:
        assert session.scalar(select(Rating.comment)) == "too low"
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1
    # The same stale form sent twice with the values already saved is no change, no 409.
    resent = rate(
        app_client, url, first_tab, rating="unacceptable", reason="dose", comment="too low"
    )
    assert resent.status_code == 303
    # Saving again from the refused page replaces it, on purpose now.
    assert rate(second, url, stale.text, rating="acceptable").status_code == 303
    with Session(engine) as session:
        assert session.scalar(select(Rating.rating)) == "acceptable"
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [event.action for event in events] == ["create", "update"]
        assert events[1].old_value["comment"] == "too low"


def test_a_refused_form_keeps_the_revision_it_was_opened_at(app_client, two_tabs, engine):
    url, first_tab, second, second_tab = two_tabs
    # Tab 2 forgets the reason (422), tab 1 saves, tab 2 adds the reason: still stale.
    refused = rate(second, url, second_tab, rating="minor_edits")
    assert refused.status_code == 422
    rate(app_client, url, first_tab, rating="unacceptable", reason="dose")
    assert rate(second, url, refused.text, rating="minor_edits", reason="dose").status_code == 409
    with Session(engine) as session:
        assert session.scalar(select(Rating.rating)) == "unacceptable"


def test_a_restart_mid_review_keeps_sign_ins_open_forms_and_ratings(app_client, settings, tmp_path):
    sign_in(app_client, "alice")
    url, html = open_first_item(app_client)
    rate(app_client, url, html, rating="unacceptable", reason="target")
    next_url, next_html = open_first_item(app_client)
    cookies = dict(app_client.cookies)
    with TestClient(create_app(settings), follow_redirects=False) as restarted:
        restarted.cookies.update(cookies)
        # The form opened before the restart is saved after it.
        assert rate(restarted, next_url, next_html, rating="acceptable").status_code == 303
        assert "2 of 18 items rated" in restarted.get("/queue").text
        # An export while the server runs sees both ratings, consistently.
        url = settings.resolved_database_url()
        summary = export_review(settings.study_dir, tmp_path / "live", database_url=url)
        assert summary.n_ratings == 2 and summary.metrics["progress"]["rated"] == 2
        assert sorted(path.name for path in (tmp_path / "live").iterdir()) == sorted(EXPORT_FILES)
        assert restarted.get("/queue").status_code == 200  # still serving


def test_an_odd_saved_position_in_the_url_is_ignored_not_a_server_error(app_client):
    sign_in(app_client, "alice")
    url, _ = open_first_item(app_client)
    for odd in ("%C2%B2", "9" * 5000, "-1"):  # '²' passed str.isdigit, then int() raised
        page = app_client.get(f"{url}?saved={odd}")
        assert page.status_code == 200 and "Saved item" not in page.text


# --- Export folders that cannot be written -----------------------------------------------


def test_an_export_folder_that_cannot_be_written_is_named_and_the_old_export_kept(
    tmp_path, study_dir, db_url, monkeypatch
):
    prepare_database(db_url, read_study(study_dir)).dispose()
    out = tmp_path / "shared" / "export"
    export_review(study_dir, out, database_url=db_url)
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    def read_only(*args, dir=None, prefix="", suffix="", **kwargs):
        raise OSError(30, "Read-only file system", os.path.join(dir, f"{prefix}abcdefgh{suffix}"))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    with pytest.raises(RadoncInputError) as caught:
        export_review(study_dir, out, database_url=db_url)
    # The folder the user named, not the staging folder's random name.
    assert caught.value.file == str(out)
    assert "Read-only file system" in caught.value.reason and "--out" in caught.value.reason
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    (tmp_path / "a-file").write_text("keep")
    with pytest.raises(RadoncInputError, match="is a file, not a folder") as caught:
        export_review(study_dir, tmp_path / "a-file" / "export", database_url=db_url)
    assert caught.value.file == str(tmp_path / "a-file")


# --- Studies: null regimens, reviewers without items, damaged study.json ------------------


@contextmanager
def serving(study, folder: Path, username: str) -> Iterator[tuple[TestClient, Engine]]:
    """The app serving `study` (written to `folder`), `username` signed in; and an engine."""
    write_study(study, folder)
    settings = ReviewSettings(study_dir=folder, password_time_cost=1, password_memory_kib=64)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        engine = create_db_engine(settings.resolved_database_url())
        with Session(engine) as session:
            add_user(session, UserCreate(username=username, password=PASSWORD), settings=settings)
        sign_in(client, username)
        try:
            yield client, engine
        finally:
            engine.dispose()


def test_a_regimen_row_with_no_text_at_all_is_kept_as_no_answer(tmp_path, cases_file):
    texts = {f"case{n}": "50 Gy/25 fx" for n in range(1, 7)}
    rows = prediction_rows(texts)
    rows[0] = {**rows[0], "prediction": None, "raw": None, "malformed": True}  # as evaluate reads
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    study = create_study(cases_file, {"base": path}, reviewers=["a"], include_reference=False)
    shown = {item.case_id: item.regimen_text for item in study.items}
    assert len(shown) == 6 and shown["case1"] == ""


def test_reviewers_left_without_items_are_named_and_see_an_empty_queue(tmp_path, cases_file):
    from radonc_llm.data.cases import read_cases

    one_case = read_cases(cases_file)[:1]
    with pytest.warns(UserWarning, match="2 of 3 reviewers get no item .*raise --overlap"):
        study = build_study(one_case, {}, reviewers=["alice", "bob", "carol"], seed=1)
    idle = [name for name, queue in study.queues.items() if not queue]
    assert len(idle) == 2
    with serving(study, tmp_path / "study", idle[0]) as (client, _engine):
        assert client.get("/resume").headers["location"] == "/queue"
        page = client.get("/queue")
        assert page.status_code == 200 and "This study assigns you no items" in page.text


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["queues"]["alice"][0].update(item_id="deadbeef"),
         "queue of 'alice', entry 1: item 'deadbeef' is not a study item"),
        (lambda d: d["queues"]["alice"].append(d["queues"]["alice"][0]),
         "is in this queue twice"),
        (lambda d: d["queues"].update(mallory=[]), "a queue for 'mallory', who is not"),
        (lambda d: d["items"].append(d["items"][0]), "is listed 2 times"),
        (lambda d: d["items"][0].update(source="gpt"), "source 'gpt', which is not in sources"),
    ],
)  # fmt: skip
def test_a_damaged_study_json_is_one_message_not_a_key_error(study_dir, edit, message):
    path = study_dir / "study.json"
    definition = json.loads(path.read_text())
    edit(definition)
    path.write_text(json.dumps(definition))
    with pytest.raises(RadoncInputError, match=message) as caught:
        read_study(study_dir)
    assert caught.value.file == str(path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("alice bob", "'alice bob' is not a valid username: .*separate usernames with commas"),
        ("Müller,bob", "'Müller' is not a valid username: 1 to 64 ASCII letters"),
        ("alice,bob,alice", "reviewer 'alice' is named twice"),
    ],
)
def test_reviewer_names_a_user_gets_wrong_say_what_to_type(tmp_path, value, message):
    from radonc_llm.review.study import parse_reviewers

    with pytest.raises(RadoncInputError, match=message):
        parse_reviewers(value)
    assert parse_reviewers(" alice , dr.o-brien_2 ") == ["alice", "dr.o-brien_2"]


def test_a_very_long_model_answer_is_shown_whole_and_can_be_rated(tmp_path, cases_file):
    texts = {f"case{n}": "50 Gy/25 fx" for n in range(1, 7)}
    texts["case3"] = "54 Gy/3 fx SBRT, " * 15_000 + "end of answer"
    path = write_jsonl(tmp_path / "p.jsonl", prediction_rows(texts))
    study = create_study(cases_file, {"base": path}, reviewers=["alice"], include_reference=False)
    with serving(study, tmp_path / "study", "alice") as (client, engine):
        pages = [client.get(f"/items/{entry.public_id}") for entry in study.queues["alice"]]
        long_page = next(page for page in pages if "end of answer" in page.text)
        assert texts["case3"].strip() in long_page.text
        url = str(long_page.url.path)
        saved = rate(client, url, long_page.text, rating="unacceptable", reason="dose")
        assert saved.status_code == 303
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(Rating)) == 1
