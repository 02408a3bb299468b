"""Build the three instruction datasets from curated cases.

Each example is one JSON object: example_id, case_id, task, messages (system, user,
assistant: what the model learns to write) and the answer (the reference that predictions are
scored against). Training, prediction and baselines all read these files.

A reference answer is the case's own field, never completed by a guess. A regimen that holds
a placeholder where a value belongs ("None Gy", "nan fractions", "0 fractions", "with
concurrent" naming no drug), as a table exported with empty cells writes it, or that is no
radiotherapy at all ("Observation", "declined RT"), is no answer a radiation oncologist would
write: that case's regimen example is skipped (its modality and ICD-10 examples are kept),
counted, warned about and listed with its reason in `skipped.jsonl` beside the task files.
Cases whose diagnosis note appears twice (one case under two ids, say, from case files
concatenated) are kept and warned about.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from radonc_llm.data import icd10
from radonc_llm.data.cases import TASKS, Case
from radonc_llm.data.regimen import regimen_text_problem
from radonc_llm.errors import RadoncInputError
from radonc_llm.storage import check_output_folder, write_jsonl_atomic
from radonc_llm.tasks.prompts import PROMPT_VERSION, prompt_messages

logger = logging.getLogger(__name__)

SKIPPED_FILE = "skipped.jsonl"

# What tables and renderers write for a value they did not have.
_MISSING = r"none|nan|null|undefined|n/a|#n/a|#value!"
_UNIT = r"c?gy(?:\s*\(?rbe\)?|e)?|grays?|fractions?|fx"
_REGIMEN_PROBLEMS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), reason)
    for pattern, reason in (
        (
            rf"[\W_]*(?:{_MISSING}|unknown|missing|tbd|not available)?[\W_]*",
            "holds no prescription",
        ),
        (rf"(?<![\w#/])(?:{_MISSING})\s*(?:{_UNIT})\b", "a dose or fraction count is missing"),
        (r"(?<![\w.])nan(?![\w])|(?<![\w#])(?:null|undefined)(?![\w])", "holds a missing value"),
        (
            rf"\b(?:concurrent|concomitant|boost)\s+(?:{_MISSING})(?![\w])",
            "a concurrent drug or boost is missing",
        ),
        (rf"(?<![\d.,])0+(?:[.,]0+)?\s*(?:{_UNIT})\b", "a dose or fraction count is zero"),
        (r"\b(?:concurrent|concomitant)\s*(?:[,;&+]|$)", "'concurrent' names no drug"),
    )
)


def _trimmed(text: str) -> str:
    """Without the whitespace and invisible characters (zero-width space, BOM) at its ends."""
    invisible = {"Zs", "Zl", "Zp", "Cc", "Cf"}
    start, end = 0, len(text)
    while start < end and unicodedata.category(text[start]) in invisible:
        start += 1
    while end > start and unicodedata.category(text[end - 1]) in invisible:
        end -= 1
    return text[start:end]


def regimen_problem(regimen: str) -> str | None:
    """Why a regimen text cannot be a reference answer, or None when it can.

    Catches what an export writes for a missing value: "None Gy in nan fractions", "0
    fractions", "60 Gy in 30 fractions with concurrent " (the drug list was empty).
    """
    text = _trimmed(regimen)
    whole, *parts = _REGIMEN_PROBLEMS
    if whole[0].fullmatch(text):
        return whole[1]
    for pattern, reason in parts:
        found = pattern.search(text)
        if found:
            return f"{reason}: '{found.group(0).strip()}'"
    return regimen_text_problem(text)


def task_answer(case: Case, task: str) -> str:
    """The reference answer of a case for a task (modality lower case, ICD-10 dotted)."""
    if task == "regimen":
        return _trimmed(case.regimen)
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


def answer_problem(case: Case, task: str) -> str | None:
    """Why a case has no usable reference answer for a task, or None when it has one."""
    return regimen_problem(case.regimen) if task == "regimen" else None


def build_task_example(case: Case, task: str) -> dict:
    """One chat example; a case without a usable answer for the task is refused."""
    problem = answer_problem(case, task)
    if problem is not None:
        raise RadoncInputError(f"case '{case.case_id}': {task} {problem}", field=task)
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


def build_task_examples(cases: Iterable[Case], task: str) -> tuple[list[dict], list[dict]]:
    """The examples of a task, and the cases skipped for it (case_id, task, field, value,
    reason): every case is in one or the other."""
    examples: list[dict] = []
    skipped: list[dict] = []
    for case in cases:
        problem = answer_problem(case, task)
        if problem is None:
            examples.append(build_task_example(case, task))
            continue
        field = "regimen" if task == "regimen" else task
        skipped.append(
            {
                "case_id": case.case_id,
                "patient_id": case.patient_id,
                "task": task,
                "field": field,
                "value": getattr(case, field),
                "reason": problem,
            }
        )
    return examples, skipped


def _warn_repeated_notes(cases: Sequence[Case]) -> None:
    first_with: dict[str, Case] = {}
    repeats: list[tuple[Case, Case]] = []
    for case in cases:
        earlier = first_with.setdefault(case.diagnosis_text.strip(), case)
        if earlier is not case:
            repeats.append((earlier, case))
    if not repeats:
        return
    same = sum(
        all(task_answer(a, task) == task_answer(b, task) for task in TASKS) for a, b in repeats
    )
    earlier, case = repeats[0]
    warnings.warn(
        f"{len(repeats)} case(s) have the diagnosis note of an earlier case (first: "
        f"{case.case_id}, as {earlier.case_id}), {same} of them with the same three answers "
        "(one case given twice under two ids?); kept, but a repeated note weighs more in "
        "training, and one with other answers teaches two answers for one note",
        stacklevel=3,
    )


def write_task_datasets(
    cases: Sequence[Case],
    out_dir: str | Path,
    *,
    tasks: Sequence[str] = TASKS,
    source: str | Path | None = None,
) -> dict[str, int]:
    """Write `<out_dir>/<task>.jsonl` per task; returns the example count per task.

    Cases skipped for a task (no usable answer) are warned about and listed in
    `<out_dir>/skipped.jsonl` (with `source`, the case file, named in each entry); the file is
    written only when a case was skipped. A task file of another task, or a skipped.jsonl, left
    by an earlier run is removed: it was built from other cases, and training reads whatever
    `<task>.jsonl` its config names.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    built = {task: build_task_examples(cases, task) for task in tasks}
    skipped = [
        {**({"file": str(source)} if source is not None else {}), **entry}
        for _, entries in built.values()
        for entry in entries
    ]
    _warn_repeated_notes(cases)
    for task, (_, entries) in built.items():
        if entries:
            reasons = "; ".join(
                f"case {entry['case_id']}, {entry['field']} '{entry['value']}': {entry['reason']}"
                for entry in entries[:3]
            )
            warnings.warn(
                f"{task}: {len(entries)} of {len(cases)} case(s) skipped, no usable answer: "
                f"{reasons}{'; ...' if len(entries) > 3 else ''}. All are listed in "
                f"{out_dir / SKIPPED_FILE}",
                stacklevel=2,
            )
    try:
        counts = {
            task: write_jsonl_atomic(out_dir / f"{task}.jsonl", examples)
            for task, (examples, _) in built.items()
        }
        stale = [out_dir / f"{task}.jsonl" for task in TASKS if task not in counts]
        if skipped:
            write_jsonl_atomic(out_dir / SKIPPED_FILE, skipped)
        else:
            stale.append(out_dir / SKIPPED_FILE)
        for path in stale:
            if path.is_file():
                path.unlink()
                logger.info("removed %s, left by an earlier run", path)
    except OSError as exc:
        raise RadoncInputError(
            f"cannot write the task files ({exc.strerror})", file=exc.filename or out_dir
        ) from None
    return counts
