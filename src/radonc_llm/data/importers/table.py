"""Find and read a cohort's CSV table, from the file or from the folder the user points at.

The files stay where the user keeps them (their licences are non-commercial): they are read
in place, never copied. A table is recognised by its columns, not by its file name, so a
renamed download still works. Header names are compared with surrounding spaces removed
(RADCURE v04 writes "M " with a trailing space).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from radonc_llm.errors import RadoncInputError


@dataclass(frozen=True)
class SourceRow:
    number: int  # 1-based data row (header excluded), as the ledger names it
    values: dict[str, str]  # stripped header -> stripped value
    problem: str | None = None  # why the row cannot be read at all (wrong field count)


@dataclass(frozen=True)
class SourceTable:
    path: Path
    columns: tuple[str, ...]
    rows: list[SourceRow]

    @property
    def name(self) -> str:
        return self.path.name


def _header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            first = next(csv.reader(handle), [])
    except UnicodeDecodeError as exc:
        raise RadoncInputError(f"not valid UTF-8 ({exc.reason})", file=path) from None
    return [name.strip() for name in first]


def find_table(path: str | Path, required: tuple[str, ...], *, what: str) -> Path:
    """`path` itself if it is a file with the `required` columns, else the one CSV in the
    folder `path` that has them; RadoncInputError names what is missing."""
    path = Path(path)
    if not path.exists():
        raise RadoncInputError("no such file or folder", file=path)
    if path.is_file():
        missing = [column for column in required if column not in _header(path)]
        if missing:
            raise RadoncInputError(
                f"not the {what} table: missing column(s) {', '.join(map(repr, missing))}",
                file=path,
                field=missing[0],
            )
        return path
    matches = [
        candidate
        for candidate in sorted(path.glob("*.csv"))
        if all(column in _header(candidate) for column in required)
    ]
    if not matches:
        raise RadoncInputError(
            f"no CSV file here has the columns of the {what} table "
            f"({', '.join(map(repr, required[:4]))}, ...)",
            file=path,
        )
    if len(matches) > 1:
        names = ", ".join(match.name for match in matches)
        raise RadoncInputError(
            f"several CSV files look like the {what} table ({names}): pass one file", file=path
        )
    return matches[0]


def read_table(path: Path) -> SourceTable:
    """Every record after the header, numbered from 1; a record with the wrong number of
    fields (or a blank line) is kept with a `problem` so that the ledger can account for it."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            records = list(csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise RadoncInputError(f"not valid UTF-8 ({exc.reason})", file=path) from None
    except csv.Error as exc:
        raise RadoncInputError(f"not a readable CSV file ({exc})", file=path) from None
    if not records:
        raise RadoncInputError("empty file: no header", file=path)
    columns = tuple(name.strip() for name in records[0])
    rows = []
    for number, fields in enumerate(records[1:], start=1):
        if len(fields) != len(columns):
            problem = (
                "blank line"
                if not any(field.strip() for field in fields)
                else f"{len(fields)} fields, the header has {len(columns)}"
            )
            rows.append(SourceRow(number=number, values={}, problem=problem))
            continue
        values = {column: field.strip() for column, field in zip(columns, fields, strict=True)}
        rows.append(SourceRow(number=number, values=values))
    return SourceTable(path=path, columns=columns, rows=rows)
