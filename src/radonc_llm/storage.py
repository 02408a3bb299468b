"""Atomic writes and JSON Lines: every artefact is written whole or not at all.

A stage writes to a temporary file beside the target and renames it into place, so a kill
never leaves a half-written artefact that a later stage would trust. Append-only JSONL
(`append_jsonl`) is for resumable jobs: each finished row is flushed and fsynced.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from radonc_llm.errors import RadoncInputError


def _temporary_name(name_pattern: str) -> re.Pattern[str]:
    """What writes name their temporary files or folders beside a target: ".name.", mkstemp's
    or mkdtemp's 8 random characters, ".tmp"."""
    return re.compile(rf"\.{name_pattern}\.[A-Za-z0-9_]{{8}}\.tmp")


_TEMPORARY = _temporary_name(".+")
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def file_in_the_way(folder: str | Path) -> Path | None:
    """The file standing where `folder` or one of its parents must be a folder (so the folder
    cannot be made), or None. Only the nearest existing path is looked at."""
    existing = _nearest_existing(Path(folder))
    return None if existing is None or existing.is_dir() else existing


def _nearest_existing(path: Path) -> Path | None:
    return next((p for p in (path, *path.parents) if p.exists()), None)


def _check_writable(target: Path) -> None:
    """Fail, naming the folder, where `target` cannot be created or written: a read-only
    file system or a folder without write permission (an early check: the write itself
    still reports what the system says)."""
    existing = _nearest_existing(target)
    if existing is None:
        return
    if os.access(existing, os.W_OK | os.X_OK if existing.is_dir() else os.W_OK):
        return
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    reason = "on a read-only file system" if read_only else "not writable by you"
    raise RadoncInputError(f"is {reason}; choose an output you can write to", file=existing)


def check_output_folder(out_dir: str | Path) -> None:
    """Fail, naming the path, where a file stands in the way of the output folder or the
    folder cannot be written; before the work, not after it."""
    blocking = file_in_the_way(out_dir)
    if blocking is not None:
        raise RadoncInputError("is a file, not a folder; choose another output", file=blocking)
    _check_writable(Path(out_dir))


def check_output_file(path: str | Path, *, expected: str = "a file path") -> None:
    """Fail, naming the path, where an output file cannot be written: it is a folder, a file
    stands where one of its folders must be, or the place is not writable. `expected` says
    what to give instead ("a prediction file (.jsonl)")."""
    path = Path(path)
    _check_file_place(path, expected=expected)
    _check_writable(path if path.exists() else path.parent)


def _check_file_place(path: Path, *, expected: str) -> None:
    if path.is_dir():
        raise RadoncInputError(f"is a folder; give {expected}", file=path)
    blocking = file_in_the_way(path.parent)
    if blocking is not None:
        raise RadoncInputError(
            f"is a file, not a folder, so {path} cannot be written under it; choose another output",
            file=blocking,
        )


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync and rename it over `path`."""
    path = Path(path)
    # Else the rename fails naming the temporary file, or mkdir says only "File exists".
    _check_file_place(path, expected="a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp creates owner-only files; artefacts get the usual permissions (umask applies).
    os.chmod(tmp, 0o666 & ~_UMASK)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_leftover_temporaries(folder: str | Path) -> int:
    """Delete the temporary files that writes killed before their rename left in `folder` and
    below (`.name.XXXXXXXX.tmp`); returns how many. Only for a folder no other job is writing."""
    removed = 0
    for path in Path(folder).rglob(".*.tmp"):
        if path.is_file() and _TEMPORARY.fullmatch(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def remove_temporaries_of(path: str | Path) -> int:
    """Delete the temporary files or folders that writes of `path` killed before their rename
    left beside it (`.name.XXXXXXXX.tmp`); returns how many. Only while no one writes it."""
    path = Path(path)
    pattern = _temporary_name(re.escape(path.name))
    found = [entry for entry in path.parent.iterdir() if pattern.fullmatch(entry.name)]
    for entry in found:
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return len(found)


def jsonl_shape_hint(start: bytes, what: str) -> str | None:
    """What a file that should be JSON Lines looks like instead, from its first bytes: a JSON
    array, indented JSON or a CSV/TSV table with a case_id column; None when none of these.
    `what` names the file ("a case file")."""
    start = start.removeprefix(b"\xef\xbb\xbf").strip()
    first_line = start.split(b"\n", 1)[0].strip()
    jsonl = f"{what} is JSON Lines, one JSON object per line"
    if start.startswith(b"["):
        return f"this looks like a JSON array; {jsonl} (jq -c '.[]' FILE converts it)"
    if first_line == b"{":
        return f"this looks like indented JSON, one object over several lines; {jsonl}"
    if (
        not start.startswith(b"{")
        and b"case_id" in first_line
        and (b"," in first_line or b"\t" in first_line)
    ):
        return f"this looks like a CSV or TSV table with a header row; {jsonl}"
    return None


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def write_json_atomic(path: str | Path, obj: Any, *, indent: int = 2) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=str) + "\n")


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict]) -> int:
    """Write all rows as JSON Lines atomically; returns the number of rows written."""
    count = 0
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            count += 1
    return count


def append_jsonl(handle: IO, row: dict) -> None:
    """Append one row to an open JSONL file and make it durable before returning."""
    handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a bad line raises RadoncInputError.

    A final line without a newline that does not parse is what a kill mid-append leaves;
    it is reported like any other bad line, so a caller that resumes can decide to drop it.
    A gzip-compressed file (known by its first bytes, whatever its name) is read the same way.
    """
    path = Path(path)
    if not path.exists():
        raise RadoncInputError("file not found", file=path)
    if path.is_dir():
        raise RadoncInputError("is a folder, not a JSON Lines file", file=path)
    try:
        with open_unpacked(path) as handle:
            yield from _json_lines(handle, path)
    except GZIP_ERRORS as exc:
        raise RadoncInputError(f"damaged gzip file ({exc or 'cut short'})", file=path) from None


GZIP_MAGIC = b"\x1f\x8b"
# What reading a damaged gzip file raises (EOFError: a stream cut short).
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def is_cut_last_line(path: Path, line: int) -> bool:
    """Whether `line` is the last line of a JSON Lines file that ends without a line end: what
    a kill during a write or an append leaves."""
    data = Path(path).read_bytes()
    if data.startswith(GZIP_MAGIC) or data.endswith(b"\n"):
        return False
    return line == data.count(b"\n") + 1


@contextmanager
def open_unpacked(path: Path) -> Iterator[IO[bytes]]:
    """A file's bytes, unpacked as they are read where it is gzip-compressed (known by its
    first bytes, whatever its name); the handle starts at the first byte. Reading a damaged
    gzip file raises one of `GZIP_ERRORS`."""
    with Path(path).open("rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
        handle.seek(0)
        if not compressed:
            yield handle
            return
        with gzip.GzipFile(fileobj=handle) as unpacked:
            yield unpacked


def _json_lines(handle: IO[bytes], path: Path) -> Iterator[tuple[int, dict]]:
    for number, raw in enumerate(handle, start=1):
        try:
            # A byte-order mark (Windows editors write one) starts only the first line.
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise RadoncInputError(
                f"not valid UTF-8 ({exc.reason})", file=path, row=number
            ) from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RadoncInputError(f"not valid JSON ({exc.msg})", file=path, row=number) from None
        if not isinstance(obj, dict):
            raise RadoncInputError("expected a JSON object", file=path, row=number)
        yield number, obj


def read_jsonl(path: str | Path) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def file_sha256(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
