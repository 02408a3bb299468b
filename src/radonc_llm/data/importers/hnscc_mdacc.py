"""HNSCC (MD Anderson Cancer Center, Houston): the two TCIA HNSCC clinical tables -> cases.

Source: TCIA collection HNSCC, https://doi.org/10.7937/k9/tcia.2020.a8sh-7363; Grossberg et
al., Sci Data 5:180173 (2018); Elhalawani et al., Sci Data 4:170077 (2017). Licence CC BY-NC
3.0; the files are read where the user keeps them, never copied.

- "Patient and Treatment Characteristics" (215 rows): free-text diagnosis (`Diag`) and site,
  grade, TNM, HPV, smoking, the treatment sequence, the concurrent drugs by name, and dose,
  fractions and dose per fraction (including the concomitant-boost wording).
- "Radiomics Outcome OPC" (492 rows, oropharynx): subsite, laterality, TNM, AJCC 7th stage,
  HPV, smoking with pack-years, chemotherapy as a combination (no drug names), dose, fractions
  and dose per fraction. Its patient code is the release's dummy id renamed "TCIA code".

80 patients are in both tables, and the two disagree on their course for most of them
(dose and fractions agree for 18); the first table is the curated treatment table with drug
names, so its row is used and the second table's row goes to the ledger as a duplicate, with
both courses in the detail.
"""

from __future__ import annotations

import re
from pathlib import Path

from radonc_llm.data.cases import Case
from radonc_llm.data.importers.fields import (
    age_years,
    ajcc_stage,
    hpv_status,
    lookup,
    pack_years_text,
    sex_code,
    tnm_category,
)
from radonc_llm.data.importers.note import ClinicalFacts, histology_display
from radonc_llm.data.importers.prescription import (
    fraction_count,
    recorded_dose_gy,
    reference_regimen,
)
from radonc_llm.data.importers.result import (
    ImportResult,
    RowExcluded,
    convert_rows,
    imported_case,
    patient_key,
)
from radonc_llm.data.importers.site_codes import canonical, code_site, is_in_situ
from radonc_llm.data.importers.table import (
    SourceRow,
    SourceTable,
    check_path,
    find_table,
    missing_columns,
    read_table,
    scan_folder,
    workbook_hint,
)
from radonc_llm.errors import RadoncInputError

COHORT = "hnscc-mdacc"
INSTITUTION = "MD Anderson Cancer Center, Houston, USA"

# ---------------------------------------------------------------------------------------------
# Table 1: Patient and Treatment Characteristics

T1_DOSE, T1_FRACTIONS, T1_PER_FRACTION = (
    "RT Total Dose (Gy)", "Number of Fractions", "Dose/Fraction (Gy/fx)",
)  # fmt: skip
T1_SUMMARY, T1_CONCURRENT, T1_CCRT_REGIMEN = (
    "Oncologic Treatment Summary", "Received Concurrent Chemoradiotherapy?",
    "CCRT Chemotherapy Regimen",
)  # fmt: skip
TREATMENT_COLUMNS = (
    "TCIA code", "Sex", "Age", "Diag", "Site", "Histology", "Grade", "T", "N", "M", "Stage",
    "HPV status", T1_SUMMARY, T1_CONCURRENT, T1_CCRT_REGIMEN, T1_DOSE, T1_PER_FRACTION,
    T1_FRACTIONS, "Smoking History", "Current Smoker",
)  # fmt: skip

