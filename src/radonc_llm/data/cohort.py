"""Curation: raw export -> curated cases, following the study's inclusion rules.

The study kept patients with a single diagnostic record and a clearly identifiable primary
treatment plan. Each rule is a named step; a patient that fails a step is excluded with a
reason code and every one of their rows goes to the exclusion ledger, so that each input row
ends either in a kept case (`source_rows`) or in the ledger.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from radonc_llm.data import icd10
from radonc_llm.data.cases import Case, RegimenStructured, write_cases
from radonc_llm.data.ingest import LedgerEntry, RawRow, RawTable, read_export
from radonc_llm.data.modality import modality_class
from radonc_llm.data.regimen import (
    check_prescription,
    normalize_dose,
    parse_regimen,
    render_regimen,
)
from radonc_llm.storage import write_json_atomic, write_jsonl_atomic

ACTIVE_STATUSES = ("approved", "completed")
# Intents that make a course a primary (curative) treatment when no plan is flagged primary.
CURATIVE_INTENTS = (
    "curative", "definitive", "radical", "adjuvant", "neoadjuvant", "salvage", "consolidat",
)  # fmt: skip


class Excluded(Exception):
    """A patient fails a curation step; `column` names the field that decided it, if one did."""

    def __init__(self, reason: str, detail: str, *, file: str | None = None,
                 row: int | None = None, column: str | None = None) -> None:  # fmt: skip
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.file = file
        self.row = row
        self.column = column


@dataclass
class PatientRecord:
    """Everything the export holds on one patient, and what the steps decided so far."""

    patient_id: str
    patient: RawRow | None = None
    diagnoses: list[RawRow] = field(default_factory=list)
    courses: list[RawRow] = field(default_factory=list)
    unreadable: list[LedgerEntry] = field(default_factory=list)
    other_spellings: list[str] = field(default_factory=list)  # ids that may be this patient's
    files: dict[str, str] = field(default_factory=dict)
    icd10: str | None = None
    plan: RawRow | None = None
    boost_plans: list[RawRow] = field(default_factory=list)
    modality: str | None = None
    regimen: RegimenStructured | None = None


def require_complete_record(record: PatientRecord) -> None:
    """Unreadable rows could hide a second diagnosis or another primary plan, and rows under
    another spelling of the patient's id could be theirs: exclude."""
    if record.other_spellings:
        others = ", ".join(f"'{other}'" for other in record.other_spellings)
        raise Excluded(
            "ambiguous_patient_id",
            f"patient_id '{record.patient_id}' is also written {others} (letter case, spaces, "
            "leading zeros or a decimal '.0' differ): whether they are one patient is not guessed",
        )
    if record.unreadable:
        first = record.unreadable[0]
        raise Excluded(
            "incomplete_record",
            f"{len(record.unreadable)} unreadable row(s), first: {first.file} row {first.row} "
            f"({first.reason})",
        )
    if record.patient is None:
        raise Excluded("no_patient_record", "patient_id not in the patients table")
    birth_year = record.patient.values["birth_year"]
    for diagnosis in record.diagnoses:
        date = diagnosis.values["diagnosis_date"]
        if date.year < birth_year or date > dt.date.today():
            problem = "before the birth year" if date.year < birth_year else "in the future"
            raise Excluded(
                "implausible_date",
                f"diagnosis date {date.isoformat()} is {problem} (born {birth_year})",
                file=record.files["diagnoses"], row=diagnosis.row, column="diagnosis_date",
            )  # fmt: skip


def require_single_diagnosis(record: PatientRecord) -> None:
    count = len(record.diagnoses)
    if count == 0:
        raise Excluded("no_diagnosis", "no diagnosis record")
    if count > 1:
        ids = ", ".join(row.values["diagnosis_id"] for row in record.diagnoses)
        raise Excluded("multiple_diagnoses", f"{count} diagnosis records ({ids})")


