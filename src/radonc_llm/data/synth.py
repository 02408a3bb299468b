"""A synthetic raw export (ARIA/MOSAIQ-style query result) with the mess real exports have.

`synthesize(config)` draws patients from the site table (`sites.py`), writes each one a
diagnosis note that states what decides the regimen but never the answer, and records the
prescription in a treatment-course row the way record-and-verify systems export it. Then it
injects the faults that make curation necessary, at the rates of `SynthConfig`, at most one
excluding fault per patient:

| fault                  | what the export holds                          | curation (cohort.py)     |
|------------------------|------------------------------------------------|--------------------------|
| multiple_diagnoses     | a second diagnosis record                      | multiple_diagnoses       |
| no_diagnosis           | patient and courses, no diagnosis row          | no_diagnosis             |
| no_patient_record      | diagnosis and courses, no patients row         | no_patient_record        |
| invalid_icd10          | "C61.9", "C5O.412" (letter O)                  | invalid_icd10            |
| nonbillable_icd10      | the parent category, "C50.41", "C34"           | nonbillable_icd10        |
| no_course              | no treatment course at all                     | no_active_plan           |
| inactive_courses_only  | only draft/cancelled/retired plans             | no_active_plan           |
| two_flagged_primaries  | two active plans flagged primary               | ambiguous_primary        |
| unflagged_candidates   | two active curative plans, none flagged        | ambiguous_primary        |
| palliative_unflagged   | one active plan, not flagged, not curative     | no_primary_plan          |
| unmappable_modality    | "TBD", "hyperthermia", "", "photon or proton"  | unmappable_modality      |
| unit_error             | 7000 recorded as Gy, 60 recorded as cGy        | implausible_prescription |
| missing_prescription   | empty dose or fractions                        | missing_prescription     |
| bad_number ... bad_birth_year | unreadable rows (see SynthConfig)       | incomplete_record        |

Harmless mess, kept by curation: dotless and lower-case codes, cGy units, Y/N, 1/0 and
true/false flags, draft and cancelled plans, re-planned courses (a retired plan and its
approved successor), sequential boost plans, later palliative courses, exact duplicate rows.

The answers (site, regimen, modality, code, expected curation outcome) stay in memory as
`SynthExport.truth` for tests and the summary; they are never written to the export.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

from pydantic import BaseModel, ConfigDict, Field, model_validator

from radonc_llm.data import vocabulary as vocab
from radonc_llm.data.sites import (
    CURATIVE_INTENTS,
    RECORDED_MODALITY,
    SITES,
    UNMAPPABLE_MODALITY,
    Course,
    Regimen,
    Site,
    SiteCode,
)
from radonc_llm.storage import atomic_open

PATIENT_COLUMNS = ("patient_id", "birth_year", "sex")
DIAGNOSIS_COLUMNS = ("patient_id", "diagnosis_id", "diagnosis_date", "icd10", "diagnosis_text")
COURSE_COLUMNS = (
    "patient_id", "course_id", "plan_id", "status", "intent", "primary_flag", "modality",
    "dose", "dose_unit", "fractions", "technique", "target", "concurrent", "start_date",
)  # fmt: skip
TABLE_COLUMNS = {
    "patients": PATIENT_COLUMNS,
    "diagnoses": DIAGNOSIS_COLUMNS,
    "treatment_courses": COURSE_COLUMNS,
}

# Fault -> the reason code curation (cohort.py) gives the excluded patient.
FAULT_REASONS: dict[str, str] = {
    "multiple_diagnoses": "multiple_diagnoses",
    "no_diagnosis": "no_diagnosis",
    "no_patient_record": "no_patient_record",
    "invalid_icd10": "invalid_icd10",
    "nonbillable_icd10": "nonbillable_icd10",
    "no_course": "no_active_plan",
    "inactive_courses_only": "no_active_plan",
    "two_flagged_primaries": "ambiguous_primary",
    "unflagged_candidates": "ambiguous_primary",
    "palliative_unflagged": "no_primary_plan",
    "unmappable_modality": "unmappable_modality",
    "unit_error": "implausible_prescription",
    "missing_prescription": "missing_prescription",
    "bad_number": "incomplete_record",
    "bad_date": "incomplete_record",
    "unknown_status": "incomplete_record",
    "missing_value": "incomplete_record",
    "broken_encoding": "incomplete_record",
    "conflicting_duplicate": "incomplete_record",
    "bad_birth_year": "incomplete_record",
}


class SynthConfig(BaseModel):
    """Size, seed and mess rates of a synthetic export.

    Fault rates are shares of all patients; each patient gets at most one excluding fault, so
    they must sum to less than 1. The defaults make curation keep about half the patients, as
    the study did (7,903 of 15,724).
    """

    model_config = ConfigDict(extra="forbid")

    patients: int = Field(
        15724, ge=1, le=1_000_000, description="Number of patients; the study had 15,724."
    )
    seed: int = Field(0, description="Seed of the generator: the same seed, the same export.")

    # Excluding faults (share of patients).
    multiple_diagnoses: float = Field(0.075, ge=0, le=1, description="A second diagnosis row.")
    no_diagnosis: float = Field(0.035, ge=0, le=1, description="No diagnosis row.")
    no_patient_record: float = Field(0.012, ge=0, le=1, description="No patients row.")
    invalid_icd10: float = Field(0.03, ge=0, le=1, description="Code not in ICD-10-CM.")
    nonbillable_icd10: float = Field(0.045, ge=0, le=1, description="Category, not billable.")
    no_course: float = Field(0.05, ge=0, le=1, description="No treatment course at all.")
    inactive_courses_only: float = Field(
        0.03, ge=0, le=1, description="Only draft, cancelled or retired plans."
    )
    two_flagged_primaries: float = Field(
        0.03, ge=0, le=1, description="Two active plans flagged primary."
    )
    unflagged_candidates: float = Field(
        0.035, ge=0, le=1, description="Two active curative plans, none flagged primary."
    )
    palliative_unflagged: float = Field(
        0.015, ge=0, le=1, description="One active plan, unflagged and not curative."
    )
    unmappable_modality: float = Field(
        0.035, ge=0, le=1, description="Primary plan modality like 'TBD' or 'hyperthermia'."
    )
    unit_error: float = Field(
        0.025, ge=0, le=1, description="Dose in the wrong unit (7000 Gy, 60 cGy)."
    )
    missing_prescription: float = Field(
        0.008, ge=0, le=1, description="Empty dose or fractions on the primary plan."
    )
    bad_number: float = Field(0.015, ge=0, le=1, description="'thirty' fractions, 'see plan' dose.")
    bad_date: float = Field(0.015, ge=0, le=1, description="'2021-13-45', '12/03/2020'.")
    unknown_status: float = Field(0.012, ge=0, le=1, description="'pending?', 'on hold'.")
    missing_value: float = Field(0.008, ge=0, le=1, description="Empty note, code or plan id.")
    broken_encoding: float = Field(
        0.01, ge=0, le=1, description="A cp1252-encoded field: bytes that are not UTF-8."
    )
    conflicting_duplicate: float = Field(
        0.008, ge=0, le=1, description="Two different rows with the same id."
    )
    bad_birth_year: float = Field(0.003, ge=0, le=1, description="'n/a', '19566'.")

    # Harmless mess (share of patients or rows; curation keeps these patients).
    dotless_icd10: float = Field(0.25, ge=0, le=1, description="Code written without its dot.")
    lowercase_icd10: float = Field(0.08, ge=0, le=1, description="Code in lower case.")
    cgy_units: float = Field(0.2, ge=0, le=1, description="Plans recorded in cGy.")
    unflagged_primary: float = Field(
        0.25, ge=0, le=1, description="Single curative plan left unflagged (found by intent)."
    )
    extra_draft: float = Field(0.1, ge=0, le=1, description="An extra draft plan.")
    extra_cancelled: float = Field(0.05, ge=0, le=1, description="An extra cancelled course.")
    replanned: float = Field(
        0.06, ge=0, le=1, description="A retired plan replaced by the approved one."
    )
    later_palliative: float = Field(
        0.03, ge=0, le=1, description="A later palliative course beside a flagged primary."
    )
    exact_duplicate_row: float = Field(
        0.015, ge=0, le=1, description="A row exported twice, identical (same id)."
    )
    typo_rate: float = Field(
        0.012, ge=0, le=0.2, description="Share of words (5+ letters) with a typo in notes."
    )

    @model_validator(mode="after")
    def _faults_leave_room(self) -> SynthConfig:
        total = sum(getattr(self, name) for name in FAULT_REASONS)
        if total >= 1:
            raise ValueError(
                f"fault rates sum to {total:.3f}; they must sum to less than 1 "
                "(each patient gets at most one excluding fault)"
            )
        return self

    def fault_rates(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in FAULT_REASONS}


@dataclass(slots=True)
class PatientTruth:
    """What the export does not say: the answers and the expected curation outcome."""

    patient_id: str
    site: str
    regimen: str  # Regimen.key
    icd10: str  # dotted, as the note implies it
    modality: str
    fault: str | None  # None: curation should keep the patient
    duplicate_row: bool = False  # an exact repeat of one of the patient's rows

    @property
    def expected_reason(self) -> str | None:
        return FAULT_REASONS[self.fault] if self.fault else None


@dataclass
class SynthExport:
    """The three tables as rows of text cells, plus the hidden truth (never written)."""

    patients: list[list[str]] = field(default_factory=list)
    diagnoses: list[list[str]] = field(default_factory=list)
    treatment_courses: list[list[str]] = field(default_factory=list)
    truth: list[PatientTruth] = field(default_factory=list)

    def tables(self) -> dict[str, list[list[str]]]:
        return {
            "patients": self.patients,
            "diagnoses": self.diagnoses,
            "treatment_courses": self.treatment_courses,
        }


@dataclass(frozen=True)
class SynthSummary:
    """What a run wrote and what curation should make of it."""

    out_dir: Path
    rows: dict[str, int]
    patients: int
    faults: dict[str, int]
    duplicate_rows: int
    expected_kept: int  # exact duplicate rows dropped, their patients kept
    expected_kept_modality: dict[str, int]
    sites: int

    @property
    def expected_kept_share(self) -> float:
        return self.expected_kept / self.patients if self.patients else 0.0


# --- compiled fact templates -------------------------------------------------------------------

_RANGE = re.compile(r"\{(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\}|\{side\}")
_Part = str | tuple


def _compile_alternative(text: str) -> tuple[_Part, ...]:
    parts: list[_Part] = []
    position = 0
    for match in _RANGE.finditer(text):
        parts.append(text[position : match.start()])
        if match.group(0) == "{side}":
            parts.append(("side",))
        else:
            low, high = match.group(1), match.group(2)
            decimals = len(low.split(".")[1]) if "." in low else 0
            if decimals:
                parts.append(("float", float(low), float(high), decimals))
            else:
                parts.append(("int", int(low), int(high)))
        position = match.end()
    parts.append(text[position:])
    return tuple(part for part in parts if part != "")


def _compile_fact(fact: str) -> tuple[tuple[_Part, ...], ...]:
    return tuple(_compile_alternative(alternative) for alternative in fact.split("|"))


@dataclass(frozen=True)
class _Variant:
    """A regimen with everything precomputed that a patient draw needs."""

    site: Site
    regimen: Regimen
    facts: tuple[tuple[tuple[_Part, ...], ...], ...]
    codes_by_sex: dict[str, tuple[tuple[SiteCode, ...], tuple[float, ...]]]
    age: tuple[int, int, int]
    female: float
    histology: tuple[tuple[str, str], ...]
    recorded: tuple[str, ...]
    needs_flag: bool  # extra active plans or a non-curative intent: must be flagged primary


def _recorded_key(modality: str, technique: str, recorded: str | None) -> str:
    if recorded:
        return recorded
    if modality == "photon":
        return "photon_stereotactic" if technique in ("SBRT", "SRS") else "photon"
    if modality == "brachytherapy":
        return "brachytherapy_ldr" if technique.startswith("LDR") else "brachytherapy_hdr"
    return modality


def _cumulative(weights: list[float]) -> tuple[float, ...]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return tuple(out)


def _build_variants() -> tuple[tuple[_Variant, ...], tuple[float, ...]]:
    variants: list[_Variant] = []
    weights: list[float] = []
    for site in SITES:
        variant_total = sum(r.weight for r in site.regimens)
        for regimen in site.regimens:
            allowed = [c for c in site.codes if regimen.codes is None or c.code in regimen.codes]
            codes_by_sex = {}
            for sex in ("F", "M"):
                fitting = tuple(c for c in allowed if c.sex in (None, sex))
                codes_by_sex[sex] = (fitting, _cumulative([c.weight for c in fitting]))
            female = site.female if regimen.female is None else regimen.female
            facts = tuple(_compile_fact(f) for f in (*regimen.facts, *site.facts))
            variants.append(
                _Variant(
                    site=site,
                    regimen=regimen,
                    facts=facts,
                    codes_by_sex=codes_by_sex,
                    age=regimen.age or site.age,
                    female=female,
                    histology=regimen.histology or site.histology,
                    recorded=RECORDED_MODALITY[
                        _recorded_key(regimen.modality, regimen.technique, regimen.recorded)
                    ],
                    needs_flag=bool(regimen.extra) or regimen.intent not in CURATIVE_INTENTS,
                )
            )
            weights.append(site.weight * regimen.weight / variant_total)
    return tuple(variants), _cumulative(weights)


_VARIANTS, _VARIANT_CUM = _build_variants()


def _pick(rng: Random, options: tuple | list):
    return options[int(rng.random() * len(options))]


def _pick_weighted(rng: Random, options: tuple, cumulative: tuple[float, ...]):
    target = rng.random() * cumulative[-1]
    low, high = 0, len(cumulative) - 1
    while low < high:  # bisect: first cumulative weight above target
        mid = (low + high) // 2
        if cumulative[mid] > target:
            high = mid
        else:
            low = mid + 1
    return options[low]


def _render(parts: tuple[_Part, ...], rng: Random, side: str) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif part[0] == "int":
            out.append(str(part[1] + int(rng.random() * (part[2] - part[1] + 1))))
        elif part[0] == "float":
            value = part[1] + rng.random() * (part[2] - part[1])
            out.append(f"{value:.{part[3]}f}")
        else:
            out.append(side)
    return "".join(out)


# --- notes --------------------------------------------------------------------------------------

_STYLES = ("terse", "consult", "problem_list", "referral", "assessment", "mdt")
_STYLE_CUM = _cumulative([0.3, 0.22, 0.15, 0.1, 0.13, 0.1])
_ABBREVIATION_RATE = {
    "terse": 0.7, "consult": 0.1, "problem_list": 0.4, "referral": 0.03, "assessment": 0.35,
    "mdt": 0.5,
}  # fmt: skip
_TERSE_STYLES = frozenset({"terse", "problem_list", "assessment", "mdt"})


@dataclass(slots=True)
class _Patient:
    """The drawn patient: who, what, and the note's parts."""

    variant: _Variant
    code: SiteCode
    sex: str
    age: int
    side: str  # "R"/"L": the code's side, or one drawn for the note