# `Site` wordings -> registry site; MD Anderson files every larynx primary as "Glottis"
# (Diag then says "CA supraglottic" or "CA larynx"), so the site is the larynx.
T1_SITES = {"glottis": "larynx"}
# `Diag` after "CA " -> subsite; None = the site alone. Unlisted wordings are subsites as
# written (resolved by site_codes, e.g. "tonsil", "pyriform sinus", "soft palate").
T1_DIAG_SUBSITES: dict[str, str | None] = {
    "supraglottic": "supraglottis",
    "larynx": None,
    "hypopharynx": None,
    "oropharynx": None,
    "pharyngeal": None,
    "npc": None,
    "cup": None,
    "posteriot pharyngeal wall": "posterior wall",  # sic in the source
}
# CCRT Chemotherapy Regimen (canonical, " x N cycle(s)" removed) -> (drugs, drug schedule).
# "High dose" cisplatin is the 3-weekly 100 mg/m2 schedule.
CCRT_REGIMENS: dict[str, tuple[list[str], str | None]] = {
    "cisplatin high dose": (["cisplatin"], "every 3 weeks"),
    "cisplatin weekly": (["cisplatin"], "weekly"),
    "carboplatin weekly": (["carboplatin"], "weekly"),
    "carbolatin weekly": (["carboplatin"], "weekly"),  # sic in the source
    "carboplatin auc 2 weekly": (["carboplatin"], "weekly"),
    "carboplatin + taxol": (["carboplatin", "paclitaxel"], None),
    "cisplatin and cycle 2 switch to carboplatin": (["cisplatin", "carboplatin"], None),
    "cisplatin high dose and switch to carboplatin": (["cisplatin", "carboplatin"], None),
    "cisplatin high dose then carboplatin auc 2": (["cisplatin", "carboplatin"], None),
    "docetaxel + erlotinib": (["docetaxel", "erlotinib"], None),
    "cisplatin + cetuximab": (["cisplatin", "cetuximab"], None),
}
# Agents added to the radiotherapy step of the summary ("ERT + Cetuximab"); Zactima is
# vandetanib's trade name.
SUMMARY_AGENTS = {
    "cetuximab": "cetuximab", "cetuxiamb": "cetuximab", "vandetanib": "vandetanib",
    "zactima": "vandetanib",
}  # fmt: skip
RT_STEPS = {"ccrt": True, "crt": True, "ert": False}  # step -> chemotherapy given with it
HISTORY_STEPS = {"induction cmt": "induction chemotherapy", "surgery": "surgery",
                 "cmt": "chemotherapy"}  # fmt: skip
# "1.9/add 1.5 Gy last 2 week x 10 F": 1.9 Gy daily with a 1.5 Gy second daily fraction on
# the last 10 treatment days (the concomitant boost of 72 Gy in 40 fractions).
CONCOMITANT_BOOST = re.compile(
    r"^(?P<daily>\d+(?:\.\d+)?)\s*/\s*add\s+(?P<boost>\d+(?:\.\d+)?)\s*Gy\b.*?x\s*(?P<n>\d+)\s*F$",
    re.IGNORECASE,
)


def _grade(raw: str) -> str | None:
    text = canonical(raw)
    return re.sub(r"\bdiff\.?", "differentiated", text) or None


def _smoking_t1(history: str, current: str) -> str | None:
    # Smoking History has no codebook here; 0 is never (never current), any other value with
    # Current Smoker 1 is current, else former.
    if history == "0":
        return "never"
    if history in ("1", "2"):
        return "current" if current == "1" else "former"
    return None


