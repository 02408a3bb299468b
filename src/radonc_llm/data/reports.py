"""Rich tables that show what curation and splitting did."""

from __future__ import annotations

from rich.table import Table

from radonc_llm.data.cohort import CurationResult


def funnel_table(result: CurationResult) -> Table:
    table = Table(title="Cohort funnel (patients)")
    table.add_column("step")
    table.add_column("excluded", justify="right")
    table.add_column("remaining", justify="right")
    table.add_column("% of export", justify="right")
    total = result.funnel[0]["patients"] or 1
    for step in result.funnel:
        table.add_row(
            step["step"],
            str(step["excluded"]),
            str(step["patients"]),
            f"{100 * step['patients'] / total:.1f}",
        )
    return table


def ledger_table(result: CurationResult, *, top: int = 15) -> Table:
    from collections import Counter

    reasons = Counter(entry.reason for entry in result.ledger)
    table = Table(
        title="Exclusion ledger (rows)",
        caption=f"{len(result.ledger):,} of {result.n_input_rows:,} input rows; "
        f"the other rows are in the {len(result.cases):,} cases",
    )
    table.add_column("reason")
    table.add_column("rows", justify="right")
    for reason, count in reasons.most_common(top):
        table.add_row(reason, str(count))
    return table


def split_table(summary: dict) -> Table:
    splits = summary["splits"]
    modalities = sorted({m for split in splits.values() for m in split["modality"]})
    table = Table(title=f"Patient-level split (seed {summary['seed']})")
    table.add_column("split")
    table.add_column("patients", justify="right")
    table.add_column("cases", justify="right")
    for modality in modalities:
        table.add_column(modality, justify="right")
    table.add_column("sites", justify="right")
    for name, split in splits.items():
        table.add_row(
            name,
            str(split["patients"]),
            str(split["cases"]),
            *(str(split["modality"].get(m, 0)) for m in modalities),
            str(len(split["site"])),
        )
    return table
