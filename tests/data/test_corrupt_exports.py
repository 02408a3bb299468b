"""Exports as hospital systems, database clients and spreadsheets damage them: every row is
read or ledgered with a specific reason, no line becomes a patient, and nothing is guessed."""

from __future__ import annotations

import gzip
import json
import os
import re

import pytest
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.data.cohort import curate_export, unaccounted_rows
from radonc_llm.data.ingest import (
    TABLES,
    BadValue,
    _birth_year,
    _date,
    _fractions,
    _identifier,
    _number,
    find_table,
    read_table,
)
from radonc_llm.errors import RadoncInputError
from tests.data.messy_export import EXPECTED, write_messy_export

KEPT = {patient_id for patient_id, reason in EXPECTED.items() if reason is None}


def _lines(path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="surrogateescape").splitlines(keepends=True)


def _write(path, lines: list[str]) -> None:
    path.write_bytes("".join(lines).encode("utf-8", errors="surrogateescape"))


def _curate(raw):
    result = curate_export(raw)
    assert unaccounted_rows(result) == []
    return result


def _patients_in_ledger(result) -> set[str | None]:
    return {entry.patient_id for entry in result.ledger}


@pytest.mark.parametrize(
    "table,change,line,detail",
    [
        ("patients", lambda L: L[:10] + [L[0]] + L[10:], 11, "the header row again"),
        ("patients", lambda L: L + ["\ufeff" + L[0]], 22, "the header row again"),
        ("patients", lambda L: L + ["(20 rows affected)\n"], 22, "a footer line"),
        ("treatment_courses", lambda L: L + ["Total: 27" + "," * 13 + "\n"], 29, "a footer"),
        ("patients", lambda L: L[:1] + ["----------+------+----\n"] + L[1:], 2, "rules off"),
    ],
    ids=["header-again", "header-again-with-bom", "rows-affected", "total", "psql-rule"],
)
def test_lines_that_are_not_rows_are_ledgered_without_a_patient(
    tmp_path, table, change, line, detail
):
    raw = write_messy_export(tmp_path / "raw")
    _write(raw / f"{table}.csv", change(_lines(raw / f"{table}.csv")))
    result = _curate(raw)
    where = f"line {line}:"
    (entry,) = [e for e in result.ledger if e.file == f"{table}.csv" and where in e.detail]
    assert (entry.reason, entry.patient_id) == ("malformed_row", None)
    assert detail in entry.detail
    assert {case.patient_id for case in result.cases} == KEPT
    assert _patients_in_ledger(result) <= set(EXPECTED) | {None}  # no phantom patient


def test_blank_cells_past_the_header_and_unnamed_header_columns_are_read(tmp_path):
    raw = write_messy_export(tmp_path / "raw")
    lines = _lines(raw / "patients.csv")
    _write(raw / "patients.csv", lines[:1] + [line.rstrip("\n") + ",,\n" for line in lines[1:]])
    lines = _lines(raw / "diagnoses.csv")
    _write(raw / "diagnoses.csv", [lines[0].rstrip("\n") + ",,,\n"] + lines[1:])
    result = _curate(raw)
    assert {case.patient_id for case in result.cases} == KEPT
    assert not [
        e for e in result.ledger if e.file == "patients.csv" and e.reason == "malformed_row"
    ]


def test_a_header_with_a_comma_in_a_tab_separated_export_is_split_on_tabs(tmp_path):
    data = "patient_id\tbirth_year\tsex\tcomment, free\nP1\t1956\tM\tx, y\n"
    table = read_table(_file(tmp_path, "patients.csv", data.encode()), TABLES["patients"])
    assert [row.values for row in table.rows] == [
        {"patient_id": "P1", "birth_year": 1956, "sex": "M"}
    ]


def test_a_title_line_above_the_header_is_named(tmp_path):
    data = b"Patient export 2024-01-01\n\npatient_id,birth_year,sex\nP1,1956,M\n"
    with pytest.raises(RadoncInputError, match="header seems to be on line 3: delete the 2 line"):
        read_table(_file(tmp_path, "patients.csv", data), TABLES["patients"])


