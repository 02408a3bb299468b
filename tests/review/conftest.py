"""Fixtures of the review app tests: a small study, both database backends, signed-in clients.

`db_url` runs a test on SQLite and on a throwaway PostgreSQL server (marker `postgres`). When
the PostgreSQL binaries are missing the postgres tests fail with the install hint; they never
skip.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from radonc_llm.review.accounts import add_user
from radonc_llm.review.app import create_app
from radonc_llm.review.db import create_db_engine
from radonc_llm.review.schemas import UserCreate
from radonc_llm.review.settings import ReviewSettings
from radonc_llm.review.study import create_study, write_study
from radonc_llm.review.throwaway_postgres import ThrowawayPostgres

PASSWORD = "correct horse battery"
HOSTILE_DIAGNOSIS = '<script>alert("pwned")</script> 67-year-old man, prostate adenocarcinoma'

CASES = [
    (HOSTILE_DIAGNOSIS, "70 Gy/28 fx", "photon", "C61"),
    ("58-year-old woman, left breast IDC after lumpectomy", "40.05 Gy/15 fx", "photon", "C50.412"),
    (
        "Inoperable peripheral NSCLC stage I, right upper lobe",
        "54 Gy/3 fx SBRT",
        "photon",
        "C34.11",
    ),
    ("Glioblastoma, frontal lobe, age 55", "60 Gy/30 fx + temozolomide", "photon", "C71.1"),
    ("Painful bone metastasis of the spine", "8 Gy/1 fx", "photon", "C79.51"),
    ("Rectal adenocarcinoma cT3N1", "50.4 Gy/28 fx + capecitabine", "photon", "C20"),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


@pytest.fixture
def cases_file(tmp_path: Path) -> Path:
    rows = [
        {
            "case_id": f"case{number}",
            "patient_id": f"p{number}",
            "diagnosis_text": text,
            "regimen": regimen,
            "modality": modality,
            "icd10": icd10,
        }
        for number, (text, regimen, modality, icd10) in enumerate(CASES, start=1)
    ]
    return write_jsonl(tmp_path / "cases.jsonl", rows)


def prediction_rows(texts: dict[str, str | None]) -> list[dict]:
    rows = []
    for case_id, text in texts.items():
        rows.append(
            {
                "case_id": case_id,
                "task": "regimen",
                "prediction": text,
                "raw": text if text is not None else "garbled <b>output</b>",
                "malformed": text is None,
            }
        )
        rows.append(
            {
                "case_id": case_id,
                "task": "modality",
                "prediction": "photon",
                "raw": "photon",
                "malformed": False,
            }
        )
    return rows


@pytest.fixture
def prediction_files(tmp_path: Path) -> dict[str, Path]:
    base = {f"case{n}": f"{30 + n} Gy/10 fx" for n in range(1, 7)}
    base["case2"] = None  # malformed: reviewers see the raw text
    tuned = {f"case{n}": CASES[n - 1][1] for n in range(1, 7)}
    return {
        "base": write_jsonl(tmp_path / "base.jsonl", prediction_rows(base)),
        "finetuned": write_jsonl(tmp_path / "tuned.jsonl", prediction_rows(tuned)),
    }


@pytest.fixture
def study_dir(tmp_path: Path, cases_file: Path, prediction_files: dict[str, Path]) -> Path:
    study = create_study(
        cases_file, prediction_files, reviewers=["alice", "bob"], overlap=2, seed=7
    )
    folder = tmp_path / "study"
    write_study(study, folder)
    return folder


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as server:
        yield server


_database_numbers = itertools.count(1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'review.db'}"
    server: ThrowawayPostgres = request.getfixturevalue("postgres_server")
    return server.create_database(f"review_test_{next(_database_numbers)}")


@pytest.fixture
def settings(study_dir: Path, db_url: str) -> ReviewSettings:
    # Cheap Argon2 parameters keep the tests fast; the defaults are argon2-cffi's.
    return ReviewSettings(
        study_dir=study_dir,
        database_url=db_url,
        password_time_cost=1,
        password_memory_kib=64,
        password_parallelism=1,
    )


@pytest.fixture
def app_client(settings: ReviewSettings) -> Iterator[TestClient]:
    """A TestClient of a started app (migrated, study loaded) with alice, bob and admin."""
    with TestClient(create_app(settings), follow_redirects=False) as client:
        engine = create_db_engine(settings.resolved_database_url())
        with Session(engine) as session:
            for name, role in (("alice", "reviewer"), ("bob", "reviewer"), ("admin", "admin")):
                add_user(
                    session,
                    UserCreate(username=name, password=PASSWORD, role=role),
                    settings=settings,
                )
        engine.dispose()
        yield client


@pytest.fixture
def new_client(settings: ReviewSettings, app_client: TestClient) -> Callable[[], TestClient]:
    """More clients of the same app, each with its own cookie jar."""
    clients: list[TestClient] = []

    def make() -> TestClient:
        client = TestClient(app_client.app, follow_redirects=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def sign_in(client: TestClient, username: str, password: str = PASSWORD):
    page = client.get("/login")
    assert page.status_code == 200
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
    )


@pytest.fixture
def engine(settings: ReviewSettings, app_client: TestClient):
    engine = create_db_engine(settings.resolved_database_url())
    yield engine
    engine.dispose()