def require_billable_icd10(record: PatientRecord) -> None:
    diagnosis = record.diagnoses[0]
    recorded = diagnosis.values["icd10"]
    where = {"file": record.files["diagnoses"], "row": diagnosis.row, "column": "icd10"}
    try:
        # Systems often write the code with its description ("C61 - Malignant neoplasm of
        # prostate", "ICD-10: C50.911"): one code in the field is the code.
        code = icd10.code_in_field(recorded)
    except ValueError as exc:  # a field of several codes is never code-shaped: no letter hint
        raise Excluded("invalid_icd10", f"{exc}{_letter_for_digit(recorded)}", **where) from None
    if not icd10.is_billable(code):
        written = f"'{code}'" + ("" if code == recorded else f" (recorded as '{recorded}')")
        raise Excluded(
            "nonbillable_icd10", f"{written} is a category, not a billable code", **where
        )
    record.icd10 = icd10.to_dotted(code)


# "C5O.911", "C50.9l": a letter O or l typed where a digit belongs. Said, never corrected.
_LETTER_FOR_DIGIT = re.compile(r"(?<=[A-Za-z0-9])[Oo]|(?<=\d)[lI]|[Oo](?=\d)|[lI](?=\.?\d)")


def _letter_for_digit(recorded: str) -> str:
    code = recorded.strip()
    if len(code) > 8 or not re.fullmatch(r"[A-Za-z][0-9A-Za-z]{2}\.?[0-9A-Za-z]{0,4}", code):
        return ""
    letter = _LETTER_FOR_DIGIT.search(code[1:])
    if letter is None:
        return ""
    return f" (a letter '{letter.group()}' where a digit belongs?)"


def _is_curative(intent: str) -> bool:
    intent = intent.lower()
    return any(word in intent for word in CURATIVE_INTENTS)


def require_primary_plan(record: PatientRecord) -> None:
    """Drafts, cancelled and retired plans are ignored; a plan flagged primary wins, else a
    single approved/completed curative course; anything else is ambiguous."""
    active = [row for row in record.courses if row.values["status"] in ACTIVE_STATUSES]
    if not active:
        statuses = Counter(row.values["status"] for row in record.courses)
        detail = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())) or "none"
        raise Excluded("no_active_plan", f"no approved or completed plan (courses: {detail})")
    flagged = [row for row in active if row.values["primary_flag"]]
    if len(flagged) == 1:
        record.plan = flagged[0]
        return
    if len(flagged) > 1:
        plans = ", ".join(row.values["plan_id"] for row in flagged)
        raise Excluded("ambiguous_primary", f"{len(flagged)} plans flagged primary ({plans})")
    curative = [row for row in active if _is_curative(row.values["intent"])]
    if len(curative) == 1:
        record.plan = curative[0]
        return
    if not curative:
        raise Excluded(
            "no_primary_plan", f"{len(active)} active plan(s), none flagged primary or curative"
        )
    plans = ", ".join(row.values["plan_id"] for row in curative)
    raise Excluded(
        "ambiguous_primary", f"{len(curative)} curative plans and none flagged primary ({plans})"
    )


def _plan_location(record: PatientRecord, column: str) -> dict:
    return {"file": record.files["treatment_courses"], "row": record.plan.row, "column": column}


def require_mappable_modality(record: PatientRecord) -> None:
    recorded = record.plan.values["modality"]
    modality = modality_class(recorded)
    if modality is None:
        raise Excluded(
            "unmappable_modality",
            f"recorded modality '{recorded}' is not photon, proton, electron or brachytherapy",
            **_plan_location(record, "modality"),
        )
    record.modality = modality