def _file(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "cell,reason,detail",
    [
        ("", "missing_value", "empty"),
        ("NULL", "missing_value", "stands for no value"),
        ("\\N", "missing_value", "stands for no value"),
        ("#N/A", "missing_value", "stands for no value"),
        ("\ufeffP1", "bad_value", "invisible character (U+FEFF)"),
        ("P\u200b1", "bad_value", "invisible character (U+200B)"),
        ("P1\x1b", "bad_value", "invisible character (U+001B)"),
    ],
)
def test_an_id_that_is_a_null_marker_or_holds_invisible_characters_is_refused(cell, reason, detail):
    with pytest.raises(BadValue, match=re.escape(detail)) as error:
        _identifier(cell)
    assert error.value.reason == reason


def test_an_unreadable_id_still_names_its_patient_whose_record_is_then_incomplete(tmp_path):
    raw = write_messy_export(tmp_path / "raw")
    lines = _lines(raw / "diagnoses.csv")  # P01's diagnosis, as after `cat a.csv b.csv`
    _write(raw / "diagnoses.csv", [lines[0], "\ufeff" + lines[1], *lines[2:]])
    result = _curate(raw)
    entry = next(e for e in result.ledger if e.file == "diagnoses.csv" and e.row == 1)
    assert (entry.patient_id, entry.column, entry.reason) == ("P01", "patient_id", "bad_value")
    assert "P01" not in {case.patient_id for case in result.cases}
    assert {e.reason for e in result.ledger if e.patient_id == "P01"} >= {"incomplete_record"}
    assert "\ufeffP01" not in _patients_in_ledger(result)


def test_rows_that_name_no_patient_are_counted_and_warned_about(tmp_path):
    data = (
        "patient_id,diagnosis_id,diagnosis_date,icd10,diagnosis_text\n NULL ,D1,2023-01-10,C61,x\n"
    )
    with pytest.warns(UserWarning, match="1 row.*name no patient.*may be kept without them"):
        table = read_table(_file(tmp_path, "diagnoses.csv", data.encode()), TABLES["diagnoses"])
    (entry,) = table.ledger
    assert (entry.patient_id, entry.column, entry.reason) == (None, "patient_id", "missing_value")


@pytest.mark.parametrize(
    "note,column_reason",
    [
        ("#VALUE!", "spreadsheet error"),
        ("#REF!", "spreadsheet error"),
        ("########", "spreadsheet error"),
        ("67M \x1b[31mtonsil\x1b[0m SCC", "control character U+001B at character 5"),
        ("67M tonsil\x07 SCC", "control character U+0007"),
        ("67M tonsil\x85 SCC", "control character U+0085"),
    ],
)
def test_spreadsheet_errors_and_control_characters_are_refused_in_any_cell(
    tmp_path, note, column_reason
):
    data = (
        "patient_id,diagnosis_id,diagnosis_date,icd10,diagnosis_text\n"
        f'P1,D1,2023-01-10,C61,"{note}"\nP2,D2,2023-01-10,C61,"line one\nline\ttwo"\n'
    )
    table = read_table(_file(tmp_path, "diagnoses.csv", data.encode()), TABLES["diagnoses"])
    assert [row.values["patient_id"] for row in table.rows] == ["P2"]
    (entry,) = table.ledger
    assert (entry.patient_id, entry.column, entry.reason) == ("P1", "diagnosis_text", "bad_value")
    assert column_reason in entry.detail


def test_a_vertical_tab_or_form_feed_in_a_note_is_a_line_break(tmp_path):
    data = (
        "patient_id,diagnosis_id,diagnosis_date,icd10,diagnosis_text\n"
        'P1,D1,2023-01-10,C61,"HPI: 67M\x0bPSA 12\x0cPlan: RT"\n'
    )
    table = read_table(_file(tmp_path, "diagnoses.csv", data.encode()), TABLES["diagnoses"])
    assert [row.values["diagnosis_text"] for row in table.rows] == ["HPI: 67M\nPSA 12\nPlan: RT"]
    assert table.ledger == []


def test_a_spreadsheet_error_in_an_optional_column_is_not_read_as_blank(tmp_path):
    raw = write_messy_export(tmp_path / "raw")
    path = raw / "treatment_courses.csv"
    path.write_text(path.read_text().replace("L01,approved,curative,Y,6X,70,Gy,35,IMRT",
                                             "L01,approved,curative,Y,6X,70,Gy,35,#NAME?"))  # fmt: skip
    result = _curate(raw)
    assert "P01" not in {case.patient_id for case in result.cases}
    entry = next(e for e in result.ledger if e.reason == "bad_value")
    assert (entry.patient_id, entry.column) == ("P01", "technique")