def _draw_patient(rng: Random) -> _Patient:
    variant = _pick_weighted(rng, _VARIANTS, _VARIANT_CUM)
    sex = "F" if rng.random() < variant.female else "M"
    codes, cumulative = variant.codes_by_sex[sex]
    if not codes:  # a sex the variant's codes do not allow (e.g. male left-only IMN variant)
        sex = "F" if sex == "M" else "M"
        codes, cumulative = variant.codes_by_sex[sex]
    code = _pick_weighted(rng, codes, cumulative)
    low, high, mode = variant.age
    age = round(rng.triangular(low, high, mode))
    side = code.side or ("R" if rng.random() < 0.5 else "L")
    return _Patient(variant, code, sex, age, side)


def _diagnosis_phrase(patient: _Patient, rng: Random, *, terse: bool) -> str:
    variant = patient.variant
    site_name = variant.site.name
    histology = patient.code.histology or variant.histology
    hist, hist_short = _pick(rng, histology)
    templates = vocab.DX_TEMPLATES.get(site_name, vocab.DX_DEFAULT)
    template = _pick(rng, templates["short" if terse else "full"])
    side = vocab.side_word(patient.side, terse=terse, rng=rng)
    sub = _pick(rng, vocab.SUBSITE_PHRASES[patient.code.code]).replace("{side}", side)
    phrase = template.replace("{hist}", hist).replace("{hs}", hist_short).replace("{sub}", sub)
    if "{primary}" in phrase:
        phrase = phrase.replace("{primary}", _pick(rng, variant.site.primary))
    return phrase


