"""Build the three instruction datasets from curated cases.

Each example is one JSON object: example_id, case_id, task, messages (system, user,
assistant: what the model learns to write) and the answer (the reference that predictions are
scored against). Training, prediction and baselines all read these files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from radonc_llm.data import icd10
from radonc_llm.data.cases import TASKS, Case
from radonc_llm.errors import RadoncInputError
from radonc_llm.storage import check_output_folder, write_jsonl_atomic
from radonc_llm.tasks.prompts import PROMPT_VERSION, prompt_messages

logger = logging.getLogger(__name__)


def task_answer(case: Case, task: str) -> str:
    """The reference answer of a case for a task (modality lower case, ICD-10 dotted)."""
    if task == "regimen":
        return case.regimen
    if task == "modality":
        return case.modality
    if task == "icd10":
        return case.icd10
    raise ValueError(f"unknown task '{task}'; expected one of {', '.join(TASKS)}")


def task_target(case: Case, task: str) -> str:
    """What the model learns to write: the answer, except that an ICD-10 code comes after its
    official title ("Malignant neoplasm of ... (C50.412)"); answer extraction reads the code."""
    answer = task_answer(case, task)
    return icd10.answer_text(answer) if task == "icd10" else answer


def build_task_example(case: Case, task: str) -> dict:
    answer = task_answer(case, task)
    messages = [
        *prompt_messages(task, case.diagnosis_text),
        {"role": "assistant", "content": task_target(case, task)},
    ]
    return {
        "example_id": f"{case.case_id}:{task}",
        "case_id": case.case_id,
        "task": task,
        "prompt_version": PROMPT_VERSION,
        "stratum": icd10.category(case.icd10),  # diagnosis group for tempered sampling
        "messages": messages,
        "answer": answer,
    }


def build_task_examples(cases: Iterable[Case], task: str) -> list[dict]:
    return [build_task_example(case, task) for case in cases]


def write_task_datasets(
    cases: Sequence[Case], out_dir: str | Path, *, tasks: Sequence[str] = TASKS
) -> dict[str, int]:
    """Write `<out_dir>/<task>.jsonl` per task; returns the example count per task.

    A task file of another task left by an earlier run is removed: it was built from other
    cases, and training reads whatever `<task>.jsonl` its config names.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    try:
        counts = {
            task: write_jsonl_atomic(out_dir / f"{task}.jsonl", build_task_examples(cases, task))
            for task in tasks
        }
        for task in TASKS:
            stale = out_dir / f"{task}.jsonl"
            if task not in counts and stale.is_file():
                stale.unlink()
                logger.info("removed %s, left by an earlier run with more tasks", stale)
    except OSError as exc:
        raise RadoncInputError(
            f"cannot write the task files ({exc.strerror})", file=exc.filename or out_dir
        ) from None
    return counts
