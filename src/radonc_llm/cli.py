"""The `radonc-llm` command: one thin sub-command per stage; the logic lives in the packages."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from radonc_llm.errors import RadoncInputError

app = typer.Typer(
    name="radonc-llm",
    help="Curate radiation oncology records, fine-tune LLMs on them and evaluate them like a clinical study.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
F = TypeVar("F", bound=Callable)


def user_errors(func: F) -> F:
    """Turn bad input into one clear message and exit status 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RadoncInputError as exc:
            console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main() -> None:
    """radonc-llm: curate -> tasks -> train -> predict -> evaluate -> report -> review."""


@app.command()
@user_errors
def curate(
    raw: Annotated[
        Path,
        typer.Option(
            help="Folder of the raw export: patients, diagnoses, treatment_courses (.csv/.jsonl/.parquet)."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Folder for cases.jsonl, excluded.jsonl and funnel.json.")
    ],
) -> None:
    """Curate a raw export into cases: one diagnosis and one clear primary plan per patient."""
    from radonc_llm.data.cohort import curate_export, write_curation
    from radonc_llm.data.reports import funnel_table, ledger_table

    with console.status("Curating the export"):
        result = curate_export(raw)
        write_curation(result, out)
    console.print(funnel_table(result))
    console.print(ledger_table(result))
    console.print(f"Wrote {out / 'cases.jsonl'}, {out / 'excluded.jsonl'}, {out / 'funnel.json'}")


@app.command()
@user_errors
def split(
    cases: Annotated[Path, typer.Option(help="Curated case JSONL file.")],
    out: Annotated[
        Path, typer.Option(help="Folder for train.jsonl, val.jsonl, test.jsonl, split.json.")
    ],
    seed: Annotated[int, typer.Option(help="Seed of the shuffle within strata.")] = 0,
    fractions: Annotated[str, typer.Option(help="Train/val/test shares.")] = "0.8,0.1,0.1",
) -> None:
    """Split cases by patient into train/val/test, stratified by modality and site."""
    from radonc_llm.data.cases import read_cases
    from radonc_llm.data.reports import split_table
    from radonc_llm.data.split import write_splits

    try:
        shares = [float(part) for part in fractions.split(",")]
    except ValueError:
        raise RadoncInputError(
            f"'{fractions}' is not a list of numbers", field="fractions"
        ) from None
    summary = write_splits(read_cases(cases), out, fractions=shares, seed=seed)
    console.print(split_table(summary))


@app.command()
@user_errors
def tasks(
    cases: Annotated[Path, typer.Option(help="Curated case JSONL file.")],
    out: Annotated[
        Path, typer.Option(help="Folder for regimen.jsonl, modality.jsonl, icd10.jsonl.")
    ],
) -> None:
    """Build the three instruction datasets (regimen, modality, icd10) as chat messages."""
    from rich.table import Table

    from radonc_llm.data.cases import read_cases
    from radonc_llm.tasks.build import write_task_datasets

    counts = write_task_datasets(read_cases(cases), out)
    table = Table(title=f"Task datasets in {out}")
    table.add_column("task")
    table.add_column("examples", justify="right")
    for task, count in counts.items():
        table.add_row(task, str(count))
    console.print(table)


if __name__ == "__main__":
    app()
