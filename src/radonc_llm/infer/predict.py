"""A prediction run: cases x tasks -> prompts -> backend -> extracted answers -> prediction file.

Set-up, loop, save, in that order. A backend that holds the model (`answer_tasks`) answers a
case's tasks together, each note run once (`plan_work` groups the cases by the tasks they still
lack); others answer task after task. Within a unit of work, cases run longest prompt first
with ties kept in file order; this order is fixed, so a resumed run asks for the same answers
an uninterrupted one would have. Batches hold up to `batch_size` prompts of similar length
(`plan_batches`; by default `batch_rows`: more when answers are decoded token by token), so
little of a batch is padding, and at most `MAX_BATCH_CHARS` of padded prompt text, so very
long notes run a few at a time. Every finished batch is appended before the next starts. A
manifest (`<out>.manifest.json`) records the settings, input hashes, versions and per-task
speed of the latest run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from radonc_llm.data.cases import TASKS, Note
from radonc_llm.errors import RadoncInputError
from radonc_llm.infer.backends import DECODINGS, Answer, Backend
from radonc_llm.infer.extract import extract_answer
from radonc_llm.infer.parallel import (
    answer_batches,
    answer_task_batches,
    answers_tasks_together,
)
from radonc_llm.infer.store import PredictionStore
from radonc_llm.storage import file_sha256, write_json_atomic
from radonc_llm.tasks.prompts import PROMPT_VERSION, TASK_PROMPTS, prompt_messages

MessagesFor = Callable[[Note, str], list[dict[str, str]]]


def default_messages(case: Note, task: str) -> list[dict[str, str]]:
    return prompt_messages(task, case.diagnosis_text)


class CasesPerSecondColumn(ProgressColumn):
    """Throughput in cases per second: of the last half-minute while a task runs, of the
    whole task once it is done (long notes and short ones differ several-fold)."""

    def render(self, task) -> Text:
        if task.finished and task.finished_time:
            speed = task.completed / task.finished_time
        else:
            speed = task.speed
        return Text("-- cases/s" if speed is None else f"{speed:.1f} cases/s", style="cyan")


@dataclass
class TaskSummary:
    task: str
    cases: int = 0
    already_done: int = 0
    predicted: int = 0
    malformed: int = 0
    seconds: float = 0.0

    @property
    def cases_per_s(self) -> float | None:
        return self.predicted / self.seconds if self.seconds > 0 else None


@dataclass
class PredictSummary:
    out: Path
    tasks: dict[str, TaskSummary] = field(default_factory=dict)
    repaired_last_line: bool = False
    messages: list[str] = field(default_factory=list)
    # Tasks answered together (each note run once for all of them): their cases/s is shared.
    answered_together: list[list[str]] = field(default_factory=list)


def parse_tasks(values: Sequence[str] | None) -> tuple[str, ...]:
    """Task names from repeated or comma-separated options; default: all three."""
    if not values:
        return TASKS
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise RadoncInputError(f"names no task; expected {', '.join(TASKS)}", field="tasks")
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        raise RadoncInputError(
            f"unknown task {', '.join(unknown)}; expected {', '.join(TASKS)}", field="tasks"
        )
    return tuple(dict.fromkeys(names))


def prediction_row(case_id: str, task: str, answer: Answer, *, seconds: float) -> dict:
    """One prediction row; constrained answers are already valid, free text is extracted."""
    if answer.prediction is not None:
        prediction, malformed, reason = answer.prediction, False, None
    elif answer.malformed_reason is not None:  # what the server sent had no answer in it
        prediction, malformed, reason = None, True, answer.malformed_reason
    else:
        extraction = extract_answer(task, answer.raw)
        prediction, malformed, reason = (
            extraction.prediction,
            extraction.malformed,
            extraction.reason,
        )
    if malformed and answer.stopped is False:
        # Why there is no answer: often a reasoning model, or a chatty one, out of tokens.
        limit = TASK_PROMPTS[task].max_new_tokens
        reason = f"{reason} (cut at the {task} answer limit of {limit} tokens)"
    return {
        "case_id": case_id,
        "task": task,
        "prediction": prediction,
        "raw": answer.raw,
        "malformed": malformed,
        "malformed_reason": reason,
        "logprob": answer.logprob,
        "scores": answer.scores,
        "n_new_tokens": answer.n_new_tokens,
        "stopped": answer.stopped,
        "latency_s": round(seconds, 4),
    }


def _ordered(
    cases: Sequence[Note], task: str, messages_for: MessagesFor
) -> tuple[list[Note], list[int]]:
    """The cases longest prompt first (ties in file order), with their prompt lengths."""
    chars = [sum(len(m["content"]) for m in messages_for(case, task)) for case in cases]
    order = sorted(range(len(cases)), key=lambda index: (-chars[index], index))
    return [cases[index] for index in order], [chars[index] for index in order]


# What a batch costs beyond its (padded) prompts, in prompts of average length: a forward
# pass has fixed costs, and free generation pays them again at every new token.
BATCH_COST_IN_PROMPTS = {"constrained": 4.0, "free": 16.0}


# Padded prompt text one batch may hold (~8,000 tokens): a batch's KV cache, and the ICD-10
# walk's copies of it, grow with rows x padded length. Prompts up to ~2,000 characters still
# fill batches of 16; 16 notes of ~7,000 characters (~2,700 tokens) ran modality and ICD-10
# in 9.8 GB (two processes) before, a few at a time now.
MAX_BATCH_CHARS = 32_000


def plan_batches(
    lengths: Sequence[int], max_rows: int, batch_cost: float, *, max_chars: int | None = None
) -> list[range]:
    """Split prompts sorted longest first into consecutive batches of at most `max_rows`,
    and of at most `max_chars` padded length (rows x the first's length; a prompt longer than
    that runs alone).

    Minimises padded length (each row costs the batch's longest prompt, its first) plus
    `batch_cost` per batch, exactly, by dynamic programming over the cut points: a dense run
    of similar lengths fills whole batches; the long tail gets smaller ones instead of
    padding 30 short prompts to one long one (on 128 test cases, fixed batches of 32 wasted
    29% of the prompt tokens on padding, planned batches 8%).
    """
    if any(a < b for a, b in zip(lengths, lengths[1:], strict=False)):
        raise ValueError("lengths must be sorted longest first")
    count = len(lengths)
    best = [0.0] + [float("inf")] * count  # best[j]: cost of the first j prompts
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        for start in range(max(0, end - max_rows), end):
            if max_chars is not None and end - start > max(1, max_chars // lengths[start]):
                continue
            cost = best[start] + (end - start) * lengths[start] + batch_cost
            if cost < best[end]:
                best[end], cut[end] = cost, start
    batches, end = [], count
    while end > 0:
        batches.append(range(cut[end], end))
        end = cut[end]
    return batches[::-1]


# Prompts per batch when the user sets none (`batch_size=None`). A decoding step reads every
# weight whatever its rows, so work that generates answers or walks the ICD-10 trie token by
# token gains from more rows; a prompt pass does not, and larger batches pad more. Tuned demo
# model, bf16, 2 cores (AMX), 16 -> 32 rows: regimen 16.0 -> 19.0 cases/s, ICD-10 20.6 ->
# 22.1, all three tasks together 9.0 -> 10.9; modality alone (scored) 36.4 -> 32.9.
AUTO_BATCH_ROWS = {"scored": 16, "decoded": 32}


def batch_rows(tasks: Sequence[str], decoding: str, batch_size: int | None) -> int:
    """Prompts per batch for a unit of work answering `tasks` (`batch_size` None: auto)."""
    if batch_size is not None:
        return batch_size
    scored_only = decoding == "constrained" and set(tasks) <= {"modality"}
    return AUTO_BATCH_ROWS["scored" if scored_only else "decoded"]


def _batches(
    ordered: list[Note],
    lengths: list[int],
    tasks: Sequence[str],
    decoding: str,
    batch_size: int | None,
) -> list[list[Note]]:
    average = sum(lengths) / len(lengths) if lengths else 0.0
    generates = decoding == "free" or "regimen" in tasks
    cost = BATCH_COST_IN_PROMPTS["free" if generates else "constrained"] * average
    rows = batch_rows(tasks, decoding, batch_size)
    plan = plan_batches(lengths, rows, cost, max_chars=MAX_BATCH_CHARS)
    return [ordered[rows.start : rows.stop] for rows in plan]


@dataclass(frozen=True)
class WorkUnit:
    """Cases answered together for `tasks`, in batches."""

    tasks: tuple[str, ...]
    batches: list[list[Note]]


def plan_work(
    cases: Sequence[Note],
    tasks: Sequence[str],
    done: set[tuple[str, str]],
    *,
    together: bool,
    decoding: str,
    batch_size: int | None,
    messages_for: MessagesFor,
) -> list[WorkUnit]:
    """The (case, task) pairs not yet `done`, as units of work in a fixed order.

    `together` (a local model): the cases grouped by the tasks they still lack, each group one
    unit answered for all its tasks at once (each note runs once: `answer_tasks`); a fresh run
    is one unit. Otherwise one unit per task, task after task.
    """
    if together:
        groups: dict[tuple[str, ...], list[Note]] = {}
        for case in cases:
            missing = tuple(task for task in tasks if (case.case_id, task) not in done)
            if missing:
                groups.setdefault(missing, []).append(case)
        keyed = sorted(groups.items(), key=lambda item: [tasks.index(t) for t in item[0]])
    else:
        keyed = [((task,), [c for c in cases if (c.case_id, task) not in done]) for task in tasks]
    units = []
    for unit_tasks, pending in keyed:
        if pending:
            ordered, lengths = _ordered(pending, unit_tasks[0], messages_for)
            batches = _batches(ordered, lengths, unit_tasks, decoding, batch_size)
            units.append(WorkUnit(unit_tasks, batches))
    return units


def _measured_prompts(
    backend: Backend, cases: Sequence[Note], task: str, messages_for: MessagesFor
) -> tuple[int | None, list[tuple[str, int]]]:
    """The local model's context length and each case's prompt length in tokens; (None, [])
    from a backend that does not hold the model's tokenizer (in this process or its workers)."""
    measure = getattr(backend, "prompt_lengths", None)
    if measure is None or not cases:
        return None, []
    context, lengths = measure(task, [messages_for(case, task) for case in cases])
    return context, [(case.case_id, n) for case, n in zip(cases, lengths, strict=True)]


def _longer_than(lengths: list[tuple[str, int]], limit: int, task: str) -> list[tuple[str, int]]:
    """The prompts that, with room for the answer, do not fit in `limit` tokens."""
    room = limit - TASK_PROMPTS[task].max_new_tokens
    return [(case_id, n) for case_id, n in lengths if n > room]


def over_context(
    backend: Backend, cases: Sequence[Note], task: str, messages_for: MessagesFor
) -> tuple[int | None, list[tuple[str, int]]]:
    """The local model's context length and the cases whose prompt, with room for the answer,
    does not fit in it: the model reads them past the positions it was trained on.

    Only a backend that holds the model's tokenizer (in this process or its workers) can
    tell; others return (None, []).
    """
    context, lengths = _measured_prompts(backend, cases, task, messages_for)
    if context is None:
        return None, []
    return context, _longer_than(lengths, context, task)


def tuned_max_length(model: str) -> int | None:
    """The `max_length` a training run (or a model exported from one) was tuned with: its
    adapter never saw a longer example. None for other models."""
    folder = Path(model)
    for name in ("manifest.json", "training_manifest.json"):
        try:
            manifest = json.loads((folder / name).read_text(encoding="utf-8"))
            length = manifest["config"]["max_length"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(length, int) and length > 0:
            return length
    return None


def long_prompt_messages(
    backend: Backend, cases: Sequence[Note], task: str, messages_for: MessagesFor
) -> list[str]:
    """Messages naming the prompts too long for the model's context (answers unreliable), or
    else longer than any example a training run was tuned on (answers less reliable)."""
    context, lengths = _measured_prompts(backend, cases, task, messages_for)
    if context is None:
        return []
    too_long = _longer_than(lengths, context, task)
    if too_long:
        return [_over_context_message(task, context, too_long)]
    tuned = tuned_max_length(backend.model_name)
    beyond = _longer_than(lengths, tuned, task) if tuned and tuned < context else []
    if not beyond:
        return []
    return [
        f"{task}: {len(beyond)} prompt(s) are longer than any example the model was tuned on "
        f"(max_length {tuned} tokens, answer included): {_shown(beyond)}; its answers to such "
        "long notes are less reliable (shorter notes, or training with a larger max_length, "
        "help)"
    ]


def _shown(cases: list[tuple[str, int]]) -> str:
    shown = ", ".join(f"{case_id} ({n} tokens)" for case_id, n in cases[:5])
    return shown + (f" and {len(cases) - 5} more" if len(cases) > 5 else "")


def _over_context_message(task: str, context: int, cases: list[tuple[str, int]]) -> str:
    return (
        f"{task}: {len(cases)} prompt(s) leave no room for the answer in the model's context "
        f"of {context} tokens: {_shown(cases)}; predicted anyway (not truncated), so these "
        "answers are unreliable: shorten the diagnosis notes or use a longer-context model"
    )


def _naming_cases(
    exc: RadoncInputError, tasks: Sequence[str], batch: Sequence[Note]
) -> RadoncInputError:
    """The backend's error with the cases it was answering (the backend sees only prompts,
    which hold patient text, so it cannot name them itself)."""
    shown = ", ".join(case.case_id for case in batch[:5])
    more = f" and {len(batch) - 5} more" if len(batch) > 5 else ""
    return RadoncInputError(
        f"{exc.reason} (while answering {' and '.join(tasks)} for {shown}{more})",
        file=exc.file,
        row=exc.row,
        field=exc.field,
    )


def _versions() -> dict[str, str]:
    out = {}
    for package in ("radonc-llm", "torch", "transformers", "peft", "httpx"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


def default_decoding(backend: Backend, out: Path) -> str:
    """The decoding when none is named: that of the file being resumed; else constrained where
    the backend can constrain (a modality answer is always one of the four, an ICD-10 answer
    always a real code; regimens are generated freely either way), else free."""
    try:
        with out.open(encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        resumed = json.loads(first).get("decoding") if first else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        resumed = None
    if resumed in DECODINGS:
        return resumed
    return "constrained" if backend.supports_constrained else "free"


def _answered(backend: Backend, unit: WorkUnit, messages_for: MessagesFor, decoding: str):
    """The backend's answers to `unit`, batch by batch, each as {task: answers}."""
    if len(unit.tasks) > 1:
        conversations = (
            {task: [messages_for(case, task) for case in batch] for task in unit.tasks}
            for batch in unit.batches
        )
        return answer_task_batches(backend, conversations, decoding=decoding)
    (task,) = unit.tasks
    per_batch = ([messages_for(case, task) for case in batch] for batch in unit.batches)
    return _keyed(task, answer_batches(backend, task, per_batch, decoding=decoding))


def _keyed(task: str, answered: Iterator[list[Answer]]) -> Iterator[dict[str, list[Answer]]]:
    with closing(answered):  # closing this closes the backend's generator too
        for answers in answered:
            yield {task: answers}


def _save_batch(
    store: PredictionStore,
    task_summary: TaskSummary,
    batch: Sequence[Note],
    answers: Sequence[Answer],
    seconds: float,
) -> None:
    """Append one batch's rows of one task; count them."""
    if len(answers) != len(batch):
        raise RuntimeError(f"backend returned {len(answers)} of {len(batch)}")
    for case, answer in zip(batch, answers, strict=True):
        row = prediction_row(case.case_id, task_summary.task, answer, seconds=seconds / len(batch))
        store.append(row)
        task_summary.malformed += int(row["malformed"])
    task_summary.predicted += len(batch)
    task_summary.seconds += seconds


def predict_cases(
    backend: Backend,
    cases: Sequence[Note],
    out: str | Path,
    *,
    tasks: Sequence[str] = TASKS,
    decoding: str | None = None,
    batch_size: int | None = None,
    messages_for: MessagesFor = default_messages,
    model_label: str | None = None,
    cases_file: str | Path | None = None,
    console: Console | None = None,
    show_progress: bool = True,
) -> PredictSummary:
    """Predict every (case, task) not yet in `out`; append rows batch by batch.

    `model_label` names the system in every row (default: the backend's model name); a
    resumed run must use the same label, decoding and prompt version as the file it extends.
    `decoding` None: see `default_decoding`.
    """
    out = Path(out)
    decoding = decoding or default_decoding(backend, out)
    if decoding not in DECODINGS:
        raise RadoncInputError(
            f"unknown decoding '{decoding}'; expected {', '.join(DECODINGS)}", field="decoding"
        )
    if decoding == "constrained" and not backend.supports_constrained:
        raise RadoncInputError(
            f"the {backend.name} backend cannot constrain decoding (it needs the model's "
            "logits); use --decoding free or the transformers backend",
            field="decoding",
        )
    if batch_size is not None and batch_size < 1:
        raise RadoncInputError("batch size must be at least 1", field="batch_size")
    if not getattr(backend, "batched", True):
        # A server answers each prompt on its own (the backend keeps several in flight):
        # a row per write keeps every finished answer when a run is stopped.
        batch_size = 1
    tasks = parse_tasks(tasks)
    if hasattr(backend, "require"):  # a run of one adapter per task must hold each one asked
        backend.require(tasks)
    run_info = {
        "model": model_label or backend.model_name,
        "backend": backend.name,
        "decoding": decoding,
        "prompt_version": PROMPT_VERSION,
    }
    started = dt.datetime.now(dt.UTC)
    summary = PredictSummary(out=out)
    with PredictionStore(out, run_info=run_info) as store:
        summary.repaired_last_line = store.repaired_last_line
        pending = {
            task: [c for c in cases if (c.case_id, task) not in store.done] for task in tasks
        }
        for task in tasks:
            summary.tasks[task] = TaskSummary(
                task=task, cases=len(cases), already_done=len(cases) - len(pending[task])
            )
        units = plan_work(
            cases,
            tasks,
            store.done,
            together=answers_tasks_together(backend),
            decoding=decoding,
            batch_size=batch_size,
            messages_for=messages_for,
        )
        summary.answered_together = [list(u.tasks) for u in units if len(u.tasks) > 1]
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            CasesPerSecondColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not show_progress,
        )
        with progress:
            bars = {
                # Each bar's clock starts with its task, not with the first task.
                task: progress.add_task(task, total=len(pending[task]), start=False)
                for task in tasks
            }
            checked: set[str] = set()
            for unit in units:
                for task in unit.tasks:
                    if task not in checked:
                        # Measured as the task starts: a per-task run loads that task's model here.
                        summary.messages += long_prompt_messages(
                            backend, pending[task], task, messages_for
                        )
                        checked.add(task)
                    progress.start_task(bars[task])
                answered = _answered(backend, unit, messages_for, decoding)
                began, done = time.perf_counter(), 0
                try:
                    # Closed on any way out: a backend cancels the requests still in flight.
                    with closing(answered):
                        for batch, answers in zip(unit.batches, answered, strict=True):
                            seconds, began = time.perf_counter() - began, time.perf_counter()
                            for task in unit.tasks:
                                _save_batch(
                                    store, summary.tasks[task], batch, answers[task], seconds
                                )
                                progress.advance(bars[task], len(batch))
                            done += 1
                except RadoncInputError as exc:
                    if exc.file == str(store.path):  # the prediction file's own trouble
                        raise
                    raise _naming_cases(exc, unit.tasks, unit.batches[done]) from None
    manifest = out.with_name(out.stem + ".manifest.json")
    try:
        write_json_atomic(
            manifest,
            {
                "command": "predict",
                **run_info,
                "tasks": list(tasks),
                "batch_size": batch_size if batch_size is not None else "auto",
                "cases_file": str(cases_file) if cases_file else None,
                "cases_sha256": file_sha256(cases_file) if cases_file else None,
                "cases": len(cases),
                "started": started.isoformat(),
                "finished": dt.datetime.now(dt.UTC).isoformat(),
                "per_task": {
                    name: {
                        "cases": s.cases,
                        "already_done": s.already_done,
                        "predicted": s.predicted,
                        "malformed_new": s.malformed,
                        "seconds": round(s.seconds, 3),
                        "cases_per_s": s.cases_per_s,
                    }
                    for name, s in summary.tasks.items()
                },
                "answered_together": summary.answered_together,
                "messages": summary.messages,
                "versions": _versions(),
                "hardware": {
                    "machine": platform.machine(),
                    "processor": platform.processor(),
                    "cpu_count": os.cpu_count(),
                },
            },
        )
    except OSError as exc:
        raise RadoncInputError(
            f"cannot write the run's manifest ({exc.strerror or exc}); the predictions are "
            f"complete in {out}: make room and rerun the same command to write it",
            file=manifest,
        ) from None
    return summary


def prediction_table(
    title: str, rows: dict[str, dict], *, answered_together: Sequence[Sequence[str]] = ()
) -> Table:
    """Per task: cases, already done, predicted now, malformed, cases/s."""
    caption = "; ".join(
        f"{', '.join(tasks)} answered together (each note read once): cases/s is for all of them"
        for tasks in answered_together
    )
    table = Table(title=title, caption=caption or None)
    for column in ("task", "cases", "already done", "predicted", "malformed", "cases/s"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task, row in rows.items():
        rate = row.get("cases_per_s")
        table.add_row(
            task,
            str(row.get("cases", "")),
            str(row.get("already_done", 0)),
            str(row.get("predicted", row.get("cases", ""))),
            str(row.get("malformed", "")),
            "-" if rate is None else f"{rate:.1f}",
        )
    return table
