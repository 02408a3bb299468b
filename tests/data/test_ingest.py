"""How single values of a raw export are read: dates, birth years, sex, numbers."""

import datetime as dt

import pytest

from radonc_llm.data.ingest import (
    BadValue,
    _birth_year,
    _date,
    _dose_with_unit,
    _fractions,
    _number,
    _sex,
)


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-01",
        "2023-02-01 00:00:00",
        "2023-02-01T08:30:00Z",
        "20230201",
        "2023/02/01",
        "2023.02.01",
        "01-Feb-2023",
        "01-FEB-2023 12:00:00 AM",
        "1 Feb 2023",
        "Feb 1, 2023",
        "1 February 2023",
    ],
)
def test_dates_that_read_one_way_only_are_read(text):
    assert _date(text) == dt.date(2023, 2, 1)


@pytest.mark.parametrize("text", ["03/04/2021", "2/1/2023 12:00:00 AM", "31/12/2023", "31.12.2023"])
def test_day_month_order_is_never_guessed(text):
    with pytest.raises(BadValue, match="day/month order is never guessed") as error:
        _date(text)
    assert error.value.reason == "bad_date"


@pytest.mark.parametrize("text", ["2021-13-45", "0000-00-00", "yesterday", ""])
def test_what_is_not_a_date_says_so(text):
    with pytest.raises(BadValue, match="is not a date") as error:
        _date(text)
    assert error.value.reason == "bad_date"


def test_a_birth_date_gives_its_year_and_a_year_stays_a_year():
    assert _birth_year("1956-04-02") == 1956
    assert _birth_year("1956") == _birth_year("1956.0") == 1956
    with pytest.raises(BadValue, match="out of range"):
        _birth_year("1789")


@pytest.mark.parametrize(
    "text,sex", [("Male", "M"), ("f", "F"), ("Other", "X"), ("not recorded", "U"), ("UNK", "U")]
)
def test_sex_codes(text, sex):
    assert _sex(text) == sex


@pytest.mark.parametrize(
    "text,value", [("50,4", 50.4), ("4,500", 4500.0), ("1,800.5", 1800.5), (" 70 ", 70.0)]
)
def test_numbers_with_decimal_commas_or_thousands_separators(text, value):
    assert _number(text) == value


def test_a_list_of_numbers_is_not_a_number():
    with pytest.raises(BadValue, match="not a number"):
        _number("12,5,3")


@pytest.mark.parametrize("text", ["30", "30 fx", "30fx", "30 fractions", "30 Fr.", "30#"])
def test_a_fraction_count_may_carry_its_word(text):
    assert _fractions(text) == 30


@pytest.mark.parametrize("text", ["thirty", "~30", "30-33 fx", "30 Gy"])
def test_a_fraction_count_that_is_not_one_number_is_refused(text):
    with pytest.raises(BadValue) as error:
        _fractions(text)
    assert error.value.reason == "bad_number"


@pytest.mark.parametrize(
    "dose,unit,read",
    [
        ("54 Gy", "Gy", ("54", "Gy")),
        ("5400cGy", "", ("5400", "cGy")),
        ("70 Gy(RBE)", "GyRBE", ("70", "GyRBE")),
        ("50,4 Gy", "gy", ("50,4", "gy")),
        ("54", "Gy", ("54", "Gy")),
    ],
)
def test_a_dose_written_with_its_unit_is_read_when_the_units_agree(dose, unit, read):
    cells = _dose_with_unit({"dose": dose, "dose_unit": unit, "fractions": "30"})
    assert (cells["dose"], cells["dose_unit"]) == read
    assert cells["fractions"] == "30"


def test_a_dose_unit_that_disagrees_with_the_unit_column_is_refused():
    with pytest.raises(BadValue, match="written in Gy but dose_unit says cGy") as error:
        _dose_with_unit({"dose": "54 Gy", "dose_unit": "cGy"})
    assert (error.value.reason, error.value.column) == ("bad_number", "dose")