def _facts(patient: _Patient, rng: Random, *, terse: bool) -> list[str]:
    side = vocab.side_word(patient.side, terse=terse, rng=rng)
    facts = []
    for alternatives in patient.variant.facts:
        text = _render(_pick(rng, alternatives), rng, side)
        if text:
            facts.append(text)
    if len(facts) > 2 and rng.random() < 0.3:  # notes do not keep one order
        i = 1 + int(rng.random() * (len(facts) - 2))
        facts[i], facts[i + 1] = facts[i + 1], facts[i]
    return facts


def _plan_phrase(patient: _Patient, rng: Random, *, terse: bool) -> str:
    regimen = patient.variant.regimen
    form = "short" if terse else "full"
    if regimen.concurrent and regimen.intent in ("definitive", "curative") and rng.random() < 0.6:
        return _pick(rng, vocab.CHEMORT_PHRASES[form])
    return _pick(rng, vocab.INTENT_PHRASES[regimen.intent][form])


def _sentences(facts: list[str], rng: Random) -> str:
    """Facts grouped into sentences of one to three."""
    out, i = [], 0
    while i < len(facts):
        size = 1 + int(rng.random() * 3)
        out.append(_capital(", ".join(facts[i : i + size])))
        i += size
    return ". ".join(out) + "."


