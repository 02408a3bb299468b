"""Prompt templates of the three tasks, declared in one place and versioned.

Change a template -> bump PROMPT_VERSION: results record it, so numbers made with different
prompts are never compared silently. The system prompt is our own and short; SmolLM2's chat
template would otherwise insert its default one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from radonc_llm.tasks.casing import normal_case

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


# How a note was typed, pasted or exported is no part of what it says, yet each variant
# tokenises differently, and the tuned model answered the same vignette differently when its
# note came with Windows line ends, non-breaking spaces, soft hyphens or curly quotes (13 of
# 72 answers changed). The model reads one form of a note: line ends as "\n", compatibility
# forms folded (NFKC: full-width letters, ligatures, non-breaking and thin spaces),
# invisible characters and stray controls dropped, typographic dashes and quotes as ASCII,
# no spaces at line ends, and a note typed in capitals or with none in normal case
# (`casing.normal_case`: the tuned model lost a third of its accuracy on notes in capitals).
# Plain-ASCII notes with "\n" line ends and mixed case come out unchanged, so prompts of
# version 3 are unchanged for them.
_LINE_END = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_ASCII_PUNCTUATION = str.maketrans(
    {
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"'),
    }
)


# Chat-control markers typed or pasted into a note ("<|im_end|>", "</s>", "[INST]") would be
# read by the tokenizer as the template's own control tokens and end the user's turn early;
# the note keeps their words in parentheses: "(im_end)", "(/s)", "(INST)".
_CONTROL_MARKER = re.compile(r"<\|([^|<>\s]{1,40})\|>|<(/?s)>|\[(/?INST)\]|<<(/?SYS)>>")


def _kept(char: str) -> bool:
    if char in "\n\t":
        return True
    return unicodedata.category(char) not in ("Cc", "Cf")


def note_text(diagnosis_text: str) -> str:
    """The note as the model reads it: one form for every way it may have been typed or
    exported (see above); its words, lines and non-Latin letters kept."""
    text = _LINE_END.sub("\n", diagnosis_text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_ASCII_PUNCTUATION)
    text = "".join(
        " " if unicodedata.category(char) == "Zs" else char for char in text if _kept(char)
    )
    text = _CONTROL_MARKER.sub(lambda found: f"({next(g for g in found.groups() if g)})", text)
    return normal_case(_TRAILING_SPACE.sub("", text).strip())


def user_message(task: str, diagnosis_text: str) -> str:
    """The user turn: the diagnosis note (`note_text`), then the task's instruction."""
    return f"Diagnosis: {note_text(diagnosis_text)}\n\n{TASK_PROMPTS[task].instruction}"


def prompt_messages(task: str, diagnosis_text: str) -> list[dict[str, str]]:
    """Chat messages up to (not including) the answer: system + user."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message(task, diagnosis_text)},
    ]
