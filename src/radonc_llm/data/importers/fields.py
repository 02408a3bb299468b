"""Registry fields as the facts of a case: each reader returns the value, None when the
table records nothing ("", "NA", "unknown", ...), or raises RowExcluded naming the column,
so that a value the importer cannot read never becomes a silently wrong or missing fact.

Spreadsheet spellings are accepted where they cannot be misread: "Male"/"M"/"m",
HPV "Pos"/"+"/"1", T "4a", "T4a" or "T 4a", stage "4a", "Stage IVA" or "IV-A", a whole
number saved as "2.0", a decimal comma ("62,6"), an age with its unit ("65y", "65 years").
A bare "yes" for HPV is not read: RADCURE's "Yes, Negative" shows that "yes" can mean
"tested" as well as "positive".
"""

from __future__ import annotations

import math
import re

from radonc_llm.data.importers.result import RowExcluded
from radonc_llm.data.ingest import numeric_text

# How registries and spreadsheets write "not recorded" ("-" as in an empty cell, not minus).
# (Excel's "#N/A" is emptied when the table is read: table.py.)
MISSING = frozenset({"", "na", "n/a", "nan", "-", "--", "?", ".", "unknown", "unk", "not known"})
MAX_AGE_YEARS = 120


def is_missing(raw: str) -> bool:
    return re.sub(r"\s+", " ", raw).strip().lower() in MISSING


def number(raw: str, *, column: str | None, what: str) -> float | None:
    """A recorded number ("70", "70.0", "69,96"), None when not recorded."""
    if is_missing(raw):
        return None
    text = numeric_text(raw)
    try:
        value = float(text)
    except ValueError:
        raise RowExcluded("bad_number", f"{what} '{raw}' is not a number", column=column) from None
    if not math.isfinite(value):
        raise RowExcluded("bad_number", f"{what} '{raw}' is not a finite number", column=column)
    return value


_AGE_UNIT = re.compile(r"\s*(?:y|yr|yrs|years?|yo|y/o|y\.o\.)\.?$", re.IGNORECASE)


def age_years(raw: str, *, column: str) -> int | None:
    """Completed years ('62.6', '62.6 years', '62y' -> 62); None when not recorded."""
    text = raw.strip()
    if re.match(r"\d", text):  # "65y": the unit the column already means
        text = _AGE_UNIT.sub("", text)
    value = number(text, column=column, what="age")
    if value is None:
        return None
    if not 0 < value < MAX_AGE_YEARS:
        raise RowExcluded(
            "bad_value", f"age '{raw}' is not between 0 and {MAX_AGE_YEARS} years", column=column
        )
    return int(value)


def lookup(raw: str, mapping: dict[str, str | None], *, column: str, what: str) -> str | None:
    """`mapping[value]` (keys lower case, single spaces), None when not recorded."""
    key = re.sub(r"\s+", " ", raw).strip().lower()
    if key in mapping:
        return mapping[key]
    if key in MISSING:
        return None
    raise RowExcluded("bad_value", f"unknown {what} '{raw}'", column=column)


_SEXES = {"m": "M", "male": "M", "man": "M", "f": "F", "female": "F", "woman": "F"}


def sex_code(raw: str, *, column: str) -> str | None:
    """'Male'/'male'/'M'/'m' -> 'M'; None when not recorded."""
    return lookup(raw, _SEXES, column=column, what="sex")


_HPV_WORDS = {
    **dict.fromkeys(("positive", "pos", "p", "+", "1", "yes, positive"), "positive"),
    **dict.fromkeys(("negative", "neg", "n", "0", "yes, negative"), "negative"),
}


def hpv_status(raw: str, *, column: str) -> bool | None:
    """HPV (or p16) 'positive'/'Pos'/'P'/'+'/'1' -> True, 'negative'/'Neg'/'N'/'0' -> False;
    RADCURE writes 'Yes, positive' (tested, positive). A bare '-' is a blank cell, not
    'negative'."""
    key = re.sub(r"^(hpv|p16)\s*(status)?\s*:?\s*", "", re.sub(r"\s+", " ", raw).strip().lower())
    if key in ("yes", "y", "tested"):
        raise RowExcluded(
            "bad_value",
            f"HPV status '{raw}' says the test was done, not whether it was positive or negative",
            column=column,
        )
    word = lookup(key or raw, _HPV_WORDS, column=column, what="HPV status")
    return None if word is None else word == "positive"


