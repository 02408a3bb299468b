"""The `radonc-llm` command: one thin sub-command per stage; the logic lives in the packages."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.models import OptionInfo

# Before torch loads: OpenMP threads that busy-wait between small matmuls steal the CPU from
# each other and from anything else running; on a shared 2-core machine a 0.5 ms matmul then
# took 5-10 ms, and training ran 7x slower. The demo's 1-thread processes never wait. One
# process of 2 threads on an idle machine trained ~25% faster with OpenMP's default waiting;
# OMP_WAIT_POLICY=ACTIVE in the environment keeps threads spinning (not measured separately).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from radonc_llm.errors import RadoncInputError


class CommandGroup(typer.core.TyperGroup):
    """Checks the words of a command line before click reads them (see `_check_words`)."""

    def resolve_command(self, ctx: typer.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not hasattr(command, "commands"):  # a command, not a group
            _check_words(command, rest)
        return name, command, rest


def _check_words(command, args: list[str]) -> None:
    """Refuse what click would take without a word:
    - an option of one value given twice: click keeps the last and drops the others
      (`split --cases a.jsonl --cases b.jsonl` split b alone);
    - an empty value (`--out ""`, `--out=`, an unset shell variable): as a path it means the
      current folder, and a stage would read or write its files there."""
    takes_value = {
        name: param
        for param in command.params
        if param.param_type_name == "option" and not (param.is_flag or param.count)
        for name in param.opts
    }
    arguments = [param.name for param in command.params if param.param_type_name == "argument"]
    given: dict[str, list[str]] = {}
    words = iter(args)
    only_arguments = False
    for word in words:
        if only_arguments or not word.startswith("-"):
            if not word.strip() and arguments:
                hint = " or ".join(f"'{name}'" for name in arguments)
                raise typer.BadParameter("is empty; give a value", param_hint=hint)
            continue
        if word == "--":
            only_arguments = True
            continue
        name, has_value, value = word.partition("=")
        param = takes_value.get(name)
        if param is None:
            continue
        if not param.multiple:
            given.setdefault(param.name, []).append(name)
        if not has_value:
            value = next(words, None)  # its value, which may look like an option
        if value is not None and not value.strip():
            raise typer.BadParameter("is empty; give a value", param_hint=f"'{name}'")
    for names in given.values():
        if len(names) > 1:
            raise typer.BadParameter(
                f"given {len(names)} times, but it takes one value (all but the last would be "
                "dropped without a word): give it once",
                param_hint=f"'{names[0]}'",
            )


app = typer.Typer(
    cls=CommandGroup,
    name="radonc-llm",
    help="Curate radiation oncology records, fine-tune LLMs on them and evaluate them like a clinical study.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# To a file or a pipe (a log of `make demo`) rich would draw 80 columns and cut table cells
# ("Majo…", "<0.0…"); a wider page keeps every figure whole. COLUMNS still wins.
console = Console() if sys.stdout.isatty() or "COLUMNS" in os.environ else Console(width=160)
# Errors and warnings on stderr: `radonc-llm evaluate ... > summary.txt` still shows them, and
# a script reading the tables from stdout does not read an error as one.
error_console = (
    Console(stderr=True)
    if sys.stderr.isatty() or "COLUMNS" in os.environ
    else Console(stderr=True, width=160)
)
F = TypeVar("F", bound=Callable)
# NumPy's and scikit-learn's seed range, for every --seed alike (a negative seed was taken by
# some stages and refused by others).
SEED_RANGE = {"min": 0, "max": 2**32 - 1}

# What a user can do about these errors (after what the system says; for the first three,
# instead of it: "File exists" for a file where a folder is needed would only puzzle).
_OS_ERROR_HINTS = {
    errno.EEXIST: "is a file, not a folder; choose another output or move the file",
    errno.ENOTDIR: "a part of this path is a file, not a folder; choose another path",
    errno.EISDIR: "is a folder, not a file; give a file path",
    errno.EACCES: "choose a path you can write to, or ask for access",
    errno.EPERM: "choose a path you can write to, or ask for access",
    errno.EROFS: "write the output elsewhere",
    errno.ENOSPC: "free some space or write elsewhere, then run the same command again",
}


def user_errors(func: F) -> F:
    """Turn bad input into one clear message and exit status 2, never a traceback.

    Status 2 for every user error, click's usage errors and the project's input errors alike
    (the tests and scripts of this project rely on it); 130 for Ctrl-C."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        _expand_home(kwargs)
        try:
            return func(*args, **kwargs)
        except RadoncInputError as exc:
            _print_error(_input_error_message(exc, func))
            raise typer.Exit(code=2) from None
        except OSError as exc:
            if exc.filename is None:  # not about a file: not the user's input
                raise
            _print_error(_os_error_message(exc))
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            error_console.print(
                "[bold yellow]interrupted.[/] Files are written atomically, none is left "
                "half-written; run the same command again: `predict` and `run` carry on where "
                "they stopped, `train` with --resume from its last checkpoint.",
                soft_wrap=True,
            )
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def _print_error(message: str) -> None:
    error_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def _print_warning(message: str) -> None:
    error_console.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)


