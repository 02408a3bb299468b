"""Data-parallel prediction on a CPU: several worker processes, each with its own model copy.

Why processes and not threads: SmolLM2-135M runs many small operators with Python between
them, and a second intra-op thread barely speeds that up. On the 2-core development machine,
two 1-thread processes did about twice the work of one 2-thread process, in training and in
prediction. Each worker loads the model once (its own copy: ~0.3 GB in bf16 for 135M) and
answers whole batches; the parent keeps the prediction file, so rows are still appended in
batch order and a killed run resumes as before.

On a GPU, use one process (the default): workers would share the device.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

from radonc_llm.errors import RadoncInputError
from radonc_llm.infer.backends import Answer, Conversation

# The model of this worker process, loaded by `_start_worker`.
_WORKER: dict[str, Any] = {}


def _start_worker(model: str, dtype: str, threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    from radonc_llm.infer.backends import TransformersBackend, torch_dtype

    torch.set_num_threads(threads)
    _WORKER["backend"] = TransformersBackend.load(model, dtype=torch_dtype(dtype))


def _answer(task: str, conversations: list[Conversation], decoding: str) -> list[Answer]:
    return _WORKER["backend"].answer(task, conversations, decoding=decoding)


def _answer_tasks(conversations: dict[str, list[Conversation]], decoding: str):
    return _WORKER["backend"].answer_tasks(conversations, decoding=decoding)


def _prompt_lengths(task: str, conversations: list[Conversation]) -> tuple[int | None, list[int]]:
    return _WORKER["backend"].prompt_lengths(task, conversations)


def prepare_model(name_or_path: str) -> None:
    """Check the model name and build shared caches once, before workers load it side by side."""
    from radonc_llm.models.registry import (
        base_model_of,
        ensure_gguf_cache,
        ensure_smollm2_cache,
        resolve_model,
    )

    spec = resolve_model(name_or_path)
    if spec.source == "run":
        spec = resolve_model(base_model_of(name_or_path))
    if spec.source == "gguf" and spec.path is not None:  # a GGUF file the user named
        ensure_gguf_cache(spec.path)
    elif spec.source == "gguf":  # the embedded SmolLM2
        ensure_smollm2_cache()


class ParallelBackend:
    """The local transformers backend in `processes` worker processes of `threads` each."""

    name = "transformers"
    supports_constrained = True

    def __init__(
        self, model_name: str, *, dtype: str = "float32", processes: int = 2, threads: int = 1
    ) -> None:
        if processes < 1 or threads < 1:
            raise ValueError("processes and threads must be at least 1")
        prepare_model(model_name)
        self.model_name = model_name
        self.processes = processes
        self._pool = ProcessPoolExecutor(
            max_workers=processes,
            # A forked child would inherit the parent's OpenMP state; spawn starts clean.
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(model_name, dtype, threads),
        )

    def answer(
        self, task: str, conversations: Sequence[Conversation], *, decoding: str
    ) -> list[Answer]:
        return self._pool.submit(_answer, task, list(conversations), decoding).result()

    def prompt_lengths(
        self, task: str, conversations: Sequence[Conversation]
    ) -> tuple[int | None, list[int]]:
        return self._pool.submit(_prompt_lengths, task, list(conversations)).result()

    def answer_tasks(
        self, conversations: dict[str, Sequence[Conversation]], *, decoding: str
    ) -> dict[str, list[Answer]]:
        batch = {task: list(rows) for task, rows in conversations.items()}
        return self._pool.submit(_answer_tasks, batch, decoding).result()

    def answer_batches(
        self, task: str, batches: Iterable[Sequence[Conversation]], *, decoding: str
    ) -> Iterator[list[Answer]]:
        """Answers batch by batch, in order, with every worker kept busy."""
        calls = ((_answer, task, list(batch), decoding) for batch in batches)
        yield from self._in_order(calls)

    def answer_task_batches(
        self, batches: Iterable[dict[str, Sequence[Conversation]]], *, decoding: str
    ) -> Iterator[dict[str, list[Answer]]]:
        """`answer_tasks` batch by batch, in order, with every worker kept busy."""
        calls = (
            (_answer_tasks, {task: list(rows) for task, rows in batch.items()}, decoding)
            for batch in batches
        )
        yield from self._in_order(calls)

    def _in_order(self, calls: Iterable[tuple]) -> Iterator[Any]:
        in_flight: deque[Future] = deque()
        for function, *args in calls:
            in_flight.append(self._pool.submit(function, *args))
            if len(in_flight) > self.processes:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParallelBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def answer_batches(
    backend: Any, task: str, batches: Iterable[Sequence[Conversation]], *, decoding: str
) -> Iterator[list[Answer]]:
    """A backend's answers batch by batch: in parallel where it can, else one after another."""
    if hasattr(backend, "answer_batches"):
        yield from backend.answer_batches(task, batches, decoding=decoding)
        return
    for batch in batches:
        yield backend.answer(task, batch, decoding=decoding)


def answers_tasks_together(backend: Any) -> bool:
    """Whether `backend` answers several tasks of the same cases in one pass (a local model:
    each note runs once for all of them)."""
    return hasattr(backend, "answer_tasks")


