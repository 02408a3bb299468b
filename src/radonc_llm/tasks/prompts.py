"""Prompt templates of the three tasks, declared in one place and versioned.

Change a template -> bump PROMPT_VERSION: results record it, so numbers made with different
prompts are never compared silently. The system prompt is our own and short; SmolLM2's chat
template would otherwise insert its default one.
"""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_VERSION = "3"  # 2: ICD-10 answers are "official title (code)"; 3: the note comes first

# The note comes first and the question after it, short: a case's three prompts then differ
# only in their last few tokens, and training runs the rest once for all three
# (`batch_by_case`). Every token of the system prompt and the questions is paid for in each
# training micro-batch or case, so both say no more than they must.
SYSTEM_PROMPT = (
    "You are a radiation oncology assistant. Answer with the requested item only, "
    "in standard clinical notation."
)


@dataclass(frozen=True)
class TaskPrompt:
    name: str
    instruction: str
    max_new_tokens: int


TASK_PROMPTS: dict[str, TaskPrompt] = {
    "regimen": TaskPrompt(
        name="regimen",
        instruction="Radiotherapy regimen?",
        max_new_tokens=48,
    ),
    "modality": TaskPrompt(
        name="modality",
        instruction="Treatment modality?",
        max_new_tokens=6,
    ),
    "icd10": TaskPrompt(
        name="icd10",
        instruction="ICD-10-CM diagnosis?",
        max_new_tokens=56,  # the longest title + code of a billable code is 51 tokens
    ),
}


def user_message(task: str, diagnosis_text: str) -> str:
    """The user turn: the diagnosis note, then the task's instruction."""
    return f"Diagnosis: {diagnosis_text.strip()}\n\n{TASK_PROMPTS[task].instruction}"


def prompt_messages(task: str, diagnosis_text: str) -> list[dict[str, str]]:
    """Chat messages up to (not including) the answer: system + user."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message(task, diagnosis_text)},
    ]