def require_plausible_prescription(record: PatientRecord) -> None:
    plan = record.plan.values
    dose, fractions, unit = plan["dose"], plan["fractions"], plan["dose_unit"]
    if dose is None or fractions is None:
        column = "dose" if dose is None else "fractions"
        raise Excluded("missing_prescription", f"no {column} on the primary plan",
                       **_plan_location(record, column))  # fmt: skip
    try:
        dose_gy, dose_unit = normalize_dose(dose, unit)
    except ValueError as exc:
        raise Excluded("bad_dose_unit", str(exc), **_plan_location(record, "dose_unit")) from None
    described = _describe_plan(plan)
    problem = check_prescription(
        dose_gy,
        fractions,
        modality=record.modality,
        technique=described.technique,
        schedule=described.schedule,
    )
    if problem is not None:
        raise Excluded(
            "implausible_prescription",
            f"{dose:g} {unit} in {fractions} fractions: {problem}",
            **_plan_location(record, _prescription_column(problem)),
        )
    record.boost_plans = _boost_plans(record)
    boosts = [_boost_regimen(record, row) for row in record.boost_plans]
    record.regimen = described.model_copy(
        update={
            "dose_gy": dose_gy,
            "fractions": fractions,
            "dose_unit": dose_unit,
            "boost": " + ".join(render_regimen(boost) for boost in boosts) or described.boost,
        }
    )


def _prescription_column(problem: str) -> str:
    """The plan column a `check_prescription` problem is about: the fraction count or the dose."""
    return "fractions" if problem.startswith("number of fractions") else "dose"


def _boost_regimen(record: PatientRecord, row: RawRow) -> RegimenStructured:
    """A boost plan's regimen. A boost is part of the answer: its prescription must be as
    plausible as the plan's."""
    plan = row.values
    dose_gy, dose_unit = normalize_dose(plan["dose"], plan["dose_unit"])
    described = _describe_plan(plan)
    problem = check_prescription(
        dose_gy,
        plan["fractions"],
        modality=plan["modality"],
        technique=described.technique,
        schedule=described.schedule,
    )
    if problem is not None:
        raise Excluded(
            "implausible_prescription",
            f"boost plan {plan['plan_id']}: {plan['dose']:g} {plan['dose_unit']} in "
            f"{plan['fractions']} fractions: {problem}",
            file=record.files["treatment_courses"], row=row.row,
            column=_prescription_column(problem),
        )  # fmt: skip
    return RegimenStructured(
        dose_gy=dose_gy, fractions=plan["fractions"], dose_unit=dose_unit,
        technique=described.technique,
    )  # fmt: skip


def _describe_plan(plan: dict) -> RegimenStructured:
    """Technique, schedule and drugs as the parser reads them from the recorded free text."""
    text = plan["technique"]
    if plan["concurrent"]:
        text = f"{text} with concurrent {plan['concurrent']}"
    return parse_regimen(text)


def _boost_plans(record: PatientRecord) -> list[RawRow]:
    """Sequential boosts: other active plans of the primary plan's course that start after it.

    A plan of the same course that starts earlier is a prior phase (e.g. pelvic EBRT before a
    cervix HDR boost); it stays out of the answer and is recorded in the ledger.
    """
    primary = record.plan.values
    boosts = []
    for row in record.courses:
        plan = row.values
        if row is record.plan or plan["course_id"] != primary["course_id"]:
            continue
        if plan["status"] not in ACTIVE_STATUSES or plan["dose"] is None or not plan["fractions"]:
            continue
        starts_after = (
            plan["start_date"] is not None
            and primary["start_date"] is not None
            and plan["start_date"] > primary["start_date"]
        )
        try:
            normalize_dose(plan["dose"], plan["dose_unit"])
        except ValueError:
            continue
        if starts_after:
            boosts.append(row)
    return sorted(boosts, key=lambda row: row.values["start_date"])


STEPS: list[tuple[str, Callable[[PatientRecord], None]]] = [
    ("complete_record", require_complete_record),
    ("single_diagnosis", require_single_diagnosis),
    ("billable_icd10", require_billable_icd10),
    ("primary_plan", require_primary_plan),
    ("mappable_modality", require_mappable_modality),
    ("plausible_prescription", require_plausible_prescription),
]


def apply_steps(record: PatientRecord) -> tuple[str, Excluded] | None:
    """Run the steps in order; the first that excludes the patient and why, or None if kept."""
    for name, step in STEPS:
        try:
            step(record)
        except Excluded as why:
            return name, why
    return None


@dataclass
class CurationResult:
    cases: list[Case]
    ledger: list[LedgerEntry]
    funnel: list[dict]
    input_rows: dict[str, int]  # table -> number of data rows read
    files: dict[str, str]  # table -> file name, as the ledger names it

    @property
    def n_input_rows(self) -> int:
        return sum(self.input_rows.values())


