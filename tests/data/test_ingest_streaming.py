"""A table file is read once, and a JSONL file line by line: the checks on the whole file
(its columns, its decimal mark, that it holds anything) still hold, and every line is read or
ledgered."""

from __future__ import annotations

import gzip
import json
import re
import tracemalloc

import pytest

from radonc_llm.data import ingest
from radonc_llm.data.ingest import TABLES, read_table
from radonc_llm.errors import RadoncInputError

COURSE_HEADER = (
    "patient_id;course_id;plan_id;status;intent;primary_flag;modality;dose;dose_unit;"
    "fractions;technique;target;concurrent;start_date\n"
)


def _course_line(pid: str, dose: str, unit: str = "cGy") -> str:
    return f"{pid};C{pid};P{pid};approved;curative;Y;6X;{dose};{unit};35;IMRT;PTV;;2023-02-01\n"


def _course(pid: str, dose: object, **extra: object) -> dict[str, object]:
    return {
        "patient_id": pid, "course_id": f"C{pid}", "plan_id": f"P{pid}", "status": "approved",
        "intent": "curative", "primary_flag": "Y", "modality": "6X", "dose": dose,
        "dose_unit": "cGy", "fractions": 35, "technique": "IMRT", "target": "PTV",
        "concurrent": "", "start_date": "2023-02-01", **extra,
    }  # fmt: skip


