"""RADCURE (Princess Margaret Cancer Centre, Toronto): clinical table v04 -> cases.

Source: TCIA collection RADCURE, clinical data version 4 (2024-12-19), one row per patient
(3,346), https://doi.org/10.7937/J47W-NM11; descriptor Welch et al., Med Phys 2024. Licence:
treat as CC BY-NC 4.0; the file is read where the user keeps it, never copied.

Columns used: Ds Site / Subsite / Path (-> site code, note), T, N, "M " (trailing space in
the header), Stage (AJCC 7th), HPV, Age, Sex, ECOG PS, Smoking Status / Smoking PY (note),
Dose, Fx, Tx Modality / Chemo (-> regimen), RADCURE-challenge (-> split).
"""

from __future__ import annotations

import re
from pathlib import Path

from radonc_llm.data.cases import Case
from radonc_llm.data.importers.fields import (
    age_years,
    ajcc_stage,
    ecog_score,
    hpv_status,
    lookup,
    pack_years_text,
    sex_code,
    tnm_category,
)
from radonc_llm.data.importers.note import ClinicalFacts, histology_display
from radonc_llm.data.importers.prescription import reference_regimen
from radonc_llm.data.importers.result import (
    ImportResult,
    RowExcluded,
    convert_rows,
    imported_case,
)
from radonc_llm.data.importers.site_codes import code_site, is_in_situ
from radonc_llm.data.importers.table import SourceRow, find_table, read_table

COHORT = "radcure"
INSTITUTION = "Princess Margaret Cancer Centre, Toronto, Canada"
REQUIRED_COLUMNS = (
    "patient_id", "Age", "Sex", "ECOG PS", "Smoking PY", "Smoking Status", "Ds Site",
    "Subsite", "T", "N", "M", "Stage", "Path", "HPV", "Tx Modality", "Chemo", "Dose", "Fx",
)  # fmt: skip
SPLIT_COLUMN = "RADCURE-challenge"

# Tx Modality is the treatment combination, not the beam: -> (concurrent agents, given
# chemotherapy, treatment before radiotherapy). The table names no drugs: EGFRI is an EGFR
# inhibitor (cetuximab in PMH practice, but the table does not say which), so the class is kept.
TREATMENTS: dict[str, tuple[list[str], bool, tuple[str, ...]]] = {
    "rt alone": ([], False, ()),
    "postop rt alone": ([], False, ("surgery",)),
    "chemort": (["chemotherapy"], True, ()),
    "rt + egfri": (["EGFR inhibitor"], False, ()),
}
SMOKING = {
    "current": "current", "ex-smoker": "former", "ex smoker": "former", "former": "former",
    "non-smoker": "never", "non smoker": "never", "never": "never",
}  # fmt: skip
# The challenge split of the RADCURE release; "0" = not in the challenge.
SPLITS = {"training": "train", "test": "test"}


def _treatment(row: SourceRow) -> tuple[list[str], tuple[str, ...]]:
    recorded = row.values["Tx Modality"]
    treatment = TREATMENTS.get(re.sub(r"\s+", " ", recorded).strip().lower())
    if treatment is None:
        raise RowExcluded(
            "unmapped_treatment", f"unknown Tx Modality '{recorded}'", column="Tx Modality"
        )
    concurrent, chemotherapy, history = treatment
    chemo = row.values["Chemo"].lower()
    if chemo not in ("yes", "none", "no"):
        raise RowExcluded(
            "unmapped_treatment", f"unknown Chemo value '{row.values['Chemo']}'", column="Chemo"
        )
    if (chemo == "yes") != chemotherapy:
        raise RowExcluded(
            "conflicting_concurrent_therapy",
            f"Tx Modality '{recorded}' but Chemo '{row.values['Chemo']}'",
            column="Chemo",
        )
    return concurrent, history


def _facts(row: SourceRow, site: str, location: str, *, history: tuple[str, ...]) -> ClinicalFacts:
    values = row.values
    return ClinicalFacts(
        site=site,
        location=location,
        age=age_years(values["Age"], column="Age"),
        sex=sex_code(values["Sex"], column="Sex"),
        histology=histology_display(values["Path"]),
        t=tnm_category("T", values["T"], column="T"),
        n=tnm_category("N", values["N"], column="N"),
        m=tnm_category("M", values["M"], column="M"),
        stage=ajcc_stage(values["Stage"], column="Stage"),
        hpv=hpv_status(values["HPV"], column="HPV"),
        ecog=ecog_score(values["ECOG PS"], column="ECOG PS"),
        smoking=lookup(
            values["Smoking Status"], SMOKING, column="Smoking Status", what="smoking status"
        ),
        pack_years=pack_years_text(values["Smoking PY"], column="Smoking PY"),
        history=history,
    )


def convert_row(row: SourceRow, *, file: str) -> Case:
    values = row.values
    in_situ = is_in_situ(
        tnm_category("T", values["T"], column="T"),
        tnm_category("N", values["N"], column="N"),
        values["Path"],
        n_column="N",
        histology_column="Path",
    )
    site_code, icd10 = code_site(
        values["Ds Site"],
        values["Subsite"],
        in_situ=in_situ,
        histology=values["Path"],
        site_column="Ds Site",
        subsite_column="Subsite",
        histology_column="Path",
    )
    concurrent, history = _treatment(row)
    regimen = reference_regimen(
        values["Dose"], values["Fx"], dose_column="Dose", fractions_column="Fx",
        concurrent=concurrent,
    )  # fmt: skip
    challenge = values.get(SPLIT_COLUMN, "")
    return imported_case(
        cohort=COHORT,
        institution=INSTITUTION,
        patient_id=values["patient_id"],
        facts=_facts(row, site_code.site, site_code.location, history=history),
        icd10=icd10,
        regimen=regimen,
        source_file=file,
        source_row=row.number,
        source_split=challenge or None,
        split=SPLITS.get(challenge.lower()),
    )


def import_radcure(path: str | Path) -> ImportResult:
    """Import the RADCURE clinical table (the CSV file, or the folder that holds it)."""
    table = read_table(
        find_table(path, REQUIRED_COLUMNS, what="RADCURE clinical"),
        (*REQUIRED_COLUMNS, SPLIT_COLUMN),
    )
    result = ImportResult(cohort=COHORT)
    convert_rows(
        result, table, lambda row: convert_row(row, file=table.name), id_column="patient_id"
    )
    return result