def _treatment_t1(values: dict[str, str]) -> tuple[list[str], str | None, tuple[str, ...]]:
    """(concurrent agents, their schedule, treatment before radiotherapy)."""
    summary = values[T1_SUMMARY]
    steps = [canonical(step) for step in re.split(r"-+>", summary)]
    rt_index = next(
        (i for i, step in enumerate(steps) if step.split("+")[0].strip() in RT_STEPS), None
    )
    if rt_index is None:
        raise RowExcluded(
            "unmapped_treatment", f"no radiotherapy step in '{summary}'", column=T1_SUMMARY
        )
    history: list[str] = []
    for step in steps[:rt_index]:
        head = step.split("+")[0].strip()
        if head not in HISTORY_STEPS:
            raise RowExcluded(
                "unmapped_treatment", f"unknown step '{step}' in '{summary}'", column=T1_SUMMARY
            )
        if HISTORY_STEPS[head] not in history:
            history.append(HISTORY_STEPS[head])
    head, *added = (part.strip() for part in steps[rt_index].split("+"))
    agents = []
    for name in added:
        if name not in SUMMARY_AGENTS:
            raise RowExcluded(
                "unmapped_treatment", f"unknown agent '{name}' in '{summary}'", column=T1_SUMMARY
            )
        agents.append(SUMMARY_AGENTS[name])
    received = values[T1_CONCURRENT].lower() == "yes"
    if received != RT_STEPS[head]:
        raise RowExcluded(
            "conflicting_concurrent_therapy",
            f"summary '{summary}' but {T1_CONCURRENT} '{values[T1_CONCURRENT]}'",
            column=T1_CONCURRENT,
        )
    drugs: list[str] = []
    schedule = None
    if received:
        key = re.sub(r"\s*x\s*\d+\s*cycles?\b", "", canonical(values[T1_CCRT_REGIMEN]))
        if key not in CCRT_REGIMENS:
            raise RowExcluded(
                "unmapped_treatment",
                f"unknown concurrent regimen '{values[T1_CCRT_REGIMEN]}'",
                column=T1_CCRT_REGIMEN,
            )
        drugs, schedule = CCRT_REGIMENS[key]
    concurrent = list(dict.fromkeys([*drugs, *agents]))
    # A schedule written for one drug does not hold for an added agent.
    return concurrent, schedule if len(concurrent) == len(drugs) else None, tuple(history)


def _concomitant_boost(values: dict[str, str]) -> str | None:
    """The boost wording, checked against dose and fractions; None for a plain number."""
    written = values[T1_PER_FRACTION]
    match = CONCOMITANT_BOOST.match(written)
    if match is None:
        return None
    daily, boost, n = float(match["daily"]), float(match["boost"]), int(match["n"])
    dose, _ = recorded_dose_gy(values[T1_DOSE], column=T1_DOSE, what="total dose")
    fractions = fraction_count(values[T1_FRACTIONS], column=T1_FRACTIONS)
    if dose is None or not fractions or abs(daily * (fractions - n) + boost * n - dose) > 0.05:
        raise RowExcluded(
            "inconsistent_prescription",
            f"'{written}' does not add up to {values[T1_DOSE]} Gy in {values[T1_FRACTIONS]} "
            "fractions",
            column=T1_PER_FRACTION,
        )
    return (
        f"{boost:g} Gy x {n} as a second daily fraction on the last {n} treatment days "
        f"({daily:g} Gy daily)"
    )


def convert_treatment_row(row: SourceRow, *, file: str) -> Case:
    values = row.values
    diag = canonical(values["Diag"])
    if diag.startswith("recurrence"):
        raise RowExcluded(
            "recurrent_disease", f"'{values['Diag']}': not a primary course", column="Diag"
        )
    site = T1_SITES.get(canonical(values["Site"]), values["Site"])
    subsite_text = re.sub(r"^ca\s+", "", diag)
    subsite = T1_DIAG_SUBSITES.get(subsite_text, subsite_text)
    t = tnm_category("T", values["T"], column="T")
    site_code, icd10 = code_site(
        site,
        subsite,
        in_situ=is_in_situ(
            t,
            tnm_category("N", values["N"], column="N"),
            values["Histology"],
            n_column="N",
            histology_column="Histology",
        ),
        histology=values["Histology"],
        site_column="Site",
        subsite_column="Diag",
        histology_column="Histology",
    )
    concurrent, schedule, history = _treatment_t1(values)
    boost = _concomitant_boost(values)
    regimen = reference_regimen(
        values[T1_DOSE],
        values[T1_FRACTIONS],
        dose_column=T1_DOSE,
        fractions_column=T1_FRACTIONS,
        concurrent=concurrent,
        concurrent_schedule=schedule,
        dose_per_fraction_text=None if boost else values[T1_PER_FRACTION],
        dose_per_fraction_column=T1_PER_FRACTION,
    )
    if boost:
        regimen.concomitant_boost = boost  # type: ignore[attr-defined]
    facts = ClinicalFacts(
        site=site_code.site,
        location=site_code.location,
        age=age_years(values["Age"], column="Age"),
        sex=sex_code(values["Sex"], column="Sex"),
        histology=histology_display(values["Histology"]),
        grade=_grade(values["Grade"]),
        t=t,
        n=tnm_category("N", values["N"], column="N"),
        m=tnm_category("M", values["M"], column="M"),
        stage=ajcc_stage(values["Stage"], column="Stage"),
        hpv=hpv_status(values["HPV status"], column="HPV status"),
        smoking=_smoking_t1(values["Smoking History"], values["Current Smoker"]),
        history=history,
    )
    return imported_case(
        cohort=COHORT,
        institution=INSTITUTION,
        patient_id=values["TCIA code"],
        facts=facts,
        icd10=icd10,
        regimen=regimen,
        source_file=file,
        source_row=row.number,
    )


