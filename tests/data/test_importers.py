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
    "inconsistent_prescription", "recurrent_disease", "bad_value",
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


def test_a_repeated_patient_says_whether_its_values_differ(tmp_path):
    rows = [
        "X1,larynx,60,male,0,,2,0,0,ii,none,2,66,33",
        "X1,larynx,60,male,0,,2,0,0,ii,none,2,66,33",  # the same row again
        "X1,larynx,60,male,0,,2,0,0,ii,none,2,70,35",  # another course
    ]
    path = tmp_path / "hn1.csv"
    path.write_text(HN1_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = import_cohort("hn1", path)
    details = {entry.row: entry.detail for entry in result.ledger}
    assert (
        details[2] == "patient X1 is already on row 1, whose values are used; this row repeats them"
    )
    assert details[3].endswith(
        "this row differs (radiotherapy_refgydose_total_highriskgtv: '66' there, '70' here, "
        "radiotherapy_number_fractions_highriskgtv: '33' there, '35' here)"
    )
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


# --- corrupted exports ---------------------------------------------------------------------------


def _hn1_records() -> list[list[str]]:
    import csv

    with (_external() / "hn1-maastro" / "HN1_ClinicalData.csv").open(newline="") as handle:
        return list(csv.reader(handle))


def _write(path: Path, records: list[list[str]], *, encoding="utf-8", delimiter=",") -> Path:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(records)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def _summary(result: ImportResult) -> list[tuple]:
    return [(c.patient_id, c.regimen, c.icd10, c.diagnosis_text) for c in result.cases]


@pytest.mark.parametrize(
    "resave",
    ["utf-16 tabs", "semicolons and decimal commas", "utf-8 bom", "headers renamed", "reordered"],
)
def test_spreadsheet_resaves_import_as_the_original(tmp_path, resave):
    records = _hn1_records()
    clean = _summary(import_cohort("hn1", _write(tmp_path / "clean.csv", records)))
    path = tmp_path / "resaved.csv"
    if resave == "utf-16 tabs":  # Excel's "Unicode text"
        _write(path, records, encoding="utf-16", delimiter="\t")
    elif resave == "semicolons and decimal commas":  # a European Excel's CSV
        commas = [[re.sub(r"^(\d+)\.(\d+)$", r"\1,\2", v) for v in row] for row in records]
        _write(path, commas, delimiter=";")
    elif resave == "utf-8 bom":
        _write(path, records, encoding="utf-8-sig")
    elif resave == "headers renamed":
        header = [name.upper().replace("_", " ") for name in records[0]]
        _write(path, [header, *records[1:]])
    else:
        _write(path, [list(reversed(row)) for row in records])
    assert _summary(import_cohort("hn1", path)) == clean


def test_broken_lines_are_ledger_rows_and_the_rest_is_read(tmp_path):
    records = _hn1_records()
    lines = _write(tmp_path / "clean.csv", records).read_bytes().split(b"\r\n")
    lines[3] = lines[3].replace(b",", b',"', 1)  # a quote never closed swallows what follows
    lines[5] = lines[5][:3] + b"\x00" + lines[5][3:]
    lines[7] = lines[7].replace(b"oropharynx", b"oropharynx \xe9").replace(b"larynx", b"l\xe9")
    lines.insert(9, b"")
    path = tmp_path / "broken.csv"
    path.write_bytes(b"\r\n".join(lines))
    result = import_cohort("hn1", path)
    assert result.n_input_rows == 137 + 1
    assert len(result.cases) == 137 - 3
    details = {entry.row: entry.detail for entry in result.ledger}
    assert "quoted field is not closed" in details[3] and "NUL" in details[5]
    assert "not valid UTF-8" in details[7] and "blank line" in details[9]
    assert {entry.reason for entry in result.ledger} == {"unreadable_row"}
    assert unaccounted_rows(result) == []


def test_unreadable_files_stop_with_a_clear_error(tmp_path):
    import zipfile

    records = _hn1_records()
    doubled = [[*row, row[4]] for row in records]  # biological_sex twice
    cases = {
        "empty file": b"",
        "no data rows": (HN1_HEADER + "\r\n").encode(),
        "Excel workbook": None,
        "UTF-16 without a byte-order mark": "\t".join(records[0]).encode("utf-16-le"),
    }
    for expected, data in cases.items():
        path = tmp_path / "table.csv"
        if data is None:
            with zipfile.ZipFile(path, "w") as workbook:
                workbook.writestr("xl/workbook.xml", "<workbook/>")
        else:
            path.write_bytes(data)
        with pytest.raises(RadoncInputError) as excinfo:
            import_cohort("hn1", path)
        assert str(path) in excinfo.value.message
        assert expected.split()[0].lower() in excinfo.value.message.lower()
    with pytest.raises(RadoncInputError, match="'biological_sex' is given 2 times"):
        import_cohort("hn1", _write(tmp_path / "doubled.csv", doubled))


def test_a_folder_table_missing_a_column_is_an_error_not_skipped(tmp_path):
    import shutil

    source = _external() / "hnscc-mdacc"
    shutil.copy(source / "HNSCC_Radiomics_Outcome_OPC_clinical.csv", tmp_path)
    treatment = (source / "HNSCC_Patient_and_Treatment_Characteristics.csv").read_text("utf-8-sig")
    broken = tmp_path / "treatment.csv"
    broken.write_text(treatment.replace("RT Total Dose (Gy)", "RT Dose", 1), encoding="utf-8")
    with pytest.raises(RadoncInputError) as excinfo:
        import_cohort("hnscc-mdacc", tmp_path)
    assert excinfo.value.field == "RT Total Dose (Gy)" and str(broken) in excinfo.value.message


def test_field_spellings_read_the_same_or_are_excluded(tmp_path):
    rows = {
        "A1": "A1,oropharynx,62.0,M,ECOG 1,Pos,4a,2.0,0,Stage IV A,concurrent,2,70,35",
        "A2": "A2,oropharynx,62,Male,1,+,T4a,N2,M0,4a,Concurrent,2.0,70.0,35.0",
        "A3": "A3,oropharynx,62,m,1,1,t4A,2,0,iva,concurrent,,70,35",
        "A4": "A4,oropharynx,NA,-,unknown,N/A,,,,,concurrent,-,70,35",  # nothing recorded
        "B1": "B1,oropharynx,62,male,1,positive,T2N1M0,2,0,iva,concurrent,2,70,35",
        "B2": "B2,oropharynx,62,male,1,positive,cT2 cN1,2,0,iva,concurrent,2,70,35",
        "B3": "B3,oropharynx,62,male,1,positive,IVA,2,0,iva,concurrent,2,70,35",
        "B4": "B4,oropharynx,62,male,1,positive,4,2,0,T2N1M0,concurrent,2,70,35",
        "B5": "B5,oropharynx,700,male,1,positive,4,2,0,iva,concurrent,2,70,35",
        "B6": "B6,oropharynx,1e400,male,1,positive,4,2,0,iva,concurrent,2,70,35",
        "B7": "B7,oropharynx,62,male,1,weakly,4,2,0,iva,concurrent,2,70,35",
        "B8": "B8,oropharynx,62,7,1,positive,4,2,0,iva,concurrent,2,70,35",
        "B9": "B9,oropharynx,62,male,7,positive,4,2,0,iva,concurrent,2,70,35",
        "C1": "C1,oropharynx,62,male,1,positive,4,2,0,iva,concurrent,-,-,35",
    }
    path = tmp_path / "hn1.csv"
    path.write_text(HN1_HEADER + "\n" + "\n".join(rows.values()) + "\n", encoding="utf-8")
    result = import_cohort("hn1", path)
    kept = {case.patient_id: case.clinical for case in result.cases}
    for patient in ("A1", "A2", "A3"):
        facts = {k: kept[patient][k] for k in ("age", "sex", "hpv", "t", "n", "m", "stage")}
        assert facts == {
            "age": 62, "sex": "M", "hpv": True, "t": "T4a", "n": "N2", "m": "M0", "stage": "IVA"
        }, patient  # fmt: skip
    assert kept["A4"] == {"site": "oropharynx", "location": "oropharynx"}
    reasons = {entry.patient_id: (entry.reason, entry.column) for entry in result.ledger}
    assert reasons == {
        "B1": ("bad_value", "clin_t"),
        "B2": ("bad_value", "clin_t"),
        "B3": ("bad_value", "clin_t"),
        "B4": ("bad_value", "ajcc_stage"),
        "B5": ("bad_value", "age_at_diagnosis"),
        "B6": ("bad_number", "age_at_diagnosis"),
        "B7": ("bad_value", "overall_hpv_p16_status"),
        "B8": ("bad_value", "biological_sex"),
        "B9": ("bad_value", "performance_status_ecog"),
        "C1": ("missing_prescription", "radiotherapy_refgydose_total_highriskgtv"),
    }
    assert unaccounted_rows(result) == []
