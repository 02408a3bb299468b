"""Find and read a cohort's CSV table, from the file or from the folder the user points at.

The files stay where the user keeps them (their licences are non-commercial): they are read
in place, never copied. A table is recognised by its columns, not by its file name, so a
renamed download still works. Header names are compared as `ingest.column_name` writes them
(case, spaces, underscores and hyphens aside: "M " = "m", "Patient ID" = "patient_id"), and a
spreadsheet's re-save is read as the curation ingest reads it: UTF-8, UTF-16 with a byte-order
mark (Excel's "Unicode text"), comma, semicolon or tab separated. A quote left open, a blank
line, a NUL byte or bytes that are not UTF-8 make one row unreadable, never the file.

What a spreadsheet adds on its own is undone where it cannot change a value: empty cells past
the last column, the apostrophe that marks a cell as text ("'T4b"), and "#N/A" (Excel's and
pandas' "not available") as an empty cell. A formula error ("#VALUE!", "#REF!") in a column
the importer reads makes that row unreadable, naming the column.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from radonc_llm.data.ingest import (
    BROKEN_ENCODING,
    BROKEN_TEXT,
    SPREADSHEET_ERROR,
    column_name,
    csv_delimiter,
    csv_rows,
    fit_to_header,
    read_text,
    refuse_doubled_columns,
)
from radonc_llm.errors import RadoncInputError


@dataclass(frozen=True)
class SourceRow:
    number: int  # 1-based data row (header excluded), as the ledger names it
    values: dict[str, str]  # column (as the importer names it) -> stripped value
    problem: str | None = None  # why the row cannot be read at all (wrong field count)
    problem_column: str | None = None  # the column that made it unreadable, if one did


# Excel's "value not available" (a lookup that found nothing); pandas reads it as missing too.
NOT_AVAILABLE = frozenset({"#n/a", "#na", "#n/a n/a"})


@dataclass(frozen=True)
class SourceTable:
    path: Path
    columns: tuple[str, ...]
    rows: list[SourceRow]

    @property
    def name(self) -> str:
        return self.path.name


def _lines(path: Path) -> tuple[list[str], str]:
    """The file's lines (line ends kept) and its field separator; RadoncInputError for a
    file that is empty, binary (an Excel workbook) or UTF-16 without a byte-order mark."""
    text = read_text(path)
    lines = io.StringIO(text, newline="").readlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise RadoncInputError("empty file: no header row", file=path)
    if "\x00" in lines[0]:
        raise RadoncInputError(
            "the header holds NUL bytes: the file is not UTF-8 text "
            "(UTF-16 without a byte-order mark?); save it as CSV UTF-8",
            file=path,
        )
    return lines, csv_delimiter(lines[0])


def _header(path: Path) -> list[str]:
    lines, delimiter = _lines(path)
    return next(csv.reader(lines[:1], delimiter=delimiter), [])


def missing_columns(path: Path, required: tuple[str, ...]) -> list[str]:
    """The `required` columns that the header of the file `path` lacks."""
    present = {column_name(name) for name in _header(path)}
    return [column for column in required if column_name(column) not in present]


def find_table(path: str | Path, required: tuple[str, ...], *, what: str) -> Path:
    """`path` itself if it is a file with the `required` columns, else the one CSV in the
    folder `path` that has them; RadoncInputError names what is missing."""
    path = Path(path)
    check_path(path)
    if path.is_file():
        missing = missing_columns(path, required)
        if missing:
            raise RadoncInputError(
                f"not the {what} table: missing column(s) {', '.join(map(repr, missing))}",
                file=path,
                field=missing[0],
            )
        return path
    matches, near = scan_folder(path, required)
    if not matches:
        if near:  # a CSV with most of the columns: say which it lacks
            candidate, missing = near
            raise RadoncInputError(
                f"not the {what} table: missing column(s) {', '.join(map(repr, missing))}",
                file=candidate,
                field=missing[0],
            )
        raise RadoncInputError(
            f"no CSV file here has the columns of the {what} table "
            f"({', '.join(map(repr, required[:4]))}, ...){workbook_hint(path)}",
            file=path,
        )
    if len(matches) > 1:
        names = ", ".join(match.name for match in matches)
        raise RadoncInputError(
            f"several CSV files look like the {what} table ({names}): pass one file", file=path
        )
    return matches[0]


def check_path(path: Path) -> None:
    """RadoncInputError unless `path` is a file or a folder that can be read."""
    if not path.exists():
        raise RadoncInputError("no such file or folder", file=path)
    if not (path.is_file() or path.is_dir()):
        raise RadoncInputError("not a file or a folder (a device or pipe?)", file=path)


def workbook_hint(folder: Path) -> str:
    """ "; found X.xlsx: save it as CSV UTF-8" when the folder holds spreadsheets, else ""."""
    others = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".xlsx", ".xls"))
    return f"; found {', '.join(others)}: save it as CSV UTF-8" if others else ""


def scan_folder(
    folder: Path, required: tuple[str, ...]
) -> tuple[list[Path], tuple[Path, list[str]] | None]:
    """The CSV files of `folder` with every `required` column, and the file that has at least
    half of them but not all (with the columns it lacks), if any. A file that cannot be read
    is not this table."""
    matches: list[Path] = []
    near: tuple[Path, list[str]] | None = None
    for candidate in sorted(folder.glob("*.csv")):
        try:
            missing = missing_columns(candidate, required)
        except RadoncInputError:
            continue
        if not missing:
            matches.append(candidate)
        elif len(missing) <= len(required) // 2 and (near is None or len(missing) < len(near[1])):
            near = (candidate, missing)
    return matches, near


def read_table(path: Path, columns: tuple[str, ...] = ()) -> SourceTable:
    """Every record after the header, numbered from 1; a record that cannot be read (wrong
    number of fields, blank line, open quote, NUL byte, broken encoding) is kept with a
    `problem` so that the ledger can account for it. A header cell that names one of
    `columns` in another spelling is renamed to it; such a column given twice is an error."""
    lines, delimiter = _lines(path)
    header = [name.strip() for name in next(csv.reader(lines[:1], delimiter=delimiter), [])]
    spelled = {column_name(column): column for column in columns}
    names = [spelled.get(column_name(name), name) for name in header]
    refuse_doubled_columns(path, header, names, columns)
    used = set(columns)
    rows = []
    for number, (line, fields, problem) in enumerate(csv_rows(lines, delimiter, start=1), start=1):
        if problem is None:
            fields = fit_to_header(fields, names)
            if not any(field.strip() for field in fields):
                problem = "blank line"
            elif len(fields) != len(names):
                problem = f"{len(fields)} fields, the header has {len(names)}"
                if line == len(lines) and not lines[-1].endswith(("\n", "\r")):
                    problem += "; the file ends inside this row (cut short?)"
            elif any("\x00" in field for field in fields):
                problem = "a NUL byte (the file is damaged)"
            elif any(BROKEN_TEXT.search(field) for field in fields):
                problem = f"{BROKEN_ENCODING} (saved as Windows-1252? save it as CSV UTF-8)"
        if problem is not None:
            rows.append(SourceRow(number=number, values={}, problem=f"line {line}: {problem}"))
            continue
        values = {name: _cell(field) for name, field in zip(names, fields, strict=True)}
        error = next(
            (
                name
                for name, value in values.items()
                if name in used and SPREADSHEET_ERROR.fullmatch(value)
            ),
            None,
        )
        if error is not None:
            rows.append(
                SourceRow(
                    number=number,
                    values=values,
                    problem=f"line {line}: column '{error}' holds the spreadsheet error "
                    f"'{values[error]}', not a value",
                    problem_column=error,
                )
            )
            continue
        rows.append(SourceRow(number=number, values=values))
    if not rows:
        raise RadoncInputError("no data rows under the header", file=path)
    return SourceTable(path=path, columns=tuple(names), rows=rows)


def _cell(field: str) -> str:
    """A field's value: stripped, without the text-marking apostrophe, "#N/A" as empty."""
    value = field.strip()
    if value.startswith("'"):
        value = value[1:].strip()
    return "" if value.lower() in NOT_AVAILABLE else value