# ---------------------------------------------------------------------------------------------
# Table 2: Radiomics Outcome OPC

T2_DOSE, T2_FRACTIONS, T2_PER_FRACTION = (
    "Total prescribed Radiation treatment dose", "Radiation treatment_number of fractions",
    "Radiation treatment_dose per fraction",
)  # fmt: skip
T2_COMBINATION = "Therapeutic Combination"
OPC_COLUMNS = (
    "TCIA code", "Gender", "Age at Diag", "Smoking status", "Smoking status (Packs-Years)",
    "Tumor laterality", "Cancer subsite of origin", "HPV Status", "T-category", "N-category",
    "AJCC Stage (7th edition)", T2_COMBINATION, T2_DOSE, T2_FRACTIONS, T2_PER_FRACTION,
)  # fmt: skip
# Therapeutic Combination (canonical, no spaces around "+") -> (concurrent, history).
COMBINATIONS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "concurrent chemoradiotherapy": (["chemotherapy"], ()),
    "induction chemotherapy+concurrent chemoradiotherapy": (
        ["chemotherapy"], ("induction chemotherapy",),
    ),
    "radiation alone": ([], ()),
    "induction chemotherapy+radiation alone": ([], ("induction chemotherapy",)),
}  # fmt: skip
LATERALITY = {
    "r": "right", "right": "right", "l": "left", "left": "left", "midline": "midline",
    "nos": None,
}  # fmt: skip
SMOKING_T2 = {"never": "never", "former": "former", "current": "current"}


def convert_opc_row(row: SourceRow, *, file: str, first_table: dict[str, SourceRow]) -> Case:
    values = row.values
    patient_id = values["TCIA code"]
    if patient_key(patient_id) in first_table:
        other = first_table[patient_key(patient_id)].values
        theirs = f"{other[T1_DOSE]} Gy/{other[T1_FRACTIONS]}"
        ours = f"{values[T2_DOSE]} Gy/{values[T2_FRACTIONS]}"
        raise RowExcluded(
            "duplicate_patient",
            f"also row {first_table[patient_key(patient_id)].number} of the treatment table, whose row is "
            f"used; course there {theirs}, here {ours}",
            column="TCIA code",
        )
    site_code, icd10 = code_site(
        "oropharynx",
        values["Cancer subsite of origin"],
        subsite_column="Cancer subsite of origin",
    )
    combination = re.sub(r"\s*\+\s*", "+", canonical(values[T2_COMBINATION]))
    if combination not in COMBINATIONS:
        raise RowExcluded(
            "unmapped_treatment",
            f"unknown combination '{values[T2_COMBINATION]}'",
            column=T2_COMBINATION,
        )
    concurrent, history = COMBINATIONS[combination]
    regimen = reference_regimen(
        values[T2_DOSE],
        values[T2_FRACTIONS],
        dose_column=T2_DOSE,
        fractions_column=T2_FRACTIONS,
        concurrent=concurrent,
        dose_per_fraction_text=values[T2_PER_FRACTION],
        dose_per_fraction_column=T2_PER_FRACTION,
    )
    smoking = lookup(
        values["Smoking status"], SMOKING_T2, column="Smoking status", what="smoking status"
    )
    pack_years_column = "Smoking status (Packs-Years)"
    facts = ClinicalFacts(
        site=site_code.site,
        location=site_code.location,
        age=age_years(values["Age at Diag"], column="Age at Diag"),
        sex=sex_code(values["Gender"], column="Gender"),
        laterality=lookup(
            values["Tumor laterality"], LATERALITY, column="Tumor laterality", what="laterality"
        ),
        t=tnm_category("T", values["T-category"], column="T-category"),
        n=tnm_category("N", values["N-category"], column="N-category"),
        stage=ajcc_stage(values["AJCC Stage (7th edition)"], column="AJCC Stage (7th edition)"),
        hpv=hpv_status(values["HPV Status"], column="HPV Status"),
        smoking=smoking,
        pack_years=(
            pack_years_text(values[pack_years_column], column=pack_years_column)
            if smoking
            else None
        ),
        history=history,
    )
    return imported_case(
        cohort=COHORT,
        institution=INSTITUTION,
        patient_id=patient_id,
        facts=facts,
        icd10=icd10,
        regimen=regimen,
        source_file=file,
        source_row=row.number,
    )


