"""The synthetic raw export: shape, determinism, realism, mess, and agreement with curation."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.data import icd10
from radonc_llm.data.cases import MODALITIES
from radonc_llm.data.cohort import curate_export
from radonc_llm.data.ingest import LedgerEntry
from radonc_llm.data.sites import SITES, SITES_BY_NAME
from radonc_llm.data.synth import (
    DIAGNOSIS_COLUMNS,
    FAULT_REASONS,
    TABLE_COLUMNS,
    SynthConfig,
    synthesize,
    write_export,
)
from radonc_llm.data.vocabulary import answer_terms_in

STUDY_PATIENTS = 15724


@pytest.fixture(scope="module")
def study():
    """An export the size of the study's, written once: (export, folder)."""
    return synthesize(SynthConfig(patients=STUDY_PATIENTS, seed=0))


@pytest.fixture(scope="module")
def study_dir(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    write_export(study, out)
    return out


def _first_diagnosis_rows(export):
    first = {}
    for row in export.diagnoses:
        first.setdefault(row[0], row)
    return first


def test_files_and_columns_are_exactly_the_export_contract(study_dir):
    assert sorted(p.name for p in study_dir.iterdir()) == [
        "diagnoses.csv", "patients.csv", "treatment_courses.csv",
    ]  # fmt: skip
    for name, columns in TABLE_COLUMNS.items():
        header = (study_dir / f"{name}.csv").read_bytes().split(b"\n", 1)[0].decode()
        assert header.split(",") == list(columns)
    assert DIAGNOSIS_COLUMNS == (
        "patient_id", "diagnosis_id", "diagnosis_date", "icd10", "diagnosis_text",
    )  # fmt: skip


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        write_export(synthesize(SynthConfig(patients=300, seed=seed)), tmp_path / name)
    for table in TABLE_COLUMNS:
        a, b, c = ((tmp_path / d / f"{table}.csv").read_bytes() for d in "abc")
        assert a == b
        assert a != c


def test_every_site_appears_and_is_kept(study):
    assert {t.site for t in study.truth} == set(SITES_BY_NAME)
    assert {t.site for t in study.truth if t.fault is None} == set(SITES_BY_NAME)
    variants = {r.key for site in SITES for r in site.regimens}
    assert {t.regimen for t in study.truth} == variants


def test_modality_mix_is_mostly_photon_and_each_class_has_numbers(study):
    kept = Counter(t.modality for t in study.truth if t.fault is None)
    total = sum(kept.values())
    assert set(kept) == set(MODALITIES)
    assert 0.80 <= kept["photon"] / total <= 0.90
    # a 10% test split of ~7,900 cases then holds at least ~25 of each rarer class
    assert all(kept[m] >= 250 for m in ("proton", "electron", "brachytherapy")), kept


def test_curation_is_expected_to_keep_about_half(study):
    kept = sum(t.fault is None for t in study.truth)
    assert 0.45 <= kept / STUDY_PATIENTS <= 0.55


def test_notes_never_state_the_answer(study):
    truth = {t.patient_id: t for t in study.truth}
    for patient_id, row in _first_diagnosis_rows(study).items():
        note = row[4]
        assert answer_terms_in(note, icd10=truth[patient_id].icd10) == [], note
        assert not re.search(r"\d+(\.\d+)?\s*c?Gy", note), note


_SIDE_TOKENS = {
    "R": r"\b(right|rt|r|rul|rll|rml|od)\b",
    "L": r"\b(left|lt|l|lul|lll|os|lingula)\b",
}


def test_notes_state_the_side_that_decides_a_lateral_code(study):
    truth = {t.patient_id: t for t in study.truth}
    codes = {c.code: c for site in SITES for c in site.codes}
    checked = 0
    for patient_id, row in _first_diagnosis_rows(study).items():
        code = codes[truth[patient_id].icd10]
        if not re.search(r"\b(right|left)\b", code.title) or not row[4]:
            continue
        assert re.search(_SIDE_TOKENS[code.side], row[4].lower()), (code.code, row[4])
        checked += 1
    assert checked > 3000


def test_breast_codes_follow_the_patients_sex(study):
    sex = {row[0]: row[2] for row in study.patients}
    truth = {t.patient_id: t for t in study.truth}
    for patient_id, t in truth.items():
        if t.site == "breast" and sex.get(patient_id) in ("F", "M"):
            assert t.icd10[5] == ("1" if sex[patient_id] == "F" else "2"), t


def test_notes_come_in_several_styles_with_shorthand_and_typos(study):
    notes = [row[4] for row in _first_diagnosis_rows(study).values()]
    assert sum(n.startswith("Dear ") for n in notes) > 500  # referral letters
    assert sum(bool(re.match(r"(?i)(problem list|problems|dx):", n)) for n in notes) > 500
    assert sum(bool(re.match(r"\d+ ?(y/o |yo )?[MF]\b", n)) for n in notes) > 2000  # terse
    assert sum(" w/ " in n for n in notes) > 1000
    assert sum("s/p " in n for n in notes) > 500
    assert sum(n == n.lower() for n in notes) > 200
    words = Counter(w for n in notes for w in re.findall(r"[a-z]{6,}", n.lower()))
    assert sum(1 for w, count in words.items() if count == 1) > 500  # misspellings are rare words


def test_every_kind_of_mess_is_in_the_export(study, study_dir):
    faults = Counter(t.fault for t in study.truth)
    assert all(faults[name] > 0 for name in FAULT_REASONS), faults
    assert sum(t.duplicate_row for t in study.truth) > 0

    raw = (study_dir / "diagnoses.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    diagnoses = list(csv.reader(io.StringIO(raw.decode("utf-8", "surrogateescape"))))[1:]
    codes = [row[3] for row in diagnoses]
    assert any(re.fullmatch(r"C\d{4,5}", c) for c in codes)  # dotless
    assert any(c != c.upper() for c in codes)  # lower case
    assert any(c and not icd10.is_valid(c) for c in codes)
    assert any(c and icd10.is_valid(c) and not icd10.is_billable(c) for c in codes)
    assert any(re.fullmatch(r"\d\d/\d\d/\d{4}|\d{4}-(1[3-9]|[23]\d)-\d\d", r[2]) for r in diagnoses)

    courses = list(csv.DictReader(io.StringIO(
        (study_dir / "treatment_courses.csv").read_bytes().decode("utf-8", "surrogateescape")
    )))  # fmt: skip
    statuses = Counter(row["status"] for row in courses)
    assert {"approved", "completed", "draft", "cancelled", "retired"} <= set(statuses)
    assert set(statuses) - {"approved", "completed", "draft", "cancelled", "retired"}
    assert {"Y", "N", "1", "0", "true", "false"} <= {row["primary_flag"] for row in courses}
    assert {"Gy", "cGy", "GyRBE"} <= {row["dose_unit"] for row in courses}
    assert {"TBD", "hyperthermia"} & {row["modality"] for row in courses}
    assert any(not row["fractions"].strip().isdigit() for row in courses)
    plan_ids = Counter(row["plan_id"] for row in courses)
    assert any(n > 1 for n in plan_ids.values())


def test_the_answers_are_never_written(study, study_dir):
    text = b"".join((study_dir / f"{t}.csv").read_bytes() for t in TABLE_COLUMNS)
    assert b"brachytherapy" not in text
    keys = {r.key for site in SITES for r in site.regimens}
    assert not any(key.encode() in text for key in keys)


def test_curation_keeps_and_excludes_each_patient_as_the_truth_says(tmp_path):
    export = synthesize(SynthConfig(patients=2500, seed=3))
    write_export(export, tmp_path)
    result = curate_export(tmp_path)
    kept = {case.patient_id: case for case in result.cases}
    reasons: dict[str, set[str]] = {}
    for entry in result.ledger:
        assert isinstance(entry, LedgerEntry)
        if entry.patient_id and entry.reason not in ("not_primary_plan", "duplicate_row"):
            reasons.setdefault(entry.patient_id, set()).add(entry.reason)
    row_level = {"bad_date", "bad_number", "unknown_status", "duplicate_id", "broken_encoding",
                 "missing_value", "bad_value"}  # fmt: skip
    for truth in export.truth:
        if truth.fault is None:
            case = kept[truth.patient_id]
            assert (case.modality, case.icd10, case.site) == (
                truth.modality, truth.icd10, truth.site,
            ), truth  # fmt: skip
            continue
        assert truth.patient_id not in kept, truth
        got = reasons[truth.patient_id]
        if truth.expected_reason == "incomplete_record":
            assert got & row_level or "incomplete_record" in got, (truth, got)
        else:
            assert truth.expected_reason in got, (truth, got)


def test_config_rejects_fault_rates_that_leave_no_patient_clean():
    with pytest.raises(ValidationError, match="sum to less than 1"):
        SynthConfig(multiple_diagnoses=0.6, no_course=0.5)
    with pytest.raises(ValidationError):
        SynthConfig(patients=0)
    with pytest.raises(ValidationError):
        SynthConfig(unknown_rate=0.1)


def test_cli_writes_the_export_and_prints_a_summary(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["synth", "--patients", "200", "--seed", "1", "--out",
                                 str(tmp_path / "raw")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "expected kept by curation" in result.output
    assert (tmp_path / "raw" / "treatment_courses.csv").exists()
    bad = runner.invoke(app, ["synth", "--patients", "0", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2
    assert "patients" in bad.output
    assert not (tmp_path / "x").exists()