def _expand_home(kwargs: dict) -> None:
    """Expand a `~` the shell left alone (`--out=~/runs`, a quoted "~/runs"): else a folder
    named `~` appears in the current one. The project expands `~` in config paths too."""
    for name, value in kwargs.items():
        if isinstance(value, Path) and value.parts and value.parts[0].startswith("~"):
            with contextlib.suppress(RuntimeError):  # ~name of no such user: left as written
                kwargs[name] = value.expanduser()


def _input_error_message(exc: RadoncInputError, func: Callable) -> str:
    """The message, with a field that is one of the command's own options named as the user
    types it (`--date-order: ...`, not `field 'date_order': ...`)."""
    if exc.file is not None or exc.row is not None or exc.field is None:
        return exc.message
    option = _option_names(func).get(exc.field)
    return f"{option}: {exc.reason}" if option else exc.message


@functools.cache
def _option_names(func: Callable) -> dict[str, str]:
    """Parameter name -> the option's first name on the command line (`--date-order`)."""
    names = {}
    for name, hint in typing.get_type_hints(func, include_extras=True).items():
        info = next(
            (meta for meta in getattr(hint, "__metadata__", ()) if isinstance(meta, OptionInfo)),
            None,
        )
        if info is None:
            continue
        declared = [decl for decl in info.param_decls or () if decl.startswith("--")]
        names[name] = declared[0].split("/")[0] if declared else f"--{name.replace('_', '-')}"
    return names


def _os_error_message(exc: OSError) -> str:
    """`PATH: what the system said; what to do`, the path as the user wrote it."""
    hint = _OS_ERROR_HINTS.get(exc.errno)
    said = exc.strerror or str(exc)
    if exc.errno == errno.EEXIST and not Path(exc.filename).is_file():
        return f"{exc.filename}: already exists; choose another path"
    if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
        return f"{exc.filename}: {hint}"
    return f"{exc.filename}: {said}; {hint}" if hint else f"{exc.filename}: {said}"


@app.callback()
def main() -> None:
    """radonc-llm: curate -> tasks -> train -> predict -> evaluate -> report -> review."""
    warnings.showwarning = _show_warning