# ---------------------------------------------------------------------------------------------


def _find(folder: Path, columns: tuple[str, ...], what: str) -> Path | None:
    """The table's file in `folder`; None when no file there looks like it. A file with most
    of its columns but not all, or two files that both have them, is an error: a table the
    user gave is never skipped silently."""
    try:
        return find_table(folder, columns, what=what)
    except RadoncInputError:
        if scan_folder(folder, columns) == ([], None):
            return None
        raise


def import_hnscc_mdacc(path: str | Path) -> ImportResult:
    """Import the MD Anderson HNSCC tables: a folder with one or both, or one table's file."""
    path = Path(path)
    check_path(path)
    tables = ((TREATMENT_COLUMNS, "HNSCC treatment"), (OPC_COLUMNS, "HNSCC OPC radiomics"))
    if path.is_file():
        missing = [missing_columns(path, columns) for columns, _ in tables]
        treatment_path, opc_path = (None if lacks else path for lacks in missing)
        if treatment_path is None and opc_path is None:
            lacks, (_, what) = min(zip(missing, tables, strict=True), key=lambda pair: len(pair[0]))
            raise RadoncInputError(
                "neither HNSCC table (treatment characteristics, radiomics outcome OPC): "
                f"closest is the {what} table, missing column(s) {', '.join(map(repr, lacks))}",
                file=path,
                field=lacks[0],
            )
    else:
        treatment_path, opc_path = (_find(path, columns, what) for columns, what in tables)
        if treatment_path is None and opc_path is None:
            raise RadoncInputError(
                "no CSV file here has the columns of either HNSCC table "
                f"(Patient and Treatment Characteristics, Radiomics Outcome OPC){workbook_hint(path)}",
                file=path,
            )
    result = ImportResult(cohort=COHORT)
    first_table: dict[str, SourceRow] = {}
    if treatment_path is not None:
        treatment = read_table(treatment_path, TREATMENT_COLUMNS)
        convert_rows(
            result,
            treatment,
            lambda row: convert_treatment_row(row, file=treatment.name),
            id_column="TCIA code",
        )
        first_table = _rows_by_patient(treatment)
    if opc_path is not None:
        opc = read_table(opc_path, OPC_COLUMNS)
        convert_rows(
            result,
            opc,
            lambda row: convert_opc_row(row, file=opc.name, first_table=first_table),
            id_column="TCIA code",
        )
    return result


def _rows_by_patient(table: SourceTable) -> dict[str, SourceRow]:
    rows: dict[str, SourceRow] = {}
    for row in table.rows:
        patient_id = row.values.get("TCIA code")
        if patient_id and patient_key(patient_id) not in rows:
            rows[patient_key(patient_id)] = row
    return rows
