"""HN1 (MAASTRO Clinic, Maastricht): Head-Neck-Radiomics-HN1 clinical table -> cases.

Source: TCIA "Head-Neck-Radiomics-HN1" clinical data (updated July 2020), 137 patients,
https://doi.org/10.7937/tcia.2019.8kap372n; Aerts et al., Nat Commun 5:4006 (2014). Licence
CC BY-NC 3.0; the file is read where the user keeps it, never copied.

Columns used: index_tumour_location (oropharynx/larynx only: codes stay at C10.9/C32.9),
clin_t/n/m, ajcc_stage, overall_hpv_p16_status, age, sex, ECOG (note); the high-risk GTV
dose, fractions and dose per fraction, chemotherapy_given (regimen). The table has no
histology, so the note says "carcinoma". The `dataset` column (train/test) was added by a
third-party copy, not by TCIA: it is kept as `source_split` only. `cancer_surgery_performed`
is left out of the note: the six "yes" rows received full definitive doses (68-70 Gy), so
the surgery's timing is unknown.
"""

from __future__ import annotations

from pathlib import Path

from radonc_llm.data.cases import Case
from radonc_llm.data.importers.fields import (
    age_years,
    ajcc_stage,
    ecog_score,
    hpv_status,
    sex_code,
    tnm_category,
)
from radonc_llm.data.importers.note import ClinicalFacts
from radonc_llm.data.importers.prescription import reference_regimen
from radonc_llm.data.importers.result import (
    ImportResult,
    RowExcluded,
    convert_rows,
    imported_case,
)
from radonc_llm.data.importers.site_codes import code_site, is_in_situ
from radonc_llm.data.importers.table import SourceRow, find_table, read_table

COHORT = "hn1"
INSTITUTION = "MAASTRO Clinic, Maastricht, the Netherlands"
DOSE = "radiotherapy_refgydose_total_highriskgtv"
FRACTIONS = "radiotherapy_number_fractions_highriskgtv"
DOSE_PER_FRACTION = "radiotherapy_refgydose_perfraction_highriskgtv"
REQUIRED_COLUMNS = (
    "id", "index_tumour_location", "age_at_diagnosis", "biological_sex",
    "performance_status_ecog", "overall_hpv_p16_status", "clin_t", "clin_n", "clin_m",
    "ajcc_stage", "chemotherapy_given", DOSE, FRACTIONS,
    DOSE_PER_FRACTION,
)  # fmt: skip
SPLIT_COLUMN = "dataset"  # added by the third-party copy, absent from TCIA's

# Both words mean chemotherapy given with the radiotherapy; the table names no drug.
CHEMOTHERAPY = {"none": [], "concurrent": ["chemotherapy"], "concomitant": ["chemotherapy"]}


def convert_row(row: SourceRow, *, file: str) -> Case:
    values = row.values
    site_code, icd10 = code_site(
        values["index_tumour_location"],
        None,
        in_situ=is_in_situ(
            tnm_category("T", values["clin_t"], column="clin_t"),
            tnm_category("N", values["clin_n"], column="clin_n"),
            None,
            n_column="clin_n",
        ),
        site_column="index_tumour_location",
    )
    chemotherapy = values["chemotherapy_given"].lower()
    if chemotherapy not in CHEMOTHERAPY:
        raise RowExcluded(
            "unmapped_treatment",
            f"unknown chemotherapy_given '{values['chemotherapy_given']}'",
            column="chemotherapy_given",
        )
    regimen = reference_regimen(
        values[DOSE],
        values[FRACTIONS],
        dose_column=DOSE,
        fractions_column=FRACTIONS,
        concurrent=CHEMOTHERAPY[chemotherapy],
        dose_per_fraction_text=values[DOSE_PER_FRACTION],
        dose_per_fraction_column=DOSE_PER_FRACTION,
    )
    facts = ClinicalFacts(
        site=site_code.site,
        location=site_code.location,
        age=age_years(values["age_at_diagnosis"], column="age_at_diagnosis"),
        sex=sex_code(values["biological_sex"], column="biological_sex"),
        t=tnm_category("T", values["clin_t"], column="clin_t"),
        n=tnm_category("N", values["clin_n"], column="clin_n"),
        m=tnm_category("M", values["clin_m"], column="clin_m"),
        stage=ajcc_stage(values["ajcc_stage"], column="ajcc_stage"),
        hpv=hpv_status(values["overall_hpv_p16_status"], column="overall_hpv_p16_status"),
        hpv_test="HPV/p16",
        ecog=ecog_score(values["performance_status_ecog"], column="performance_status_ecog"),
    )
    return imported_case(
        cohort=COHORT,
        institution=INSTITUTION,
        patient_id=values["id"],
        facts=facts,
        icd10=icd10,
        regimen=regimen,
        source_file=file,
        source_row=row.number,
        source_split=values.get(SPLIT_COLUMN) or None,
    )


def import_hn1(path: str | Path) -> ImportResult:
    """Import the HN1 clinical table (the CSV file, or the folder that holds it)."""
    table = read_table(
        find_table(path, REQUIRED_COLUMNS, what="HN1 clinical"), (*REQUIRED_COLUMNS, SPLIT_COLUMN)
    )
    result = ImportResult(cohort=COHORT)
    convert_rows(result, table, lambda row: convert_row(row, file=table.name), id_column="id")
    return result
