"""Curation of a hand-made export with one patient per kind of problem."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.data.cases import read_cases
from radonc_llm.data.cohort import curate_export, unaccounted_rows, write_curation
from radonc_llm.errors import RadoncInputError
from tests.data.messy_export import EXPECTED, write_messy_export


def _exclusion_reason(result, patient_id):
    """The reason the patient was excluded for (steps name it on every row of theirs)."""
    reasons = {e.reason for e in result.ledger if e.patient_id == patient_id}
    step_reasons = {r for r in reasons if r not in {"not_primary_plan", "duplicate_row"}}
    row_level = {"bad_date", "bad_number", "unknown_status", "duplicate_id", "broken_encoding",
                 "malformed_row"}  # fmt: skip
    if step_reasons & row_level:
        return "incomplete_record"
    return step_reasons.pop() if step_reasons else None


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    return curate_export(write_messy_export(tmp_path_factory.mktemp("raw")))


def test_each_patient_is_kept_or_excluded_for_the_right_reason(curated):
    kept = {case.patient_id for case in curated.cases}
    for patient_id, reason in EXPECTED.items():
        if reason is None:
            assert patient_id in kept, patient_id
        else:
            assert patient_id not in kept, patient_id
            assert _exclusion_reason(curated, patient_id) == reason, patient_id


def test_every_input_row_is_accounted_for_exactly_once(curated):
    assert unaccounted_rows(curated) == []
    assert curated.input_rows == {"patients": 20, "diagnoses": 22, "treatment_courses": 27}


def test_row_level_problems_name_file_row_and_column(curated):
    by_reason = {e.reason: e for e in curated.ledger}
    assert by_reason["bad_date"].column == "start_date"
    assert by_reason["bad_date"].file == "treatment_courses.csv"
    assert "2021-13-45" in by_reason["bad_date"].detail
    assert by_reason["bad_number"].column == "fractions"
    assert by_reason["unknown_status"].column == "status"
    assert by_reason["broken_encoding"].column == "diagnosis_text"
    assert by_reason["broken_encoding"].row == 16
    # A row cut short still names the patient it starts with: their record is incomplete.
    assert by_reason["malformed_row"].row == 27 and by_reason["malformed_row"].patient_id == "P22"
    assert by_reason["malformed_row"].detail == "line 28: has 4 fields, the header has 14"
    conflicting = [e for e in curated.ledger if e.reason == "duplicate_id"]
    assert {e.row for e in conflicting} == {14, 15}
    assert by_reason["duplicate_row"].patient_id == "P12"


def test_kept_cases_carry_normalised_labels(curated):
    cases = {case.patient_id: case for case in curated.cases}
    assert cases["P07"].regimen_structured.dose_gy == pytest.approx(70.0)
    assert cases["P07"].regimen.startswith("70 Gy in 35 fractions")
    assert "cisplatin" in cases["P07"].regimen
    assert cases["P16"].icd10 == "C61"
    assert cases["P01"].modality == "photon"
    assert cases["P01"].source_rows == {"patients": [1], "diagnoses": [1], "treatment_courses": [1]}
    assert cases["P17"].source["plan_id"] == "L17"


def test_funnel_counts_each_step(curated):
    steps = {step["step"]: step for step in curated.funnel}
    assert steps["patients_in_export"]["patients"] == 22
    assert steps["complete_record"]["excluded"] == 7  # P09, P10, P11, P13, P14, P19, P22
    assert steps["plausible_prescription"]["patients"] == len(curated.cases) == 5
    totals = sum(step["excluded"] for step in curated.funnel)
    assert steps["patients_in_export"]["patients"] - totals == len(curated.cases)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_jsonl_and_parquet_exports_give_the_same_cases(tmp_path, curated, fmt):
    result = curate_export(write_messy_export(tmp_path / fmt, fmt=fmt))
    assert sorted(c.patient_id for c in result.cases) == sorted(c.patient_id for c in curated.cases)
    assert unaccounted_rows(result) == []


def test_semicolon_exports_with_spreadsheet_headers_and_decimal_commas_give_the_same_cases(
    tmp_path, curated
):
    """A European spreadsheet's export: ';' between fields, "Patient ID" headers, "50,4"."""
    import csv
    import io

    raw = write_messy_export(tmp_path / "comma")
    european = tmp_path / "semicolon"
    european.mkdir()
    for path in raw.glob("*.csv"):
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header = [name.replace("_", " ").title() for name in rows[0]]
        dose = rows[0].index("dose") if "dose" in rows[0] else None
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(header)
        for row in rows[1:]:
            if dose is not None and row[0] == "P16":
                row[dose] = "50,4"  # was 60
            writer.writerow(row)
        (european / path.name).write_bytes(out.getvalue().encode("utf-8", errors="surrogateescape"))
    result = curate_export(european)

    def prescriptions(cases):
        return sorted((c.patient_id, c.regimen) for c in cases if c.patient_id != "P16")

    assert prescriptions(result.cases) == prescriptions(curated.cases)
    (p16,) = [c for c in result.cases if c.patient_id == "P16"]
    assert p16.regimen.startswith("50.4 Gy in 20 fractions"), p16.regimen
    assert len(result.ledger) == len(curated.ledger)
    assert unaccounted_rows(result) == []


