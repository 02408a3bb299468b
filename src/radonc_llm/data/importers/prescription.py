"""The reference regimen of an imported case: recorded dose, fractions and concurrent therapy.

The tables record the delivered or prescribed course, not a plan; a row whose course cannot be
read, or is not a plausible curative head-and-neck course, goes to the ledger rather than
becoming a reference answer.
"""

from __future__ import annotations

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
    dose = number(dose_text, column=dose_column, what="total dose")
    if dose is None:
        raise RowExcluded("missing_prescription", "no total dose recorded", column=dose_column)
    fractions_value = number(fractions_text, column=fractions_column, what="fractions")
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
        per_fraction = number(
            dose_per_fraction_text, column=dose_per_fraction_column or "", what="dose/fraction"
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