_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings as one plain line ("warning: ..."); other libraries' as Python shows
    them (their file and line help their users)."""
    if issubclass(category, UserWarning) and str(filename).startswith(_PACKAGE_DIR):
        _print_warning(str(message))
    else:
        stream = file if file is not None else sys.stderr
        stream.write(warnings.formatwarning(message, category, filename, lineno, line))


@app.command()
@user_errors
def run(
    config: Annotated[Path, typer.Argument(help="Study recipe, e.g. configs/demo.yaml.")],
) -> None:
    """Run the whole study end to end (resumable): export -> ... -> report."""
    from radonc_llm.evaluate.report import headline_table, read_run_metrics
    from radonc_llm.pipeline import run_recipe

    run_dir = run_recipe(config, console=console)
    metrics = read_run_metrics(run_dir)
    if metrics:
        console.print(headline_table(metrics))
    console.print(f"Report: {run_dir / 'report' / 'report.html'}")


@app.command()
@user_errors
def synth(
    out: Annotated[
        Path, typer.Option(help="Folder for patients.csv, diagnoses.csv, treatment_courses.csv.")
    ],
    patients: Annotated[
        int, typer.Option(help="Number of patients, 1 to 1,000,000 (the study had 15,724).")
    ] = 15724,
    seed: Annotated[
        int, typer.Option(help="Seed: the same seed writes the same export.", **SEED_RANGE)
    ] = 0,
) -> None:
    """Write a synthetic raw export (ARIA/MOSAIQ-style) with the mess curation must handle."""
    from pydantic import ValidationError
    from rich.progress import Progress
    from rich.table import Table

    from radonc_llm.data.synth import SynthConfig, write_synthetic_export
    from radonc_llm.storage import check_output_folder

    check_output_folder(out)

    try:
        config = SynthConfig(patients=patients, seed=seed)
    except ValidationError as exc:
        raise RadoncInputError.from_validation_error(exc) from None
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Synthesising patients", total=patients)
        summary = write_synthetic_export(
            config, out, progress=lambda done: progress.update(task, completed=done)
        )
    table = Table(title=f"Synthetic export in {out} (seed {seed})")
    table.add_column("item")
    table.add_column("count", justify="right")
    table.add_row("patients", f"{summary.patients:,}")
    for name, rows in summary.rows.items():
        table.add_row(f"rows in {name}.csv", f"{rows:,}")
    table.add_row("sites", str(summary.sites))
    table.add_row("patients with an excluding fault", f"{sum(summary.faults.values()):,}")
    table.add_row(
        "expected kept by curation",
        f"{summary.expected_kept:,} ({summary.expected_kept_share:.1%})",
    )
    for modality, count in summary.expected_kept_modality.items():
        table.add_row(f"  kept {modality}", f"{count:,}")
    console.print(table)


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
    encoding: Annotated[
        str,
        typer.Option(
            help="Text encoding the CSV/JSONL files were saved in (a Windows export: cp1252); "
            "never guessed. UTF-8, UTF-16 and UTF-32 with a byte-order mark are recognised "
            "whatever this option says; a UTF-8 file with accented letters named as cp1252 or "
            "latin-1 is refused."
        ),
    ] = "utf-8",
    date_order: Annotated[
        str | None,
        typer.Option(
            help="How the export writes dates with numbers only: dmy (31/12/2024) or mdy "
            "(12/31/2024). Without it such dates are refused, as 03/04/2021 reads two ways."
        ),
    ] = None,
) -> None:
    """Curate a raw export into cases: one diagnosis and one clear primary plan per patient."""
    from radonc_llm.data.cohort import curate_export, write_curation
    from radonc_llm.data.reports import funnel_table, ledger_table
    from radonc_llm.storage import check_output_folder

    check_output_folder(out)  # before the work, not after it
    with console.status("Curating the export"):
        result = curate_export(raw, encoding=encoding, date_order=date_order)
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
    seed: Annotated[int, typer.Option(help="Seed of the shuffle within strata.", **SEED_RANGE)] = 0,
    fractions: Annotated[
        str,
        typer.Option(help="Train, val and test shares: three numbers, comma-separated, sum 1."),
    ] = "0.8,0.1,0.1",
    reassign: Annotated[
        bool,
        typer.Option(
            "--reassign/--keep-given",
            help="Assign every patient anew, or keep the split a case already carries (an "
            "importer's source split, an earlier split's files) and divide only the others.",
        ),
    ] = False,
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
    summary = write_splits(
        read_cases(cases), out, fractions=shares, seed=seed, keep_given=not reassign, source=cases
    )
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

    counts = write_task_datasets(read_cases(cases, allow_empty=False), out, source=cases)
    table = Table(title=f"Task datasets in {out}")
    table.add_column("task")
    table.add_column("examples", justify="right")
    for task, count in counts.items():
        table.add_row(task, str(count))
    console.print(table)


@app.command()
@user_errors
def train(
    config: Annotated[
        Path, typer.Argument(help="Training YAML, e.g. configs/smollm2/lora_multitask.yaml.")
    ],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the run's last checkpoint.")
    ] = False,
) -> None:
    """Fine-tune a LoRA adapter (runs under `accelerate launch` for DDP/FSDP/DeepSpeed too)."""
    from rich.table import Table

    from radonc_llm.config import load_train_config
    from radonc_llm.train.loop import LAUNCHED_BY_US
    from radonc_llm.train.loop import train as run_training

    settings = load_train_config(config)
    results = run_training(settings, resume=resume)
    # One table: under `accelerate launch` rank 0's; with `processes: N`, the launching one's.
    if os.environ.get("RANK", "0") != "0" or os.environ.get(LAUNCHED_BY_US):
        return
    runs = results.get("results", {"": results}) if "runs" in results else {"": results}
    table = Table(title=f"Training run in {settings.output_dir}")
    for column in ("adapter", "status", "steps", "best val loss", "train loss", "tokens/s"):
        table.add_column(column)
    for task, row in runs.items():
        best = row.get("best_val_loss")
        table.add_row(
            task or "multitask",
            str(row["status"]),
            f"{row['steps']}/{row['total_steps']}",
            "-" if best is None else f"{best:.4f}",
            f"{row['final_train_loss']:.4f}",
            f"{row['tokens_per_s']:.0f}",
        )
    console.print(table)


@app.command()
@user_errors
def export(
    run: Annotated[
        Path, typer.Argument(help="Training run folder (holds manifest.json, adapter/).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="New or empty folder outside the run, for the merged model (or the adapter "
            "alone with --adapter-only)."
        ),
    ],
    merge: Annotated[
        bool, typer.Option("--merge/--adapter-only", help="Merge the adapter into the base model.")
    ] = True,
) -> None:
    """Write a run's adapter merged into its base model (or the adapter alone)."""
    from radonc_llm.train.export import export_run

    written = export_run(run, out, merge=merge)
    console.print(f"{'merged model' if merge else 'adapter'} written to {written}")