def test_missing_column_fails_at_once_naming_file_and_column(tmp_path):
    raw = write_messy_export(tmp_path / "raw", drop_column=("treatment_courses", "fractions"))
    with pytest.raises(RadoncInputError) as error:
        curate_export(raw)
    assert error.value.file.endswith("treatment_courses.csv")
    assert error.value.field == "fractions"


def test_written_artefacts_reload(tmp_path, curated):
    write_curation(curated, tmp_path)
    cases = read_cases(tmp_path / "cases.jsonl")
    assert len(cases) == len(curated.cases)
    ledger = [json.loads(line) for line in (tmp_path / "excluded.jsonl").read_text().splitlines()]
    assert len(ledger) == len(curated.ledger)
    assert set(ledger[0]) == {"patient_id", "file", "row", "column", "reason", "detail"}
    funnel = json.loads((tmp_path / "funnel.json").read_text())
    assert funnel["kept"] == len(cases)


def test_cli_prints_funnel_and_reports_bad_input_without_traceback(tmp_path):
    runner = CliRunner()
    raw = write_messy_export(tmp_path / "raw")
    result = runner.invoke(app, ["curate", "--raw", str(raw), "--out", str(tmp_path / "cur")])
    assert result.exit_code == 0, result.output
    assert "Cohort funnel" in result.output and "plausible_prescription" in result.output
    broken = write_messy_export(tmp_path / "broken", drop_column=("diagnoses", "icd10"))
    result = runner.invoke(app, ["curate", "--raw", str(broken), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "diagnoses.csv" in result.output and "icd10" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "recorded,kept,reason",
    [
        ("C09.9 - Malignant neoplasm of tonsil, unspecified", "C09.9", None),
        ("ICD-10-CM: c099", "C09.9", None),
        ("C09.9; C77.0", None, "invalid_icd10"),  # which one?
        ("C09 Malignant neoplasm of tonsil", None, "nonbillable_icd10"),
        ("tonsil cancer", None, "invalid_icd10"),
        ("C09.S", None, "invalid_icd10"),
        ("CO9.9", None, "invalid_icd10"),  # a letter O: named, never corrected
    ],
)
def test_a_code_written_with_its_description_is_read(tmp_path, recorded, kept, reason):
    raw = write_messy_export(tmp_path / "raw")
    path = raw / "diagnoses.csv"
    data = path.read_bytes().replace(
        b"P17,D17,2023-01-10,C09.9,", f'P17,D17,2023-01-10,"{recorded}",'.encode()
    )
    assert data != path.read_bytes()
    path.write_bytes(data)
    result = curate_export(raw)
    cases = [c for c in result.cases if c.patient_id == "P17"]
    assert [c.icd10 for c in cases] == ([kept] if kept else [])
    assert _exclusion_reason(result, "P17") == reason
    if reason:
        (entry,) = [
            e
            for e in result.ledger
            if e.patient_id == "P17" and e.reason == reason and e.column == "icd10"
        ]
        assert recorded in entry.detail and entry.file.endswith("diagnoses.csv")
        assert ("letter 'O' where a digit belongs" in entry.detail) == (recorded == "CO9.9")


def _edit_rows(path, edit):
    """Rewrite one CSV file of an export, row by row (header included)."""
    import csv
    import io

    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        edit(row) for row in csv.reader(io.StringIO(text, newline=""))
    )
    path.write_bytes(out.getvalue().encode("utf-8", errors="surrogateescape"))


