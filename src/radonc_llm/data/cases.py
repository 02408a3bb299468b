"""The case JSONL: the interchange format of every stage after curation and of external test sets.

One JSON object per line. Required: case_id, diagnosis_text, regimen, modality, icd10 (dotted
ICD-10-CM), and patient_id (missing or null: the case is its own patient, with a warning; for
vignettes). Optional: regimen_structured, site, split, label_source and any
extra keys (kept as they are, so importers can carry provenance).

Prediction needs only the notes: `read_notes` also reads a file of case_id and
diagnosis_text alone (new patients have no answers yet); scoring reads whole cases.
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from radonc_llm.errors import RadoncInputError
from radonc_llm.storage import iter_jsonl, jsonl_shape_hint, write_jsonl_atomic

# Whitespace, separators, control and format characters (zero-width space, BOM, joiners):
# a field of only these is blank to a reader.
_INVISIBLE = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})

MODALITIES: tuple[str, ...] = ("photon", "proton", "electron", "brachytherapy")
Modality = Literal["photon", "proton", "electron", "brachytherapy"]
TASKS: tuple[str, ...] = ("regimen", "modality", "icd10")
# Marks, while a file is read, a case whose patient_id was missing (not kept in the case).
_NO_PATIENT_ID = "_no_patient_id"


class RegimenStructured(BaseModel):
    """A prescription in parts, as the regimen parser reads and renders it."""

    model_config = ConfigDict(extra="allow")

    dose_gy: float | None = Field(None, description="Total prescribed dose in Gy (or GyRBE).")
    fractions: int | None = Field(None, description="Number of fractions.")
    dose_unit: str = Field("Gy", description="Gy or GyRBE, as prescribed.")
    schedule: str | None = Field(None, description="daily, BID, weekly or every other day.")
    technique: str | None = Field(None, description="IMRT, VMAT, 3D-CRT, SBRT, SRS, HDR, LDR ...")
    boost: str | None = Field(None, description="Boost as written, e.g. '10 Gy in 5 fractions'.")
    concurrent: list[str] = Field(default_factory=list, description="Concurrent systemic drugs.")


def _refuse_blank(value: str) -> str:
    if not value.strip() or all(unicodedata.category(c) in _INVISIBLE for c in value):
        raise ValueError("is blank (only whitespace or invisible characters)")
    return value


class Note(BaseModel):
    """A diagnosis note to answer: all that prediction reads of a case. A note file may hold
    whole cases (their answers are kept, unchecked) or notes alone, as new patients come."""

    model_config = ConfigDict(extra="allow")

    case_id: str = Field(min_length=1)
    patient_id: str = Field(min_length=1)
    diagnosis_text: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _own_patient_without_id(cls, data: object) -> object:
        # Vignettes and other external test sets have no patients: each case is its own.
        if isinstance(data, dict) and data.get("patient_id", None) is None and "case_id" in data:
            return {**data, "patient_id": data["case_id"], _NO_PATIENT_ID: True}
        return data

    @field_validator("case_id", "patient_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @field_validator("case_id", "patient_id", "diagnosis_text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return _refuse_blank(value)


class Case(Note):
    """One curated case: a diagnosis note and its three reference answers."""

    regimen: str = Field(min_length=1)
    modality: Modality
    icd10: str = Field(min_length=3, description="Dotted ICD-10-CM code, e.g. C50.412.")
    regimen_structured: RegimenStructured | None = None
    site: str | None = None
    split: Literal["train", "val", "test"] | None = None

    @field_validator("regimen")
    @classmethod
    def _regimen_not_blank(cls, value: str) -> str:
        return _refuse_blank(value)

    @field_validator("modality", mode="before")
    @classmethod
    def _modality_any_case(cls, value: object) -> object:
        # Independent test sets write "Photon", "PROTON", "Photons" or "HDR brachytherapy":
        # the class is the same. What names no single class stays as written and is refused.
        if not isinstance(value, str) or value.strip().lower() in MODALITIES:
            return value.strip().lower() if isinstance(value, str) else value
        from radonc_llm.data.modality import read_modality

        reading = read_modality(value)
        if reading.label is None and len(reading.named) > 1:
            # "photon + brachytherapy" (EBRT then a boost): the case's primary modality is asked.
            raise ValueError(
                f"'{value}' names {' and '.join(sorted(reading.named))}; give the primary "
                "treatment's modality (one of photon, proton, electron, brachytherapy)"
            )
        return reading.label or value

    @field_validator("icd10")
    @classmethod
    def _icd10_is_dotted_cm(cls, value: str) -> str:
        # Imported lazily: the ICD-10-CM tables load in about a second.
        from radonc_llm.data import icd10

        # Alone or with its description ("C61 (prostate)"), as curation reads a recorded code.
        return icd10.to_dotted(icd10.code_in_field(value))


def _case_objects(path: str | Path) -> Iterator[tuple[int, dict]]:
    """The file's JSON objects; a first line that fails gets a hint on the usual cause."""
    try:
        yield from iter_jsonl(path)
    except RadoncInputError as exc:
        if exc.row != 1:
            raise
        with Path(path).open("rb") as handle:
            start = handle.read(64)
        hint = jsonl_shape_hint(start, "a case file")
        if hint is None:
            raise
        raise RadoncInputError(f"{exc.reason}: {hint}", file=path, row=1) from None


def read_cases(path: str | Path, *, allow_empty: bool = True) -> list[Case]:
    """Read and validate a case file; the first bad line fails naming file, line and field."""
    return _read(path, Case, allow_empty=allow_empty)


def read_notes(path: str | Path, *, allow_empty: bool = True) -> list[Note]:
    """Read the notes of a case file, or of a file of notes alone (case_id, diagnosis_text;
    patient_id optional): what prediction needs. Answers a line carries are kept unchecked;
    scoring (`read_cases`) checks them."""
    return _read(path, Note, allow_empty=allow_empty, warn_without_patient=False)


def _read(
    path: str | Path, model: type[Note], *, allow_empty: bool, warn_without_patient: bool = True
) -> list:
    cases = []
    seen: dict[str, int] = {}
    without_patient: list[int] = []
    for line, obj in _case_objects(path):
        try:
            case = model.model_validate(obj)
        except ValidationError as exc:
            raise RadoncInputError.from_validation_error(exc, file=path, row=line) from None
        if (case.model_extra or {}).pop(_NO_PATIENT_ID, False):
            without_patient.append(line)
        if case.case_id in seen:
            raise RadoncInputError(
                f"duplicate case_id '{case.case_id}' (first on line {seen[case.case_id]})",
                file=path,
                row=line,
                field="case_id",
            )
        seen[case.case_id] = line
        cases.append(case)
    if without_patient and warn_without_patient:
        warnings.warn(
            f"{path}: {len(without_patient)} case(s) have no patient_id (first on line "
            f"{without_patient[0]}); each is taken as its own patient, as a vignette is. "
            "Give patient ids where one patient has several cases: splits and leakage checks "
            "group cases by patient",
            stacklevel=3,
        )
    if not cases and not allow_empty:
        raise RadoncInputError("the case file holds no cases", file=path)
    return cases


def write_cases(path: str | Path, cases: Iterable[Case]) -> int:
    return write_jsonl_atomic(path, (case.model_dump(exclude_none=True) for case in cases))