@app.command()
@user_errors
def predict(
    cases: Annotated[
        Path,
        typer.Option(
            help="Case JSONL file (e.g. the test split), or notes alone: case_id and "
            "diagnosis_text per line."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Prediction JSONL; an existing one is resumed.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Registry name, training run folder, model folder or hub id (owner/name); "
            "needed with --backend transformers."
        ),
    ] = None,
    tasks: Annotated[
        list[str] | None,
        typer.Option(
            help="regimen, modality, icd10 (repeat or comma-separate); default: all three."
        ),
    ] = None,
    decoding: Annotated[
        str | None,
        typer.Option(
            help="constrained (modality labels scored, ICD-10 from the trie of real codes; "
            "regimens free) or free. Default: the resumed file's, else constrained on a local "
            "model, free on --backend openai."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Prompts per forward pass (local backend). Default: 32 where answers are "
            "decoded token by token (regimen, ICD-10), 16 where only scored (modality).",
            min=1,
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N cases.", min=1)] = None,
    backend: Annotated[str, typer.Option(help="transformers (local) or openai.")] = "transformers",
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible API root, e.g. http://host:8000/v1.")
    ] = None,
    model_name: Annotated[str | None, typer.Option(help="Model name the server knows.")] = None,
    concurrency: Annotated[
        int, typer.Option(help="Requests in flight at once (openai backend).", min=1)
    ] = 4,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for one answer (openai backend).", min=1)
    ] = 120.0,
    max_retries: Annotated[
        int,
        typer.Option(
            help="Tries again after a rate limit, a server error or a cut connection (openai "
            "backend), with a bounded backoff; then the run stops, writing no row for it.",
            min=0,
        ),
    ] = 4,
    dtype: Annotated[
        str,
        typer.Option(
            help="float32 (batched = one at a time, bit for bit), bfloat16 or auto (bfloat16 "
            "where the hardware computes it natively, else float32); local backend."
        ),
    ] = "float32",
    processes: Annotated[
        int,
        typer.Option(
            help="Local model in N worker processes sharing the CPU cores (CPU only; 2 on a "
            "2-core CPU did ~2x the work of 1).",
            min=1,
        ),
    ] = 1,
) -> None:
    """Predict the three tasks for every case; rows are appended as they finish (resumable)."""

    from radonc_llm.data.cases import read_notes
    from radonc_llm.infer.backends import OpenAIBackend, torch_dtype
    from radonc_llm.infer.parallel import local_backend
    from radonc_llm.infer.predict import parse_tasks, predict_cases, prediction_table
    from radonc_llm.models.precision import resolve_inference_dtype
    from radonc_llm.storage import check_output_file

    # Every option is checked before the cases are read and long before a model loads.
    if backend not in ("transformers", "openai"):
        raise RadoncInputError(
            f"unknown backend '{backend}'; expected transformers or openai", field="backend"
        )
    if backend == "openai" and (not base_url or not model_name):
        raise RadoncInputError("--backend openai needs --base-url and --model-name")
    if backend == "transformers":
        if not model:
            raise RadoncInputError(
                "give --model (a registry name, run folder, model folder or hub id)"
            )
        torch_dtype(dtype)  # a bad name fails here, before any worker starts
    task_names = parse_tasks(tasks)
    check_output_file(out, expected="a prediction file (.jsonl)")
    case_list = read_notes(cases, allow_empty=False)
    if limit is not None:
        case_list = case_list[:limit]
    if backend == "openai":
        opened = OpenAIBackend(  # a context manager: closes its client
            base_url,
            model_name,
            concurrency=concurrency,
            timeout_s=timeout,
            max_retries=max_retries,
        )
    else:
        opened = local_backend(model, dtype=resolve_inference_dtype(dtype), processes=processes)
    with opened as engine:
        summary = predict_cases(
            engine,
            case_list,
            out,
            tasks=task_names,
            decoding=decoding,
            batch_size=batch_size,
            cases_file=cases,
            console=console,
        )
    if summary.repaired_last_line:
        console.print("[yellow]note:[/] dropped a cut-short last line left by an interrupted run")
    for message in summary.messages:
        _print_warning(message)
    rows = {
        task: {
            "cases": s.cases,
            "already_done": s.already_done,
            "predicted": s.predicted,
            "malformed": s.malformed,
            "cases_per_s": s.cases_per_s,
        }
        for task, s in summary.tasks.items()
    }
    title = f"Predictions of {engine.model_name} -> {out}"
    console.print(prediction_table(title, rows, answered_together=summary.answered_together))


