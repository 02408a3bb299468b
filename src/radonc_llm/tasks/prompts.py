"""Prompt templates of the three tasks, declared in one place and versioned.

Change a template -> bump PROMPT_VERSION: results record it, so numbers made with different
prompts are never compared silently. The system prompt is our own and short; SmolLM2's chat
template would otherwise insert its default one.
"""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_VERSION = "2"  # 2: ICD-10 answers are "official title (code)"

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
        instruction=(
            "Propose the radiotherapy regimen for this patient: total dose, number of "
            "fractions, technique and any concurrent systemic therapy."
        ),
        max_new_tokens=48,
    ),
    "modality": TaskPrompt(
        name="modality",
        instruction=(
            "Which treatment modality fits this patient: photon, proton, electron or "
            "brachytherapy? Answer with one word."
        ),
        max_new_tokens=6,
    ),
    "icd10": TaskPrompt(
        name="icd10",
        instruction=(
            "Give the ICD-10-CM diagnosis: its official description, then the code in parentheses."
        ),
        max_new_tokens=56,  # the longest title + code of a billable code is 51 tokens
    ),
}


def user_message(task: str, diagnosis_text: str) -> str:
    """The user turn: the task's instruction, then the diagnosis note."""
    return f"{TASK_PROMPTS[task].instruction}\n\nDiagnosis: {diagnosis_text.strip()}"


def prompt_messages(task: str, diagnosis_text: str) -> list[dict[str, str]]:
    """Chat messages up to (not including) the answer: system + user."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message(task, diagnosis_text)},
    ]