def test_a_course_row_with_the_unit_in_the_dose_cell_is_read_and_a_conflict_is_ledgered(tmp_path):
    header = (
        "patient_id,course_id,plan_id,status,intent,primary_flag,modality,dose,dose_unit,"
        "fractions,technique,target,concurrent,start_date\n"
    )
    rows = (
        "P1,C1,PL1,approved,curative,Y,photon,60 Gy,,30 fx,IMRT,prostate,,2023-02-01\n"
        "P2,C2,PL2,approved,curative,Y,photon,60 Gy,cGy,30,IMRT,prostate,,2023-02-01\n"
    )
    table = _read(tmp_path, "treatment_courses.csv", (header + rows).encode(), "treatment_courses")
    [row] = table.rows
    assert (row.values["dose"], row.values["dose_unit"], row.values["fractions"]) == (60, "Gy", 30)
    [entry] = table.ledger
    assert (entry.row, entry.patient_id, entry.column, entry.reason) == (
        2,
        "P2",
        "dose",
        "bad_number",
    )


# --- Whole files as exports break: every row is read or reported, a broken file names itself.

import gzip  # noqa: E402
import json  # noqa: E402

from radonc_llm.data.ingest import TABLES, find_table, read_export, read_table  # noqa: E402
from radonc_llm.errors import RadoncInputError  # noqa: E402

DIAGNOSES = (
    "patient_id,diagnosis_id,diagnosis_date,icd10,diagnosis_text\n"
    'P1,D1,2023-01-10,C61,"PSA 12, Gleason 4+3.\nSaid: ""no ADT"""\n'
    'P2,D2,2023-01-10,C61,"note two"\n'
    'P3,D3,2023-01-10,C61,"note three"\n'
)


def _read(tmp_path, name, data: bytes, table="diagnoses"):
    path = tmp_path / name
    path.write_bytes(data)
    return read_table(path, TABLES[table])


def _ids(table):
    return [row.values["patient_id"] for row in table.rows]


def _problems(table):
    return [(entry.row, entry.patient_id, entry.reason, entry.detail) for entry in table.ledger]


def _tab_separated(text: str) -> str:
    import csv
    import io

    out = io.StringIO()
    csv.writer(out, delimiter="\t", lineterminator="\r\n").writerows(
        csv.reader(io.StringIO(text, newline=""))
    )
    return out.getvalue()


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8"),
        lambda text: b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"),
        lambda text: _tab_separated(text).encode("utf-16"),  # Excel's "Unicode text"
        lambda text: gzip.compress(text.encode("utf-8")),
    ],
    ids=["utf8", "bom-crlf", "utf16-tab", "gzip"],
)
def test_encodings_and_line_ends_read_the_same_rows(tmp_path, encode):
    table = _read(tmp_path, "diagnoses.csv", encode(DIAGNOSES))
    assert _ids(table) == ["P1", "P2", "P3"] and table.ledger == []
    note = table.rows[0].values["diagnosis_text"]
    assert note.replace("\r\n", "\n") == 'PSA 12, Gleason 4+3.\nSaid: "no ADT"'


def test_a_gzipped_csv_is_found_and_read(tmp_path):
    (tmp_path / "diagnoses.csv.gz").write_bytes(gzip.compress(DIAGNOSES.encode()))
    assert _ids(read_table(find_table(tmp_path, "diagnoses"), TABLES["diagnoses"]))[-1] == "P3"


def test_an_unclosed_quote_loses_no_row(tmp_path):
    data = DIAGNOSES.replace('"note two"', '"note two')
    table = _read(tmp_path, "diagnoses.csv", data.encode())
    assert table.n_input_rows == 3
    assert _ids(table) == ["P1", "P3"]
    ((row, patient_id, reason, detail),) = _problems(table)
    assert (row, patient_id, reason) == (2, "P2", "malformed_row")
    assert "line 4" in detail and "not closed" in detail


def test_a_file_cut_inside_a_quoted_note_reports_its_last_row(tmp_path):
    table = _read(tmp_path, "diagnoses.csv", DIAGNOSES.encode()[:-8])
    assert _ids(table) == ["P1", "P2"]
    assert _problems(table)[0][:3] == (3, "P3", "malformed_row")
    assert "end of the file" in _problems(table)[0][3]


def test_a_row_with_too_many_or_too_few_fields_names_its_patient_and_line(tmp_path):
    data = "patient_id,birth_year,sex\nP1,1956,M,extra\nP2,1956\nP3,1956,F\n\n"
    table = _read(tmp_path, "patients.csv", data.encode(), table="patients")
    assert _ids(table) == ["P3"]
    assert [problem[:2] for problem in _problems(table)] == [(1, "P1"), (2, "P2"), (4, None)]
    assert _problems(table)[0][3] == "line 2: has 4 fields, the header has 3"


