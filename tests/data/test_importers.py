"""Importers of the public head-and-neck cohorts, on the real tables in ../shared/external/.

The tables are not part of the repository (non-commercial licences); CI has them beside the
checkout. They are found at <repo>/../shared/external, or at $RADONC_LLM_SHARED/external when
that variable names the shared folder. Their absence fails these tests: it never skips them.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.data import icd10
from radonc_llm.data.cases import read_cases
from radonc_llm.data.importers import import_cohort
from radonc_llm.data.importers.note import ClinicalFacts, render_note
from radonc_llm.data.importers.result import ImportResult, unaccounted_rows
from radonc_llm.data.importers.site_codes import SITE_CODES, code_site
from radonc_llm.data.regimen import parse_regimen
from radonc_llm.errors import RadoncInputError

FOLDERS = {"radcure": "radcure", "hnscc-mdacc": "hnscc-mdacc", "hn1": "hn1-maastro"}
REASONS = {
    "unreadable_row", "missing_patient_id", "duplicate_patient", "unknown_primary",
    "site_out_of_scope", "unmapped_site", "unmapped_subsite", "histology_not_site_coded",
    "conflicting_histology_stage", "conflicting_concurrent_therapy", "unmapped_treatment",
    "missing_prescription", "zero_fractions", "bad_number", "implausible_prescription",
    "inconsistent_prescription", "recurrent_disease",
}  # fmt: skip


def _external() -> Path:
    shared = os.environ.get("RADONC_LLM_SHARED")
    root = Path(shared) if shared else Path(__file__).resolve().parents[2] / ".." / "shared"
    external = (root / "external").resolve()
    if not external.is_dir():
        pytest.fail(
            f"public cohort tables not found at {external}: these tests need the shared folder "
            "beside the repository (../shared/external) or RADONC_LLM_SHARED set to the folder "
            "that holds external/",
            pytrace=False,
        )
    return external


@pytest.fixture(scope="module")
def imported() -> dict[str, ImportResult]:
    external = _external()
    return {cohort: import_cohort(cohort, external / folder) for cohort, folder in FOLDERS.items()}


def _case(result: ImportResult, patient_id: str):
    return next(case for case in result.cases if case.patient_id == patient_id)


def _entry(result: ImportResult, patient_id: str, file_part: str = ""):
    return next(
        entry
        for entry in result.ledger
        if entry.patient_id == patient_id and file_part in entry.file
    )


# --- every row is accounted for ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cohort", "rows", "kept"),
    [("radcure", 3346, 3099), ("hnscc-mdacc", 215 + 492, 612), ("hn1", 137, 137)],
)
def test_kept_plus_excluded_is_every_row(imported, cohort, rows, kept):
    result = imported[cohort]
    assert result.n_input_rows == rows
    assert len(result.cases) == kept
    assert len(result.cases) + len(result.ledger) == rows
    assert unaccounted_rows(result) == []


def test_exclusion_reasons_per_cohort(imported):
    assert Counter(entry.reason for entry in imported["radcure"].ledger) == {
        "unknown_primary": 168,
        "site_out_of_scope": 56,
        "histology_not_site_coded": 11,
        "conflicting_concurrent_therapy": 7,
        "conflicting_histology_stage": 3,
        "implausible_prescription": 2,
    }
    assert Counter(entry.reason for entry in imported["hnscc-mdacc"].ledger) == {
        "duplicate_patient": 80,
        "unknown_primary": 6,
        "inconsistent_prescription": 3,
        "conflicting_concurrent_therapy": 2,
        "recurrent_disease": 1,
        "conflicting_histology_stage": 1,
        "implausible_prescription": 1,
        "zero_fractions": 1,
    }
    assert imported["hn1"].ledger == []


def test_every_ledger_entry_names_file_row_and_reason(imported):
    for result in imported.values():
        for entry in result.ledger:
            assert entry.reason in REASONS
            assert entry.file in result.input_rows
            assert 1 <= entry.row <= result.input_rows[entry.file]
            assert entry.detail and entry.patient_id


def test_case_ids_are_unique_and_labels_marked(imported):
    for cohort, result in imported.items():
        ids = [case.case_id for case in result.cases]
        assert len(ids) == len(set(ids))
        for case in result.cases:
            assert case.cohort == cohort
            assert case.modality == "photon"
            assert case.label_source == {
                "icd10": "derived-from-site",
                "regimen": "recorded",
                "modality": "assumed-photon",
            }
            assert icd10.is_billable(case.icd10)


# --- rows converted by hand ----------------------------------------------------------------------


def test_radcure_rows_by_hand(imported):
    result = imported["radcure"]
    case = _case(result, "RADCURE-0005")  # data row 1
    assert case.icd10 == "C10.3"  # Oropharynx / post wall
    assert case.regimen == "60 Gy in 25 fractions"
    assert case.regimen_structured.dose_gy == 60 and case.regimen_structured.fractions == 25
    assert case.regimen_structured.concurrent == []
    assert (case.site, case.split, case.source_split) == ("oropharynx", None, "0")
    assert (case.source_file, case.source_row) == ("RADCURE_Clinical_v04_20241219.csv", 1)
    assert case.clinical == {
        "site": "oropharynx", "location": "posterior oropharyngeal wall", "age": 62, "sex": "F",
        "histology": "squamous cell carcinoma", "t": "T4b", "n": "N2c", "m": "M0",
        "stage": "IVB", "hpv": False, "hpv_test": "HPV", "ecog": "0", "smoking": "former",
        "pack_years": "50",
    }  # fmt: skip
    for fact in ("62", "T4b", "N2c", "IVB", "50 pack-years", "ECOG 0"):
        assert fact in case.diagnosis_text

    chemo = _case(result, "RADCURE-0305")  # NPC, ChemoRT, challenge training set
    assert chemo.icd10 == "C11.9"
    assert chemo.regimen == "70 Gy in 35 fractions with concurrent chemotherapy"
    assert (chemo.split, chemo.source_split) == ("train", "training")

    egfri = _case(result, "RADCURE-0091")
    assert egfri.icd10 == "C01"
    assert egfri.regimen == "70 Gy in 35 fractions with concurrent EGFR inhibitor"

    in_situ = _case(result, "RADCURE-0181")  # glottis, Tis N0, stage 0
    assert in_situ.icd10 == "D02.0"
    assert in_situ.regimen == "51 Gy in 20 fractions"

    transglottic = _case(result, "RADCURE-0102")
    assert transglottic.icd10 == "C32.8"

    implausible = _entry(result, "RADCURE-0506")
    assert (implausible.row, implausible.column) == (405, "Dose")
    assert implausible.reason == "implausible_prescription"
    assert "66 Gy in 60 fractions" in implausible.detail


def test_mdacc_rows_by_hand(imported):
    result = imported["hnscc-mdacc"]
    case = _case(result, "HNSCC-01-0001")
    assert case.icd10 == "C05.1"  # CA soft palate
    assert case.regimen == "69.96 Gy in 33 fractions with concurrent cisplatin every 3 weeks"
    assert case.clinical["grade"] == "moderately to poorly differentiated"
    assert case.source_row == 1

    boost = _case(result, "HNSCC-01-0034")  # RMT filed under oropharynx; concomitant boost
    assert (boost.icd10, boost.site) == ("C06.2", "oral cavity")
    assert boost.regimen == "72 Gy in 40 fractions with concurrent weekly carboplatin"
    extra = boost.regimen_structured.model_extra
    assert extra["concomitant_boost"].startswith("1.5 Gy x 10 as a second daily fraction")
    assert boost.clinical["history"] == ["induction chemotherapy"]
    assert "induction chemotherapy" in boost.diagnosis_text.lower()

    opc = _case(result, "HNSCC-01-0242")  # radiomics table, row 1
    assert opc.icd10 == "C01"
    assert opc.regimen == "72 Gy in 40 fractions with concurrent chemotherapy"
    assert opc.clinical["laterality"] == "right"
    assert opc.clinical["pack_years"] == "38"
    assert opc.source_file == "HNSCC_Radiomics_Outcome_OPC_clinical.csv"

    duplicate = _entry(result, "HNSCC-01-0003", "Radiomics")
    assert duplicate.reason == "duplicate_patient"
    assert "70 Gy/33" in duplicate.detail and "66 Gy/33" in duplicate.detail
    assert _case(result, "HNSCC-01-0003").source_file.startswith("HNSCC_Patient")

    zero = _entry(result, "HNSCC-01-0253")
    assert (zero.reason, zero.row) == ("zero_fractions", 77)
    assert zero.column == "Radiation treatment_number of fractions"


def test_hn1_row_by_hand(imported):
    case = _case(imported["hn1"], "HN1004")
    assert case.icd10 == "C10.9"
    assert case.regimen == "70 Gy in 35 fractions with concurrent chemotherapy"
    assert (case.split, case.source_split) == (None, "train")
    assert case.clinical["hpv"] is False and case.clinical["hpv_test"] == "HPV/p16"
    schemes = Counter(c.regimen_structured.fractions for c in imported["hn1"].cases)
    assert schemes[34] == 77  # MAASTRO's 68 Gy/34 accelerated scheme


# --- the note holds no answer ------------------------------------------------------------------

ANSWER_WORDS = re.compile(
    r"photon|proton|electron|brachy|\bGy\b|fraction|\bfx\b|concurrent|concomitant|EGFR", re.I
)
# Class words stand for a drug the table does not name; "induction chemotherapy" is history.
DRUG_CLASSES = ("chemotherapy", "EGFR inhibitor")


def test_notes_never_contain_the_answer(imported):
    for result in imported.values():
        for case in result.cases:
            note = case.diagnosis_text
            assert not ANSWER_WORDS.search(note), note
            assert icd10.find_codes(note) == [], note
            assert case.icd10 not in note and case.icd10.replace(".", "") not in note
            for drug in set(case.regimen_structured.concurrent) - set(DRUG_CLASSES):
                assert drug.lower() not in note.lower(), note


def test_notes_use_several_templates_and_are_stable(imported):
    notes = [case.diagnosis_text for case in imported["radcure"].cases]
    starts = Counter(
        "headed" if n.startswith("Diagnosis:") else
        "consult" if " primary" in n.split(":")[0] else
        "prose" if "-year-old" in n.split(" with ")[0] else "shorthand"
        for n in notes
    )  # fmt: skip
    assert set(starts) == {"headed", "consult", "prose", "shorthand"}
    assert min(starts.values()) > len(notes) / 8
    facts = ClinicalFacts(site="larynx", location="glottis", age=70, sex="M", t="T1a")
    assert render_note(facts, seed="x:1") == render_note(facts, seed="x:1")


def test_reference_regimens_parse_back(imported):
    # The regimen module reads back what it renders, for the drugs it knows.
    case = _case(imported["hnscc-mdacc"], "HNSCC-01-0034")
    parsed = parse_regimen(case.regimen)
    assert (parsed.dose_gy, parsed.fractions, parsed.concurrent) == (72, 40, ["carboplatin"])


# --- the site mapping --------------------------------------------------------------------------


def test_site_mapping_codes_are_billable_neoplasm_codes():
    for key, entry in SITE_CODES.items():
        for code in (entry.icd10, entry.in_situ):
            assert icd10.is_billable(code), (key, code)
            assert icd10.chapter(code) == "2", (key, code)
        assert entry.icd10.startswith("C") and entry.in_situ.startswith("D")


@pytest.mark.parametrize(
    ("site", "subsite", "code"),
    [
        ("Oropharynx", "Tonsil", "C09.9"),
        ("Oropharynx", "Base of Tongue", "C01"),
        ("Oropharynx", "BOT", "C01"),
        ("Larynx", "Glottis", "C32.0"),
        ("Larynx", "Trans- glottis", "C32.8"),
        ("Nasopharynx", "", "C11.9"),
        ("Nasopharynx", "lat wall", "C11.2"),
        ("Lip & Oral Cavity", "Tongue", "C02.3"),
        ("Hypopharynx", "Pyriform Sinus", "C12"),
        ("oropharynx", "Glossopharyngeal sulcus", "C09.0"),
    ],
)
def test_site_mapping_examples(site, subsite, code):
    assert code_site(site, subsite)[1] == code


def test_site_mapping_refusals():
    from radonc_llm.data.importers.result import RowExcluded

    for site, subsite, histology, reason in [
        ("Unknown", "", None, "unknown_primary"),
        ("Skin", "External ear", None, "site_out_of_scope"),
        ("Oropharynx", "Nowhere", None, "unmapped_subsite"),
        ("Mars", None, None, "unmapped_site"),
        ("Larynx", "Glottis", "Neuroendocrine ca (small cell)", "histology_not_site_coded"),
    ]:
        with pytest.raises(RowExcluded) as excinfo:
            code_site(site, subsite, histology=histology)
        assert excinfo.value.reason == reason


# --- bad input ---------------------------------------------------------------------------------

HN1_HEADER = (
    "id,index_tumour_location,age_at_diagnosis,biological_sex,performance_status_ecog,"
    "overall_hpv_p16_status,clin_t,clin_n,clin_m,ajcc_stage,chemotherapy_given,"
    "radiotherapy_refgydose_perfraction_highriskgtv,radiotherapy_refgydose_total_highriskgtv,"
    "radiotherapy_number_fractions_highriskgtv"
)


def test_made_up_table_every_row_kept_or_excluded(tmp_path):
    rows = [
        "X1,larynx,60,male,0,,2,0,0,ii,none,2,66,33",  # kept
        "X2,larynx,61,male,0,,2,0,0,ii,none,2,,33",  # no dose
        "X3,larynx,62,male,0,,2,0,0,ii,none,2,66,0",  # zero fractions
        "X1,larynx,63,male,0,,2,0,0,ii,none,2,66,33",  # duplicate patient
        "X5,larynx,64",  # too few fields
        "X6,sinus of mars,65,female,1,,2,0,0,ii,none,2,66,33",  # unmapped site
        "X7,oropharynx,66,female,1,positive,2,1,0,iii,weekly magic,2,70,35",  # treatment
        "X8,oropharynx,67,female,1,positive,2,1,0,iii,none,2.4,70,35",  # 2 vs 2.4 Gy/fx
    ]
    path = tmp_path / "made_up.csv"
    path.write_text(HN1_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = import_cohort("hn1", path)
    reasons = {entry.row: entry.reason for entry in result.ledger}
    assert [case.patient_id for case in result.cases] == ["X1"]
    assert reasons == {
        2: "missing_prescription",
        3: "zero_fractions",
        4: "duplicate_patient",
        5: "unreadable_row",
        6: "unmapped_site",
        7: "unmapped_treatment",
        8: "inconsistent_prescription",
    }
    assert unaccounted_rows(result) == []


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "hn1.csv"
    path.write_text(HN1_HEADER.replace(",clin_n", ",clin_nodes") + "\n", encoding="utf-8")
    with pytest.raises(RadoncInputError) as excinfo:
        import_cohort("hn1", path)
    assert excinfo.value.field == "clin_n" and str(path) in excinfo.value.message


def test_cli_import_writes_cases_and_ledger(tmp_path):
    external = _external()
    out = tmp_path / "cases.jsonl"
    runner = CliRunner()
    done = runner.invoke(
        app, ["import", "hnscc-mdacc", str(external / "hnscc-mdacc"), "--out", str(out),
              "--split", "test"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    cases = read_cases(out)
    ledger = [json.loads(line) for line in (tmp_path / "excluded.jsonl").read_text().splitlines()]
    assert len(cases) == 612 and len(ledger) == 95
    assert {case.split for case in cases} == {"test"}
    assert set(ledger[0]) == {"cohort", "patient_id", "file", "row", "column", "reason", "detail"}
    assert "duplicate_patient" in done.output

    wrong = runner.invoke(app, ["import", "hn1", str(external / "radcure"), "--out", str(out)])
    assert wrong.exit_code == 2
    assert "no CSV file here has the columns of the HN1" in wrong.output