_CATEGORIES = {"T": r"X|is|[0-4](?:[a-d]|mi)?", "N": r"X|[0-3][a-c]?", "M": r"X|[01][a-c]?"}


def tnm_category(prefix: str, raw: str, *, column: str) -> str | None:
    """One TNM category written the usual way: ('T', '4a') -> 'T4a', ('T', 'In situ') ->
    'Tis', ('N', 'N2b') -> 'N2b', ('N', '2.0') -> 'N2'; None when not recorded. A value that
    is not one category of this kind ('T2N1M0', 'cT2 cN1', 'IVA' as T) is excluded."""
    text = re.sub(r"\s+", " ", raw).strip()
    if is_missing(text):
        return None
    if text.lower() in ("in situ", "is", "tis"):
        return "Tis"
    text = re.sub(r"^(\d)\.0$", r"\1", text)
    # RADCURE writes a second primary's category as "T3 (2)"; the note keeps it.
    match = re.fullmatch(
        rf"(?P<prefix>[cpyr]?)(?:{prefix} ?)?(?P<category>{_CATEGORIES[prefix]})(?P<second> \(\d\))?",
        text,
        re.IGNORECASE,
    )
    if match is None:
        whole = re.fullmatch(r"[cpyr]?T\S+\s*[cpyr]?N\S+(?:\s*[cpyr]?M\S+)?", text, re.IGNORECASE)
        hint = f": the whole TNM is written here, give its {prefix} alone" if whole else ""
        raise RowExcluded("bad_value", f"'{raw}' is not a {prefix} category{hint}", column=column)
    category = match["category"]
    category = "X" if category in "xX" else category[0] + category[1:].lower()
    return f"{match['prefix'].lower()}{prefix}{category}{match['second'] or ''}"


_ROMAN = {"0": "0", "1": "I", "2": "II", "3": "III", "4": "IV"}


def ajcc_stage(raw: str, *, column: str) -> str | None:
    """An AJCC stage group: 'IVA', 'iva', '4a', 'Stage IV A' -> 'IVA'; None when not recorded
    (RADCURE writes 'X')."""
    text = re.sub(r"^stage\s*", "", raw.strip(), flags=re.IGNORECASE).replace(" ", "").upper()
    text = re.sub(r"(?<=[IV])-(?=[A-C]$)", "", text)  # "IV-A"
    if text in ("", "X") or is_missing(text):
        return None
    text = re.sub(r"^[0-4]", lambda digit: _ROMAN[digit[0]], text)
    if not re.fullmatch(r"0(?:IS|A)?|(?:I|II|III|IV)[A-C]?", text):
        raise RowExcluded("bad_value", f"'{raw}' is not an AJCC stage group", column=column)
    return text


def ecog_score(raw: str, *, column: str) -> str | None:
    """'ECOG 1', 'ECOG-Pt 2', '0-1', '1.0' -> '1', '2', '0-1', '1'; None when not recorded."""
    if is_missing(raw):
        return None
    match = re.fullmatch(
        r"(?:ecog(?:\s*-?\s*pt)?\s*)?([0-4])(?:\.0)?(?:\s*-\s*([0-4]))?", raw.strip(), re.I
    )
    if match is None:
        raise RowExcluded("bad_value", f"'{raw}' is not an ECOG score (0-4)", column=column)
    return match[1] + (f"-{match[2]}" if match[2] else "")


def pack_years_text(raw: str, *, column: str) -> str | None:
    """Recorded pack-years as a note writes them: '50.0' -> '50', '>50' kept; None when not
    recorded."""
    text = raw.strip()
    if is_missing(text):
        return None
    if re.fullmatch(r"[<>]=?\s*\d+(?:\.\d+)?", text):
        return text
    value = number(text, column=column, what="pack-years")
    if value is None or value < 0:
        raise RowExcluded("bad_value", f"pack-years '{raw}' is negative", column=column)
    return f"{value:g}"