def test_a_field_over_the_csv_size_limit_is_a_bad_row_not_a_crash(tmp_path):
    data = DIAGNOSES.replace("note two", "x" * 200_000)
    table = _read(tmp_path, "diagnoses.csv", data.encode())
    assert _ids(table) == ["P1", "P3"] and table.n_input_rows == 3


def test_nul_bytes_are_broken_encoding(tmp_path):
    data = "patient_id,birth_year,sex\nP1,1956,M\x00\nP2,1956,F\n"
    table = _read(tmp_path, "patients.csv", data.encode(), table="patients")
    assert _ids(table) == ["P2"]
    (entry,) = table.ledger
    assert (entry.reason, entry.column, entry.patient_id) == ("broken_encoding", "sex", "P1")


def test_rows_that_are_not_utf8_are_excluded_with_a_warning_naming_the_file(tmp_path):
    data = "patient_id,birth_year,sex\nP1,1956,M\nMüller,1956,F\n".encode("cp1252")
    with pytest.warns(UserWarning, match="patients.csv: 1 row.*--encoding cp1252"):
        table = _read(tmp_path, "patients.csv", data, table="patients")
    assert _ids(table) == ["P1"] and table.ledger[0].reason == "broken_encoding"


def test_an_export_saved_in_a_named_encoding_is_read_in_it(tmp_path):
    data = "patient_id,birth_year,sex\nP1,1956,M\nMüller,1956,F\n".encode("cp1252")
    (tmp_path / "patients.csv").write_bytes(data)
    table = read_table(tmp_path / "patients.csv", TABLES["patients"], encoding="cp1252")
    assert _ids(table) == ["P1", "Müller"] and not table.ledger
    with pytest.raises(RadoncInputError, match="unknown text encoding 'klingon'"):
        read_export(tmp_path, encoding="klingon")


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "file is empty"),
        (b"\n  \n", "file is empty"),
        (b"PK\x03\x04\x14\x00\x06\x00", "Excel workbook"),
        ("patient_id,birth_year,sex".encode("utf-16-le"), "NUL bytes"),
        (b"patient_id,birth_year,sex,Birth Year\n", "'birth_year' is given 2 times"),
        (b"\x1f\x8b\x08\x00broken", "damaged gzip"),
    ],
)
def test_a_file_that_cannot_be_read_stops_naming_it(tmp_path, data, message):
    with pytest.raises(RadoncInputError, match=message) as error:
        _read(tmp_path, "patients.csv", data, table="patients")
    assert error.value.file.endswith("patients.csv")


def test_a_folder_in_place_of_a_file_is_named(tmp_path):
    (tmp_path / "patients.csv").mkdir()
    with pytest.raises(RadoncInputError, match="cannot read the file"):
        read_table(tmp_path / "patients.csv", TABLES["patients"])


