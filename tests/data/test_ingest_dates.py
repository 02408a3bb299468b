"""Dates written with numbers only ("31/12/2024"): refused unless the user names the export's
day/month order, then read in that order for every row, and refused where a row breaks it."""

from __future__ import annotations

import pytest

from radonc_llm.data.cohort import curate_export, unaccounted_rows
from radonc_llm.data.ingest import BadValue, _date, ordered_date_text, read_export
from radonc_llm.errors import RadoncInputError

NOTE = "67M w/ cT2N1M0 SCC R tonsil, p16+, ECOG 1, plan definitive CRT"


def _export(raw, diagnosis_dates: dict[str, str], start_date: str = "01/02/2023"):
    raw.mkdir(parents=True, exist_ok=True)
    ids = list(diagnosis_dates)
    (raw / "patients.csv").write_text(
        "patient_id,birth_year,sex\n" + "".join(f"{i},1956,M\n" for i in ids)
    )
    (raw / "diagnoses.csv").write_text(
        "patient_id,diagnosis_id,diagnosis_date,icd10,diagnosis_text\n"
        + "".join(f'{i},D{i},{day},C09.9,"{NOTE}"\n' for i, day in diagnosis_dates.items())
    )
    (raw / "treatment_courses.csv").write_text(
        "patient_id,course_id,plan_id,status,intent,primary_flag,modality,dose,dose_unit,"
        "fractions,technique,target,concurrent,start_date\n"
        + "".join(
            f"{i},C{i},P{i},approved,curative,Y,6X,70,Gy,35,IMRT,PTV,,{start_date}\n" for i in ids
        )
    )
    return raw


@pytest.mark.parametrize(
    ("text", "order", "iso"),
    [
        ("31/12/2024", "dmy", "2024-12-31"),
        ("03/04/2021", "dmy", "2021-04-03"),
        ("03/04/2021", "mdy", "2021-03-04"),
        ("4.3.2021", "dmy", "2021-03-04"),
        ("12-31-2024", "mdy", "2024-12-31"),
        ("03/04/2021 00:00", "dmy", "2021-04-03"),
    ],
)
def test_a_named_order_reads_numeric_dates(text, order, iso):
    assert _date(ordered_date_text(text, order)).isoformat() == iso


@pytest.mark.parametrize("text", ["2021-03-04", "4 Mar 2021", ""])
def test_other_dates_pass_through_unchanged(text):
    assert ordered_date_text(text, "dmy") == text


def test_without_an_order_a_numeric_date_is_refused_and_the_option_named():
    with pytest.raises(BadValue, match="--date-order dmy"):
        _date(ordered_date_text("03/04/2021", None))


def test_a_date_that_breaks_the_named_order_is_refused():
    with pytest.raises(BadValue, match="no date read as month/day/year"):
        ordered_date_text("31/12/2024", "mdy")
    with pytest.raises(BadValue, match="two-digit year"):
        ordered_date_text("03/04/21", "dmy")


def test_curation_reads_a_day_first_export_with_the_order(tmp_path):
    raw = _export(tmp_path / "raw", {"P1": "21/02/2020", "P2": "03/04/2021"})
    refused = curate_export(raw)
    assert refused.cases == []
    assert unaccounted_rows(refused) == []
    assert {e.reason for e in refused.ledger if e.column == "diagnosis_date"} == {"bad_date"}

    read = curate_export(raw, date_order="dmy")
    assert unaccounted_rows(read) == []
    assert sorted(case.patient_id for case in read.cases) == ["P1", "P2"]


def test_a_row_against_the_named_order_is_ledgered_with_its_reason(tmp_path):
    raw = _export(tmp_path / "raw", {"P1": "12/31/2020", "P2": "03/04/2021"}, "2023-02-01")
    result = curate_export(raw, date_order="dmy")
    assert unaccounted_rows(result) == []
    assert [case.patient_id for case in result.cases] == ["P2"]
    (entry,) = [e for e in result.ledger if e.column == "diagnosis_date"]
    assert (entry.patient_id, entry.reason) == ("P1", "bad_date")
    assert "day/month/year" in entry.detail


def test_an_unknown_order_is_refused_naming_the_field(tmp_path):
    raw = _export(tmp_path / "raw", {"P1": "2020-02-21"})
    with pytest.raises(RadoncInputError, match="unknown date order 'ymd'") as error:
        read_export(raw, date_order="ymd")
    assert error.value.field == "date_order"


@pytest.mark.parametrize(
    ("text", "month"),
    [
        ("4. März 2021", "März"),
        ("12 févr. 2020", "févr"),
        ("3 de marzo de 2021", "marzo"),
        ("1er janvier 2020", "janvier"),
        ("12. Dezember 2019 08:30", "Dezember"),
    ],
)
def test_a_month_name_that_is_not_english_is_named_and_iso_dates_suggested(text, month):
    with pytest.raises(BadValue) as raised:
        _date(text)
    assert raised.value.reason == "bad_date"
    assert f"names the month '{month}', which is not an English month name" in raised.value.detail
    assert "YYYY-MM-DD" in raised.value.detail


@pytest.mark.parametrize("text", ["31 Feb 2021", "pending 2021", "2021-03-04 foo", "unknown"])
def test_text_that_names_no_foreign_month_is_not_said_to(text):
    with pytest.raises(BadValue) as raised:
        _date(text)
    assert "English month" not in raised.value.detail


def test_a_foreign_month_is_ledgered_with_file_row_and_field(tmp_path):
    raw = _export(tmp_path / "raw", {"A1": "2021-03-04", "A2": "4. März 2021"}, "2023-02-01")
    result = curate_export(raw)
    assert unaccounted_rows(result) == []
    assert [case.patient_id for case in result.cases] == ["A1"]
    (entry,) = [e for e in result.ledger if e.reason == "bad_date"]
    assert (entry.file, entry.row, entry.column, entry.patient_id) == (
        "diagnoses.csv", 2, "diagnosis_date", "A2",
    )  # fmt: skip
    assert "'März', which is not an English month name" in entry.detail