@app.command()
@user_errors
def evaluate(
    cases: Annotated[Path, typer.Option(help="Case JSONL file with the reference answers.")],
    predictions: Annotated[
        list[str], typer.Option(help="NAME=PRED.jsonl, once per system (e.g. base=..., ft=...).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for metrics.json, per_case.jsonl.")],
    compare: Annotated[
        list[str] | None,
        typer.Option(help="SYSTEM:BASELINE pairs to test; default: every system vs 'base'."),
    ] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% CIs.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.", **SEED_RANGE)] = 0,
) -> None:
    """Score prediction files against the cases, with 95% CIs and paired one-sided tests."""
    from radonc_llm.data.cases import read_cases
    from radonc_llm.evaluate.run import (
        evaluate_predictions,
        parse_compare_args,
        parse_prediction_args,
        summary_tables,
    )

    systems = parse_prediction_args(predictions)
    pairs = parse_compare_args(compare, list(systems)) if compare else None
    result = evaluate_predictions(
        read_cases(cases, allow_empty=False),
        systems,
        out,
        compare=pairs,
        n_resamples=bootstrap,
        seed=seed,
        cases_file=cases,
    )
    for message in result.messages:
        console.print(f"[yellow]note:[/] {escape(message)}", soft_wrap=True)
    for table in summary_tables(result.metrics):
        console.print(table)
    console.print(f"metrics.json and per_case.jsonl in {escape(str(out))}")


@app.command()
@user_errors
def report(
    run: Annotated[Path, typer.Option(help="Run directory, e.g. runs/demo.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for report.html, report.md and figures/ (default: RUN/report)."),
    ] = None,
    patient_text: Annotated[
        bool | None,
        typer.Option(
            "--patient-text/--no-patient-text",
            help="Quote diagnosis notes and case ids in the examples (default: only for a run "
            "on a synthetic cohort; a real export's case ids are its patient ids).",
        ),
    ] = None,
) -> None:
    """Write the study report (self-contained HTML and Markdown) from a run's artefacts."""
    from radonc_llm.evaluate.report import (
        RUN_ARTEFACTS,
        headline_table,
        read_run_metrics,
        write_report,
    )

    with console.status("Writing the report"):
        html, markdown = write_report(run, out, patient_text=patient_text)
    try:
        metrics = read_run_metrics(run)
    except RadoncInputError as exc:  # the report says so in its sections; no summary table
        _print_warning(exc.message)
        metrics = None
    if metrics is not None:
        console.print(headline_table(metrics))
    elif not any((run / name).exists() for name in RUN_ARTEFACTS):
        _print_warning(
            f"{run} holds none of a run's files ({', '.join(RUN_ARTEFACTS)}): every section "
            "of the report says its input is absent. Give a run folder, e.g. runs/demo."
        )
    console.print(f"Report: {html}\nMarkdown: {markdown}")