def _jsonl(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def test_a_csv_file_is_decoded_once_and_its_separator_still_decides_the_decimal_mark(
    tmp_path, monkeypatch
):
    path = tmp_path / "treatment_courses.csv"
    path.write_text(COURSE_HEADER + _course_line("A1", "1,800") + _course_line("A2", "7000"))
    decoded = []
    read_text = ingest.read_text

    def counting_read_text(*args, **kwargs):
        decoded.append(args)
        return read_text(*args, **kwargs)

    monkeypatch.setattr(ingest, "read_text", counting_read_text)
    table = read_table(path, TABLES["treatment_courses"])
    assert len(decoded) == 1
    assert [row.values["patient_id"] for row in table.rows] == ["A2"]
    (entry,) = table.ledger
    assert (entry.row, entry.column, entry.reason) == (1, "dose", "bad_number")
    assert "nothing in this semicolon-separated file shows" in entry.detail


def test_a_number_that_reads_two_ways_waits_for_the_mark_shown_later_in_the_file(tmp_path):
    # Row 1's "1.800" is read only once row 3 has shown the file's decimal comma.
    path = tmp_path / "treatment_courses.csv"
    lines = [_course_line("A1", "1.800"), _course_line("A2", "7000"), _course_line("A3", "5,5")]
    path.write_text(COURSE_HEADER + "".join(lines))
    table = read_table(path, TABLES["treatment_courses"])
    doses = {row.values["patient_id"]: row.values["dose"] for row in table.rows}
    assert doses == {"A1": 1800.0, "A2": 7000.0, "A3": 5.5}
    assert [row.row for row in table.rows] == [1, 2, 3]  # in file order


def test_jsonl_is_read_line_by_line_without_holding_the_whole_file(tmp_path):
    # Each line carries a large field curation does not keep: read whole, the file would be
    # held several times over (bytes, text, lines, objects); read line by line, never.
    path = tmp_path / "treatment_courses.jsonl"
    padding = "x" * 20_000
    path.write_text(_jsonl([_course(f"A{i}", 7000, comment=padding) for i in range(400)]))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        table = read_table(path, TABLES["treatment_courses"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(table.rows) == 400 and table.ledger == []
    assert peak < size / 4


def test_streamed_jsonl_still_checks_the_columns_of_the_whole_file(tmp_path):
    path = tmp_path / "treatment_courses.jsonl"
    records = [_course(f"A{i}", 7000) for i in range(3)]
    for record in records:
        del record["fractions"]
    path.write_text(_jsonl(records))
    with pytest.raises(RadoncInputError, match="required column 'fractions' is missing"):
        read_table(path, TABLES["treatment_courses"])


def test_streamed_jsonl_reads_a_thousands_like_number_with_the_mark_shown_later(tmp_path):
    path = tmp_path / "treatment_courses.jsonl"
    path.write_text(_jsonl([_course("A1", "1.800"), _course("A2", "5,5")]))
    table = read_table(path, TABLES["treatment_courses"])
    assert [row.values["dose"] for row in table.rows] == [1800.0, 5.5]


@pytest.mark.parametrize(
    "data",
    [b"", b"\n\n  \n", b"\xef\xbb\xbf\n", gzip.compress(b"\n \n")],
    ids=["empty", "whitespace", "bom-only", "gzip-blank"],
)
def test_streamed_jsonl_without_a_line_of_json_is_refused(tmp_path, data):
    path = tmp_path / ("patients.jsonl.gz" if data.startswith(b"\x1f\x8b") else "patients.jsonl")
    path.write_bytes(data)
    with pytest.raises(RadoncInputError, match="file is empty"):
        read_table(path, TABLES["patients"])


def test_a_gzipped_jsonl_cut_short_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "patients.jsonl.gz"
    lines = "".join(
        f'{{"patient_id": "P{i}", "birth_year": 1956, "sex": "M"}}\n' for i in range(500)
    )
    data = gzip.compress(lines.encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RadoncInputError, match="damaged gzip file") as raised:
        read_table(path, TABLES["patients"])
    assert raised.value.file is not None and "patients.jsonl.gz" in str(raised.value.file)


MULLER = '{"patient_id": "Müller", "birth_year": 1956, "sex": "F"}\r\n'


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("utf-8", MULLER.encode("utf-16")),  # Excel's "Unicode text": a BOM, then UTF-16
        ("utf-8", MULLER.encode("utf-8-sig")),
        ("cp1252", MULLER.encode("cp1252")),
        ("cp1252", MULLER.encode("utf-8-sig")),  # the BOM outranks the option
    ],
    ids=["utf16-bom", "utf8-bom", "cp1252", "utf8-bom-named-cp1252"],
)
def test_streamed_jsonl_is_decoded_as_its_byte_order_mark_or_the_named_encoding(
    tmp_path, encoding, data
):
    path = tmp_path / "patients.jsonl"
    path.write_bytes(data)
    table = read_table(path, TABLES["patients"], encoding=encoding)
    assert [row.values["patient_id"] for row in table.rows] == ["Müller"]
    assert table.ledger == []


def test_streamed_jsonl_named_cp1252_that_is_utf8_is_refused(tmp_path):
    path = tmp_path / "patients.jsonl"
    path.write_text(
        '{"patient_id": "P1", "birth_year": 1956, "sex": "M"}\n'
        '{"patient_id": "Größe", "birth_year": 1956, "sex": "F"}\n',
        encoding="utf-8",
    )
    with pytest.raises(RadoncInputError, match=r"the file is UTF-8 \(line 2: .*Größe"):
        read_table(path, TABLES["patients"], encoding="cp1252")


def test_streamed_jsonl_ledgers_each_bad_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "patients.jsonl"
    path.write_bytes(
        b'{"patient_id": "P1", "birth_year": 1956, "sex": "M"}\r\n'
        b"\n"
        b'{"patient_id": "P3", "birth_year": 19\x00\x0056, "sex": "M"}\n'
        b'{"patient_id": "P4", "birth_year": 1956, "sex": "F"}\n'
        b'{"patient_id": "P5", "birth_ye'
    )
    table = read_table(path, TABLES["patients"])
    assert [row.values["patient_id"] for row in table.rows] == ["P1", "P4"]
    assert [(e.row, e.patient_id, e.reason) for e in table.ledger] == [
        (2, None, "malformed_row"),
        (3, "P3", "malformed_row"),
        (5, "P5", "malformed_row"),
    ]
    assert table.n_input_rows == 5


# --- Corruptions found by probing copies of a synthetic export.


@pytest.mark.parametrize("sep", [";", ",", "\t"])
def test_excels_sep_line_names_the_separator_and_is_no_title(tmp_path, sep):
    path = tmp_path / "treatment_courses.csv"
    body = COURSE_HEADER + _course_line("A1", "1.800") + _course_line("A2", "x")
    path.write_text(f"sep={sep}\n" + body.replace(";", sep))
    table = read_table(path, TABLES["treatment_courses"])
    (entry,) = [e for e in table.ledger if e.patient_id == "A2"]
    assert (entry.row, entry.column, entry.reason) == (2, "dose", "bad_number")
    if sep == ",":  # "1.800" in a comma-separated file: 1.8, as there a point is the mark
        assert [(row.values["patient_id"], row.values["dose"]) for row in table.rows] == [
            ("A1", 1.8)
        ]
    else:
        (a1,) = [e for e in table.ledger if e.patient_id == "A1"]
        name = "semicolon" if sep == ";" else "tab"
        assert f"nothing in this {name}-separated file shows" in a1.detail
    assert table.n_input_rows == 2


def test_a_byte_order_mark_inside_a_quoted_header_cell_is_no_part_of_its_name(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_text('"\ufeffpatient_id","birth_year","sex"\nP1,1956,M\n')
    table = read_table(path, TABLES["patients"])
    assert [row.values["patient_id"] for row in table.rows] == ["P1"]


def test_a_jsonl_line_of_nul_bytes_is_ledgered_as_such(tmp_path):
    path = tmp_path / "patients.jsonl"
    path.write_bytes(
        b'{"patient_id": "P1", "birth_year": 1956, "sex": "M"}\n'
        b'{"patient_id": "P2", "birth_\x00\x00\x00\x00\n'
        b'{"patient_id": "P3", "birth_year": 1956, "sex": "M"}\n'
    )
    table = read_table(path, TABLES["patients"])
    assert [row.values["patient_id"] for row in table.rows] == ["P1", "P3"]
    (entry,) = table.ledger
    assert (entry.row, entry.patient_id, entry.reason) == (2, "P2", "malformed_row")
    assert "NUL bytes" in entry.detail


@pytest.mark.parametrize(
    ("data", "shown"),
    [(b"", "file is empty: no header"), (b"  \r\n\t\n", "file is empty (only whitespace)")],
)
def test_an_empty_csv_says_whether_it_held_anything(tmp_path, data, shown):
    path = tmp_path / "patients.csv"
    path.write_bytes(data)
    with pytest.raises(RadoncInputError, match=re.escape(shown)):
        read_table(path, TABLES["patients"])
