"""Read a raw oncology-information-system export (ARIA/MOSAIQ-style) into typed rows.

Three tables, each as CSV, JSONL or Parquet with the same stem: `patients`, `diagnoses`,
`treatment_courses` (CSV and JSONL in UTF-8 or, with a byte-order mark, UTF-16 or UTF-32;
gzip'd as `.csv.gz`/`.jsonl.gz`). A missing or doubled required column, an empty file, a file
that is not text or not a file (a broken link, a pipe) stops at once, naming file and column. A
bad row (unparseable number, bad date, unknown status, duplicate id, broken encoding, missing
value, a spreadsheet error such as #VALUE!, a control character, an id with invisible
characters) never raises: it becomes a ledger entry with file, row, column and reason, so that
every input row is accounted for. Lines that are no rows (the header again, a "(300 rows
affected)" footer, a "Total;300" summary row, a "----+----" rule) are ledgered without a
patient. Numbers are read with the decimal mark their file shows ("60,0": a comma, so "1.500"
is 1500); one that reads two ways in a file that shows no mark, or both, is ledgered.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import decimal
import errno
import gzip
import io
import json
import math
import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radonc_llm.data.regimen import normalize_dose
from radonc_llm.errors import RadoncInputError
from radonc_llm.storage import GZIP_ERRORS, GZIP_MAGIC, open_unpacked

FORMATS = (".csv", ".jsonl", ".parquet", ".csv.gz", ".jsonl.gz")
COURSE_STATUSES = {
    "approved": "approved",
    "completed": "completed",
    "complete": "completed",
    "draft": "draft",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "retired": "retired",
}
FLAG_VALUES = {
    "y": True, "yes": True, "1": True, "true": True, "t": True,
    "n": False, "no": False, "0": False, "false": False, "f": False, "": False,
}  # fmt: skip
BROKEN_TEXT = re.compile("[\udc80-\udcff\ufffd]")
BROKEN_ENCODING = "bytes that are not valid UTF-8"
SEXES = {
    "m": "M", "male": "M", "f": "F", "female": "F", "u": "U", "unknown": "U", "unk": "U",
    "not recorded": "U", "not known": "U", "x": "X", "o": "X", "other": "X",
}  # fmt: skip


@dataclass(frozen=True)
class LedgerEntry:
    """One row that did not become part of a curated case, and why."""

    patient_id: str | None
    file: str
    row: int | None
    column: str | None
    reason: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "patient_id": self.patient_id,
            "file": self.file,
            "row": self.row,
            "column": self.column,
            "reason": self.reason,
            "detail": self.detail,
        }


class BadValue(ValueError):
    """A field that cannot be read; `reason` is the ledger's reason code."""

    def __init__(self, reason: str, detail: str, column: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.column = column  # set where the field is not the one being parsed


def _text(value: str) -> str:
    return value.strip()


# Cells a database or spreadsheet writes for "no value": never an id.
NULL_IDS = {"null", "(null)", "<null>", "\\n", "n/a", "#n/a", "na", "none", "nil", "-", "--", "?"}
# A yes/no value where an id belongs: a JSON true/false, or a spreadsheet's TRUE/FALSE.
YES_NO_IDS = {"true", "false"}
# Spreadsheet errors stand where a formula failed: the value is lost, not empty.
SPREADSHEET_ERROR = re.compile(
    r"#(?:VALUE!|REF!|DIV/0!|NAME\?|N/A|NUM!|NULL!|SPILL!|CALC!|FIELD!|BLOCKED!|CONNECT!|BUSY!"
    r"|UNKNOWN!|GETTING_DATA)|#{2,}",
    re.IGNORECASE,
)
# C0 controls other than tab and line ends, DEL and C1 controls are never text of a note.
_CONTROL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Line breaks other than "\n" inside a cell, each read as one line end: a vertical tab (Word's
# manual break, FileMaker, some EHR exports), a form feed at a page break, and "\r\n" or a bare
# "\r" in a quoted note of a file whose line ends were converted in part (Windows and Unix
# tools, a sheet on a Mac).
_CELL_LINE_BREAK = re.compile(r"\r\n?|[\x0b\x0c]")


def _identifier(value: str) -> str:
    """An id (patient, diagnosis, course, plan): refused when empty, a null marker or holding
    characters no one can see, since two ids that look the same must be the same."""
    text = value.strip()
    if not text:
        raise BadValue("missing_value", "empty")
    if text.casefold() in NULL_IDS:
        raise BadValue("missing_value", f"'{text}' stands for no value, not an id")
    if text.casefold() in YES_NO_IDS:
        raise BadValue("bad_value", f"'{text}' is a yes/no value, not an id")
    hidden = next((ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf")), None)
    if hidden is not None:
        raise BadValue(
            "bad_value",
            f"id {ascii(text)} holds an invisible character (U+{ord(hidden):04X}); "
            "remove it and export again",
        )
    return text


def _cell_problem(text: str) -> BadValue | None:
    """What makes a cell unusable whatever its column: a spreadsheet error or a control
    character (terminal codes, a damaged file)."""
    if SPREADSHEET_ERROR.fullmatch(text.strip()):
        return BadValue(
            "bad_value",
            f"'{text.strip()}' is a spreadsheet error, not a value: fix the formula (or widen "
            "the column) and export again",
        )
    control = _CONTROL.search(text)
    if control is not None:
        return BadValue(
            "bad_value",
            f"holds the control character U+{ord(control.group()):04X} at character "
            f"{control.start() + 1}: the cell is damaged or holds terminal codes",
        )
    return None


def _required_text(value: str) -> str:
    value = value.strip()
    if not value:
        raise BadValue("missing_value", "empty")
    return value


# Digits grouped by a space: a plain, no-break (U+00A0), thin (U+2009) or narrow no-break
# (U+202F) space, as French, Swiss and ISO style write "7 000 cGy". A space never marks decimals.
_SPACE_GROUPED = re.compile(r"\d{1,3}(?:[ \u00a0\u2009\u202f]\d{3})+(?:[.,]\d+)?")
# One separator, one to three digits before it and three after: "1,500" and "1.500" are 1.5 or
# 1500, as the writer's locale says; the text alone cannot tell.
_AMBIGUOUS = re.compile(r"\d{1,3}(?P<mark>[.,])\d{3}")
# Numbers whose decimal mark shows: "1,234.5", "1,234,567", "50.4" (a point) and "1.234,5",
# "1.234.567", "50,4" (a comma).
_POINT_DECIMAL = re.compile(r"\d{1,3}(?:,\d{3})+\.\d+|\d{1,3}(?:,\d{3}){2,}|\d*\.\d+")
_COMMA_DECIMAL = re.compile(r"\d{1,3}(?:\.\d{3})+,\d+|\d{1,3}(?:\.\d{3}){2,}|\d*,\d+")


@dataclass(frozen=True)
class DecimalMark:
    """How a file writes decimals: "." or ",", or None where it cannot be told; `why` says,
    for a number that could be read either way, why the file does not settle it."""

    mark: str | None
    why: str = ""


POINT = DecimalMark(".")


def _without_group_spaces(text: str) -> str:
    return re.sub(r"[ \u00a0\u2009\u202f]", "", text) if _SPACE_GROUPED.fullmatch(text) else text


def decimal_mark_of(text: str) -> str | None:
    """The decimal mark a number shows by its form ("50,4": ",", "1,234.5": "."), or None
    where it shows none ("70", "1,500")."""
    text = _without_group_spaces(text.strip())
    if _AMBIGUOUS.fullmatch(text):
        return None
    if _POINT_DECIMAL.fullmatch(text):
        return "."
    if _COMMA_DECIMAL.fullmatch(text):
        return ","
    return None


def localized_number(value: str, decimal: DecimalMark) -> str:
    """Number text as Python reads it, for a file whose decimal mark is `decimal`: "7 000" ->
    "7000"; "4,500" -> "4500" where the mark is a point, "4.5" where it is a comma; "50,4" and
    "1.234,5" show their comma whatever the file. Text that is no number comes back unchanged.
    A number that reads two ways in a file whose mark is unknown raises BadValue."""
    text = _without_group_spaces(value.strip())
    ambiguous = _AMBIGUOUS.fullmatch(text)
    if ambiguous:
        if decimal.mark is None:
            whole, part = text.replace(",", ".").split(".")
            raise BadValue(
                "bad_number",
                f"'{value.strip()}' could be {whole}.{part.rstrip('0') or '0'} (decimal "
                f"{'comma' if ambiguous['mark'] == ',' else 'point'}) or {whole}{part} (thousands "
                f"separator): {decimal.why}; write numbers without thousands separators",
            )
        if ambiguous["mark"] == decimal.mark:
            return text.replace(",", ".")
        return text.replace(ambiguous["mark"], "")
    if _POINT_DECIMAL.fullmatch(text):
        return text.replace(",", "")
    if _COMMA_DECIMAL.fullmatch(text):
        return text.replace(".", "").replace(",", ".")
    return text


def numeric_text(value: str) -> str:
    """Number text as Python reads it, where a comma is no decimal mark unless the number
    shows it: "4,500" -> "4500", "50,4" (a European decimal comma) -> "50.4", "7 000" ->
    "7000"; anything else unchanged."""
    return localized_number(value, POINT)


def _spreadsheet_text(value: str) -> str:
    """A cell without the apostrophe a spreadsheet puts before a number it keeps as text
    ("'1956"): the apostrophe is a format mark, not part of the value."""
    text = value.strip()
    return text[1:] if re.match(r"'[\d+\-.]", text) else text


_SCIENTIFIC = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)[eE][+-]?\d+")
_CURRENCY = set("$€£¥")


def _float(text: str) -> float:
    """A number cell's value, or BadValue("bad_number") saying why it is none."""
    if _SCIENTIFIC.fullmatch(text):
        raise BadValue(
            "bad_number",
            f"'{text}' is in scientific notation, which a spreadsheet writes rounded to the "
            "digits shown (40.05 Gy as 4.00E+01): format the column as Number and export again",
        )
    if text.endswith("%") or text[:1] in _CURRENCY or text[-1:] in _CURRENCY:
        kind = "a percentage" if text.endswith("%") else "an amount of money"
        raise BadValue(
            "bad_number",
            f"'{text}' is written as {kind} (a spreadsheet's cell format): format the column "
            "as Number and export again",
        )
    try:
        if "_" in text:  # Python reads "3_0" as 30; an export never means that
            raise ValueError(text)
        return float(text)
    except ValueError:
        raise BadValue("bad_number", f"'{text}' is not a number") from None


def _integer(value: str) -> int:
    text = numeric_text(_spreadsheet_text(value))
    number = _float(text)
    if not math.isfinite(number) or number != int(number):
        raise BadValue("bad_number", f"'{text}' is not a whole number")
    return int(number)


_FRACTION_COUNT = re.compile(r"(?P<count>\d+)\s*(?:fx|fr|fractions?|#)\.?", re.IGNORECASE)


def _fractions(value: str) -> int:
    """A fraction count, also as written with its word: "30 fx", "28 fractions", "5#"."""
    match = _FRACTION_COUNT.fullmatch(value.strip())
    return _integer(match["count"] if match else value)


def _number(value: str) -> float:
    text = numeric_text(_spreadsheet_text(value))
    number = _float(text)
    if not math.isfinite(number):
        raise BadValue("bad_number", f"'{text}' is not a finite number")
    return number


# Dates whose day and month cannot be mixed up: year first, or the month as a word. A time
# after the date ("2023-02-01 00:00:00", "01-Feb-2023 12:00 AM") is dropped.
_UNAMBIGUOUS_DATE_FORMATS = (
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%d-%b-%Y",
    "%d %b %Y",
    "%b %d, %Y",
    "%b %d %Y",
    "%d %B %Y",
    "%B %d, %Y",
    "%B %d %Y",
)
# A month word with a two-digit year ("04-MAR-21", Oracle's default): the century is not guessed.
_TWO_DIGIT_YEAR = re.compile(
    r"\d{1,2}[-/ .][A-Za-z]{3,9}[-/ .]\d{2}|[A-Za-z]{3,9}[-/ .]\d{1,2},?[-/ ]\d{2}"
)
_TIME_SUFFIX = re.compile(
    r"[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp][Mm])?\s*(?:Z|[+-]\d{2}:?\d{2})?$"
)


# The order a user names for dates written with numbers only ("31/12/2024": dmy, "12/31/2024":
# mdy); without it such a date is refused, since "03/04/2021" reads two ways.
DATE_ORDERS = ("dmy", "mdy")
_NUMERIC_DATE = re.compile(
    r"(?P<first>\d{1,2})(?P<sep>[/.-])(?P<second>\d{1,2})(?P=sep)(?P<year>\d{4}|\d{2})"
    r"(?P<time>[ T]\d{1,2}:\d{2}.*)?"
)


def ordered_date_text(value: str, order: str | None) -> str:
    """A date written with numbers only as YYYY-MM-DD, read in the `order` the user named;
    other text (and every text without an order) comes back unchanged for `_date` to read."""
    text = _spreadsheet_text(value).strip()
    found = _NUMERIC_DATE.fullmatch(text)
    if order is None or found is None:
        return value
    if len(found["year"]) == 2:
        raise BadValue(
            "bad_date", f"'{text}' has a two-digit year, whose century is not guessed: write "
            "dates as YYYY-MM-DD",
        )  # fmt: skip
    first, second = int(found["first"]), int(found["second"])
    day, month = (first, second) if order == "dmy" else (second, first)
    try:
        return dt.date(int(found["year"]), month, day).isoformat()
    except ValueError as exc:
        raise BadValue(
            "bad_date", f"'{text}' is no date read as {_ORDER_NAMES[order]} ({exc})"
        ) from None


_ORDER_NAMES = {"dmy": "day/month/year", "mdy": "month/day/year"}


def check_date_order(order: str | None) -> str | None:
    if order is not None and order not in DATE_ORDERS:
        raise RadoncInputError(
            f"unknown date order {order!r}: dmy (31/12/2024) or mdy (12/31/2024)",
            field="date_order",
        )
    return order


def _date(value: str) -> dt.date:
    text = _spreadsheet_text(value)
    for parse in (dt.date.fromisoformat, lambda s: dt.datetime.fromisoformat(s).date()):
        try:
            return parse(text)
        except ValueError:
            continue
    day = _TIME_SUFFIX.sub("", text).strip()
    for pattern in _UNAMBIGUOUS_DATE_FORMATS:
        try:
            return dt.datetime.strptime(day, pattern).date()
        except ValueError:
            continue
    if re.match(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b", text):
        # "03/04/2021" is 3 April in a European export and 4 March in a US one: never guessed,
        # not even for "30/12/2020", which one row alone could settle but its file may not.
        raise BadValue(
            "bad_date",
            f"'{text}' is a date in numbers only, whose day/month order is never guessed "
            "(03/04/2021 reads two ways): write dates as YYYY-MM-DD, or name the export's "
            "order (curate --date-order dmy for 31/12/2024, mdy for 12/31/2024)",
        )
    if _TWO_DIGIT_YEAR.fullmatch(day):
        raise BadValue(
            "bad_date",
            f"'{text}' has a two-digit year, whose century is not guessed: write "
            "dates as YYYY-MM-DD",
        )
    if re.fullmatch(r"\d{5}(?:\.\d+)?", text):
        raise BadValue(
            "bad_date",
            f"'{text}' is a spreadsheet's day number, not a date: format the column as a "
            "date (YYYY-MM-DD) and export again",
        )
    month = _foreign_month(day)
    if month is not None:
        raise BadValue(
            "bad_date",
            f"'{text}' names the month '{month}', which is not an English month name (dates "
            "are read in English only): write dates as YYYY-MM-DD (ISO 8601)",
        )
    raise BadValue("bad_date", f"'{text}' is not a date (YYYY-MM-DD)")


_ENGLISH_MONTHS = frozenset(
    name
    for month in (
        "january", "february", "march", "april", "may", "june", "july", "august",
        "september", "october", "november", "december",
    )
    for name in (month, month[:3], month[:4])
)  # fmt: skip
_WORD = re.compile(r"[^\W\d_]+")
# A date with its month as a word: numbers, punctuation and short words ("4th", "1er", "de")
# around one longer word, as in "4. März 2021", "12 févr. 2020", "3 de marzo de 2021".
_DATE_AROUND_WORD = re.compile(r"[\d\s.,/'-]*(?:[^\W\d_]{1,2}[\d\s.,/'-]+)*")


def _foreign_month(text: str) -> str | None:
    """The month word of a date written with a month name that is not English, or None."""
    words = [word for word in _WORD.findall(text) if len(word) > 2]
    if len(words) != 1 or words[0].casefold() in _ENGLISH_MONTHS:
        return None
    if sorted(len(number) for number in re.findall(r"\d+", text)) not in ([1, 4], [2, 4]):
        return None  # a day and a year, as "4. März 2021"; "pending 2021" is no date
    before, _, after = text.partition(words[0])
    if not (_DATE_AROUND_WORD.fullmatch(before) and _DATE_AROUND_WORD.fullmatch(after.lstrip("."))):
        return None
    return words[0]


def _birth_year(value: str) -> int:
    text = _spreadsheet_text(value)
    if not text:
        raise BadValue("missing_value", "empty")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):  # a birth date: its year
        year = _date(text).year
    else:
        year = _integer(text)
    if not 1890 <= year <= dt.date.today().year:
        raise BadValue("bad_value", f"birth year {year} is out of range")
    return year


def _sex(value: str) -> str:
    key = value.strip().lower()
    if key not in SEXES:
        raise BadValue("bad_value", f"unknown sex '{value.strip()}'")
    return SEXES[key]


def _status(value: str) -> str:
    key = value.strip().lower()
    if key not in COURSE_STATUSES:
        raise BadValue("unknown_status", f"unknown course status '{value.strip()}'")
    return COURSE_STATUSES[key]


def _flag(value: str) -> bool:
    key = value.strip().lower()
    if re.fullmatch(r"[01]\.0+", key):  # a 0/1 column written as decimals (pandas, a sheet)
        key = key[0]
    if key not in FLAG_VALUES:
        raise BadValue("bad_value", f"'{value.strip()}' is not a yes/no flag")
    return FLAG_VALUES[key]


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_optional(value: str) -> Any:
        return parse(value) if value.strip() else None

    return parse_optional


@dataclass(frozen=True)
class TableSpec:
    """A raw table: its columns (in parse order), which are required, and its unique key."""

    name: str
    columns: dict[str, Callable[[str], Any]]
    required: tuple[str, ...]
    key: str
    # Reads cells that belong together, before each is parsed on its own: cells in, cells out.
    prepare: Callable[[dict[str, str]], dict[str, str]] | None = None
    # Columns of numbers, read with the decimal mark of the file they are in.
    numbers: tuple[str, ...] = ()
    # Columns of dates, read in the day/month order the user names, if any.
    dates: tuple[str, ...] = ()


_DOSE_WITH_UNIT = re.compile(
    r"(?P<number>\d{1,3}(?:[ \u00a0\u2009\u202f]\d{3})+(?:[.,]\d+)?|\d[\d.,]*)\s*(?P<unit>c?Gy\s*\(?RBE\)?|c?GyE|CGE|c?Gy)\.?",
    re.IGNORECASE,
)


def _dose_with_unit(cells: dict[str, str]) -> dict[str, str]:
    """A dose written with its unit ("54 Gy", "5400cGy") gives the dose, and the unit where the
    unit column is blank; a unit that disagrees with the unit column is refused, not guessed."""
    match = _DOSE_WITH_UNIT.fullmatch(cells["dose"].strip())
    if match is None:
        return cells
    written, recorded = match["unit"], cells["dose_unit"].strip()
    if recorded and _unit_key(recorded) != _unit_key(written):
        raise BadValue(
            "bad_number",
            f"dose '{cells['dose'].strip()}' is written in {written} but dose_unit says {recorded}",
            column="dose",
        )
    return {**cells, "dose": match["number"], "dose_unit": recorded or written}


def _unit_key(unit: str) -> tuple[float, str] | str:
    try:
        return normalize_dose(1.0, unit)
    except ValueError:  # an unknown unit: curation names it
        return unit.strip().lower()


TABLES: dict[str, TableSpec] = {
    "patients": TableSpec(
        name="patients",
        columns={"patient_id": _identifier, "birth_year": _birth_year, "sex": _sex},
        required=("patient_id", "birth_year", "sex"),
        key="patient_id",
        numbers=("birth_year",),
        dates=("birth_year",),  # a birth date's year
    ),
    "diagnoses": TableSpec(
        name="diagnoses",
        columns={
            "patient_id": _identifier,
            "diagnosis_id": _identifier,
            "diagnosis_date": _date,
            "icd10": _required_text,
            "diagnosis_text": _required_text,
        },
        required=("patient_id", "diagnosis_id", "diagnosis_date", "icd10", "diagnosis_text"),
        key="diagnosis_id",
        dates=("diagnosis_date",),
    ),
    "treatment_courses": TableSpec(
        name="treatment_courses",
        columns={
            "patient_id": _identifier,
            "course_id": _identifier,
            "plan_id": _identifier,
            "status": _status,
            "intent": _text,
            "primary_flag": _flag,
            "modality": _text,
            "dose": _optional(_number),
            "dose_unit": _text,
            "fractions": _optional(_fractions),
            "technique": _text,
            "target": _text,
            "concurrent": _text,
            "start_date": _optional(_date),
        },
        required=(
            "patient_id",
            "course_id",
            "plan_id",
            "status",
            "intent",
            "primary_flag",
            "modality",
            "dose",
            "dose_unit",
            "fractions",
            "technique",
            "target",
            "concurrent",
            "start_date",
        ),  # fmt: skip
        key="plan_id",
        prepare=_dose_with_unit,
        numbers=("dose", "fractions"),
        dates=("start_date",),
    ),
}


@dataclass
class RawRow:
    """One readable row: its 1-based data row number (header excluded) and typed values."""

    row: int
    values: dict[str, Any]


@dataclass
class RawTable:
    """A table as read: readable rows, and ledger entries for rows that could not be read."""

    name: str
    path: Path
    rows: list[RawRow] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    n_input_rows: int = 0


def find_table(raw_dir: str | Path, name: str) -> Path:
    """The one file holding table `name` in raw_dir (name.csv, name.jsonl or name.parquet)."""
    raw_dir = Path(raw_dir)
    if raw_dir.is_file():
        raise RadoncInputError(
            "is a file, not a folder; give the folder holding the patients, diagnoses and "
            "treatment_courses tables",
            file=raw_dir,
        )
    if not raw_dir.is_dir():
        raise RadoncInputError("raw export folder not found", file=raw_dir)
    found = [
        raw_dir / f"{name}{suffix}"
        for suffix in FORMATS
        if os.path.lexists(raw_dir / f"{name}{suffix}")
    ]
    if not found:
        expected = ", ".join(f"{name}{suffix}" for suffix in FORMATS)
        others = sorted(path.name for path in raw_dir.glob(f"{name}.*"))
        misnamed = [other for other in others if other.lower() in expected.split(", ")]
        if misnamed:
            hint = f"; found {misnamed[0]}: rename it {misnamed[0].lower()}"
        else:
            hint = f"; found {', '.join(others)}: save it as CSV UTF-8" if others else ""
        raise RadoncInputError(
            f"table '{name}' is missing (expected one of {expected}){hint}", file=raw_dir
        )
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise RadoncInputError(f"table '{name}' is given twice ({names}); keep one", file=raw_dir)
    path = found[0]
    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RadoncInputError("the link loops back on itself", file=path) from None
            target = os.readlink(path)
            raise RadoncInputError(
                f"the link points to {target}, which cannot be opened ({exc.strerror})", file=path
            ) from None
    if path.exists() and not path.is_file() and not path.is_dir():
        raise RadoncInputError("not a regular file (a pipe or a device?)", file=path)
    return path


# Where a camel-case header starts a word: "PatientID", "birthYear", "ICD10Code", "HPVStatus".
_CAMEL_CASE_WORD = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def column_name(header: str) -> str:
    """A header cell as a column name: "Patient ID", "patient-id", " PATIENT_ID ", "PatientID",
    "patient__id" -> patient_id; "ICD-10" -> icd10."""
    # Invisible characters (a byte-order mark inside quotes, a zero-width space) are no part
    # of a name.
    header = "".join(ch for ch in str(header) if unicodedata.category(ch) != "Cf")
    name = _CAMEL_CASE_WORD.sub("_", header.strip())
    name = re.sub(r"[\s\-_]+", "_", name.lower()).strip("_")
    return re.sub(r"^icd_10(?![0-9])", "icd10", name)


def refuse_doubled_columns(
    path: Path, header: list[str], names: list[str], columns: Iterable[str]
) -> None:
    """A column given twice under any spelling ("dose" and "Dose") stops the read: which copy
    holds the data cannot be known. `names` are the header's cells as the reader names them."""
    for column in columns:
        spelled = [str(header[i]) for i, name in enumerate(names) if name == column]
        if len(spelled) > 1:
            raise RadoncInputError(
                f"column '{column}' is given {len(spelled)} times "
                f"({', '.join(repr(s) for s in spelled)}); keep one",
                file=path,
                field=column,
            )


def _check_columns(path: Path, spec: TableSpec, header: list[str]) -> None:
    if any("\x00" in str(column) for column in header):
        raise RadoncInputError(
            "the header holds NUL bytes: the file is not UTF-8 text "
            "(UTF-16 without a byte-order mark?); save it as CSV UTF-8",
            file=path,
        )
    names = [column_name(column) for column in header]
    refuse_doubled_columns(path, header, names, spec.columns)
    present = set(names)
    for column in spec.required:
        if column not in present:
            raise RadoncInputError(
                f"required column '{column}' is missing (found: "
                f"{', '.join(sorted(present - {''})) or 'none'})",
                file=path,
                field=column,
            )


def csv_delimiter(text: str) -> str:
    """The field separator of a CSV export, read off its header line: a comma, or the
    semicolon, tab or bar that European spreadsheets and database tools write instead."""
    header = next((line for line in text.split("\n") if line.strip()), "")
    if "," in header:
        return ","
    counts = {sep: header.count(sep) for sep in (";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


@dataclass(frozen=True)
class _Malformed:
    """A row that cannot be split into fields, and the patient_id it seems to start with."""

    detail: str
    patient_id: str | None = None


Records = Iterator[tuple[int, "dict[str, Any] | _Malformed"]]


@dataclass(frozen=True)
class Reading:
    """A table file opened: its records, read as they are iterated, and what its reader
    learnt of the file on the way (a CSV file's field separator)."""

    records: Records
    delimiter: str | None = None


def _text_codec(start: bytes, encoding: str, path: Path) -> tuple[str, str]:
    """(codec, error handler) a file that starts with `start` is decoded with: UTF-32, UTF-16
    or UTF-8 where a byte-order mark says so (Excel's "CSV UTF-8" and "Unicode text"), else
    `encoding`. An Excel workbook is refused."""
    if start.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise RadoncInputError(
            "this is an Excel workbook (or another binary file), not text: "
            "save the sheet as CSV UTF-8",
            file=path,
        )
    if start.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32", "replace"
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", "replace"
    if start.startswith(codecs.BOM_UTF8) or codecs.lookup(encoding).name.startswith("utf-8"):
        return "utf-8-sig", "surrogateescape"
    return encoding, "surrogateescape"


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The text of a CSV or JSONL file: in `encoding` (UTF-8 unless the user names the one
    the export was saved in), or UTF-8, UTF-16 or UTF-32 where a byte-order mark says so
    (Excel's "CSV UTF-8" and "Unicode text"); gzip'd files are unpacked. A file named as
    cp1252 or latin-1 that is UTF-8 with accented letters is refused.

    Text is decoded with surrogateescape so that one row with broken encoding is reported
    on its own instead of failing the whole file.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RadoncInputError(f"cannot read the file ({exc.strerror})", file=path) from None
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except GZIP_ERRORS as exc:
            raise RadoncInputError(f"damaged gzip file ({exc})", file=path) from None
    codec, errors = _text_codec(data[:4], encoding, path)
    if not codecs.lookup(codec).name.startswith("utf"):
        _refuse_utf8_read_as(io.BytesIO(data), encoding, path)
    return data.decode(codec, errors=errors).removeprefix("\ufeff")


def text_lines(path: Path, encoding: str = "utf-8") -> Iterator[str]:
    """The lines of a CSV or JSONL file as `read_text` decodes it, one at a time and without
    their "\\n" (a "\\r" before it stays), so that a large file is never held whole."""
    try:
        with open_unpacked(path) as binary:
            codec, errors = _text_codec(binary.read(4), encoding, path)
            binary.seek(0)
            if not codecs.lookup(codec).name.startswith("utf"):
                with open_unpacked(path) as again:
                    _refuse_utf8_read_as(again, encoding, path)
            text = io.TextIOWrapper(binary, encoding=codec, errors=errors, newline="\n")
            for number, line in enumerate(text):
                line = line.removesuffix("\n")
                yield line.removeprefix("\ufeff") if number == 0 else line
    except GZIP_ERRORS as exc:
        raise RadoncInputError(f"damaged gzip file ({exc})", file=path) from None
    except OSError as exc:
        raise RadoncInputError(f"cannot read the file ({exc.strerror})", file=path) from None


def _refuse_utf8_read_as(lines: Iterable[bytes], encoding: str, path: Path) -> None:
    """A file said to be in a single-byte encoding (cp1252, latin-1) that is UTF-8 with
    accented letters would be read without an error as mojibake ("Größe" as "GrÃ¶ÃŸe"): text
    in another encoding is almost never valid UTF-8, so such a file is refused. `lines` are
    the file's bytes split after each b"\\n", which no UTF-8 character holds."""
    first: tuple[int, str] | None = None  # the first line with a character beyond ASCII
    for number, data in enumerate(lines, start=1):
        if data.isascii():
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return
        first = first or (number, text)
    if first is None:
        return
    line, text = first
    position = next(i for i, ch in enumerate(text) if not ch.isascii())
    word = text[max(0, position - 15) : position + 15]
    raise RadoncInputError(
        f"the file is UTF-8 (line {line}: '{word.strip()}'), not {encoding} as the encoding "
        f"option says: read as {encoding} its accented letters would change; leave the "
        "option out, or save every table in one encoding",
        file=path,
    )


def quoting_error(text: str, delimiter: str) -> str | None:
    """What is wrong with the quotes of one record's text ("unexpected end of data" for a
    quote never closed), or None."""
    try:
        list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        return str(exc)
    return None


def csv_rows(
    lines: list[str], delimiter: str, *, start: int
) -> Iterator[tuple[int, list[str], str | None]]:
    """(line number, fields, what is wrong or None) for each CSV record from `lines[start]` on.

    A quote that is never closed swallows the lines after it into one record: that record is
    reported with its problem and reading starts again on the line after it, so no row is lost.
    """
    offset = start
    reader = csv.reader(lines[offset:], delimiter=delimiter)
    while True:
        first = offset + reader.line_num
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            fields, problem = [], str(exc)
        else:
            problem = None
        end = offset + reader.line_num
        quoting = quoting_error("".join(lines[first:end]), delimiter) if problem is None else None
        if quoting and end - first > 1:
            problem = (
                f"a quoted field is not closed properly ({quoting}): "
                f"lines {first + 1}-{end} were read as one row"
            )
        elif quoting and end == len(lines) and "end of data" in quoting:
            problem = "a quoted field is not closed before the end of the file (cut short?)"
        if problem is not None and end - first > 1:  # read the swallowed lines again
            offset = first + 1
            reader = csv.reader(lines[offset:], delimiter=delimiter)
        yield first + 1, fields, problem


# Lines a database client or a spreadsheet adds around the rows: "(1234 rows affected)",
# "(1234 rows)", "Total: 300" (or a summary row "Total;300;;" of a sheet, in English, German,
# French, Dutch, Italian or Swedish), and lines that only rule off the header ("----+----").
_SUMMARY_LABEL = (
    r"(?:grand\s+|sub)?total|count|sum|summe|zwischensumme|gesamt\w*|anzahl|somme|totaal"
    r"|totale|totalt|summa"
)
_FOOTER = re.compile(
    r"\(?\s*\d[\d,]*\s+rows?(?:\s+(?:affected|selected|returned))?\.?\s*\)?"
    rf"|(?:{_SUMMARY_LABEL})\b.*|\d[\d,]*\s+records?(?:\s+\w+)?\.?",
    re.IGNORECASE,
)
_SUMMARY_CELL = re.compile(rf"(?:{_SUMMARY_LABEL})\s*:?[\d\s.,]*", re.IGNORECASE)
_NUMBER_CELL = re.compile(r"[\d\s.,\u00a0\u202f%]+")
_RULE = re.compile(r"[\s+|:]*[-=]{3,}[-=+|:\s]*")


def _not_a_row(fields: list[str], names: list[str]) -> str | None:
    """Why a line of a CSV file is no data row (the header again, a footer, a rule), or None."""
    cells = [cell.strip() for cell in fields if cell.strip()]
    if [column_name(cell).lstrip("\ufeff") for cell in fields] == names:
        return "the header row again (files or sheets pasted together?)"
    if len(cells) == 1 and _FOOTER.fullmatch(cells[0]):
        return f"a footer line ('{cells[0][:40]}'), not a data row"
    if (
        len(cells) > 1
        and _SUMMARY_CELL.fullmatch(cells[0])
        and all(_NUMBER_CELL.fullmatch(cell) for cell in cells[1:])
    ):
        shown = "; ".join(cells)
        return f"a summary row ('{shown[:40]}'), not a data row"
    if len(cells) == 1 and len(names) > 1 and (len(cells[0].split()) >= 3 or ": " in cells[0]):
        return f"a line of text ('{cells[0][:40]}'), not a data row"
    if cells and all(_RULE.fullmatch(cell) for cell in cells):
        return "a line that rules off the header, not a data row"
    return None


def _header_delimiter(text: str, spec: TableSpec) -> str:
    """The delimiter the header line is read with: the one its look suggests, unless another
    one is the only one that yields the table's required columns."""
    guess = csv_delimiter(text)
    header = next((line for line in text.splitlines() if line.strip()), "")

    def finds_columns(delimiter: str) -> bool:
        try:
            cells = next(csv.reader([header], delimiter=delimiter), [])
        except csv.Error:  # a quote not closed on the header line
            return False
        return set(spec.required) <= {column_name(cell) for cell in cells}

    if finds_columns(guess):
        return guess
    fitting = [sep for sep in (",", ";", "\t", "|") if sep != guess and finds_columns(sep)]
    return fitting[0] if len(fitting) == 1 else guess


def _header_hint(lines: list[str], delimiter: str, spec: TableSpec, header_line: int) -> str:
    """Where the header seems to be when the first line is not it (a title line above it)."""
    for number, line in enumerate(lines[header_line : header_line + 20], start=header_line + 1):
        try:
            cells = next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])
        except csv.Error:
            continue
        if set(spec.required) <= {column_name(cell) for cell in cells}:
            return (
                f"; the header seems to be on line {number}: delete the "
                f"{number - 1} line(s) above it (a title?)"
            )
    return ""


_LONG_FIELD = "field larger than field limit"
# Excel's first line naming the separator ("sep=;"), written and read by its CSV dialogs.
_EXCEL_SEPARATOR = re.compile(r'"?sep=(?P<sep>[^\r\n"])"?[ ]*', re.IGNORECASE)


def _csv_records(path: Path, spec: TableSpec, encoding: str) -> Reading:
    """(row number, record or what is wrong with it) for each data row of a CSV file.

    Rows are numbered from 1 after the header; a detail names the row's line in the file. A
    quote that is never closed swallows the lines after it into one row: such a row is
    reported on its own and reading starts again on the line after it, so no row is lost.
    Blank cells past the header's last column, and the cells of unnamed columns at its end,
    may be left out (a spreadsheet's trailing commas).
    """
    text = read_text(path, encoding)
    lines = io.StringIO(text, newline="").readlines()
    directive = _EXCEL_SEPARATOR.fullmatch(lines[0].rstrip("\r\n")) if lines else None
    delimiter = directive["sep"] if directive else _header_delimiter(text, spec)
    reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] = []
    try:
        if directive:
            next(reader)
        while not any(cell.strip() for cell in header):  # blank lines before the header
            header = next(reader)
    except StopIteration:
        held = " (only a sep= line)" if directive else " (only whitespace)" if text else ""
        raise RadoncInputError(f"file is empty{held}: no header row", file=path) from None
    except csv.Error as exc:
        raise RadoncInputError(f"cannot read the header row ({exc})", file=path) from None
    try:
        _check_columns(path, spec, header)
    except RadoncInputError as error:
        hint = _header_hint(lines, delimiter, spec, reader.line_num)
        if not hint:
            raise
        raise RadoncInputError(error.reason + hint, file=path, field=error.field) from None
    names = [column_name(column) for column in header]
    return Reading(_csv_data_rows(lines, names, delimiter, start=reader.line_num), delimiter)


def _csv_data_rows(lines: list[str], names: list[str], delimiter: str, *, start: int) -> Records:
    patient_index = names.index("patient_id")
    rows = csv_rows(lines, delimiter, start=start)
    for number, (line, fields, problem) in enumerate(rows, start=1):
        where = f"line {line}"
        if problem is not None:
            if _LONG_FIELD in problem:
                problem = (
                    f"a field is longer than {csv.field_size_limit():,} characters (a quote "
                    "not closed, or a note too long to use)"
                )
                fields = _leading_fields(lines[line - 1], delimiter)
            yield number, _Malformed(f"{where}: {problem}", _field(fields, patient_index))
            continue
        if not any(cell.strip() for cell in fields):
            yield number, _Malformed(f"{where}: blank row")
            continue
        not_a_row = _not_a_row(fields, names)
        if not_a_row is not None:
            yield number, _Malformed(f"{where}: {not_a_row}")
            continue
        fields = fit_to_header(fields, names)
        if len(fields) != len(names):
            detail = f"{where}: has {len(fields)} fields, the header has {len(names)}"
            if line == len(lines) and not lines[-1].endswith(("\n", "\r")):
                detail += " (the last line, with no line end: was the file cut short?)"
            yield number, _Malformed(detail, _field(fields, patient_index))
            continue
        yield number, dict(zip(names, fields, strict=True))


def fit_to_header(fields: list[str], names: list[str]) -> list[str]:
    """A spreadsheet writes empty cells past the last column, or leaves out the empty cells
    of unnamed trailing columns: neither holds a value, so the row is fitted to the header."""
    if len(fields) > len(names) and not any(field.strip() for field in fields[len(names) :]):
        return fields[: len(names)]
    if len(names) > len(fields) > 0 and not any(name for name in names[len(fields) :]):
        return [*fields, *[""] * (len(names) - len(fields))]
    return fields


def _leading_fields(line: str, delimiter: str) -> list[str]:
    """The fields a line starts with, all but the last (which may be cut), for a line the
    CSV reader cannot take: enough to name the patient whose row it is."""
    try:
        fields = next(csv.reader([line[:10_000]], delimiter=delimiter), [])
    except csv.Error:
        return []
    return fields[:-1]


def _field(fields: list[str], index: int) -> str | None:
    return fields[index] if index < len(fields) else None


class _DuplicateField(ValueError):
    pass


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        name = column_name(key)
        if name in obj:
            raise _DuplicateField(f"the field '{name}' is given twice")
        obj[name] = value
    return obj


_JSON_PATIENT_ID = re.compile(r'"patient[\s_-]?id"\s*:\s*"([^"\\]+)"', re.IGNORECASE)


def _json_patient_id(line: str) -> str | None:
    """The patient_id written on a line that is not valid JSON (cut short, say), if legible."""
    match = _JSON_PATIENT_ID.search(line)
    return match.group(1) if match else None


def _jsonl_records(path: Path, spec: TableSpec, encoding: str) -> Reading:
    return Reading(_jsonl_stream(path, spec, encoding))


def _jsonl_stream(path: Path, spec: TableSpec, encoding: str) -> Records:
    """The records of a JSONL file, read line by line. The checks on the whole file (its
    columns, that it holds anything) are made after its last line: `read_table` reads every
    record before it returns, so a file that fails them still yields no table."""
    # Writers that leave out null fields (Spark, MongoDB) give each line its own keys: the
    # file's columns are those of all its objects, and a line without one is ledgered.
    keys: dict[str, None] = {}
    blank = True
    for number, record in _jsonl_lines(path, text_lines(path, encoding)):
        if isinstance(record, dict):
            keys.update(dict.fromkeys(record))
        blank = blank and isinstance(record, _Malformed) and record.detail == _BLANK_ROW
        yield number, record
    if blank:
        raise RadoncInputError("file is empty (no JSON lines)", file=path)
    if keys:
        _check_columns(path, spec, list(keys))


_BLANK_ROW = "blank row"


def _jsonl_lines(path: Path, lines: Iterable[str]) -> Records:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            yield number, _Malformed(_BLANK_ROW)
            continue
        if "\x00" in line:
            yield (
                number,
                _Malformed(
                    "holds NUL bytes: the file is damaged, or is UTF-16 without a byte-order mark",
                    _json_patient_id(line),
                ),
            )
            continue
        try:
            obj = json.loads(line, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            if number == 1 and line.strip() in ("[", "{"):
                raise RadoncInputError(
                    "this is one JSON document, not JSON Lines (one object per line)", file=path
                ) from None
            yield number, _Malformed(f"not valid JSON ({exc.msg})", _json_patient_id(line))
            continue
        except _DuplicateField as exc:
            yield number, _Malformed(str(exc), _json_patient_id(line))
            continue
        except (ValueError, RecursionError) as exc:  # a 5000-digit number, [[[[...]]]]
            yield number, _Malformed(f"not valid JSON ({exc})", _json_patient_id(line))
            continue
        if number == 1 and isinstance(obj, list) and any(isinstance(o, dict) for o in obj):
            raise RadoncInputError(
                f"this is one JSON array of {len(obj)} objects, not JSON Lines (one object "
                "per line)",
                file=path,
            )
        if not isinstance(obj, dict):
            kind = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}
            yield number, _Malformed(f"not a JSON object ({kind.get(type(obj), 'a number')})")
            continue
        yield number, obj


def _parquet_records(path: Path, spec: TableSpec, encoding: str) -> Reading:
    del encoding  # Parquet stores UTF-8 by definition
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a broken file
        raise RadoncInputError(f"cannot read Parquet file ({exc})", file=path) from None
    _check_columns(path, spec, table.column_names)
    names = [column_name(column) for column in table.column_names]
    wanted = [i for i, name in enumerate(names) if name in spec.columns]
    columns = [table.column(i).to_pylist() for i in wanted]
    records = (
        (number, {names[i]: value for i, value in zip(wanted, record, strict=True)})
        for number, record in enumerate(zip(*columns, strict=True), start=1)
    )
    return Reading(records)


READERS = {".csv": _csv_records, ".jsonl": _jsonl_records, ".parquet": _parquet_records}


def _cell_text(value: Any) -> str:
    """A JSON or Parquet value as the text a CSV cell would hold."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"  # as JSON writes it; str() would say "True"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float | decimal.Decimal) and math.isfinite(value):
        # A typed number carries all its digits: written out, never in scientific notation,
        # which in a text cell means a spreadsheet rounded it ("4E+1", 1e-05)
        return f"{decimal.Decimal(repr(value)) if isinstance(value, float) else value:f}"
    if isinstance(value, list | tuple | dict):
        shown = json.dumps(value, default=str)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise BadValue("bad_value", f"a {type(value).__name__} ({shown}), not a single value")
    return str(value)


def _patient_id(value: Any) -> str | None:
    """The patient an unreadable row belongs to, as far as its patient_id cell shows: invisible
    characters aside (a byte-order mark where files were joined), so that the row makes that
    patient's record incomplete; None where the cell names no one."""
    try:
        text = _cell_text(value)
    except BadValue:
        return None
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf")).strip()
    if not text or text.casefold() in NULL_IDS | YES_NO_IDS or _has_broken_encoding(text):
        return None
    return text


def read_table(
    path: str | Path, spec: TableSpec, *, encoding: str = "utf-8", date_order: str | None = None
) -> RawTable:
    """Read one raw table; unreadable rows and duplicate keys go to the table's ledger.

    `encoding`: what a CSV/JSONL export was saved in ("cp1252" for a Windows export); it is
    never guessed. `date_order` ("dmy", "mdy"): how its dates written with numbers only
    ("31/12/2024") are read; without it they are refused.
    """
    path = Path(path)
    table = RawTable(name=spec.name, path=path)
    suffix = Path(path.name.removesuffix(".gz")).suffix
    reading = READERS[suffix](path, spec, encoding)
    evidence = _DecimalEvidence()
    # Each row's outcome, in file order, read as the file streams past: a ledger entry or a
    # row, or (rarely) a record holding a number that reads two ways ("1,500"), which waits
    # for the decimal mark the whole file shows.
    outcomes: list[LedgerEntry | RawRow | tuple[int, dict[str, Any]]] = []
    for number, record in reading.records:
        table.n_input_rows += 1
        if isinstance(record, _Malformed):
            # The row may hide a plan or a diagnosis of the patient it starts with: name them,
            # so that their record counts as incomplete.
            outcomes.append(
                LedgerEntry(
                    _patient_id(record.patient_id), path.name, number, None, "malformed_row",
                    record.detail,
                )
            )  # fmt: skip
        elif evidence.add(number, record, spec):
            outcomes.append((number, record))
        else:
            outcomes.append(_read_row(path, number, record, spec, POINT, date_order))
    decimal = evidence.decimal_mark(reading.delimiter)
    first_by_key: dict[str, RawRow] = {}
    duplicates: dict[str, list[RawRow]] = {}
    for outcome in outcomes:
        if isinstance(outcome, tuple):
            outcome = _read_row(path, *outcome, spec, decimal, date_order)
        if isinstance(outcome, LedgerEntry):
            table.ledger.append(outcome)
            continue
        key = outcome.values[spec.key]
        if key in first_by_key:
            duplicates.setdefault(key, []).append(outcome)
            continue
        first_by_key[key] = outcome
        table.rows.append(outcome)
    if duplicates:
        _resolve_duplicates(table, spec, duplicates)
    if table.n_input_rows == 0:
        warnings.warn(
            f"{path.name} holds no rows (a header only): every patient will be excluded; is "
            "it the export you meant?",
            stacklevel=2,
        )
    nameless = [e for e in table.ledger if e.column == "patient_id" and e.patient_id is None]
    if nameless and spec.name != "patients":
        warnings.warn(
            f"{path.name}: {len(nameless)} row(s) name no patient (first: row "
            f"{nameless[0].row}: {nameless[0].detail}); they are excluded, and the patients "
            "they belong to cannot be known: such a patient may be kept without them.",
            stacklevel=2,
        )
    broken = [entry for entry in table.ledger if entry.detail == BROKEN_ENCODING]
    if broken:
        warnings.warn(
            f"{path.name}: {len(broken)} row(s) hold bytes that are not {encoding} (first: row "
            f"{broken[0].row}, column '{broken[0].column}'); they are excluded. If the export "
            "was saved in another encoding, name it (curate --encoding cp1252) or save it "
            "again as UTF-8.",
            stacklevel=2,
        )
    return table


def _has_broken_encoding(text: str) -> bool:
    # Undecodable bytes surface as lone surrogates (surrogateescape); text that went through a
    # lossy conversion upstream carries U+FFFD where characters were lost. A NUL byte is never
    # text: the file is damaged, or UTF-16 was read as UTF-8.
    return BROKEN_TEXT.search(text) is not None or "\x00" in text


def _number_cells(record: dict[str, Any], spec: TableSpec) -> Iterator[tuple[str, str]]:
    """(column, number text) of a record's number columns; a dose without its unit."""
    for column in spec.numbers:
        try:
            text = _spreadsheet_text(_cell_text(record.get(column)))
        except BadValue:
            continue
        with_unit = _DOSE_WITH_UNIT.fullmatch(text) if column == "dose" else None
        yield column, with_unit["number"] if with_unit else text


def _read_row(
    path: Path, number: int, record: dict[str, Any], spec: TableSpec, decimal: DecimalMark,
    date_order: str | None,
) -> RawRow | LedgerEntry:  # fmt: skip
    values, problem = _parse_record(record, spec, decimal, date_order)
    if problem is None:
        return RawRow(number, values)
    column, error = problem
    patient_id = _patient_id(record.get("patient_id"))
    return LedgerEntry(patient_id, path.name, number, column, error.reason, error.detail)


@dataclass
class _DecimalEvidence:
    """The decimal mark of a file, as its numbers show it ("60,0": a comma, "1.8": a point),
    gathered record by record, so that "1,500" and "1.500" are read the way the rest of the
    file writes numbers.

    A file that shows both, or (separated by a semicolon, tab or bar, as in locales whose
    decimal mark is a comma) shows neither, leaves such a number unread: it is never guessed
    row by row. A comma-separated file, JSONL and Parquet write a point unless they show a
    comma.
    """

    # mark -> the first (row, column, text) showing it
    shown: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    # whether a number that reads two ways was seen
    ambiguous: bool = False

    def add(self, number: int, record: dict[str, Any], spec: TableSpec) -> bool:
        """Take in a record's numbers; True where one reads two ways ("1,500"): only then
        does the record's reading depend on the file's mark."""
        ambiguous = False
        for column, text in _number_cells(record, spec):
            mark = decimal_mark_of(text)
            if mark is not None:
                self.shown.setdefault(mark, (number, column, text))
            ambiguous = ambiguous or _AMBIGUOUS.fullmatch(text) is not None
        self.ambiguous = self.ambiguous or ambiguous
        return ambiguous

    def decimal_mark(self, delimiter: str | None) -> DecimalMark:
        """The file's mark, once every record is in; `delimiter`: a CSV file's separator."""
        if len(self.shown) == 1:
            return DecimalMark(next(iter(self.shown)))
        if len(self.shown) == 2:
            comma, point = (self.shown[mark] for mark in (",", "."))
            return DecimalMark(
                None,
                f"this file writes decimals with a comma (row {comma[0]}, {comma[1]} "
                f"'{comma[2]}') and with a point (row {point[0]}, {point[1]} '{point[2]}')",
            )
        if not self.ambiguous or delimiter in (None, ","):
            return POINT
        name = {";": "semicolon", "\t": "tab", "|": "bar"}[delimiter]
        return DecimalMark(
            None,
            f"nothing in this {name}-separated file shows whether its decimal mark is a comma "
            "or a point",
        )


def _parse_record(
    record: dict[str, Any],
    spec: TableSpec,
    decimal: DecimalMark = POINT,
    date_order: str | None = None,
) -> tuple[dict[str, Any], tuple[str, BadValue] | None]:
    cells: dict[str, str] = {}
    for column in spec.columns:
        try:
            cells[column] = _record_cell(record, column)
        except BadValue as error:
            return {}, (column, error)
    if spec.prepare is not None:
        try:
            cells = spec.prepare(cells)
        except BadValue as error:
            return {}, (error.column or spec.key, error)
    for column in spec.numbers:
        try:
            cells[column] = localized_number(_spreadsheet_text(cells[column]), decimal)
        except BadValue as error:
            return {}, (column, error)
    for column in spec.dates:
        try:
            cells[column] = ordered_date_text(cells[column], date_order)
        except BadValue as error:
            return {}, (column, error)
    values: dict[str, Any] = {}
    for column, parse in spec.columns.items():
        try:
            values[column] = parse(cells[column])
        except BadValue as error:
            if column not in record:
                missing = BadValue("missing_value", f"the row has no '{column}' field")
                return values, (column, missing)
            return values, (column, error)
    return values, None


def _record_cell(record: dict[str, Any], column: str) -> str:
    # A JSON line without the field holds no value there, as a null does: writers that leave
    # out null fields (Spark, MongoDB) write it so. A column that needs a value refuses it.
    raw = _cell_text(record.get(column))
    if "\x00" in raw:
        raise BadValue("broken_encoding", "a NUL byte: the file is damaged or not UTF-8")
    if _has_broken_encoding(raw):
        raise BadValue("broken_encoding", BROKEN_ENCODING)
    if "\r" in raw or "\x0b" in raw or "\x0c" in raw:  # most cells hold none: no regex pass
        raw = _CELL_LINE_BREAK.sub("\n", raw)
    problem = _cell_problem(raw)
    if problem is not None:
        raise problem
    return raw


def _resolve_duplicates(
    table: RawTable, spec: TableSpec, duplicates: dict[str, list[RawRow]]
) -> None:
    """An exact repeat of a row is ledgered as a duplicate and the first copy stays; copies
    that disagree are all ledgered, since nothing says which one is right."""
    conflicting: set[str] = set()
    first_rows = {row.values[spec.key]: row for row in table.rows}
    for key, repeats in duplicates.items():
        first = first_rows[key]
        if all(repeat.values == first.values for repeat in repeats):
            for repeat in repeats:
                table.ledger.append(
                    LedgerEntry(
                        repeat.values.get("patient_id"), table.path.name, repeat.row, spec.key,
                        "duplicate_row", f"exact repeat of row {first.row} ({spec.key} '{key}')",
                    )
                )  # fmt: skip
            continue
        conflicting.add(key)
        rows = [first, *repeats]
        numbers = ", ".join(str(row.row) for row in rows)
        for row in rows:
            table.ledger.append(
                LedgerEntry(
                    row.values.get("patient_id"), table.path.name, row.row, spec.key,
                    "duplicate_id", f"{spec.key} '{key}' appears on rows {numbers} with different values",
                )
            )  # fmt: skip
    if conflicting:
        table.rows = [row for row in table.rows if row.values[spec.key] not in conflicting]


def check_encoding(encoding: str) -> str:
    """The codec's canonical name; an unknown one fails naming the option."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise RadoncInputError(
            f"unknown text encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)", field="encoding"
        ) from None


def read_export(
    raw_dir: str | Path, *, encoding: str = "utf-8", date_order: str | None = None
) -> dict[str, RawTable]:
    """Read the three tables of a raw export."""
    encoding = check_encoding(encoding)
    date_order = check_date_order(date_order)
    return {
        name: read_table(find_table(raw_dir, name), spec, encoding=encoding, date_order=date_order)
        for name, spec in TABLES.items()
    }
