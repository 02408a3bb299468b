"""Importers on corrupted copies of the public cohort tables: what real downloads and
spreadsheet round-trips do to a file. Each copy is built in tmp_path from the real table
(found as tests/data/test_importers.py finds it) or from inline text.

A corruption that cannot change a value (the text-marking apostrophe, "#N/A", empty cells past
the last column, a unit written in the cell) imports as the original; one that can (a cut row,
a count that disagrees, "yes" for HPV) is a ledger entry naming file, row and column.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from radonc_llm.data.importers import import_cohort
from radonc_llm.data.importers.result import ImportResult, unaccounted_rows
from radonc_llm.errors import RadoncInputError
from tests.data.test_importers import HN1_HEADER, _external

DOSE = "radiotherapy_refgydose_total_highriskgtv"
FRACTIONS = "radiotherapy_number_fractions_highriskgtv"
ROW = "X1,oropharynx,62,male,1,positive,4,2,0,iva,concurrent,2,{dose},{fractions}"


def _records(cohort_file: str) -> list[list[str]]:
    text = (_external() / cohort_file).read_text("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


def _hn1_records() -> list[list[str]]:
    return _records("hn1-maastro/HN1_ClinicalData.csv")


def _write(path: Path, records: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(records)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _summary(result: ImportResult) -> list[tuple]:
    return [(c.patient_id, c.regimen, c.icd10, c.diagnosis_text) for c in result.cases]


def _edit(records: list[list[str]], column: str, edit) -> list[list[str]]:
    index = records[0].index(column)
    return [records[0]] + [
        [edit(value) if i == index else value for i, value in enumerate(row)] for row in records[1:]
    ]


def _hn1_rows(tmp_path: Path, rows: list[str]) -> ImportResult:
    path = tmp_path / "hn1.csv"
    path.write_text(HN1_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = import_cohort("hn1", path)
    assert unaccounted_rows(result) == []
    return result


def _unit(value: str, suffix: str) -> str:
    return f"{value}{suffix}" if value else value


# --- what a spreadsheet adds on its own ------------------------------------------------------


def _with_count(records: list[list[str]]) -> list[list[str]]:
    """The dose cell written as "70 Gy/35 fx", with the row's own fraction count."""
    header, fx = records[0], records[0].index(FRACTIONS)
    return [header] + [
        [f"{v} Gy/{row[fx]} fx" if h == DOSE else v for h, v in zip(header, row, strict=True)]
        for row in records[1:]
    ]