_LOWER_WORD = re.compile(r"[a-z]+\b")


def _capital(text: str) -> str:
    """Capitalise a sentence start, but never 'pT2', 'eGFR' or 'mFOLFIRINOX'."""
    return text[0].upper() + text[1:] if _LOWER_WORD.match(text) else text


def write_note(patient: _Patient, rng: Random, *, typo_rate: float = 0.012) -> str:
    """One diagnosis note in one of six styles, with shorthand, casing and a few typos."""
    style = _pick_weighted(rng, _STYLES, _STYLE_CUM)
    terse = style in _TERSE_STYLES
    dx = _diagnosis_phrase(patient, rng, terse=terse and rng.random() < 0.75)
    facts = _facts(patient, rng, terse=terse)
    plan = _plan_phrase(patient, rng, terse=terse)
    bare_plan = plan[5:] if plan.startswith("plan ") else plan  # after a "Plan:" label
    age, sex = patient.age, patient.sex
    if style == "terse":
        head = vocab.age_sex_terse(age, sex, rng)
        joiner = _pick(rng, (", ", "; ", ", "))
        form = rng.random()
        if form < 0.5:
            note = f"{head} w/ {dx}{joiner}{joiner.join(facts)}{joiner}{plan}"
        elif form < 0.8:
            note = f"{head} {dx}. {'. '.join(facts)}. {_capital(plan)}"
        else:
            note = f"{head}, {dx} - {joiner.join(facts)} - {plan}"
    elif style == "consult":
        intro = _pick(rng, ("This is a ", "Patient is a ", "Pt is a ", "We saw a "))
        lead = _pick(rng, ("with ", "with newly diagnosed ", "with biopsy-proven ", "with "))
        pron = vocab.pronoun(sex)
        seen = _pick(rng, (f"{pron} is seen {plan}.", f"Seen today {plan}.",
                           f"{pron} attends {plan}."))  # fmt: skip
        note = f"{intro}{vocab.age_sex_full(age, sex, rng)} {lead}{dx}. {_sentences(facts, rng)} {seen}"
    elif style == "problem_list":
        header = _pick(rng, ("Problem list:", "PROBLEMS:", "Dx:", "Oncology problem list -"))
        bullet = _pick(rng, ("{n}. ", "{n}) ", "- ", "# "))
        separator = _pick(rng, ("\n", "\n", " ", "; "))
        first = dx
        if rng.random() < 0.35:
            hist = _pick(rng, patient.code.histology or patient.variant.histology)[0]
            first = f"{patient.code.title} ({hist})"
        items = [first, *facts]
        lines = [bullet.replace("{n}", str(n)) + item for n, item in enumerate(items, start=1)]
        demo = _pick(rng, (f"Age {age}, {'male' if sex == 'M' else 'female'}.",
                           f"{age}{sex}.", f"{age} y/o {sex}."))  # fmt: skip
        after_header = separator if separator == "\n" else " "
        note = f"{header}{after_header}{separator.join(lines)}{separator}{demo} Plan: {bare_plan}."
    elif style == "referral":
        if age < 16:
            who = f"{_pick(rng, 'ABCDEFGHJKLMNPRSTW')}., a {vocab.age_sex_full(age, sex, rng)}"
        else:
            title = "Mr" if sex == "M" else _pick(rng, ("Mrs", "Ms"))
            who = (
                f"{title} {_pick(rng, 'ABCDEFGHJKLMNPRSTW')}, a {vocab.age_sex_full(age, sex, rng)}"
            )
        greeting = _pick(rng, (f"Dear Dr {_pick(rng, vocab.REFERRERS)},", "Dear Colleague,"))
        ask = _pick(rng, ("I would be grateful for your opinion", "We would value your advice",
                          "Please see this patient"))  # fmt: skip
        sign = _pick(rng, ("Kind regards,", "Yours sincerely,", "Many thanks,"))
        note = (
            f"{greeting}\nThank you for seeing {who} with {dx}. {_sentences(facts, rng)} "
            f"{ask} {plan}.\n{sign}\nDr {_pick(rng, vocab.REFERRERS)}"
        )
    elif style == "assessment":
        head = _pick(rng, ("HPI:", "Assessment:", "Impression:", "S/O:"))
        tail = _pick(rng, ("A/P:", "Plan:", "Rec:"))
        demo = vocab.age_sex_terse(age, sex, rng)
        note = f"{head} {demo} {dx}. {'. '.join(facts)}. {tail} {bare_plan}."
    else:  # mdt
        head = _pick(rng, ("MDT:", "Tumour board:", "MDM summary:", "MDT discussion -"))
        outcome = _pick(rng, ("Outcome:", "Recommendation:", "Agreed:"))
        demo = vocab.age_sex_terse(age, sex, rng)
        note = f"{head} {demo}, {dx}. {'; '.join(facts)}. {outcome} {plan}."
    note = vocab.abbreviate(note, rng, _ABBREVIATION_RATE[style])
    casing = rng.random()
    if casing < 0.04:
        note = note.lower()
    elif casing < 0.06:
        note = note.upper()
    return vocab.add_typos(note, rng, typo_rate)


