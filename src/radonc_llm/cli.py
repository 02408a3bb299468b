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
            console.print(f"[bold red]error:[/] {exc.message}")
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main() -> None:
    """radonc-llm: curate -> tasks -> train -> predict -> evaluate -> report -> review."""


@app.command()
@user_errors
def tasks(
    cases: Annotated[Path, typer.Option(help="Curated case JSONL file.")],
    out: Annotated[Path, typer.Option(help="Folder for regimen.jsonl, modality.jsonl, icd10.jsonl.")],
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
