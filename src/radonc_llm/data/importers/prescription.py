"""The reference regimen of an imported case: recorded dose, fractions and concurrent therapy.

The tables record the delivered or prescribed course, not a plan; a row whose course cannot be
read, or is not a plausible curative head-and-neck course, goes to the ledger rather than
becoming a reference answer.

A dose cell may carry its unit or the course as clinicians write it ("70 Gy", "7000 cGy",
"70/35", "70 Gy/35 fx"), and a fractions cell its word ("35 fx", "35 fractions"): these are
read, a fraction count written in the dose cell must agree with the fractions column. A bare
number is in the column's unit (Gy): "7000" is not taken for cGy, it is an implausible dose.
"""

from __future__ import annotations

import re

from radonc_llm.data.cases import RegimenStructured
from radonc_llm.data.importers.fields import number
from radonc_llm.data.importers.result import RowExcluded
from radonc_llm.data.regimen import check_prescription, format_dose, normalize_dose

# Moderate hypofractionation of curative head-and-neck courses stops at ~3 Gy per fraction
# (51 Gy/20, 60 Gy/25, 55 Gy/20 at PMH); more than that in a 60-70 Gy course would be an
# EQD2 far beyond any curative schedule, so it is a recording error, not a regimen.
MAX_HEAD_NECK_DOSE_PER_FRACTION_GY = 3.0
# Recorded dose per fraction is rounded to 0.01 Gy (70 Gy/33 = 2.1212 is written 2.12).
DOSE_PER_FRACTION_TOLERANCE_GY = 0.02

_DOSE_CELL = re.compile(
    r"(?P<dose>-?\d[\d.,]*)\s*(?P<unit>c?Gy|gray|centigray)?\.?"
    r"(?:\s*(?:/|\bin\b)\s*(?P<fractions>\d+)\s*(?:fx|fr|fractions?|#)?\.?)?",
    re.IGNORECASE,
)
_FRACTIONS_CELL = re.compile(r"(?P<count>-?\d+(?:[.,]\d+)?)\s*(?:fx|fr|fractions?|#)\.?", re.I)


def recorded_dose_gy(raw: str, *, column: str | None, what: str) -> tuple[float | None, int | None]:
    """A recorded dose in Gy and the fraction count written with it, if any:
    '70' -> (70, None), '7000 cGy' -> (70, None), '70 Gy/35 fx' -> (70, 35); None when not
    recorded; RowExcluded for anything else."""
    match = _DOSE_CELL.fullmatch(raw.strip())
    if match is None or not (match["unit"] or match["fractions"]):
        return number(raw, column=column, what=what), None
    value = number(match["dose"], column=column, what=what)
    if value is None:
        return None, None
    gy, _ = normalize_dose(value, match["unit"] or "Gy")
    return gy, int(match["fractions"]) if match["fractions"] else None


def fraction_count(raw: str, *, column: str | None) -> float | None:
    """A recorded number of fractions ('35', '35.0', '35 fx', '35 fractions'); None when not
    recorded. Whether it is a positive whole number is the caller's check."""
    match = _FRACTIONS_CELL.fullmatch(raw.strip())
    return number(match["count"] if match else raw, column=column, what="fractions")


def reference_regimen(
    dose_text: str,
    fractions_text: str,
    *,
    dose_column: str,
    fractions_column: str,
    concurrent: list[str],
    concurrent_schedule: str | None = None,
    dose_per_fraction_text: str | None = None,
    dose_per_fraction_column: str | None = None,
) -> RegimenStructured:
    """The recorded course as a regimen, checked; RowExcluded with the reason otherwise.

    `concurrent` holds drug names where the table names them, else the class the table
    records ("chemotherapy", "EGFR inhibitor"). A recorded dose per fraction must agree
    with dose / fractions.
    """
    dose, written_fractions = recorded_dose_gy(dose_text, column=dose_column, what="total dose")
    if dose is None:
        raise RowExcluded("missing_prescription", "no total dose recorded", column=dose_column)
    fractions_value = fraction_count(fractions_text, column=fractions_column)
    if written_fractions is not None:
        if fractions_value is not None and fractions_value != written_fractions:
            raise RowExcluded(
                "inconsistent_prescription",
                f"{dose_column} '{dose_text}' says {written_fractions} fractions, "
                f"{fractions_column} says '{fractions_text}'",
                column=dose_column,
            )
        fractions_value = written_fractions
    if fractions_value is None:
        raise RowExcluded(
            "missing_prescription", "no number of fractions recorded", column=fractions_column
        )
    if fractions_value == 0:
        raise RowExcluded(
            "zero_fractions",
            f"{format_dose(dose)} Gy recorded with 0 fractions",
            column=fractions_column,
        )
    if fractions_value != int(fractions_value) or fractions_value < 0:
        raise RowExcluded(
            "bad_number",
            f"fractions '{fractions_text}' is not a positive whole number",
            column=fractions_column,
        )
    fractions = int(fractions_value)
    dose_gy, unit = normalize_dose(dose, "Gy")
    course = f"{format_dose(dose_gy)} Gy in {fractions} fractions"
    problem = check_prescription(dose_gy, fractions, modality="photon")
    if problem is None and dose_gy / fractions > MAX_HEAD_NECK_DOSE_PER_FRACTION_GY:
        problem = (
            f"{dose_gy / fractions:.2f} Gy per fraction is beyond the "
            f"{MAX_HEAD_NECK_DOSE_PER_FRACTION_GY:g} Gy of curative head-and-neck courses"
        )
    if problem is not None:
        raise RowExcluded("implausible_prescription", f"{course}: {problem}", column=dose_column)
    if dose_per_fraction_text:
        per_fraction, per_fraction_count = recorded_dose_gy(
            dose_per_fraction_text, column=dose_per_fraction_column or "", what="dose/fraction"
        )
        if per_fraction_count is not None:
            raise RowExcluded(
                "bad_number",
                f"dose/fraction '{dose_per_fraction_text}' is not one dose per fraction",
                column=dose_per_fraction_column,
            )
        if (
            per_fraction is not None
            and abs(dose_gy / fractions - per_fraction) > DOSE_PER_FRACTION_TOLERANCE_GY
        ):
            raise RowExcluded(
                "inconsistent_prescription",
                f"{course} is {dose_gy / fractions:.2f} Gy per fraction, "
                f"but {per_fraction:g} Gy per fraction is recorded",
                column=dose_per_fraction_column,
            )
    regimen = RegimenStructured(dose_gy=dose_gy, fractions=fractions, dose_unit=unit)
    regimen.concurrent = list(concurrent)
    if concurrent and concurrent_schedule:
        regimen.concurrent_schedule = concurrent_schedule  # type: ignore[attr-defined]
    return regimen