@app.command()
@user_errors
def baseline(
    train: Annotated[Path, typer.Option(help="Training case JSONL file.")],
    cases: Annotated[
        Path,
        typer.Option(
            help="Case JSONL file to predict (e.g. the test split), or notes alone: case_id "
            "and diagnosis_text per line."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Prediction JSONL (same format as predict).")],
    kind: Annotated[str, typer.Option(help="majority, tfidf-logreg, nearest-regimen or few-shot.")],
    tasks: Annotated[
        list[str] | None,
        typer.Option(
            help="regimen, modality, icd10 (repeat or comma-separate); default: all the "
            "baseline answers."
        ),
    ] = None,
    k: Annotated[int, typer.Option(help="few-shot: number of similar training cases.")] = 3,
    model: Annotated[str, typer.Option(help="few-shot: the original model.")] = "smollm2-135m",
    decoding: Annotated[
        str | None, typer.Option(help="few-shot: constrained (default) or free.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="few-shot: prompts per forward pass.", min=1)] = 8,
    dtype: Annotated[str, typer.Option(help="few-shot: float32, bfloat16 or auto.")] = "float32",
    processes: Annotated[
        int, typer.Option(help="few-shot: the model in N worker processes (CPU).", min=1)
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the logistic regression.", **SEED_RANGE)] = 0,
) -> None:
    """Write a reference system's predictions, so that a model's number means something."""
    from radonc_llm.data.cases import read_cases, read_notes
    from radonc_llm.evaluate.baselines import run_baseline
    from radonc_llm.infer.predict import parse_tasks, prediction_table
    from radonc_llm.storage import check_output_file

    check_output_file(out, expected="a prediction file (.jsonl)")
    summary = run_baseline(
        kind,
        read_cases(train, allow_empty=False),
        read_notes(cases, allow_empty=False),
        out,
        tasks=parse_tasks(tasks) if tasks else None,
        k=k,
        model=model,
        decoding=decoding,
        batch_size=batch_size,
        dtype=dtype,
        processes=processes,
        seed=seed,
        console=console,
    )
    for message in summary.messages:
        _print_warning(message)
    title = f"Baseline {kind} -> {escape(str(out))}"
    together = summary.answered_together
    console.print(prediction_table(title, summary.tasks, answered_together=together))


review_app = typer.Typer(
    cls=CommandGroup,
    help="Blinded clinical review of generated regimens: build a study, serve it, export it.",
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")
StudyDir = Annotated[Path, typer.Option("--study", help="Study folder (study.json, review.db).")]
DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="RADONC_REVIEW_DATABASE_URL",
        help="sqlite:///PATH or postgresql+psycopg://USER@HOST/DB; default: review.db in --study.",
        show_default=False,
    ),
]


@review_app.command("create-study")
@user_errors
def review_create_study(
    cases: Annotated[Path, typer.Option(help="Case JSONL: diagnosis and reference regimen.")],
    predictions: Annotated[
        list[str], typer.Option(help="NAME=PRED.jsonl, repeatable (e.g. base=..., finetuned=...).")
    ],
    reviewers: Annotated[str, typer.Option(help="A number N (reviewer1..N) or user1,user2,...")],
    study: StudyDir,
    overlap: Annotated[int, typer.Option(help="Reviewers per item; 2 for agreement.")] = 1,
    seed: Annotated[
        int, typer.Option(help="Seed of the assignment and queue order.", **SEED_RANGE)
    ] = 0,
    sample: Annotated[int | None, typer.Option(help="Review a random subset of N cases.")] = None,
    control: Annotated[
        bool, typer.Option(help="Add the reference regimen as a blinded control source.")
    ] = True,
    db: DbUrl = None,
) -> None:
    """Build a blinded study (study.json) and load it into the review database."""
    from rich.table import Table

    from radonc_llm.review.db import display_url, prepare_database
    from radonc_llm.review.settings import ReviewSettings
    from radonc_llm.review.study import (
        create_study,
        parse_prediction_specs,
        parse_reviewers,
        write_study,
    )
    from radonc_llm.storage import check_output_folder

    check_output_folder(study)  # a file named as the study folder, or a read-only place
    settings = ReviewSettings(study_dir=study, database_url=db)
    if settings.study_file.exists():
        raise RadoncInputError("a study exists here; choose a new folder", file=settings.study_file)
    definition = create_study(
        cases,
        parse_prediction_specs(predictions),
        reviewers=parse_reviewers(reviewers),
        overlap=overlap,
        seed=seed,
        include_reference=control,
        sample=sample,
    )
    url = settings.resolved_database_url()
    prepare_database(url, definition).dispose()
    write_study(definition, study)
    table = Table(title=f"Study {definition.study_id} ({display_url(url)})")
    table.add_column("reviewer")
    table.add_column("items", justify="right")
    for name, queue in definition.queues.items():
        table.add_row(name, str(len(queue)))
    console.print(table)
    console.print(
        f"{len(definition.items)} items from sources {', '.join(definition.sources)}; "
        f"next: radonc-llm review add-user --study {study} --username NAME"
    )


@review_app.command("add-user")
@user_errors
def review_add_user(
    study: StudyDir,
    username: Annotated[str, typer.Option(help="Login name; a reviewer's queue has this name.")],
    admin: Annotated[bool, typer.Option(help="An admin sees progress and results.")] = False,
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input instead of a prompt.")
    ] = False,
    reset_password: Annotated[bool, typer.Option(help="Set a new password.")] = False,
    db: DbUrl = None,
) -> None:
    """Create a reviewer or admin account (the password is asked for, never an argument)."""
    import sys

    from pydantic import ValidationError

    from radonc_llm.review.accounts import add_user
    from radonc_llm.review.db import prepare_database, session_scope
    from radonc_llm.review.schemas import UserCreate
    from radonc_llm.review.settings import ReviewSettings
    from radonc_llm.review.study import read_study

    definition = read_study(study)  # a wrong --study is named before the password is asked
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = UserCreate(
            username=username, password=password, role="admin" if admin else "reviewer"
        )
    except ValidationError as exc:
        raise RadoncInputError.from_validation_error(exc) from None
    settings = ReviewSettings(study_dir=study, database_url=db)
    engine = prepare_database(settings.resolved_database_url(), definition)
    try:
        with session_scope(engine) as session:
            add_user(session, user, settings=settings, reset_password=reset_password)
    finally:
        engine.dispose()
    console.print(f"{user.role} '{user.username}' is ready.")
    if not admin and username not in definition.reviewers:
        _print_warning(
            f"'{username}' has no queue in this study "
            f"(reviewers: {', '.join(definition.reviewers)})"
        )


@review_app.command("serve")
@user_errors
def review_serve(
    study: StudyDir,
    db: DbUrl = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.", min=1)] = 1,
    cookie_secure: Annotated[
        bool, typer.Option(help="Secure cookies: set when served over HTTPS.")
    ] = False,
) -> None:
    """Serve the review pages (migrates the database and loads the study first)."""
    from radonc_llm.review.app import serve
    from radonc_llm.review.db import display_url
    from radonc_llm.review.settings import ReviewSettings
    from radonc_llm.review.study import read_study

    read_study(study)  # a wrong --study is named before the server says it is serving
    settings = ReviewSettings(study_dir=study, database_url=db, cookie_secure=cookie_secure)
    console.print(
        f"Review of {study} on http://{host}:{port} "
        f"(database {display_url(settings.resolved_database_url())})"
    )
    serve(settings, host=host, port=port, workers=workers)


@review_app.command("export")
@user_errors
def review_export(
    study: StudyDir,
    out: Annotated[Path, typer.Option(help="Folder for ratings.csv/.jsonl, review_metrics.json.")],
    db: DbUrl = None,
    treatment: Annotated[str, typer.Option(help="Fine-tuned source name.")] = "finetuned",
    control: Annotated[str, typer.Option(help="Original-model source name.")] = "base",
) -> None:
    """Export ratings, the audit log and review_metrics.json (acceptability, tests, agreement)."""
    from rich.table import Table

    from radonc_llm.review.export import export_review

    summary = export_review(study, out, database_url=db, treatment=treatment, control=control)
    metrics = summary.metrics
    table = Table(title=f"Review {metrics['study_id']}: {summary.n_ratings} ratings -> {out}")
    for column in ("source", "ratings", "acceptable", "95% CI", "as is"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for source, row in metrics["acceptability"].items():
        low, high = row["acceptable_ci95"]
        table.add_row(
            source,
            str(row["n"]),
            f"{row['acceptable_rate']:.1%}",
            f"{low:.1%}-{high:.1%}",
            f"{row['as_is_rate']:.1%}",
        )
    console.print(table)
    comparison = metrics["comparison"]
    if comparison["p_value"] is not None:
        console.print(
            f"{treatment} > {control}: one-sided Wilcoxon p = {comparison['p_value']:.4g} "
            f"({comparison['n_cases']} cases, {comparison['n_nonzero']} non-zero differences)"
        )
    else:
        console.print(f"{treatment} vs {control}: {comparison['note']}")
    agreement = metrics["agreement"]
    for name, key in (
        ("Fleiss' kappa", "fleiss_kappa"),
        ("Krippendorff's alpha", "krippendorff_alpha"),
    ):
        console.print(f"{name}: {_agreement_text(agreement[key])}")
    for pair in agreement["cohen_kappa"]:
        names = " and ".join(pair["reviewers"])
        value = "none" if pair["kappa"] is None else f"{pair['kappa']:.3f}"
        console.print(f"Cohen's kappa, {escape(names)}: {value} ({pair['n']} shared items)")
    if agreement["cohen_kappa_note"] is not None:
        console.print(escape(agreement["cohen_kappa_note"]), soft_wrap=True)


def _agreement_text(statistic: dict) -> str:
    """An agreement statistic's value and the items behind it, or why there is none."""
    if statistic["value"] is None:
        return f"none ({escape(statistic['note'] or 'undefined')})"
    return f"{statistic['value']:.3f} ({statistic['n_items']} items rated more than once)"


import_app = typer.Typer(
    cls=CommandGroup,
    help="Import a public head-and-neck cohort (read in place, never copied) into case JSONL.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")

ImportPath = Annotated[
    Path, typer.Argument(help="The cohort's CSV file, or the folder holding it.")
]
ImportOut = Annotated[Path, typer.Option(help="Case JSONL to write (atomic).")]
ImportSplit = Annotated[
    str | None,
    typer.Option(help="Put every kept case in this split (train, val, test), e.g. test for an "
                 "external cohort; default: the source's own split, if it has one."),
]  # fmt: skip
ImportExcluded = Annotated[
    Path | None,
    typer.Option(help="Exclusion ledger; default excluded.jsonl beside --out "
                 "(<stem>.excluded.jsonl unless --out is cases.jsonl)."),
]  # fmt: skip


def _import(cohort: str, path: Path, out: Path, split: str | None, excluded: Path | None) -> None:
    from radonc_llm.data.importers import import_cohort
    from radonc_llm.data.importers.result import import_table, write_import
    from radonc_llm.storage import check_output_file

    check_output_file(out, expected="a case file (.jsonl)")
    if excluded is not None:
        check_output_file(excluded, expected="a ledger file (.jsonl)")
    result = import_cohort(cohort, path, split=split)
    ledger = write_import(result, out, excluded=excluded)
    console.print(import_table(result))
    console.print(f"{len(result.cases)} cases -> {out}; {len(result.ledger)} excluded -> {ledger}")


@import_app.command("radcure")
@user_errors
def import_radcure(
    path: ImportPath, out: ImportOut, split: ImportSplit = None, excluded: ImportExcluded = None
) -> None:
    """RADCURE clinical table (Princess Margaret, Toronto; TCIA, CC BY-NC)."""
    _import("radcure", path, out, split, excluded)


@import_app.command("hnscc-mdacc")
@user_errors
def import_hnscc_mdacc(
    path: ImportPath, out: ImportOut, split: ImportSplit = None, excluded: ImportExcluded = None
) -> None:
    """TCIA HNSCC tables (MD Anderson, Houston; CC BY-NC 3.0): a folder with one or both."""
    _import("hnscc-mdacc", path, out, split, excluded)


@import_app.command("hn1")
@user_errors
def import_hn1(
    path: ImportPath, out: ImportOut, split: ImportSplit = None, excluded: ImportExcluded = None
) -> None:
    """Head-Neck-Radiomics-HN1 clinical table (MAASTRO, Maastricht; TCIA, CC BY-NC 3.0)."""
    _import("hn1", path, out, split, excluded)


if __name__ == "__main__":
    app()
