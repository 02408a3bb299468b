"""A few realistic curated cases for prediction and evaluation tests."""

from __future__ import annotations

from radonc_llm.data.cases import Case

SAMPLE_CASES: list[dict] = [
    {
        "case_id": "c01",
        "patient_id": "p01",
        "diagnosis_text": "72M, adenocarcinoma of the prostate cT2bN0M0, GS 4+3=7 (GG3), PSA 12.4.",
        "regimen": "70 Gy in 28 fractions IMRT",
        "modality": "photon",
        "icd10": "C61",
    },
    {
        "case_id": "c02",
        "patient_id": "p02",
        "diagnosis_text": "58F, left breast IDC upper-outer quadrant pT1cN0(sn), ER+/PR+/HER2-, "
        "s/p lumpectomy.",
        "regimen": "40.05 Gy in 15 fractions",
        "modality": "photon",
        "icd10": "C50.412",
    },
    {
        "case_id": "c03",
        "patient_id": "p03",
        "diagnosis_text": "61M, glioblastoma right frontal lobe, IDH-wt, MGMT methylated, KPS 90, "
        "s/p gross total resection.",
        "regimen": "60 Gy in 30 fractions IMRT with concurrent temozolomide",
        "modality": "photon",
        "icd10": "C71.1",
    },
    {
        "case_id": "c04",
        "patient_id": "p04",
        "diagnosis_text": "80F, basal cell carcinoma of the nose, 1.4 cm, declines surgery.",
        "regimen": "50 Gy in 20 fractions",
        "modality": "electron",
        "icd10": "C44.311",
    },
    {
        "case_id": "c05",
        "patient_id": "p05",
        "diagnosis_text": "44F, squamous cell carcinoma of the cervix FIGO IIB, after pelvic EBRT "
        "with weekly cisplatin.",
        "regimen": "28 Gy in 4 fractions HDR",
        "modality": "brachytherapy",
        "icd10": "C53.9",
    },
    {
        "case_id": "c06",
        "patient_id": "p06",
        "diagnosis_text": "7M, medulloblastoma of the cerebellum, standard risk, s/p resection.",
        "regimen": "23.4 Gy in 13 fractions craniospinal with boost to 54 Gy",
        "modality": "proton",
        "icd10": "C71.6",
    },
    {
        "case_id": "c07",
        "patient_id": "p07",
        "diagnosis_text": "66M, oropharynx SCC base of tongue, p16+, cT2N1.",
        "regimen": "70 Gy in 35 fractions IMRT with concurrent cisplatin",
        "modality": "photon",
        "icd10": "C01",
    },
    {
        "case_id": "c08",
        "patient_id": "p08",
        "diagnosis_text": "70F, painful bone metastasis L2 from breast cancer.",
        "regimen": "8 Gy in 1 fraction",
        "modality": "photon",
        "icd10": "C79.51",
    },
]


def sample_cases() -> list[Case]:
    return [Case.model_validate(row) for row in SAMPLE_CASES]
