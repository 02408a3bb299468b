"""Exports as European and US hospitals write them: decimal commas and thousands separators,
spaces in numbers, headers in other spellings, summary rows, other encodings, dates and ICD-10
codes with side and certainty marks. Every row is read or ledgered with a reason."""

from __future__ import annotations

import codecs

import pytest

from radonc_llm.data import icd10
from radonc_llm.data.cohort import curate_export, unaccounted_rows
from radonc_llm.data.ingest import (
    POINT,
    BadValue,
    DecimalMark,
    _date,
    column_name,
    localized_number,
    numeric_text,
)
from radonc_llm.errors import RadoncInputError

NOTE = "67M w/ cT2N1M0 SCC R tonsil, p16+, ECOG 1, plan definitive CRT"
COURSE_HEADER = [
    "patient_id", "course_id", "plan_id", "status", "intent", "primary_flag", "modality",
    "dose", "dose_unit", "fractions", "technique", "target", "concurrent", "start_date",
]  # fmt: skip


def _course(pid: str, dose: str, unit: str, fractions: str = "35", plan: str = "") -> list[str]:
    plan = plan or f"L{pid}"
    return [pid, f"C{pid}", plan, "approved", "curative", "Y", "6X", dose, unit, fractions,
            "IMRT", "PTV", "", "2023-02-01"]  # fmt: skip


def _write_export(raw, courses, *, sep=";", codes=None, patients=None, encode=None):
    """An export of one diagnosis per patient named in `courses`; `sep` separates fields."""
    raw.mkdir(parents=True, exist_ok=True)
    ids = list(dict.fromkeys(row[0] for row in courses))
    codes = codes or {}
    tables = {
        "patients": patients
        or [["patient_id", "birth_year", "sex"], *[[i, "1956", "M"] for i in ids]],
        "diagnoses": [
            ["patient_id", "diagnosis_id", "diagnosis_date", "icd10", "diagnosis_text"],
            *[[i, f"D{i}", "2023-01-10", codes.get(i, "C09.9"), NOTE] for i in ids],
        ],
        "treatment_courses": [COURSE_HEADER, *courses],
    }
    for name, rows in tables.items():
        text = "".join(sep.join(f'"{c}"' if sep in c else c for c in row) + "\n" for row in rows)
        (raw / f"{name}.csv").write_bytes(encode(text) if encode else text.encode())
    return raw


def _curate(raw, **options):
    result = curate_export(raw, **options)
    assert unaccounted_rows(result) == []
    return result


def _kept_doses(result) -> dict[str, float]:
    return {case.patient_id: case.regimen_structured.dose_gy for case in result.cases}


def _entry(result, file: str, row: int):
    (entry,) = [e for e in result.ledger if e.file == file and e.row == row and e.column]
    return entry


@pytest.mark.parametrize(
    ("text", "mark", "read"),
    [
        ("7 000", POINT, "7000"),
        ("7\u00a0000", POINT, "7000"),  # no-break space
        ("7\u202f000,5", POINT, "7000.5"),  # narrow no-break space, then a decimal comma
        ("4,500", POINT, "4500"),
        ("1.500", POINT, "1.500"),
        ("1,500", DecimalMark(","), "1.500"),
        ("1.500", DecimalMark(","), "1500"),
        ("1.234,5", POINT, "1234.5"),  # the form shows its comma, whatever the file
        ("1,234.5", DecimalMark(","), "1234.5"),
        ("60,0", POINT, "60.0"),
        ("70", DecimalMark(None, "unknown"), "70"),
        ("see plan", POINT, "see plan"),
        ("7 00", POINT, "7 00"),  # not grouped by three: no number
    ],
)
def test_numbers_are_read_with_the_decimal_mark_of_their_file(text, mark, read):
    assert localized_number(text, mark) == read


def test_a_number_that_reads_two_ways_in_a_file_of_unknown_mark_is_refused():
    with pytest.raises(BadValue) as raised:
        localized_number("1,500", DecimalMark(None, "the file does not say"))
    assert raised.value.reason == "bad_number"
    assert "1.5 (decimal comma) or 1500 (thousands separator): the file does not say" in str(
        raised.value
    )


def test_numeric_text_keeps_a_comma_for_thousands_unless_the_number_shows_a_decimal_comma():
    assert [numeric_text(t) for t in ("4,500", "50,4", "1,800.5", "7 000")] == [
        "4500", "50.4", "1800.5", "7000",
    ]  # fmt: skip


def test_semicolon_file_with_decimal_commas_reads_points_as_thousands(tmp_path):
    raw = _write_export(
        tmp_path / "raw",
        [
            _course("A1", "70,0", "Gy"),
            _course("A2", "7 000", "cGy"),
            _course("A3", "7\u00a0000", "cGy"),
            _course("A4", "7\u202f000 cGy", ""),
            _course("A5", "7.000", "cGy"),  # German thousands: 7000 cGy
            _course("A6", "7,000", "cGy"),  # a decimal comma here: 7 cGy, implausible
            _course("A7", "70 Gy(RBE)", ""),
            _course("A8", "70Gy", ""),
        ],
    )
    result = _curate(raw)
    assert _kept_doses(result) == {f"A{i}": 70.0 for i in (1, 2, 3, 4, 5, 7, 8)}
    entry = _entry(result, "treatment_courses.csv", 6)
    assert entry.reason == "implausible_prescription" and "7 cGy in 35 fractions" in entry.detail


