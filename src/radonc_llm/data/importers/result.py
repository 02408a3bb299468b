"""What an import produced: the kept cases, the exclusion ledger, and the invariant between them.

Every data row of every source table ends in exactly one place: a kept case (its
`source_file`/`source_row`) or a ledger entry (file, 1-based data row, column, reason code,
detail), the same ledger format curation writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from radonc_llm.data.cases import Case, RegimenStructured, write_cases
from radonc_llm.data.importers.note import ClinicalFacts, render_note
from radonc_llm.data.importers.table import SourceRow, SourceTable
from radonc_llm.data.ingest import LedgerEntry
from radonc_llm.data.regimen import render_regimen
from radonc_llm.errors import RadoncInputError
from radonc_llm.storage import write_jsonl_atomic

# Where each reference answer of an imported case comes from: the tables record the course
# (regimen); the code is our reading of site and subsite (site_codes.py); the beam is assumed
# from the cohort (all three had external-beam photon radiotherapy).
LABEL_SOURCE = {"icd10": "derived-from-site", "regimen": "recorded", "modality": "assumed-photon"}


class RowExcluded(Exception):
    """A source row that cannot become a case; `column` names the field that decided it."""

    def __init__(self, reason: str, detail: str, *, column: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.column = column


@dataclass
class ImportResult:
    cohort: str
    cases: list[Case] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    input_rows: dict[str, int] = field(default_factory=dict)  # file name -> data rows read

    @property
    def n_input_rows(self) -> int:
        return sum(self.input_rows.values())

    def exclude(self, why: RowExcluded, *, file: str, row: int, patient_id: str | None) -> None:
        self.ledger.append(
            LedgerEntry(
                patient_id=patient_id or None,
                file=file,
                row=row,
                column=why.column,
                reason=why.reason,
                detail=why.detail,
            )
        )


def imported_case(
    *,
    cohort: str,
    institution: str,
    patient_id: str,
    facts: ClinicalFacts,
    icd10: str,
    regimen: RegimenStructured,
    source_file: str,
    source_row: int,
    source_split: str | None = None,
    split: str | None = None,
) -> Case:
    """One kept row as a case: the note rendered from `facts`, the regimen from `regimen`."""
    extra = {"source_split": source_split} if source_split else {}
    return Case(
        case_id=patient_id,
        patient_id=patient_id,
        diagnosis_text=render_note(facts, seed=f"{cohort}:{patient_id}"),
        regimen=render_regimen(regimen),
        modality="photon",
        icd10=icd10,
        regimen_structured=regimen,
        site=facts.site,
        split=split,
        cohort=cohort,
        institution=institution,
        label_source=dict(LABEL_SOURCE),
        clinical=facts.as_dict(),
        source_file=source_file,
        source_row=source_row,
        **extra,
    )


def convert_rows(
    result: ImportResult,
    table: SourceTable,
    convert: Callable[[SourceRow], Case],
    *,
    id_column: str,
) -> None:
    """Run `convert` on each row of `table`: a case, or a ledger entry with its reason.

    Rows that cannot be read, have no patient id or repeat one (the first is kept) never
    reach `convert`. Ids that differ only in case or spacing ("HN1004", "hn1004") are one
    patient: two cases of one patient could land in different splits.
    """
    result.input_rows[table.name] = len(table.rows)
    first_row: dict[str, SourceRow] = {}
    for row in table.rows:
        patient_id = row.values.get(id_column) or None
        try:
            if row.problem is not None:
                reason = "bad_value" if row.problem_column else "unreadable_row"
                raise RowExcluded(reason, row.problem, column=row.problem_column)
            if patient_id is None:
                raise RowExcluded("missing_patient_id", "no patient id", column=id_column)
            key = patient_key(patient_id)
            if key in first_row:
                first = first_row[key]
                raise RowExcluded(
                    "duplicate_patient", _repeat_detail(first, row, first.values[id_column]),
                    column=id_column,
                )  # fmt: skip
            first_row[key] = row
            result.cases.append(convert(row))
        except RowExcluded as why:
            result.exclude(why, file=table.name, row=row.number, patient_id=patient_id)


def patient_key(patient_id: str) -> str:
    """A patient id as compared across rows and tables: case and spacing aside."""
    return " ".join(patient_id.split()).casefold()


def _repeat_detail(first: SourceRow, row: SourceRow, patient_id: str) -> str:
    """Whether a repeated patient's row repeats the first one or differs from it, and where."""
    columns = dict.fromkeys([*first.values, *row.values])
    differ = [c for c in columns if first.values.get(c) != row.values.get(c)]
    detail = f"patient {patient_id} is already on row {first.number}, whose values are used"
    if not differ:
        return f"{detail}; this row repeats them"
    shown = ", ".join(
        f"{c}: '{first.values.get(c, '')}' there, '{row.values.get(c, '')}' here"
        for c in differ[:3]
    )
    more = f" and {len(differ) - 3} more columns" if len(differ) > 3 else ""
    return f"{detail}; this row differs ({shown}{more})"


def unaccounted_rows(result: ImportResult) -> list[str]:
    """Each input row must be in exactly one kept case or ledger entry; the problems found."""
    counts: Counter[tuple[str, int]] = Counter()
    for case in result.cases:
        counts[(case.source_file, case.source_row)] += 1  # type: ignore[attr-defined]
    for entry in result.ledger:
        counts[(entry.file, entry.row)] += 1
    problems = []
    for file, n_rows in result.input_rows.items():
        for row in range(1, n_rows + 1):
            seen = counts.pop((file, row), 0)
            if seen != 1:
                problems.append(
                    f"{file} row {row}: " + ("missing" if seen == 0 else f"counted {seen} times")
                )
    problems += [f"{file} row {row}: not an input row" for (file, row) in counts]
    return problems


def ledger_path_for(out: str | Path) -> Path:
    """`cases.jsonl` -> `excluded.jsonl` beside it; `radcure.jsonl` -> `radcure.excluded.jsonl`,
    so that several cohorts imported into one folder keep their own ledgers."""
    out = Path(out)
    name = "excluded.jsonl" if out.stem == "cases" else f"{out.stem}.excluded.jsonl"
    return out.with_name(name)


def write_import(
    result: ImportResult, out: str | Path, *, excluded: str | Path | None = None
) -> Path:
    """Write the cases and the ledger (both atomic); returns the ledger's path."""
    ledger_path = Path(excluded) if excluded is not None else ledger_path_for(out)
    if ledger_path.resolve() == Path(out).resolve():
        raise RadoncInputError("the ledger would overwrite the case file", file=ledger_path)
    write_cases(out, result.cases)
    write_jsonl_atomic(
        ledger_path, ({"cohort": result.cohort, **entry.as_dict()} for entry in result.ledger)
    )
    return ledger_path


def import_table(result: ImportResult) -> Table:
    """Kept and excluded rows, and the exclusion reasons, as one table."""
    reasons = Counter(entry.reason for entry in result.ledger)
    files = ", ".join(f"{name} ({rows})" for name, rows in result.input_rows.items())
    table = Table(title=f"Import {result.cohort}: {result.n_input_rows} rows from {files}")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_column("% of rows", justify="right")
    total = result.n_input_rows or 1
    table.add_row("kept", str(len(result.cases)), f"{100 * len(result.cases) / total:.1f}")
    for reason, count in reasons.most_common():
        table.add_row(f"excluded: {reason}", str(count), f"{100 * count / total:.1f}")
    table.add_section()
    table.add_row("total", str(len(result.cases) + len(result.ledger)), "")
    return table