# --- export rows ----------------------------------------------------------------------------------

_FLAGS = (("Y", "N"), ("1", "0"), ("true", "false"))
_NUMBER_WORDS = {
    1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 8: "eight", 10: "ten",
    15: "fifteen", 20: "twenty", 25: "twenty-five", 28: "twenty-eight", 30: "thirty",
    33: "thirty-three", 35: "thirty-five",
}  # fmt: skip
_UNKNOWN_STATUSES = ("pending?", "on hold", "In Review", "planned?", "unapproved", "hold")
_PLAN_START = dt.date(2012, 1, 1).toordinal()
_PLAN_SPAN = dt.date(2024, 6, 30).toordinal() - _PLAN_START


def _format_code(code: str, rng: Random, config: SynthConfig) -> str:
    if rng.random() < config.dotless_icd10:
        code = code.replace(".", "")
    if rng.random() < config.lowercase_icd10:
        code = code.lower()
    return code


def _format_dose(dose_gy: float, unit: str, rng: Random, config: SynthConfig) -> tuple[str, str]:
    if unit == "Gy" and rng.random() < config.cgy_units:
        return str(round(dose_gy * 100)), "cGy"
    if rng.random() < 0.2 and abs(dose_gy * 10 - round(dose_gy * 10)) < 1e-9:
        return f"{dose_gy:.1f}", unit
    return f"{dose_gy:g}", unit


def _iso(ordinal: int) -> str:
    return dt.date.fromordinal(ordinal).isoformat()


class _Ids:
    """Export identifiers: unique ids for diagnoses, courses and plans."""

    def __init__(self) -> None:
        self.diagnosis = 0
        self.course = 0
        self.plan = 0

    def next_diagnosis(self) -> str:
        self.diagnosis += 1
        return f"DX{self.diagnosis:08d}"

    def next_course(self) -> str:
        self.course += 1
        return f"CRS{self.course:07d}"

    def next_plan(self, tag: str) -> str:
        self.plan += 1
        return f"{tag}-{self.plan:07d}"


def _course_row(
    patient_id: str, course_id: str, plan_id: str, *, status: str, intent: str, primary: bool,
    modality: str, dose_gy: float, unit: str, fractions: int, technique: str, target: str,
    concurrent: str, start: int, rng: Random, config: SynthConfig,
) -> list[str]:  # fmt: skip
    dose, dose_unit = _format_dose(dose_gy, unit, rng, config)
    flag = _pick(rng, _FLAGS)[0 if primary else 1]
    if rng.random() < 0.1:
        intent = intent.capitalize()
    return [
        patient_id, course_id, plan_id, status, intent, flag, modality, dose, dose_unit,
        str(fractions), technique, target, concurrent, _iso(start),
    ]  # fmt: skip