def test_semicolon_file_that_shows_no_decimal_mark_refuses_thousands_like_numbers(tmp_path):
    raw = _write_export(
        tmp_path / "raw",
        [
            _course("A1", "7.000", "cGy"),
            _course("A2", "1,800", "cGy", "1"),
            _course("A3", "70", "Gy"),
        ],
    )
    result = _curate(raw)
    assert _kept_doses(result) == {"A3": 70.0}
    for row, shown in ((1, "'7.000' could be 7.0 (decimal point) or 7000"), (2, "'1,800'")):
        entry = _entry(result, "treatment_courses.csv", row)
        assert (entry.reason, entry.column) == ("bad_number", "dose")
        assert shown in entry.detail
        assert "nothing in this semicolon-separated file shows" in entry.detail


def test_file_writing_decimals_both_ways_refuses_numbers_that_read_two_ways(tmp_path):
    raw = _write_export(
        tmp_path / "raw",
        [
            _course("A1", "1,800", "cGy", "1"),
            _course("A2", "60,0", "Gy", "30"),
            _course("A2", "1.8", "Gy", "1", plan="LA2b"),
        ],
    )
    result = _curate(raw)
    entry = _entry(result, "treatment_courses.csv", 1)
    assert entry.reason == "bad_number"
    assert "a comma (row 2, dose '60,0') and with a point (row 3, dose '1.8')" in entry.detail
    assert "A1" not in _kept_doses(result)


def test_comma_separated_file_reads_quoted_thousands_as_before(tmp_path):
    raw = _write_export(
        tmp_path / "raw",
        [_course("A1", "7,000", "cGy"), _course("A2", "50.4", "Gy", "28")],
        sep=",",
    )
    assert _kept_doses(_curate(raw)) == {"A1": 70.0, "A2": 50.4}


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("PatientID", "patient_id"),
        ("patientId", "patient_id"),
        ("patient__id", "patient_id"),
        (" Patient ID ", "patient_id"),
        ("BirthYear", "birth_year"),
        ("DOSE_UNIT", "dose_unit"),
        ("ICD-10", "icd10"),
        ("ICD 10", "icd10"),
        ("Start-Date", "start_date"),
    ],
)
def test_header_spellings_name_the_same_column(header, name):
    assert column_name(header) == name


def test_headers_in_camel_case_with_empty_trailing_columns_are_read(tmp_path):
    patients = [["PatientID", "BirthYear", "SEX", "", ""], ["A1", "1956", "M", "", ""]]
    raw = _write_export(tmp_path / "raw", [_course("A1", "70", "Gy")], patients=patients)
    assert _kept_doses(_curate(raw)) == {"A1": 70.0}


@pytest.mark.parametrize(
    "footer",
    [
        "Total;2;",
        "Total:;2;",
        "Summe: 2;;",
        "Gesamt;2",
        "Anzahl Datensätze: 2",
        "Exported by ARIA on 2023-04-01",
    ],
)
def test_summary_rows_are_ledgered_without_a_patient(tmp_path, footer):
    raw = _write_export(tmp_path / "raw", [_course("A1", "70", "Gy"), _course("A2", "70", "Gy")])
    with (raw / "patients.csv").open("a") as handle:
        handle.write(footer + "\n")
    result = _curate(raw)
    entry = next(e for e in result.ledger if e.file == "patients.csv" and e.row == 3)
    assert (entry.reason, entry.patient_id) == ("malformed_row", None)
    assert "not a data row" in entry.detail
    assert result.funnel[0]["patients"] == 2  # no phantom patient "Total"
    assert _kept_doses(result) == {"A1": 70.0, "A2": 70.0}