def group_by_patient(
    tables: dict[str, RawTable],
) -> tuple[dict[str, PatientRecord], list[LedgerEntry]]:
    """Gather each patient's rows, and the ledger entries that concern no patient's record."""
    records: dict[str, PatientRecord] = {}
    files = {name: table.path.name for name, table in tables.items()}

    def record_for(patient_id: str) -> PatientRecord:
        if patient_id not in records:
            records[patient_id] = PatientRecord(patient_id=patient_id, files=files)
        return records[patient_id]

    # Rows that are only recorded: unreadable rows with no patient_id, and exact repeats of a
    # row that stays (a repeat hides nothing, so it does not make a record incomplete).
    recorded_only: list[LedgerEntry] = []
    for name, table in tables.items():
        for row in table.rows:
            record = record_for(row.values["patient_id"])
            if name == "patients":
                record.patient = row
            elif name == "diagnoses":
                record.diagnoses.append(row)
            else:
                record.courses.append(row)
        for entry in table.ledger:
            if entry.patient_id is None or entry.reason == "duplicate_row":
                recorded_only.append(entry)
            else:
                record_for(entry.patient_id).unreadable.append(entry)
    for spellings in _spellings_of_one_id(records).values():
        for patient_id in spellings:
            records[patient_id].other_spellings = [s for s in spellings if s != patient_id]
    return records, recorded_only


def _id_key(patient_id: str) -> str:
    """An id as a person reading it would compare it: "ro 00123" and "RO123" look the same, and
    so do "123.0" and "123" (a number id a spreadsheet or pandas wrote as a decimal)."""
    key = re.sub(r"(?<!\d)0+(?=\d)", "", "".join(patient_id.split()).casefold())
    return re.sub(r"^(\d+)\.0+$", r"\1", key)


def _spellings_of_one_id(records: dict[str, PatientRecord]) -> dict[str, list[str]]:
    """Groups of distinct patient ids that differ only in letter case, spaces, leading zeros or
    a decimal ".0" (an id typed by hand, or read as a number by a spreadsheet)."""
    groups: defaultdict[str, list[str]] = defaultdict(list)
    for patient_id in records:
        groups[_id_key(patient_id)].append(patient_id)
    return {key: ids for key, ids in groups.items() if len(ids) > 1}


def _rows_of(record: PatientRecord) -> list[tuple[str, RawRow]]:
    rows = [("patients", record.patient)] if record.patient else []
    rows += [("diagnoses", row) for row in record.diagnoses]
    rows += [("treatment_courses", row) for row in record.courses]
    return rows


def build_case(record: PatientRecord, birth_year: int) -> Case:
    diagnosis = record.diagnoses[0].values
    plan = record.plan.values
    return Case(
        case_id=record.patient_id,
        patient_id=record.patient_id,
        diagnosis_text=diagnosis["diagnosis_text"],
        regimen=render_regimen(record.regimen),
        modality=record.modality,
        icd10=record.icd10,
        regimen_structured=record.regimen,
        site=_site_for(record.icd10),
        sex=record.patient.values["sex"],
        age_at_diagnosis=diagnosis["diagnosis_date"].year - birth_year,
        intent=plan["intent"] or None,
        source={
            "diagnosis_id": diagnosis["diagnosis_id"],
            "course_id": plan["course_id"],
            "plan_id": plan["plan_id"],
            "boost_plan_ids": [row.values["plan_id"] for row in record.boost_plans],
            "recorded_modality": plan["modality"],
            "recorded_icd10": diagnosis["icd10"],
        },
        source_rows={
            "patients": [record.patient.row],
            "diagnoses": [record.diagnoses[0].row],
            "treatment_courses": [row.row for row in (record.plan, *record.boost_plans)],
        },
    )


def _site_for(code: str) -> str:
    from radonc_llm.data.sites import site_for_icd10

    return site_for_icd10(code)