@pytest.mark.parametrize("text,value", [("'1956", 1956), (" '70.2 ", 70.2)])
def test_the_apostrophe_a_spreadsheet_puts_before_a_number_is_not_part_of_it(text, value):
    assert _number(text) == value
    assert _date("'2023-02-01").isoformat() == "2023-02-01"


@pytest.mark.parametrize("text", ["3_0", "1_000"])
def test_numbers_with_underscores_are_refused_not_read_as_python_would(text):
    with pytest.raises(BadValue, match="not a number"):
        _number(text)
    with pytest.raises(BadValue, match="not a number"):
        _fractions(text)


def test_a_spreadsheet_day_number_is_named_not_read_as_a_date():
    with pytest.raises(BadValue, match="spreadsheet's day number") as error:
        _date("44958")
    assert error.value.reason == "bad_date"


def test_an_empty_birth_year_is_a_missing_value():
    with pytest.raises(BadValue) as error:
        _birth_year("")
    assert error.value.reason == "missing_value"


def test_a_field_too_long_to_read_names_its_patient(tmp_path):
    raw = write_messy_export(tmp_path / "raw")
    path = raw / "diagnoses.csv"  # P02 has two diagnoses: losing one must not keep P02
    lines = _lines(path)
    index = next(i for i, line in enumerate(lines) if line.startswith("P02,D02b"))
    lines[index] = lines[index].rsplit(",", 1)[0] + ',"' + "x" * 200_000 + '"\n'
    _write(path, lines)
    result = _curate(raw)
    entry = next(e for e in result.ledger if e.reason == "malformed_row" and e.file == path.name)
    assert entry.patient_id == "P02" and "longer than 131,072 characters" in entry.detail
    assert "P02" not in {case.patient_id for case in result.cases}


@pytest.mark.parametrize(
    "spelling", ["p01", "P001", "P 01", "p0001"], ids=["case", "zeros", "space", "both"]
)
def test_ids_that_differ_only_in_case_spaces_or_leading_zeros_are_not_joined_or_split(
    tmp_path, spelling
):
    raw = write_messy_export(tmp_path / "raw")
    path = raw / "diagnoses.csv"  # a second diagnosis of P01, under another spelling of the id
    path.write_bytes(path.read_bytes() + f"{spelling},D01x,2023-01-10,C32.0,second note\n".encode())
    result = _curate(raw)
    assert "P01" not in {case.patient_id for case in result.cases}
    reasons = {e.reason for e in result.ledger if e.patient_id in ("P01", spelling)}
    assert reasons == {"ambiguous_patient_id"}
    detail = next(e.detail for e in result.ledger if e.patient_id == "P01")
    assert f"is also written '{spelling}'" in detail
    assert {case.patient_id for case in result.cases} == KEPT - {"P01"}


def test_a_jsonl_file_holding_one_array_on_one_line_stops_naming_it(tmp_path):
    rows = [{"patient_id": f"P{i}", "birth_year": 1956, "sex": "M"} for i in range(3)]
    path = _file(tmp_path, "patients.jsonl", json.dumps(rows).encode())
    with pytest.raises(RadoncInputError, match="one JSON array of 3 objects, not JSON Lines"):
        read_table(path, TABLES["patients"])


def test_utf32_with_a_byte_order_mark_is_read(tmp_path):
    path = _file(
        tmp_path, "patients.csv", "patient_id,birth_year,sex\nP1,1956,M\n".encode("utf-32")
    )
    assert [row.values["patient_id"] for row in read_table(path, TABLES["patients"]).rows] == ["P1"]