def answer_task_batches(
    backend: Any, batches: Iterable[dict[str, Sequence[Conversation]]], *, decoding: str
) -> Iterator[dict[str, list[Answer]]]:
    """A backend's answers to several tasks batch by batch (`batch[task][row]`): in parallel
    where it can, else one batch after another."""
    if hasattr(backend, "answer_task_batches"):
        yield from backend.answer_task_batches(batches, decoding=decoding)
        return
    for batch in batches:
        yield backend.answer_tasks(batch, decoding=decoding)


def cpu_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_process(processes: int) -> int:
    """Threads each of `processes` processes gets when they share this machine's cores."""
    return max(1, cpu_cores() // processes)


def check_prompt_version(model: str) -> None:
    """Refuse a training run that learned from task files of other prompts than today's.

    Such an adapter answers in the old form (before version 2: bare ICD-10 codes, which the
    title trie of constrained decoding cannot follow). Runs that recorded no version pass.
    """
    import json
    from pathlib import Path

    from radonc_llm.models.registry import is_run_dir
    from radonc_llm.tasks.prompts import PROMPT_VERSION

    path = Path(model)
    if not path.is_dir():
        return
    runs = [path] if is_run_dir(path) else [p for p in sorted(path.iterdir()) if is_run_dir(p)]
    for run in runs:
        manifest = run / "manifest.json"
        try:
            versions = json.loads(manifest.read_text(encoding="utf-8")).get("prompt_versions")
        except (OSError, ValueError, AttributeError):
            continue  # loading the run reports an unreadable manifest
        if versions and versions != [PROMPT_VERSION]:
            raise RadoncInputError(
                f"this run was trained on task files of prompt version {', '.join(versions)}; "
                f"the prompts are now version {PROMPT_VERSION}. Rebuild the task files "
                "(`radonc-llm tasks`) and train again",
                file=manifest,
                field="prompt_versions",
            )


class PerTaskBackend:
    """A training run of one adapter per task: each task is answered by its own adapter, loaded
    when its task comes up, one model in memory at a time."""

    name = "transformers"
    supports_constrained = True

    def __init__(self, run: str, task_dirs: dict[str, str], *, dtype: str, processes: int) -> None:
        self.model_name = run
        self.task_dirs = task_dirs
        self._options = {"dtype": dtype, "processes": processes}
        self._stack: ExitStack | None = None
        self._task: str | None = None
        self._backend: Any = None

    def require(self, tasks: Iterable[str]) -> None:
        """Fail before any work when the run has no adapter for one of `tasks`."""
        missing = [task for task in tasks if task not in self.task_dirs]
        if missing:
            raise RadoncInputError(
                f"{self.model_name} holds adapters for {', '.join(self.task_dirs)}, not for "
                f"{', '.join(missing)}; predict only those tasks (--tasks)"
            )

    def _for(self, task: str) -> Any:
        self.require([task])
        if task != self._task:
            self.close()
            self._stack = ExitStack()
            self._backend = self._stack.enter_context(
                local_backend(self.task_dirs[task], **self._options)
            )
            self._task = task
        return self._backend

    def answer(self, task: str, conversations: Sequence[Conversation], *, decoding: str):
        return self._for(task).answer(task, conversations, decoding=decoding)

    def prompt_lengths(
        self, task: str, conversations: Sequence[Conversation]
    ) -> tuple[int | None, list[int]]:
        return self._for(task).prompt_lengths(task, conversations)

    def answer_batches(
        self, task: str, batches: Iterable[Sequence[Conversation]], *, decoding: str
    ) -> Iterator[list[Answer]]:
        yield from answer_batches(self._for(task), task, batches, decoding=decoding)

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._task, self._backend = None, None, None


@contextmanager
def local_backend(model: str, *, dtype: str = "float32", processes: int = 1) -> Iterator[Any]:
    """The local model in this process, or in `processes` workers sharing the cores. A run of
    one adapter per task is a `PerTaskBackend` over its task folders."""
    from radonc_llm.models.registry import per_task_run_dirs

    task_dirs = per_task_run_dirs(model)
    if task_dirs:
        backend = PerTaskBackend(model, task_dirs, dtype=dtype, processes=processes)
        try:
            yield backend
        finally:
            backend.close()
        return
    check_prompt_version(model)
    import torch

    from radonc_llm.infer.backends import TransformersBackend, torch_dtype

    if processes > 1 and torch.cuda.is_available():
        # Workers would each put a copy of the model on the same GPU; batches already fill it.
        # (The demo's `processes: 2` is for CPUs, so a GPU runs it in one process.)
        warnings.warn(
            f"{processes} worker processes are for CPUs: on a GPU prediction runs in one process",
            stacklevel=3,
        )
        processes = 1
    if processes <= 1:
        yield TransformersBackend.load(model, dtype=torch_dtype(dtype))
        return
    threads = threads_per_process(processes)
    with ParallelBackend(model, dtype=dtype, processes=processes, threads=threads) as backend:
        yield backend