CORRUPTIONS = {
    # Excel's "stored as text" marker, kept by some exports
    "apostrophes": lambda r: [r[0]] + [[f"'{v}" if v else v for v in row] for row in r[1:]],
    "#N/A for empty": lambda r: [r[0]] + [[v or "#N/A" for v in row] for row in r[1:]],
    "empty cells past the last column": lambda r: [r[0]] + [[*row, "", ""] for row in r[1:]],
    "dose '70 Gy'": lambda r: _edit(r, DOSE, lambda v: _unit(v, " Gy")),
    "dose '70Gy'": lambda r: _edit(r, DOSE, lambda v: _unit(v, "Gy")),
    "dose '7000 cGy'": lambda r: _edit(r, DOSE, lambda v: f"{float(v) * 100:g} cGy"),
    "dose '70 Gy/35 fx'": _with_count,
    "fractions '35 fx'": lambda r: _edit(r, FRACTIONS, lambda v: _unit(v, " fx")),
    "fractions '35 fractions'": lambda r: _edit(r, FRACTIONS, lambda v: _unit(v, " fractions")),
    "age '65y'": lambda r: _edit(r, "age_at_diagnosis", lambda v: _unit(v, "y")),
    "age '65 years'": lambda r: _edit(r, "age_at_diagnosis", lambda v: _unit(v, " years")),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_spreadsheet_additions_import_as_the_original(tmp_path, corruption):
    records = _hn1_records()
    clean = _summary(import_cohort("hn1", _write(tmp_path / "clean.csv", records)))
    changed = CORRUPTIONS[corruption](records)
    result = import_cohort("hn1", _write(tmp_path / "changed.csv", changed))
    assert _summary(result) == clean
    assert result.ledger == [] and unaccounted_rows(result) == []


def test_radcure_resaved_with_apostrophes_and_units_is_unchanged(tmp_path):
    records = _records("radcure/RADCURE_Clinical_v04_20241219.csv")[:200]
    clean = import_cohort("radcure", _write(tmp_path / "clean.csv", records))
    changed = _edit(records, "Dose", lambda v: _unit(v, " Gy"))
    changed = _edit(changed, "Fx", lambda v: _unit(v, " fx"))
    changed = [changed[0]] + [[f"'{v}" if v else "#N/A" for v in row] for row in changed[1:]]
    result = import_cohort("radcure", _write(tmp_path / "changed.csv", changed))
    assert _summary(result) == _summary(clean)
    assert [(e.row, e.reason) for e in result.ledger] == [(e.row, e.reason) for e in clean.ledger]


# --- what must not be guessed ------------------------------------------------------------------


def test_dose_cells_are_read_only_where_their_unit_and_count_are_certain(tmp_path):
    rows = {
        "A1": ROW.format(dose="7000 cGy", fractions="35"),
        "A2": ROW.format(dose="70/35", fractions=""),  # the count only in the dose cell
        "A3": ROW.format(dose="70 Gy in 35 fractions", fractions="35"),
        "B1": ROW.format(dose="7000", fractions="35"),  # no unit: Gy, so implausible
        "B2": ROW.format(dose="70/35", fractions="33"),  # two counts
        "B3": ROW.format(dose="700 Gy", fractions="35"),
        "B4": ROW.format(dose="70", fractions="0 fx"),
        "B5": ROW.format(dose="-70 Gy", fractions="35"),
        "B6": ROW.format(dose="70 Sv", fractions="35"),
    }
    result = _hn1_rows(tmp_path, [row.replace("X1", key, 1) for key, row in rows.items()])
    kept = {case.patient_id: case.regimen for case in result.cases}
    assert kept == {
        key: "70 Gy in 35 fractions with concurrent chemotherapy" for key in ("A1", "A2", "A3")
    }
    entries = {entry.patient_id: entry for entry in result.ledger}
    assert {key: (e.reason, e.column) for key, e in entries.items()} == {
        "B1": ("implausible_prescription", DOSE),
        "B2": ("inconsistent_prescription", DOSE),
        "B3": ("implausible_prescription", DOSE),
        "B4": ("zero_fractions", FRACTIONS),
        "B5": ("implausible_prescription", DOSE),
        "B6": ("bad_number", DOSE),
    }
    assert "cGy value recorded as Gy" in entries["B1"].detail
    assert "'70/35' says 35 fractions" in entries["B2"].detail and "'33'" in entries["B2"].detail


def test_dose_per_fraction_with_its_unit_is_checked_like_a_number(tmp_path):
    rows = [
        "A1,oropharynx,62,male,1,positive,4,2,0,iva,concurrent,2 Gy,70,35",
        "B1,oropharynx,62,male,1,positive,4,2,0,iva,concurrent,2.4 Gy,70,35",
        "B2,oropharynx,62,male,1,positive,4,2,0,iva,concurrent,2/35,70,35",
    ]
    result = _hn1_rows(tmp_path, rows)
    assert [case.patient_id for case in result.cases] == ["A1"]
    assert {e.patient_id: e.reason for e in result.ledger} == {
        "B1": "inconsistent_prescription",
        "B2": "bad_number",
    }


def test_field_spellings_read_or_excluded_with_their_reason(tmp_path):
    row = "{id},oropharynx,62,male,1,{hpv},{t},2,0,{stage},concurrent,2,70,35"
    rows = {
        "A1": row.format(id="A1", hpv="Pos", t="T 4", stage="IV-A"),
        "A2": row.format(id="A2", hpv="+", t="4", stage="Stage IV A"),
        "A3": row.format(id="A3", hpv="#N/A", t="T4", stage="4A"),
        "B1": row.format(id="B1", hpv="yes", t="4", stage="IVA"),
        "B2": row.format(id="B2", hpv="pos", t="T4N2M0", stage="IVA"),
        "B3": row.format(id="B3", hpv="pos", t="T4 N2 M0", stage="IVA"),
    }
    result = _hn1_rows(tmp_path, list(rows.values()))
    kept = {
        c.patient_id: (c.clinical["t"], c.clinical["stage"], c.clinical.get("hpv"))
        for c in result.cases
    }
    assert kept == {"A1": ("T4", "IVA", True), "A2": ("T4", "IVA", True), "A3": ("T4", "IVA", None)}
    entries = {e.patient_id: e for e in result.ledger}
    assert (entries["B1"].reason, entries["B1"].column) == ("bad_value", "overall_hpv_p16_status")
    assert "not whether it was positive or negative" in entries["B1"].detail
    for key in ("B2", "B3"):
        assert (entries[key].reason, entries[key].column) == ("bad_value", "clin_t")
        assert "the whole TNM is written here" in entries[key].detail


def test_a_spreadsheet_formula_error_excludes_the_row_naming_the_column(tmp_path):
    rows = [
        ROW.format(dose="70", fractions="35"),
        ROW.format(dose="#VALUE!", fractions="35").replace("X1", "X2", 1),
        ROW.format(dose="70", fractions="35").replace("X1", "X3", 1).replace("62", "#REF!", 1),
    ]
    result = _hn1_rows(tmp_path, rows)
    assert [case.patient_id for case in result.cases] == ["X1"]
    entries = {(e.patient_id, e.reason, e.column): e.detail for e in result.ledger}
    assert set(entries) == {("X2", "bad_value", DOSE), ("X3", "bad_value", "age_at_diagnosis")}
    assert all("spreadsheet error" in detail for detail in entries.values())


# --- rows and patients -------------------------------------------------------------------------


def test_a_patient_id_in_another_case_is_the_same_patient(tmp_path):
    records = _hn1_records()
    repeat = [f" {records[1][0].lower()} ", *records[1][1:]]
    result = import_cohort("hn1", _write(tmp_path / "hn1.csv", [*records, repeat]))
    assert len(result.cases) == 137
    (entry,) = result.ledger
    assert (entry.row, entry.reason, entry.column) == (138, "duplicate_patient", "id")
    assert "already on row 1" in entry.detail and "'hn1004' here" in entry.detail


def test_a_treatment_table_id_in_another_case_is_a_duplicate_across_tables(tmp_path):
    source = _external() / "hnscc-mdacc"
    treatment = _records("hnscc-mdacc/HNSCC_Patient_and_Treatment_Characteristics.csv")
    opc = _records("hnscc-mdacc/HNSCC_Radiomics_Outcome_OPC_clinical.csv")
    opc = [opc[0]] + [[row[0].lower(), *row[1:]] for row in opc[1:]]
    _write(tmp_path / "treatment.csv", treatment)
    _write(tmp_path / "opc.csv", opc)
    clean = import_cohort("hnscc-mdacc", source)
    result = import_cohort("hnscc-mdacc", tmp_path)
    assert len(result.cases) == len(clean.cases) == 612
    assert sum(e.reason == "duplicate_patient" for e in result.ledger) == 80


def test_a_file_cut_short_says_so_on_its_last_row(tmp_path):
    data = _write(tmp_path / "clean.csv", _hn1_records()).read_bytes()
    cut = tmp_path / "cut.csv"
    lines = data.split(b"\r\n")
    cut.write_bytes(b"\r\n".join([*lines[:51], lines[51][:20]]))  # a download stopped mid-row
    result = import_cohort("hn1", cut)
    assert result.n_input_rows == 51 and len(result.cases) == 50
    assert unaccounted_rows(result) == []
    (entry,) = result.ledger
    assert entry.reason == "unreadable_row" and entry.row == result.n_input_rows
    assert "the file ends inside this row (cut short?)" in entry.detail


def test_a_row_with_extra_values_past_the_header_is_still_unreadable(tmp_path):
    records = _hn1_records()
    records[3] = [*records[3], "", "surprise"]
    result = import_cohort("hn1", _write(tmp_path / "hn1.csv", records))
    (entry,) = result.ledger
    assert (entry.row, entry.reason) == (3, "unreadable_row")
    assert "30 fields, the header has 28" in entry.detail


# --- paths that are not a table ----------------------------------------------------------------


def test_a_path_that_is_not_a_file_or_folder_is_refused():
    with pytest.raises(RadoncInputError, match="not a file or a folder"):
        import_cohort("hn1", "/dev/null")


def test_a_folder_with_only_a_workbook_says_to_save_it_as_csv(tmp_path):
    (tmp_path / "HNSCC.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(RadoncInputError, match="found HNSCC.xlsx: save it as CSV UTF-8"):
        import_cohort("hnscc-mdacc", tmp_path)