def _extra_course_row(
    patient_id: str, course_id: str, plan_id: str, extra: Course, *, intent: str, side: str,
    start: int, rng: Random, config: SynthConfig,
) -> list[str]:  # fmt: skip
    recorded = RECORDED_MODALITY[_recorded_key(extra.modality, extra.technique, extra.recorded)]
    return _course_row(
        patient_id, course_id, plan_id, status=_pick(rng, ("approved", "completed")),
        intent=intent, primary=False, modality=_pick(rng, recorded), dose_gy=extra.dose,
        unit="GyRBE" if extra.modality == "proton" else "Gy", fractions=extra.fractions,
        technique=extra.technique, target=extra.target.replace("{side}", side),
        concurrent="", start=start, rng=rng, config=config,
    )  # fmt: skip


def _invalid_code(code: str, rng: Random) -> str:
    """A code that is not in ICD-10-CM: an extra digit on a leaf, or a letter O for a zero."""
    if "0" in code[1:] and rng.random() < 0.5:
        i = code.index("0", 1)
        return code[:i] + "O" + code[i + 1 :]
    digit = str(1 + int(rng.random() * 9))
    return f"{code}{digit}" if "." in code else f"{code}.{digit}"


def _parent_code(code: str) -> str | None:
    """The category or subcategory above a billable code; None for a 3-character code."""
    dotless = code.replace(".", "")
    if len(dotless) <= 3:
        return None
    parent = dotless[:-1]
    return parent if len(parent) == 3 else f"{parent[:3]}.{parent[3:]}"


def _bad_date(ordinal: int, rng: Random) -> str:
    day = dt.date.fromordinal(ordinal)
    pick = rng.random()
    if pick < 0.35:
        return f"{day.year}-{13 + int(rng.random() * 20)}-{day.day:02d}"  # month 13+
    if pick < 0.6:
        return f"{day.day:02d}/{day.month:02d}/{day.year}"  # not ISO
    if pick < 0.85:
        return f"{day.year}-02-{30 + int(rng.random() * 2)}"
    return "0000-00-00"


def _broken(text: str) -> str:
    """Text as a cp1252 system wrote it: bytes that are not UTF-8, kept as surrogates."""
    text = text.replace(" - ", " \u2013 ", 1)
    if "\u2013" not in text:
        text = text.replace("'s ", "\u2019s ", 1) if "'s " in text else text + " \u2013 see letter"
    raw = text.encode("cp1252", errors="replace")
    return raw.decode("utf-8", errors="surrogateescape")


def _draw_fault(rng: Random, names: tuple[str, ...], cumulative: tuple[float, ...]) -> str | None:
    target = rng.random()
    for name, bound in zip(names, cumulative, strict=True):
        if target < bound:
            return name
    return None


def synthesize(
    config: SynthConfig | None = None, *, progress: Callable[[int], None] | None = None
) -> SynthExport:
    """Generate the export in memory; `progress(n)` is called every 1,000 patients."""
    config = config or SynthConfig()
    rng = Random(config.seed)
    rates = config.fault_rates()
    fault_names = tuple(rates)
    fault_cum = _cumulative(list(rates.values()))
    ids = _Ids()
    export = SynthExport()
    for number in range(1, config.patients + 1):
        _synthesize_patient(f"RO{number:07d}", rng, config, fault_names, fault_cum, ids, export)
        if progress is not None and number % 1000 == 0:
            progress(number)
    if progress is not None:
        progress(config.patients)
    return export


def _synthesize_patient(
    patient_id: str, rng: Random, config: SynthConfig, fault_names: tuple[str, ...],
    fault_cum: tuple[float, ...], ids: _Ids, export: SynthExport,
) -> None:  # fmt: skip
    """Draw one patient, write their rows and inject at most one excluding fault."""
    patient = _draw_patient(rng)
    variant, regimen = patient.variant, patient.variant.regimen
    fault = _draw_fault(rng, fault_names, fault_cum)
    if fault == "nonbillable_icd10" and _parent_code(patient.code.code) is None:
        fault = "invalid_icd10"  # C61, C20, C37: no category above a 3-character code
    if fault == "palliative_unflagged" and regimen.extra:
        fault = "unflagged_candidates"
    truth = PatientTruth(
        patient_id, variant.site.name, regimen.key, patient.code.code, regimen.modality, fault
    )
    export.truth.append(truth)
    dx_day = _PLAN_START + int(rng.random() * _PLAN_SPAN)

    birth_year = str(dt.date.fromordinal(dx_day).year - patient.age)
    if fault == "bad_birth_year":
        birth_year = _pick(rng, ("n/a", "unknown", f"{birth_year}6", "1856"))
    patient_rows = [] if fault == "no_patient_record" else [[patient_id, birth_year, patient.sex]]
    diagnosis_rows = _diagnosis_rows(patient_id, patient, fault, dx_day, rng, config, ids)
    course_rows, primary = _course_rows(patient_id, patient, fault, dx_day, rng, config, ids)
    _make_unreadable(fault, diagnosis_rows, course_rows, primary, dx_day, rng)

    if fault is None and rng.random() < config.exact_duplicate_row:
        truth.duplicate_row = True
        rows = _pick(rng, (patient_rows, diagnosis_rows, course_rows))
        rows.append(list(rows[0]))

    export.patients.extend(patient_rows)
    export.diagnoses.extend(diagnosis_rows)
    export.treatment_courses.extend(course_rows)