@pytest.mark.parametrize(
    "bom,codec", [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")]
)
def test_excel_unicode_text_is_read(tmp_path, bom, codec):
    raw = _write_export(
        tmp_path / "raw",
        [_course("A1", "70,0", "Gy")],
        sep="\t",
        encode=lambda text: bom + text.replace("\n", "\r\n").encode(codec),
    )
    assert _kept_doses(_curate(raw)) == {"A1": 70.0}


def test_utf8_export_named_as_cp1252_is_refused_not_read_as_mojibake(tmp_path):
    raw = _write_export(tmp_path / "raw", [_course("A1", "70", "Gy")], sep=",")
    diagnoses = raw / "diagnoses.csv"
    diagnoses.write_text(diagnoses.read_text().replace("tonsil", "Tonsille Größe 2 cm²"))
    with pytest.raises(RadoncInputError) as raised:
        curate_export(raw, encoding="cp1252")
    assert str(raised.value.file).endswith("diagnoses.csv")
    assert "the file is UTF-8 (line 2" in str(raised.value) and "not cp1252" in str(raised.value)


def test_utf8_bom_wins_over_the_encoding_option(tmp_path):
    raw = _write_export(tmp_path / "raw", [_course("A1", "70", "Gy")], sep=",")
    diagnoses = raw / "diagnoses.csv"
    text = diagnoses.read_text().replace("tonsil", "Tonsille Größe 2 cm²")
    diagnoses.write_bytes(codecs.BOM_UTF8 + text.encode())
    (case,) = _curate(raw, encoding="cp1252").cases
    assert "Größe 2 cm²" in case.diagnosis_text


def test_cp1252_export_read_as_utf8_is_ledgered_per_row(tmp_path):
    raw = _write_export(
        tmp_path / "raw", [_course("A1", "70", "Gy"), _course("A2", "70", "Gy")], sep=","
    )
    diagnoses = raw / "diagnoses.csv"
    lines = diagnoses.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("tonsil", "Tonsille 2 µm²")
    diagnoses.write_bytes("".join(lines).encode("cp1252"))
    with pytest.warns(UserWarning, match="--encoding cp1252"):
        result = _curate(raw)
    assert _entry(result, "diagnoses.csv", 1).reason == "broken_encoding"
    assert _kept_doses(result) == {"A2": 70.0}


@pytest.mark.parametrize(
    ("text", "read"),
    [("Mar 4 2021", "2021-03-04"), ("March 4 2021", "2021-03-04"), ("4 Mar 2021", "2021-03-04")],
)
def test_dates_with_the_month_as_a_word_are_read(text, read):
    assert _date(text).isoformat() == read


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("04/03/2021", "day/month order is never guessed"),
        ("4.3.21", "day/month order is never guessed"),
        ("30/12/2020", "day/month order is never guessed"),
        ("04-Mar-21", "two-digit year"),
        ("Mar 4, 21", "two-digit year"),
        ("44259", "spreadsheet's day number"),
    ],
)
def test_dates_that_read_two_ways_are_refused_not_guessed(text, reason):
    with pytest.raises(BadValue, match=reason):
        _date(text)


@pytest.mark.parametrize(
    ("recorded", "message"),
    [
        ("C50.911 left", "says left, but C50.911 codes the right side"),
        ("C50.912 right", "says right, but C50.912 codes the left side"),
        ("C50.911 links", "says left"),
        ("C34.91 (L)", "says left"),
        ("C64.1 Niere li.", "says left"),
        ("C61 V", "a suspected diagnosis"),
        ("C61 (A)", "a diagnosis ruled out"),
        ("C50.912 L V", "a suspected diagnosis"),
    ],
)
def test_a_code_whose_marks_contradict_it_is_refused(recorded, message):
    with pytest.raises(ValueError, match=message):
        icd10.code_in_field(recorded)


@pytest.mark.parametrize(
    ("recorded", "code"),
    [
        ("C50.911 (Seite: rechts)", "C50.911"),
        ("C34.91 re.", "C34.91"),
        ("C34.90 (R)", "C34.90"),  # the code leaves the side open: kept as recorded
        ("C61 R", "C61"),  # no side in the code
        ("C61 G", "C61"),  # ICD-10-GM: confirmed
        ("C61 A malignant neoplasm", "C61"),  # an article, not a mark
        ("C34.90 re-irradiation", "C34.90"),
        ("C50.911 right breast; prior left DCIS", "C50.911"),  # both sides named: no reading
        ("C50.912 - Malignant neoplasm of unspecified site of left female breast", "C50.912"),
    ],
)
def test_a_code_with_agreeing_or_neutral_marks_is_read(recorded, code):
    assert icd10.code_in_field(recorded) == code


def test_curation_excludes_a_side_that_disagrees_with_the_code(tmp_path):
    raw = _write_export(
        tmp_path / "raw",
        [
            _course("A1", "50", "Gy", "25"),
            _course("A2", "50", "Gy", "25"),
            _course("A3", "50", "Gy", "25"),
        ],
        codes={"A1": "C50.911 left", "A2": "C50.911 right", "A3": "C61; C77.0"},
    )
    result = _curate(raw)
    assert {case.patient_id: case.icd10 for case in result.cases} == {"A2": "C50.911"}
    first = _entry(result, "diagnoses.csv", 1)
    assert first.reason == "invalid_icd10" and "says left" in first.detail
    assert "holds several codes (C61, C77.0)" in _entry(result, "diagnoses.csv", 3).detail


def test_case_file_refuses_a_code_whose_side_disagrees():
    from pydantic import ValidationError

    from radonc_llm.data.cases import Case

    fields = {"case_id": "1", "diagnosis_text": "x", "regimen": "50 Gy in 25 fractions",
              "modality": "photon"}  # fmt: skip
    with pytest.raises(ValidationError, match="says left"):
        Case(**fields, icd10="C50.911 left")
    assert Case(**fields, icd10="C50.911 right").icd10 == "C50.911"
