"""The prediction file: one JSON object per (case, task), appended as each answer is ready.

A prediction run can be killed at any moment and started again with the same command: the
store reads what is there, drops a last line that a kill cut short, and the run skips every
(case_id, task) already answered. Rows are appended in a fixed order, so an interrupted and
resumed run ends with the same rows in the same order as an uninterrupted one.

A file that holds predictions of another model, decoding or prompt version is never
extended: mixing them would make one file answer with two systems.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO

from radonc_llm.errors import RadoncInputError
from radonc_llm.storage import append_jsonl

# Row fields that identify the system that wrote it; a resumed run must match them.
RUN_FIELDS: tuple[str, ...] = ("model", "backend", "decoding", "prompt_version")
REQUIRED_FIELDS: tuple[str, ...] = ("case_id", "task", "prediction", "raw", "malformed")


def _read_rows(path: Path) -> tuple[list[dict], int | None]:
    """Rows of an existing store and, if its last line was cut short, the byte offset to keep."""
    data = path.read_bytes()
    rows: list[dict] = []
    offset = 0
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        is_last = number == len(lines)
        line_end = offset + len(raw) + (0 if is_last else 1)
        if not raw.strip():
            offset = line_end
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
            if not isinstance(obj, dict):
                raise ValueError("expected a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            if is_last:
                # What a kill during an append leaves: no newline, not a whole object.
                return rows, offset
            raise RadoncInputError(
                f"unreadable prediction row ({exc}); this is not a cut-short last line, so "
                "the file was edited or damaged: fix or delete it",
                file=path,
                row=number,
            ) from None
        rows.append(obj)
        if is_last:
            # A whole object without its newline: keep it and complete the line.
            return rows, -1
        offset = line_end
    return rows, None


class PredictionStore:
    """Append-only prediction rows keyed by (case_id, task); use as a context manager."""

    def __init__(self, path: str | Path, *, run_info: dict[str, str]) -> None:
        self.path = Path(path)
        self.run_info = dict(run_info)
        self.done: set[tuple[str, str]] = set()
        self.rows_before = 0
        self.repaired_last_line = False
        self._handle: IO | None = None

    def __enter__(self) -> PredictionStore:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        if self.path.is_dir():
            raise RadoncInputError("is a folder; give a prediction file (.jsonl)", file=self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RadoncInputError(
                f"cannot create the folder ({exc.strerror})", file=self.path.parent
            ) from None
        if self.path.exists():
            rows, cut = _read_rows(self.path)
            self._check_rows(rows)
            if cut is not None and cut >= 0:
                with self.path.open("r+b") as handle:
                    handle.truncate(cut)
                    handle.flush()
                    os.fsync(handle.fileno())
                self.repaired_last_line = True
            elif cut == -1:
                with self.path.open("ab") as handle:
                    handle.write(b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            self.rows_before = len(rows)
        self._handle = self.path.open("a", encoding="utf-8")

    def _check_rows(self, rows: Iterable[dict]) -> None:
        for number, row in enumerate(rows, start=1):
            missing = [name for name in REQUIRED_FIELDS if name not in row]
            if missing:
                raise RadoncInputError(
                    f"prediction row {number} lacks {', '.join(missing)}", file=self.path
                )
            for name in RUN_FIELDS:
                if name in self.run_info and row.get(name) != self.run_info[name]:
                    raise RadoncInputError(
                        f"this file holds predictions with {name}={row.get(name)!r}, this run "
                        f"has {name}={self.run_info[name]!r}; write to another --out file (or "
                        "delete this one to start over)",
                        file=self.path,
                        field=name,
                    )
            key = (str(row["case_id"]), str(row["task"]))
            if key in self.done:
                raise RadoncInputError(
                    f"prediction row {number} repeats case {key[0]!r}, task {key[1]!r}; "
                    "the file was edited or concatenated: fix or delete it",
                    file=self.path,
                )
            self.done.add(key)

    def append(self, row: dict) -> None:
        if self._handle is None:
            raise RuntimeError("PredictionStore is not open")
        key = (str(row["case_id"]), str(row["task"]))
        if key in self.done:
            raise RuntimeError(f"prediction for {key} written twice")
        append_jsonl(self._handle, {**row, **self.run_info})
        self.done.add(key)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