def curate_export(
    raw_dir: str | Path, *, encoding: str = "utf-8", date_order: str | None = None
) -> CurationResult:
    """Apply the curation steps to every patient of a raw export (CSV/JSONL text saved in
    `encoding`; dates written with numbers only read in `date_order`, "dmy" or "mdy")."""
    tables = read_export(raw_dir, encoding=encoding, date_order=date_order)
    records, ledger = group_by_patient(tables)
    ledger = list(ledger)
    remaining = len(records)
    funnel = [{"step": "patients_in_export", "patients": remaining, "excluded": 0}]
    excluded_at: Counter[str] = Counter()
    cases: list[Case] = []
    for record in records.values():
        failed = apply_steps(record)
        if failed is not None:
            step_name, why = failed
            excluded_at[step_name] += 1
            ledger.extend(_exclusion_entries(record, step_name, why))
            continue
        cases.append(build_case(record, record.patient.values["birth_year"]))
        ledger.extend(_unselected_course_entries(record))
    for step_name, _ in STEPS:
        remaining -= excluded_at[step_name]
        funnel.append(
            {"step": step_name, "patients": remaining, "excluded": excluded_at[step_name]}
        )
    return CurationResult(
        cases=cases,
        ledger=ledger,
        funnel=funnel,
        input_rows={name: table.n_input_rows for name, table in tables.items()},
        files={name: table.path.name for name, table in tables.items()},
    )


def _exclusion_entries(record: PatientRecord, step: str, why: Excluded) -> list[LedgerEntry]:
    entries = list(record.unreadable)
    for table, row in _rows_of(record):
        file = record.files[table]
        decided_here = why.file == file and why.row == row.row
        entries.append(
            LedgerEntry(
                patient_id=record.patient_id,
                file=file,
                row=row.row,
                column=why.column if decided_here else None,
                reason=why.reason,
                detail=f"patient excluded at step '{step}': {why.detail}",
            )
        )
    return entries


def _unselected_course_entries(record: PatientRecord) -> list[LedgerEntry]:
    return [
        LedgerEntry(
            patient_id=record.patient_id,
            file=record.files["treatment_courses"],
            row=row.row,
            column="status",
            reason="not_primary_plan",
            detail=f"{row.values['status']} plan {row.values['plan_id']} is not the primary plan "
            f"(primary: {record.plan.values['plan_id']})",
        )
        for row in record.courses
        if row is not record.plan and not any(row is boost for boost in record.boost_plans)
    ]


def write_curation(result: CurationResult, out_dir: str | Path) -> None:
    """Write cases.jsonl, excluded.jsonl and funnel.json (all atomic)."""
    out_dir = Path(out_dir)
    write_cases(out_dir / "cases.jsonl", result.cases)
    write_jsonl_atomic(out_dir / "excluded.jsonl", (entry.as_dict() for entry in result.ledger))
    reasons = Counter(entry.reason for entry in result.ledger)
    write_json_atomic(
        out_dir / "funnel.json",
        {
            "steps": result.funnel,
            "kept": len(result.cases),
            "input_rows": result.n_input_rows,
            "ledger_rows": len(result.ledger),
            "ledger_reasons": dict(reasons.most_common()),
        },
    )


def unaccounted_rows(result: CurationResult) -> list[str]:
    """The invariant, checked: each input row is in exactly one kept case or ledger entry.

    Returns the problems found ("patients.csv row 7: missing", "... counted 2 times"); empty
    when every row is accounted for exactly once.
    """
    counts: Counter[tuple[str, int]] = Counter()
    for case in result.cases:
        for table, rows in case.source_rows.items():  # type: ignore[attr-defined]
            for row in rows:
                counts[(result.files[table], row)] += 1
    for entry in result.ledger:
        counts[(entry.file, entry.row)] += 1
    problems = []
    for table, n_rows in result.input_rows.items():
        file = result.files[table]
        for row in range(1, n_rows + 1):
            seen = counts.pop((file, row), 0)
            if seen != 1:
                problems.append(
                    f"{file} row {row}: " + ("missing" if seen == 0 else f"counted {seen} times")
                )
    problems += [f"{file} row {row}: not an input row" for (file, row) in counts]
    return problems
