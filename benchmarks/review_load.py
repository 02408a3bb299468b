"""Load test of the review app: concurrent reviewers submitting ratings, SQLite vs PostgreSQL.

    .venv/bin/python benchmarks/review_load.py                 # 50 reviewers, 60 s per backend
    .venv/bin/python benchmarks/review_load.py --seconds 20    # shorter, on a shared machine

Loopback only and bounded: uvicorn listens on 127.0.0.1, PostgreSQL on a Unix socket of a
throwaway server (fsync on, like SQLite's synchronous=FULL). Each simulated reviewer signs
in, then loops over their queue: GET the item page, POST a rating whose comment is unique
("load <reviewer> <n>"). Afterwards the database is checked: every acknowledged rating
(HTTP 303) appears exactly once in the audit log, no unacknowledged one appears, and each
item's stored rating is the last one its reviewer submitted. Prints one table; the last line
is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from radonc_llm.review.accounts import add_user
from radonc_llm.review.app import settings_environ
from radonc_llm.review.db import create_db_engine, prepare_database
from radonc_llm.review.models import Assignment, AuditEvent, Rating
from radonc_llm.review.schemas import UserCreate
from radonc_llm.review.settings import ReviewSettings
from radonc_llm.review.study import create_study, write_study
from radonc_llm.review.throwaway_postgres import ThrowawayPostgres

console = Console(width=max(Console().width, 150))  # the table is wide; don't truncate it
PASSWORD = "load-test password"
SITES = [
    ("Prostate adenocarcinoma, intermediate risk", "70 Gy/28 fx", "C61"),
    ("Left breast IDC after lumpectomy", "40.05 Gy/15 fx", "C50.412"),
    ("Peripheral NSCLC stage I, right upper lobe", "54 Gy/3 fx SBRT", "C34.11"),
    ("Glioblastoma, frontal lobe", "60 Gy/30 fx + temozolomide", "C71.1"),
    ("Painful bone metastasis", "8 Gy/1 fx", "C79.51"),
    ("Rectal adenocarcinoma cT3N1", "50.4 Gy/28 fx + capecitabine", "C20"),
]
RATINGS = [("acceptable", ""), ("minor_edits", "dose"), ("unacceptable", "fractionation")]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ITEM_LINK = re.compile(r'href="/items/([0-9a-f]+)"')


@dataclass
class ReviewerLog:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    acknowledged: list[tuple[str, str]] = field(default_factory=list)  # (public_id, comment)


def write_inputs(folder: Path, n_cases: int) -> tuple[Path, dict[str, Path]]:
    cases, base, tuned = [], [], []
    for number in range(n_cases):
        text, regimen, code = SITES[number % len(SITES)]
        case_id = f"case{number:04d}"
        cases.append(
            {"case_id": case_id, "patient_id": f"p{number}", "diagnosis_text": f"{text} #{number}",
             "regimen": regimen, "modality": "photon", "icd10": code}
        )  # fmt: skip
        for rows, answer in ((base, "30 Gy/10 fx"), (tuned, regimen)):
            rows.append(
                {"case_id": case_id, "task": "regimen", "prediction": answer, "raw": answer,
                 "malformed": False}
            )  # fmt: skip
    paths = {"cases": folder / "cases.jsonl", "base": folder / "base.jsonl",
             "finetuned": folder / "tuned.jsonl"}  # fmt: skip
    for name, rows in (("cases", cases), ("base", base), ("finetuned", tuned)):
        paths[name].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return paths["cases"], {"base": paths["base"], "finetuned": paths["finetuned"]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(settings: ReviewSettings, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        **settings_environ(settings.model_copy(update={"migrate_on_startup": False})),
    }
    command = [sys.executable, "-m", "uvicorn", "radonc_llm.review.app:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
               "--no-access-log",
               # Early sign-ins idle while the rest sign in: keep their connections open.
               "--timeout-keep-alive", "300"]  # fmt: skip
    server = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise RuntimeError("uvicorn exited during start-up")
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError("uvicorn did not start within 60 s")


class Window:
    """The measured window opens when the last reviewer has signed in."""

    def __init__(self, reviewers: int, seconds: float) -> None:
        self.waiting = reviewers
        self.seconds = seconds
        self.opened = asyncio.Event()
        self.began = self.deadline = 0.0

    def ready(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.began = time.monotonic()
            self.deadline = self.began + self.seconds
            self.opened.set()


async def reviewer(name: str, base_url: str, window: Window, log: ReviewerLog,
                   gate: asyncio.Semaphore) -> None:  # fmt: skip
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        async with gate:  # Argon2 sign-ins a few at a time, before the window opens
            page = await client.get("/login")
            signed = await client.post("/login", data={
                "username": name, "password": PASSWORD,
                "csrf_token": CSRF.search(page.text).group(1)})  # fmt: skip
            if signed.status_code != 303:
                raise RuntimeError(f"{name} could not sign in: {signed.status_code}")
        items = ITEM_LINK.findall((await client.get("/queue")).text)
        window.ready()
        await window.opened.wait()
        number = 0
        while time.monotonic() < window.deadline:
            public_id = items[number % len(items)]
            number += 1
            t0 = time.perf_counter()
            try:
                page = await client.get(f"/items/{public_id}")
            except httpx.TransportError:
                page = None
            log.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if page is None or page.status_code != 200:
                log.errors += 1
                continue
            rating, reason = RATINGS[number % len(RATINGS)]
            comment = f"load {name} {number}"
            t0 = time.perf_counter()
            try:
                posted = await client.post(f"/items/{public_id}", data={
                    "csrf_token": CSRF.search(page.text).group(1), "rating": rating,
                    "reason": reason, "comment": comment})  # fmt: skip
                acknowledged = posted.status_code == 303
            except httpx.TransportError:
                acknowledged = False
            log.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if acknowledged:
                log.acknowledged.append((public_id, comment))
            else:
                log.errors += 1


async def drive(base_url: str, names: list[str], seconds: float) -> tuple[list[ReviewerLog], float]:
    window = Window(len(names), seconds)
    logs = [ReviewerLog() for _ in names]
    gate = asyncio.Semaphore(4)
    await asyncio.gather(
        *(
            reviewer(name, base_url, window, log, gate)
            for name, log in zip(names, logs, strict=True)
        )
    )
    return logs, time.monotonic() - window.began


def verify(url: str, logs: list[ReviewerLog]) -> dict[str, int]:
    """Compare what the clients were told with what the database holds."""
    acknowledged = [comment for log in logs for _, comment in log.acknowledged]
    last = {}
    for log in logs:
        for public_id, comment in log.acknowledged:
            last[public_id] = comment
    engine = create_db_engine(url, pool_size=1, max_overflow=0)
    with Session(engine) as session:
        audit = [e.new_value["comment"] for e in session.scalars(select(AuditEvent))]
        stored = dict(
            session.execute(
                select(Assignment.public_id, Rating.comment).join(
                    Rating, Rating.assignment_id == Assignment.id
                )
            ).all()
        )
    engine.dispose()
    counts = Counter(audit)
    return {
        "acknowledged": len(acknowledged),
        "audit_events": len(audit),
        "lost": len(set(acknowledged) - set(counts)),
        "duplicated": sum(count - 1 for count in counts.values() if count > 1),
        "unacknowledged_in_db": len(set(counts) - set(acknowledged)),
        "final_rating_mismatches": sum(stored.get(pid) != comment for pid, comment in last.items()),
        "ratings_rows": len(stored),
    }


def run_backend(backend: str, url: str, folder: Path, names: list[str], seconds: float,
                cases: Path, predictions: dict[str, Path]) -> dict:  # fmt: skip
    study_dir = folder / backend
    study = create_study(cases, predictions, reviewers=names, overlap=2, seed=0)
    write_study(study, study_dir)
    settings = ReviewSettings(study_dir=study_dir, database_url=url)
    engine = prepare_database(url, study)
    with Session(engine) as session:
        for name in names:
            add_user(session, UserCreate(username=name, password=PASSWORD), settings=settings)
    engine.dispose()
    port = free_port()
    server = start_server(settings, port)
    try:
        logs, elapsed = asyncio.run(drive(f"http://127.0.0.1:{port}", names, seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = np.array([ms for log in logs for ms in log.latencies_ms])
    checks = verify(url, logs)
    return {
        "backend": backend,
        "reviewers": len(names),
        "seconds": round(elapsed, 1),
        "requests": int(latencies.size),
        "requests_per_s": round(latencies.size / elapsed, 1),
        "ratings_per_s": round(checks["acknowledged"] / elapsed, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "errors": sum(log.errors for log in logs),
        **checks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--cases", type=int, default=120, help="cases in the study (x3 sources)")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    names = [f"reviewer{number}" for number in range(1, args.reviewers + 1)]
    results = []
    with tempfile.TemporaryDirectory(prefix="review-load-") as tmp:
        folder = Path(tmp)
        cases, predictions = write_inputs(folder, args.cases)
        for backend in args.backends.split(","):
            console.print(f"[bold]{backend}[/]: {args.reviewers} reviewers for {args.seconds:g} s")
            if backend == "sqlite":
                url = f"sqlite:///{folder / 'load.db'}"
                results.append(
                    run_backend(backend, url, folder, names, args.seconds, cases, predictions)
                )
            elif backend == "postgres":
                with ThrowawayPostgres(durable=True) as server:
                    url = server.create_database("review_load")
                    results.append(
                        run_backend(backend, url, folder, names, args.seconds, cases, predictions)
                    )
            else:
                parser.error(f"unknown backend {backend!r} (sqlite, postgres)")

    table = Table(title=f"Review app under load: {args.reviewers} concurrent reviewers, loopback")
    columns = [("backend", "backend"), ("s", "seconds"), ("requests", "requests"),
               ("req/s", "requests_per_s"), ("ratings/s", "ratings_per_s"), ("p50 ms", "p50_ms"),
               ("p95 ms", "p95_ms"), ("errors", "errors"), ("ratings acked", "acknowledged"),
               ("audit events", "audit_events"), ("lost", "lost"), ("duplicated", "duplicated"),
               ("final mismatches", "final_rating_mismatches")]  # fmt: skip
    for title, _ in columns:
        table.add_column(title, justify="left" if title == "backend" else "right")
    for row in results:
        table.add_row(*(str(row[key]) for _, key in columns))
    console.print(table)
    intact = all(
        r["lost"] == 0 and r["duplicated"] == 0 and r["unacknowledged_in_db"] == 0
        and r["final_rating_mismatches"] == 0 and r["audit_events"] == r["acknowledged"]
        for r in results
    )  # fmt: skip
    print(json.dumps({"benchmark": "review_load", "intact": intact, "results": results}))
    if not intact:
        sys.exit(1)


if __name__ == "__main__":
    main()