def test_a_workbook_in_place_of_a_table_is_named(tmp_path):
    (tmp_path / "patients.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(RadoncInputError, match="found patients.xlsx: save it as CSV"):
        find_table(tmp_path, "patients")


PATIENT = {"patient_id": "P1", "birth_year": 1956, "sex": "M"}


def _jsonl(*lines) -> bytes:
    return "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines).encode()


def test_jsonl_lines_that_are_not_rows_are_each_reported(tmp_path):
    data = b"\xef\xbb\xbf" + _jsonl(
        PATIENT,
        '{"patient_id": "P2", "birth_y',  # cut short
        "[]",
        "3",
        '"x"',
        "",
        '{"patient_id": "P7", "Patient ID": "P8", "birth_year": 1956, "sex": "M"}',
        {"patient_id": "P9", "sex": "M"},
        {"patient_id": "P10", "birth_year": [1956], "sex": "M"},
        '{"patient_id": "P11", "birth_year": ' + "9" * 5000 + ', "sex": "M"}',
        "[" * 100_000,
        {"patient_id": "P12", "birth_year": 1956.0, "sex": None},
    )
    table = _read(tmp_path, "patients.jsonl", data, table="patients")
    assert table.n_input_rows == 12 and len(table.ledger) == 11
    found = {
        row: (patient_id, reason, detail) for row, patient_id, reason, detail in _problems(table)
    }
    assert found[2][:2] == ("P2", "malformed_row")
    assert found[3][2] == "not a JSON object (an array)"
    assert found[7] == ("P7", "malformed_row", "the field 'patient_id' is given twice")
    assert found[8] == ("P9", "missing_value", "the row has no 'birth_year' field")
    assert found[9][1:] == ("bad_value", "a list ([1956]), not a single value")
    assert found[12] == ("P12", "bad_value", "unknown sex ''")


def test_jsonl_true_false_are_flags_but_never_ids(tmp_path):
    # str(True) would make a patient "True"; a yes/no value where an id belongs is an error
    data = _jsonl(PATIENT | {"patient_id": True}, PATIENT | {"patient_id": "FALSE"}, PATIENT)
    table = _read(tmp_path, "patients.jsonl", data, table="patients")
    assert [row.values["patient_id"] for row in table.rows] == ["P1"]
    assert [(e.patient_id, e.column, e.reason, e.detail) for e in table.ledger] == [
        (None, "patient_id", "bad_value", "'true' is a yes/no value, not an id"),
        (None, "patient_id", "bad_value", "'FALSE' is a yes/no value, not an id"),
    ]
    courses = {c: "" for c in TABLES["treatment_courses"].columns} | {
        "patient_id": "P1", "course_id": "C1", "plan_id": "L1", "status": "approved",
        "primary_flag": True, "dose": 60, "dose_unit": "Gy", "fractions": 30,
    }  # fmt: skip
    data = _jsonl(courses, courses | {"plan_id": "L2", "primary_flag": False})
    table = _read(tmp_path, "treatment_courses.jsonl", data, table="treatment_courses")
    assert table.ledger == []
    assert [row.values["primary_flag"] for row in table.rows] == [True, False]


@pytest.mark.parametrize(
    "data,message",
    [(b"\n", "file is empty"), (b'[\n  {"patient_id": "P1"}\n]\n', "not JSON Lines")],
)
def test_a_jsonl_file_that_holds_no_lines_stops_naming_it(tmp_path, data, message):
    with pytest.raises(RadoncInputError, match=message):
        _read(tmp_path, "patients.jsonl", data, table="patients")


def test_parquet_values_of_other_types_are_read_or_reported(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "patient_id": pa.array([b"P1", b"P2"], pa.binary()),
            "birth_year": pa.array([1956.0, 1960.0]),
            "sex": pa.array([["M"], ["F"]]),
        }
    )
    pq.write_table(table, tmp_path / "patients.parquet")
    read = read_table(tmp_path / "patients.parquet", TABLES["patients"])
    assert [(e.patient_id, e.column, e.reason) for e in read.ledger] == [
        ("P1", "sex", "bad_value"),
        ("P2", "sex", "bad_value"),
    ]
    for names, message in [(["patient_id", "Sex", "sex"], "'sex' is given 2 times"),
                           (["patient_id", "sex", "sex"], "cannot read Parquet file")]:  # fmt: skip
        pq.write_table(table.rename_columns(names), tmp_path / "x.parquet")
        with pytest.raises(RadoncInputError, match=message):
            read_table(tmp_path / "x.parquet", TABLES["patients"])


def test_jsonl_keys_left_out_for_nulls_read_as_nulls_whatever_the_line(tmp_path):
    # Spark and MongoDB leave out null fields: the first line decides nothing about columns
    data = _jsonl(
        {"patient_id": "P1", "birth_year": 1956},
        {"patient_id": "P2", "birth_year": 1960, "sex": "F"},
    )
    table = _read(tmp_path, "patients.jsonl", data, table="patients")
    assert [row.values["patient_id"] for row in table.rows] == ["P2"]
    assert [(e.patient_id, e.column, e.reason, e.detail) for e in table.ledger] == [
        ("P1", "sex", "missing_value", "the row has no 'sex' field")
    ]
    courses = {c: "" for c in TABLES["treatment_courses"].columns} | {
        "patient_id": "P1", "course_id": "C1", "plan_id": "L1", "status": "approved",
        "primary_flag": "1", "dose": "60", "dose_unit": "Gy", "fractions": "30",
    }  # fmt: skip
    without = {k: v for k, v in courses.items() if k not in ("concurrent", "target")}
    data = _jsonl(without, courses | {"plan_id": "L2"})
    table = _read(tmp_path, "treatment_courses.jsonl", data, table="treatment_courses")
    assert table.ledger == [] and [row.values["concurrent"] for row in table.rows] == ["", ""]
    with pytest.raises(RadoncInputError, match="required column 'sex' is missing"):
        _read(
            tmp_path,
            "patients.jsonl",
            _jsonl({"patient_id": "P1", "birth_year": 1956}),
            table="patients",
        )
