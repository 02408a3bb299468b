"""The case file: what an external test set (vignettes written by hand) may leave out."""

from __future__ import annotations

import json
import re

import pytest

from radonc_llm.data.cases import read_cases, read_notes, write_cases
from radonc_llm.data.split import split_cases
from radonc_llm.errors import RadoncInputError

VIGNETTE = {
    "diagnosis_text": "68M, prostate adenocarcinoma GS 3+4, PSA 7.8, cT1c.",
    "regimen": "60 Gy in 20 fractions VMAT",
    "modality": "photon",
    "icd10": "C61",
}


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_case_without_patient_id_is_its_own_patient_with_a_warning(tmp_path):
    rows = [{"case_id": "v1", **VIGNETTE}, {"case_id": "v2", "patient_id": None, **VIGNETTE}]
    rows.append({"case_id": "v3", "patient_id": "P7", **VIGNETTE})
    path = write(tmp_path / "vignettes.jsonl", rows)
    with pytest.warns(UserWarning, match=r"2 case\(s\) have no patient_id \(first on line 1\)"):
        cases = read_cases(path)
    assert [case.patient_id for case in cases] == ["v1", "v2", "P7"]
    write_cases(tmp_path / "again.jsonl", cases)
    written = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert [row["patient_id"] for row in written] == ["v1", "v2", "P7"]
    assert all(len(row) == 6 for row in written)  # no marker left behind in the file


def test_a_blank_patient_id_is_still_refused(tmp_path):
    path = write(tmp_path / "cases.jsonl", [{"case_id": "v1", "patient_id": "  ", **VIGNETTE}])
    with pytest.raises(RadoncInputError, match="blank") as info:
        read_cases(path)
    assert info.value.row == 1 and info.value.field == "patient_id"


def test_notes_need_no_answers_but_cases_do(tmp_path, recwarn):
    rows = [
        {"case_id": "n1", "diagnosis_text": VIGNETTE["diagnosis_text"]},
        {"case_id": 2, "diagnosis_text": "T2N1 SCC of the base of tongue, p16+", "site": "hn"},
        {**VIGNETTE, "case_id": "n3", "modality": "neutron"},  # answers unchecked here
    ]
    path = write(tmp_path / "notes.jsonl", rows)
    notes = read_notes(path)
    assert [note.case_id for note in notes] == ["n1", "2", "n3"]
    assert [note.patient_id for note in notes] == ["n1", "2", "n3"]
    assert notes[1].model_extra == {"site": "hn"}
    assert not recwarn.list  # patients do not matter to prediction: no warning
    with pytest.raises(RadoncInputError) as info:
        read_cases(path)
    assert info.value.row == 1 and info.value.field == "regimen"


@pytest.mark.parametrize(
    "row,field",
    [
        ({"case_id": "n1", "diagnosis_text": " \u200b "}, "diagnosis_text"),
        ({"case_id": "n1", "text": "62M, prostate"}, "diagnosis_text"),
        ({"diagnosis_text": "62M, prostate"}, "case_id"),
    ],
)
def test_a_note_without_a_readable_note_or_id_is_refused(tmp_path, row, field):
    path = write(tmp_path / "notes.jsonl", [{"case_id": "ok", "diagnosis_text": "x"}, row])
    with pytest.raises(RadoncInputError) as info:
        read_notes(path)
    assert info.value.row == 2 and info.value.field == field


def test_duplicate_note_ids_are_refused(tmp_path):
    rows = [{"case_id": "n1", "diagnosis_text": "a"}, {"case_id": "n1", "diagnosis_text": "b"}]
    with pytest.raises(RadoncInputError, match="first on line 1") as info:
        read_notes(write(tmp_path / "notes.jsonl", rows))
    assert info.value.row == 2


def test_cases_without_patient_ids_split_one_patient_each(tmp_path):
    rows = [{"case_id": f"v{k}", **VIGNETTE} for k in range(20)]
    with pytest.warns(UserWarning, match="no patient_id"):
        cases = read_cases(write(tmp_path / "cases.jsonl", rows))
    splits = split_cases(cases, seed=0)
    assert sum(len(part) for part in splits.values()) == 20


@pytest.mark.parametrize(
    "written,read",
    [
        ("C61 (prostate)", "C61"),
        ("ICD-10: c50.911", "C50.911"),
        ("C09.9 - Malignant neoplasm of tonsil, unspecified", "C09.9"),
        ("C09.9; C77.0", "holds several codes (C09.9, C77.0)"),
        ("tonsil cancer", "is not an ICD-10-CM code"),
    ],
)
def test_a_code_written_with_its_description_reads_as_curation_reads_it(tmp_path, written, read):
    path = write(tmp_path / "cases.jsonl", [{"case_id": "v1", "patient_id": "P1", **VIGNETTE}])
    path.write_text(path.read_text().replace('"C61"', json.dumps(written)))
    if read.startswith(("C", "c")):
        assert [case.icd10 for case in read_cases(path)] == [read]
        return
    with pytest.raises(RadoncInputError, match=re.escape(read)) as info:
        read_cases(path)
    assert info.value.field == "icd10" and info.value.row == 1


def test_a_modality_naming_two_classes_asks_for_the_primary_one(tmp_path):
    row = {"case_id": "v1", "patient_id": "P1", **VIGNETTE, "modality": "Photon + HDR brachy"}
    with pytest.raises(RadoncInputError, match="names brachytherapy and photon; give the primary"):
        read_cases(write(tmp_path / "cases.jsonl", [row]))
