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


def _read_rows(path: Path) -> tuple[list[tuple[int, dict]], int | None]:
    """(line number, row) of an existing store and, if its last line was cut short, the byte
    offset to keep (-1: a whole last row without its newline)."""
    data = path.read_bytes()
    rows: list[tuple[int, dict]] = []
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
        rows.append((number, obj))
        if is_last:
            # A whole object without its newline: keep it and complete the line.
            return rows, -1
        offset = line_end
    return rows, None


def _lock(handle: IO, path: Path) -> None:
    """Hold an exclusive lock on the open file while the run lasts: two runs appending to
    one file would interleave their rows."""
    try:
        import fcntl
    except ImportError:  # not on Windows: no lock
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RadoncInputError(
            "another prediction run is writing this file; wait for it to finish, or give "
            "another --out",
            file=path,
        ) from None
    except OSError:
        pass  # a file system without locks (some network mounts): carry on unlocked


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
        try:
            # Opened (and locked) first: a second run on the same file must not even repair it.
            handle = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise self._cannot_write(exc) from None
        try:
            _lock(handle, self.path)
            if self.path.stat().st_size:
                self._resume()
        except BaseException:
            handle.close()
            raise
        self._handle = handle

    def _resume(self) -> None:
        rows, cut = _read_rows(self.path)
        self._check_rows(rows)
        try:
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
        except OSError as exc:
            raise self._cannot_write(exc) from None
        self.rows_before = len(rows)

    def _cannot_write(self, exc: OSError, *, wrote: bool = False) -> RadoncInputError:
        then = "; the rows written so far are kept" if wrote else ""
        return RadoncInputError(
            f"cannot write the prediction file ({exc.strerror or exc}){then}: make room or "
            "fix the folder's permissions and rerun the same command, or give another --out",
            file=self.path,
        )

    def _check_rows(self, rows: Iterable[tuple[int, dict]]) -> None:
        for number, row in rows:
            missing = [name for name in REQUIRED_FIELDS if name not in row]
            if missing:
                raise RadoncInputError(
                    f"prediction row lacks {', '.join(missing)}; the file was edited or is "
                    "not a prediction file: fix or delete it",
                    file=self.path,
                    row=number,
                )
            for name in RUN_FIELDS:
                if name in self.run_info and row.get(name) != self.run_info[name]:
                    raise RadoncInputError(
                        f"this file holds predictions with {name}={row.get(name)!r}, this run "
                        f"has {name}={self.run_info[name]!r}; write to another --out file (or "
                        "delete this one to start over)",
                        file=self.path,
                        row=number,
                        field=name,
                    )
            key = (str(row["case_id"]), str(row["task"]))
            if key in self.done:
                raise RadoncInputError(
                    f"repeats case {key[0]!r}, task {key[1]!r}; the file was edited or "
                    "concatenated: fix or delete it",
                    file=self.path,
                    row=number,
                )
            self.done.add(key)

    def append(self, row: dict) -> None:
        if self._handle is None:
            raise RuntimeError("PredictionStore is not open")
        key = (str(row["case_id"]), str(row["task"]))
        if key in self.done:
            raise RuntimeError(f"prediction for {key} written twice")
        try:
            append_jsonl(self._handle, {**row, **self.run_info})
        except OSError as exc:
            # A full disk can leave part of the row: the next run drops that cut last line.
            self.close()
            raise self._cannot_write(exc, wrote=True) from None
        self.done.add(key)

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.close()
            except OSError:
                pass  # the write that failed said why; the file descriptor is closed anyway