def test_a_table_with_a_header_only_warns(tmp_path):
    path = _file(tmp_path, "patients.csv", b"patient_id,birth_year,sex\n")
    with pytest.warns(UserWarning, match="patients.csv holds no rows"):
        assert read_table(path, TABLES["patients"]).n_input_rows == 0
    path = _file(tmp_path, "x.csv.gz", gzip.compress(b"patient_id,birth_year,sex\n"))
    with pytest.warns(UserWarning, match="holds no rows"):
        read_table(path, TABLES["patients"])


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: os.symlink("patients.csv", d / "patients.csv"), "the link loops back"),
        (lambda d: os.symlink("gone.csv", d / "patients.csv"), "points to gone.csv, which cannot"),
        (lambda d: os.mkfifo(d / "patients.csv"), "not a regular file"),
        (lambda d: (d / "patients.CSV").write_bytes(b"x"), "rename it patients.csv"),
    ],
    ids=["link-loop", "dangling-link", "fifo", "suffix-case"],
)
def test_a_table_that_is_no_readable_file_is_named(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(RadoncInputError, match=message):
        find_table(tmp_path, "patients")


def test_cli_reports_a_link_loop_without_traceback(tmp_path):
    raw = write_messy_export(tmp_path / "raw")
    (raw / "patients.csv").unlink()
    os.symlink("patients.csv", raw / "patients.csv")
    result = CliRunner().invoke(app, ["curate", "--raw", str(raw), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    assert "the link loops back on itself" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("text", ["7.00E+01", "4.01E+01", "1.8E+1", "2e3"])
def test_scientific_notation_is_refused_since_a_spreadsheet_rounded_it(text):
    for parse in (_number, _fractions, _birth_year):
        with pytest.raises(BadValue, match="scientific notation") as caught:
            parse(text)
        assert caught.value.reason == "bad_number"


@pytest.mark.parametrize(
    "text,kind", [("54%", "a percentage"), ("$54.00", "money"), ("54,00 €", "money")]
)
def test_a_number_formatted_as_percent_or_currency_is_named(text, kind):
    with pytest.raises(BadValue, match=kind):
        _number(text)


def test_typed_numbers_are_written_out_in_full_never_in_scientific_notation():
    from decimal import Decimal

    from radonc_llm.data.ingest import _cell_text

    assert [_cell_text(v) for v in (40.05, 1e-05, Decimal("4E+1"), Decimal("40.05"))] == [
        "40.05",
        "0.00001",
        "40",
        "40.05",
    ]


@pytest.mark.parametrize("text,flag", [("1.0", True), ("0.0", False), ("1.00", True)])
def test_a_yes_no_flag_written_as_a_decimal_is_read(text, flag):
    from radonc_llm.data.ingest import _flag

    assert _flag(text) is flag
    with pytest.raises(BadValue):
        _flag("2.0")


def test_an_id_written_as_a_decimal_in_one_table_is_ambiguous_not_missing(tmp_path):
    raw = write_messy_export(tmp_path / "raw")
    for name, spelt in [
        ("patients", "101,"),
        ("diagnoses", "101,"),
        ("treatment_courses", "101.0,"),
    ]:
        path = raw / f"{name}.csv"
        _write(path, [re.sub(r"^P01,", spelt, line) for line in _lines(path)])
    result = _curate(raw)
    reasons = {e.patient_id: e.reason for e in result.ledger if e.patient_id in ("101", "101.0")}
    assert reasons == {"101": "ambiguous_patient_id", "101.0": "ambiguous_patient_id"}
    assert "decimal '.0'" in next(e.detail for e in result.ledger if e.patient_id == "101")


@pytest.mark.parametrize("line_end", [b"\r\n", b"\r"])
def test_a_line_end_of_another_system_inside_a_note_is_a_line_break(tmp_path, line_end):
    path = tmp_path / "diagnoses.csv"
    header = b"patient_id,diagnosis_id,diagnosis_date,icd10,diagnosis_text\n"
    path.write_bytes(header + b'P1,D1,2020-01-01,C61,"line one' + line_end + b'line two"\n')
    table = read_table(path, TABLES["diagnoses"])
    assert table.rows[0].values["diagnosis_text"] == "line one\nline two"


def test_a_file_cut_mid_row_says_so(tmp_path):
    raw = write_messy_export(tmp_path / "raw")
    path = raw / "patients.csv"
    data = path.read_bytes().rstrip(b"\r\n")
    path.write_bytes(data[: data.rfind(b"\n") + 4])
    table = read_table(path, TABLES["patients"])
    assert "the last line, with no line end: was the file cut short?" in table.ledger[-1].detail