def _diagnosis_rows(
    patient_id: str, patient: _Patient, fault: str | None, dx_day: int, rng: Random,
    config: SynthConfig, ids: _Ids,
) -> list[list[str]]:  # fmt: skip
    if fault == "no_diagnosis":
        return []
    code = patient.code.code
    if fault == "invalid_icd10":
        code = _invalid_code(code, rng)
    elif fault == "nonbillable_icd10":
        code = _parent_code(code)
    note = write_note(patient, rng, typo_rate=config.typo_rate)
    rows = [[patient_id, ids.next_diagnosis(), _iso(dx_day), _format_code(code, rng, config), note]]
    if fault == "multiple_diagnoses":
        # a second primary, or a metastasis recorded as a diagnosis of its own
        other = _draw_patient(rng)
        other.sex, other.age = patient.sex, patient.age
        other_code = other.code.code if other.code.sex in (None, patient.sex) else "C79.51"
        rows.append(
            [patient_id, ids.next_diagnosis(), _iso(dx_day + 30 + int(rng.random() * 400)),
             _format_code(other_code, rng, config),
             write_note(other, rng, typo_rate=config.typo_rate)]
        )  # fmt: skip
    return rows


def _course_rows(
    patient_id: str, patient: _Patient, fault: str | None, dx_day: int, rng: Random,
    config: SynthConfig, ids: _Ids,
) -> tuple[list[list[str]], list[str]]:  # fmt: skip
    """The primary plan, its boost or prior phase, and the plans around it."""
    variant, regimen = patient.variant, patient.variant.regimen
    side = vocab.SIDE_SHORT[patient.side][0]
    tag = variant.site.plan_tag
    course_id = ids.next_course()
    start = prior_start = dx_day + 14 + int(rng.random() * 60)
    for extra in regimen.extra:
        if extra.when == "prior":  # this plan follows the external-beam phase
            start += 7 * (extra.fractions // 5 + 1)
    flagged = (
        variant.needs_flag
        or fault == "two_flagged_primaries"
        or rng.random() >= config.unflagged_primary
    )
    if fault in ("unflagged_candidates", "palliative_unflagged"):
        flagged = False
    intent = regimen.intent
    if fault == "palliative_unflagged" and intent in CURATIVE_INTENTS:
        intent = _pick(rng, ("", "not documented", "other"))
    status = _pick(rng, ("approved", "approved", "completed"))
    if fault == "inactive_courses_only":
        status = _pick(rng, ("draft", "cancelled", "retired"))
    modality = _pick(rng, variant.recorded)
    if fault == "unmappable_modality":
        modality = _pick(rng, UNMAPPABLE_MODALITY)
    primary = _course_row(
        patient_id, course_id, ids.next_plan(tag), status=status, intent=intent,
        primary=flagged, modality=modality, dose_gy=regimen.dose, unit=regimen.unit,
        fractions=regimen.fractions, technique=regimen.technique,
        target=regimen.target.replace("{side}", side),
        concurrent=_pick(rng, regimen.concurrent) if regimen.concurrent else "", start=start,
        rng=rng, config=config,
    )  # fmt: skip
    _apply_row_fault(fault, primary, regimen, rng)
    if fault == "no_course":
        return [], primary
    rows = [primary]
    for extra in regimen.extra:
        when = prior_start if extra.when == "prior" else start + round(regimen.fractions * 1.4)
        row = _extra_course_row(
            patient_id, course_id, ids.next_plan(tag), extra, intent=regimen.intent, side=side,
            start=when, rng=rng, config=config,
        )  # fmt: skip
        if fault in ("inactive_courses_only", "palliative_unflagged"):
            row[3] = _pick(rng, ("draft", "cancelled"))
        if fault == "two_flagged_primaries" and len(rows) == 1:
            row[5] = _pick(rng, _FLAGS)[0]
        rows.append(row)
    _add_surrounding_courses(
        fault, primary, patient_id, course_id, tag, regimen, flagged, start, ids, rng, config, rows
    )
    return rows, primary


def _make_unreadable(
    fault: str | None, diagnosis_rows: list[list[str]], course_rows: list[list[str]],
    primary: list[str], dx_day: int, rng: Random,
) -> None:  # fmt: skip
    """Faults that make a row unreadable, in the diagnosis row or the primary plan."""
    if fault == "conflicting_duplicate":
        if rng.random() < 0.5:
            copy = list(diagnosis_rows[0])
            copy[2] = _iso(dx_day + 1 + int(rng.random() * 90))
            diagnosis_rows.append(copy)
        else:
            copy = list(primary)
            copy[3] = "draft" if copy[3] != "draft" else "approved"
            course_rows.append(copy)
    elif fault == "broken_encoding":
        if rng.random() < 0.75:
            diagnosis_rows[0][4] = _broken(diagnosis_rows[0][4])
        else:
            primary[11] = _broken(primary[11].replace(" + ", " - ", 1))
    elif fault == "missing_value":
        diagnosis_rows[0][_pick(rng, (3, 4, 4))] = ""
    elif fault == "bad_date":
        if rng.random() < 0.5:
            diagnosis_rows[0][2] = _bad_date(dx_day, rng)
        else:
            primary[13] = _bad_date(dt.date.fromisoformat(primary[13]).toordinal(), rng)


def _apply_row_fault(fault: str | None, row: list[str], regimen: Regimen, rng: Random) -> None:
    """Faults that live in the primary plan's row itself."""
    if fault == "unit_error":
        dose_gy = regimen.dose
        # A Gy value typed into a cGy field reads as under 0.5 Gy per fraction, implausible
        # for anything but single-fraction radiosurgery or implants: those get the converse.
        if dose_gy / regimen.fractions < 40 and rng.random() < 0.4:
            row[7], row[8] = f"{dose_gy:g}", "cGy"
        else:
            row[7], row[8] = str(round(dose_gy * 100)), regimen.unit
    elif fault == "missing_prescription":
        row[_pick(rng, (7, 9))] = ""
    elif fault == "bad_number":
        if rng.random() < 0.5:
            row[9] = _NUMBER_WORDS.get(regimen.fractions, f"~{regimen.fractions}")
        else:
            row[7] = _pick(rng, ("see plan", row[7].replace("0", "O", 1) + "?"))
    elif fault == "unknown_status":
        row[3] = _pick(rng, _UNKNOWN_STATUSES)


def _add_surrounding_courses(
    fault: str | None, primary: list[str], patient_id: str, course_id: str, tag: str,
    regimen: Regimen, flagged: bool, start: int, ids: _Ids, rng: Random, config: SynthConfig,
    rows: list[list[str]],
) -> None:  # fmt: skip
    """Drafts, cancelled courses, re-plans and later courses; and the second plan that makes a
    primary ambiguous."""
    if fault == "two_flagged_primaries" and len(rows) == 1:
        rows.append(_replan(primary, ids.next_plan(tag), status="approved", flag=True, rng=rng))
    if fault == "unflagged_candidates" and len(rows) == 1:
        again = _replan(primary, ids.next_plan(tag), status="approved", flag=False, rng=rng)
        if again[4].lower() not in CURATIVE_INTENTS:
            again[4] = "curative"
        if primary[4].lower() not in CURATIVE_INTENTS:
            primary[4] = "curative"
        rows.append(again)
    if rng.random() < config.replanned:
        # the first version of the plan, retired when this one was approved
        old = _replan(primary, ids.next_plan(tag), status="retired", flag=True, rng=rng)
        old[13] = _iso(start - 3 - int(rng.random() * 10))
        rows.insert(0, old)
    if rng.random() < config.extra_draft:
        draft = _replan(primary, ids.next_plan(tag), status="draft", flag=rng.random() < 0.3,
                        rng=rng)  # fmt: skip
        if rng.random() < 0.3:
            draft[6] = _pick(rng, ("TBD", "", "unknown"))
        rows.append(draft)
    if rng.random() < config.extra_cancelled:
        cancelled = _replan(primary, ids.next_plan(tag), status="cancelled", flag=False, rng=rng)
        cancelled[1] = ids.next_course()
        cancelled[13] = _iso(start - 20 - int(rng.random() * 60))
        rows.insert(0, cancelled)
    if (
        fault is None
        and flagged
        and regimen.intent != "palliative"
        and rng.random() < config.later_palliative
    ):
        later = start + 200 + int(rng.random() * 900)
        rows.append([
            patient_id, ids.next_course(), ids.next_plan(tag), "approved", "palliative",
            _pick(rng, _FLAGS)[1], _pick(rng, RECORDED_MODALITY["photon"]), "8", "Gy", "1",
            "3D-CRT", _pick(rng, ("L2-L4 spine", "R hip", "T-spine", "L femur")), "",
            _iso(later),
        ])  # fmt: skip


def _replan(primary: list[str], plan_id: str, *, status: str, flag: bool, rng: Random) -> list[str]:
    row = list(primary)
    row[2] = plan_id
    row[3] = status
    row[5] = _pick(rng, _FLAGS)[0 if flag else 1]
    return row


# --- writing --------------------------------------------------------------------------------------


def _csv_bytes(columns: tuple[str, ...], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    # Broken-encoding cells hold their raw bytes as surrogates: write those bytes back.
    return buffer.getvalue().encode("utf-8", errors="surrogateescape")


def write_export(export: SynthExport, out_dir: str | Path) -> dict[str, Path]:
    """Write patients.csv, diagnoses.csv and treatment_courses.csv atomically."""
    out_dir = Path(out_dir)
    paths = {}
    for name, rows in export.tables().items():
        path = out_dir / f"{name}.csv"
        with atomic_open(path, "wb") as handle:
            handle.write(_csv_bytes(TABLE_COLUMNS[name], rows))
        paths[name] = path
    return paths


def summarize(export: SynthExport, out_dir: str | Path) -> SynthSummary:
    kept = [t for t in export.truth if t.fault is None]
    return SynthSummary(
        out_dir=Path(out_dir),
        rows={name: len(rows) for name, rows in export.tables().items()},
        patients=len(export.truth),
        faults=dict(Counter(t.fault for t in export.truth if t.fault).most_common()),
        duplicate_rows=sum(t.duplicate_row for t in export.truth),
        expected_kept=len(kept),
        expected_kept_modality=dict(Counter(t.modality for t in kept).most_common()),
        sites=len({t.site for t in export.truth}),
    )


def write_synthetic_export(
    config: SynthConfig, out_dir: str | Path, *, progress: Callable[[int], None] | None = None
) -> SynthSummary:
    """Generate and write an export; returns what was written and the expected curation."""
    export = synthesize(config, progress=progress)
    write_export(export, out_dir)
    return summarize(export, out_dir)