def test_a_boost_with_an_implausible_prescription_excludes_the_patient(tmp_path):
    raw = write_messy_export(tmp_path / "raw")
    with (raw / "treatment_courses.csv").open("a") as handle:
        handle.write("P01,C-L01,L01b,approved,curative,N,6X,-10,Gy,-5,IMRT,PTV,,2023-03-20\n")
    result = curate_export(raw)
    assert "P01" not in {case.patient_id for case in result.cases}
    (entry,) = [e for e in result.ledger if e.patient_id == "P01" and e.column == "dose"]
    assert entry.reason == "implausible_prescription" and entry.row == 28
    assert "boost plan L01b: -10 Gy in -5 fractions" in entry.detail
    assert unaccounted_rows(result) == []


def test_an_implausible_fraction_count_is_ledgered_on_the_fractions_column(tmp_path):
    raw = write_messy_export(tmp_path / "raw")
    with (raw / "treatment_courses.csv").open("a") as handle:
        handle.write("P01,C-L01,L01b,approved,curative,N,6X,10,Gy,-5,IMRT,PTV,,2023-03-20\n")
    result = curate_export(raw)
    (entry,) = [e for e in result.ledger if e.patient_id == "P01" and e.column]
    assert (entry.reason, entry.column, entry.row) == ("implausible_prescription", "fractions", 28)
    assert "number of fractions must be a positive whole number" in entry.detail


@pytest.mark.parametrize("birth_year,date", [("2024", "2023-01-10"), ("1956", "2999-01-10")])
def test_a_diagnosis_before_birth_or_in_the_future_excludes_the_patient(tmp_path, birth_year, date):
    raw = write_messy_export(tmp_path / "raw")
    _edit_rows(raw / "patients.csv", lambda r: [r[0], birth_year, r[2]] if r[0] == "P01" else r)
    _edit_rows(raw / "diagnoses.csv", lambda r: [*r[:2], date, *r[3:]] if r[0] == "P01" else r)
    result = curate_export(raw)
    assert _exclusion_reason(result, "P01") == "implausible_date"
    (entry,) = [e for e in result.ledger if e.patient_id == "P01" and e.column]
    assert (entry.file, entry.row, entry.column) == ("diagnoses.csv", 1, "diagnosis_date")
    assert unaccounted_rows(result) == []


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda raw: (raw / "patients.csv").write_bytes(
            (raw / "patients.csv").read_text().replace("\n", "\r\n\n").encode("utf-16")
        ),
        lambda raw: (raw / "diagnoses.csv").write_bytes(  # P05's note loses its closing quote
            (raw / "diagnoses.csv").read_bytes().replace(b'CRT"\nP06', b"CRT\nP06", 1)
        ),
    ],
    ids=["utf16-blank-lines", "unclosed-quote"],
)
def test_every_row_of_a_broken_file_is_counted_and_accounted_for(tmp_path, corrupt):
    raw = write_messy_export(tmp_path / "raw")
    lines = {path.name: path.read_bytes().count(b"\n") for path in raw.glob("*.csv")}
    corrupt(raw)
    result = curate_export(raw)
    assert unaccounted_rows(result) == []
    # The messy export has one row per line: no row may vanish into another.
    for table, n_rows in result.input_rows.items():
        assert n_rows >= lines[result.files[table]] - 1, table


@pytest.mark.parametrize(
    "corrupt,message",
    [
        (lambda raw: (raw / "patients.csv").unlink(), "table 'patients' is missing"),
        (lambda raw: (raw / "patients.csv").write_bytes(b"PK\x03\x04"), "Excel workbook"),
        (lambda raw: (raw / "patients.csv").write_bytes(b""), "file is empty"),
    ],
)
def test_cli_reports_a_broken_file_without_traceback(tmp_path, corrupt, message):
    raw = write_messy_export(tmp_path / "raw")
    corrupt(raw)
    result = CliRunner().invoke(app, ["curate", "--raw", str(raw), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
