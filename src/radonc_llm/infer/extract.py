"""Answer extraction, declared per task in one place: model text -> normalised answer or malformed.

Prediction, baselines and evaluation all read answers through `extract_answer`, so a file
written by hand or by another tool is judged by the same rules as our own predictions.
What cannot be read is malformed, with a reason; nothing is guessed.

Every task first finds the answer in the text (`answer_section`): invisible characters go,
chat-template markup a server left in goes (an echoed conversation gives its last assistant
turn; "<|im_end|>", "</s>" and what follows end the answer), a reasoning model's `<think>`
block goes, an echoed question is skipped ("Treatment modality? photon"; an echoed prompt with
nothing after its question is an empty answer, never the note's history), a labelled answer is
taken ("Final answer: proton"; "Regimen:"), and what follows it (a model going on with a new
"Question:"/"Diagnosis:", or its "Explanation:") is cut. Then:
- modality: the foundation's `read_modality` maps synonyms to the four classes ("IMRT",
  "X-ray", "fotones" -> photon, "HDR" -> brachytherapy) and reads negations ("photon, not
  proton" -> photon); no class, two classes, only negated classes ("no protons") or a
  radiation outside the four ("carbon ions") -> malformed. Full-width letters and Cyrillic or
  Greek look-alikes inside Latin words are read as the Latin letters ("Рhoton" -> photon).
- icd10: `find_codes` finds ICD-10-CM-shaped codes and returns them dotted upper case
  ("c50412" -> "C50.412"); none, or two different codes -> malformed. The trained form
  "official title (code)" reads as its code even when the title holds a code-shaped word.
  A made-up subcode of a real category ("C50.999") or a non-billable subcategory ("C34.1") is
  kept: it is an answer scored at category level, not an unreadable one. Codes labelled ICD-9
  ("ICD-9: 185") and ICD-O codes ("M8140/3") are not ICD-10-CM answers (`find_codes`); a whole answer
  that is one code with stray spaces, a decimal comma or a hyphen for the dot ("c 61",
  "C50. 911", "C50,911") is that code.
- regimen: the text itself with whitespace collapsed; empty -> malformed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from radonc_llm.data.cases import TASKS
from radonc_llm.tasks.prompts import SYSTEM_PROMPT, TASK_PROMPTS


@dataclass(frozen=True)
class Extraction:
    """An extracted answer: `prediction` is None exactly when `malformed`."""

    prediction: str | None
    malformed: bool
    reason: str | None = None


def _malformed(reason: str) -> Extraction:
    return Extraction(prediction=None, malformed=True, reason=reason)


def _blank(text: str) -> bool:
    return not text or not text.strip()


def _no_answer(raw: str) -> Extraction:
    if _THINK_OPEN.search(raw):
        return _malformed("empty answer after the reasoning (<think>)")
    return _malformed("empty answer")


# Cyrillic and Greek capitals (and a few small letters) drawn like Latin ones: inside a word
# that also holds Latin letters or digits ("Рhoton", "С61") they are tokenizer or copy-paste
# artefacts, while a word wholly in Cyrillic or Greek ("фотоны") is left as it is.
_LOOK_ALIKES = str.maketrans(
    "АВСЕНІЈКМОРЅТХУаеіјорсхуԁһӏΑΒΕΖΗΙΚΜΝΟΡΤΥΧον",
    "ABCEHIJKMOPSTXYaeijopcxydhlABEZHIKMNOPTYXov",
)
_LOOK_ALIKE_CHARS = frozenset("АВСЕНІЈКМОРЅТХУаеіјорсхуԁһӏΑΒΕΖΗΙΚΜΝΟΡΤΥΧον")
_WORD = re.compile(r"\w+")


def _latin_word(match: re.Match[str]) -> str:
    word = match.group(0)
    if word.isascii() or not any(ch in _LOOK_ALIKE_CHARS for ch in word):
        return word
    if not any(ch.isascii() for ch in word):
        return word  # a Cyrillic or Greek word, not a disguised Latin one
    return word.translate(_LOOK_ALIKES)


def _plain_text(text: str, *, fold: bool) -> str:
    """Invisible format characters (zero-width spaces) dropped; with `fold`, compatibility
    forms folded ("ｐｈｏｔｏｎ", "Ｃ６１") and look-alike letters inside Latin words made Latin."""
    if text.isascii():
        return text
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    if not fold:
        return visible
    return _WORD.sub(_latin_word, unicodedata.normalize("NFKC", visible))


_THINK_BLOCK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think(?:ing)?>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_PROMPT_ECHO = re.compile(
    r"[\s*_#>]*(?:system\s*[:：]\s*)?(?:"
    + re.escape(SYSTEM_PROMPT.lower().split(".")[0])
    + r"|(?:user\s*[:：]\s*)?diagnosis\s*[*_]*\s*[:：]|"
    + "|".join(re.escape(prompt.instruction.lower()) for prompt in TASK_PROMPTS.values())
    + ")",
    re.IGNORECASE,
)
# "Answer:", "**Answer:**", "Final answer:", "The answer is:".
_ANSWER_LABEL = re.compile(r"(?<!\w)(?P<final>final\s+)?answer(?:\s+is)?\s*[*_]*\s*[:：]", re.I)
# Where an answer ends: a line opening the next few-shot item the model went on to write, or
# the model explaining itself.
_END_LABEL = re.compile(
    r"^[\s*_#>]*(?:question|diagnosis|q)\s*[*_]*\s*[:：]"
    r"|(?<!\w)(?:explanation|rationale|reasoning|justification)\s*[*_]*\s*[:：]",
    re.IGNORECASE | re.MULTILINE,
)


# Chat-template markup that a server can leave in its text (a stop token it was not told, a
# raw completion endpoint echoing the conversation): ChatML, Llama 2 and 3, Mistral, Gemma, Phi.
_CHAT_MARKUP = re.compile(
    r"<\|[a-z_]{1,30}\|>|</?s>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>", re.IGNORECASE
)
_ASSISTANT_TURN = re.compile(
    r"<\|im_start\|>\s*assistant\b|<\|start_header_id\|>\s*assistant\s*<\|end_header_id\|>"
    r"|\[/INST\]|<start_of_turn>\s*model\b|<\|assistant\|>",
    re.IGNORECASE,
)
# What may open a text without opening a turn: whitespace and a begin-of-sequence token.
_TEXT_START = re.compile(r"(?:\s|<s>|<\|begin_of_text\|>)*", re.IGNORECASE)


def _chat_answer(text: str) -> str:
    """The answer in a text holding chat-template markup: a text that opens with a turn is the
    conversation echoed, and its answer is the last assistant turn (few-shot examples come
    before it; with none, the prompt came back without an answer); an answer followed by
    markup ("70 Gy/35 fx<|im_end|><|im_start|>user ...") ends there."""
    start = _TEXT_START.match(text).end()
    first = _CHAT_MARKUP.search(text, start)
    if first is None:
        return text[start:]
    if first.start() == start:
        openers = list(_ASSISTANT_TURN.finditer(text))
        if not openers:
            return ""
        text, start = text[openers[-1].end() :], 0
        first = _CHAT_MARKUP.search(text)
    return text[start : first.start()] if first else text[start:]


# The task's own name as a label before a regimen ("Radiotherapy regimen: 8 Gy ..."): not part
# of the regimen text kept for ROUGE.
_REGIMEN_LABEL = re.compile(
    r"^[\s*_#>]*(?:(?:radiotherapy|radiation|treatment|rt)\s+)?regimen\s*[*_]*\s*[:：][*_]*",
    re.IGNORECASE,
)


def answer_section(task: str, text: str, *, fold: bool = True) -> str:
    """The part of a model's text that answers `task` (the whole text when nothing marks it).

    `fold` also reads full-width and look-alike letters as plain Latin ones; a regimen's text
    is kept as written.
    """
    text = _chat_answer(_plain_text(text, fold=fold))
    text = _THINK_BLOCK.sub(" ", text)
    closing = list(_THINK_CLOSE.finditer(text))
    if closing:  # some servers drop the opening tag: the answer follows the last closing one
        text = text[closing[-1].end() :]
    opening = _THINK_OPEN.search(text)
    if opening:  # reasoning cut off before its end: whatever follows is not an answer
        text = text[: opening.start()]
    # An echoed prompt (the text opens with it): the answer follows the task's question, and
    # nothing there is no answer (the note before it, a modality or code of the patient's
    # history, is not one). A question further on belongs to a next item the model went on
    # to write.
    question = re.search(re.escape(TASK_PROMPTS[task].instruction), text, re.IGNORECASE)
    if question is not None and _PROMPT_ECHO.match(text, 0, question.end()):
        text = text[question.end() :]
    labels = list(_ANSWER_LABEL.finditer(text))
    finals = [label for label in labels if label["final"]]
    label = finals[-1] if finals else (labels[0] if labels else None)
    if label is not None and not _blank(text[label.end() :]):
        text = text[label.end() :]
    for end in _END_LABEL.finditer(text):
        if not _blank(text[: end.start()]):
            text = text[: end.start()]
            break
    if task == "regimen":
        text = _REGIMEN_LABEL.sub("", text, count=1)
    return text


def extract_modality(raw: str) -> Extraction:
    from radonc_llm.data.modality import read_modality

    text = answer_section("modality", raw)
    if _blank(text):
        return _no_answer(raw)
    reading = read_modality(text)
    if reading.label is not None:
        return Extraction(prediction=reading.label, malformed=False)
    if len(reading.named) > 1:
        return _malformed(f"names several modalities ({', '.join(sorted(reading.named))})")
    if reading.other:
        return _malformed(
            f"names radiation outside photon, proton, electron, brachytherapy "
            f"({', '.join(dict.fromkeys(word.lower() for word in reading.other))})"
        )
    if reading.negated:
        return _malformed(
            f"only negates ({', '.join(sorted(reading.negated))}); names no modality it means"
        )
    return _malformed("names none of photon, proton, electron, brachytherapy")


# The trained form "official title (code)": the code in parentheses ends the answer.
_TITLED_CODE = re.compile(r"^(?P<title>.*)\((?P<code>[^()]+)\)\s*\.?\s*$", re.DOTALL)
# A whole answer that is one code written with stray spaces, a decimal comma or a hyphen for
# the dot ("c 61", "C50. 911", "C50,911", "C50-911"), around its decoration (quotes, markdown,
# a label, a full stop). Only digits follow the category, so "C61 C61" stays two words and a
# range ("C00-C14") is never joined into one code.
_SPACED_CODE = re.compile(
    r"[\s*_`'\"]*(?:(?:ICD[\s-]*10(?:[\s-]*CM)?|code|answer)[\s:]*)?"
    r"(?P<letter>[A-Za-z])\s*(?P<d1>\d)\s*(?P<c3>[0-9A-Za-z])"
    r"(?:\s*[.,-]?\s*(?P<tail>\d(?:\s*\d){0,3}))?[\s*_`'\".]*",
    re.IGNORECASE,
)


def _spaced_code(text: str) -> str | None:
    whole = _SPACED_CODE.fullmatch(text)
    if whole is None:
        return None
    tail = re.sub(r"\s", "", whole["tail"] or "")
    return f"{whole['letter']}{whole['d1']}{whole['c3']}" + (f".{tail}" if tail else "")


def extract_icd10(raw: str) -> Extraction:
    from radonc_llm.data.icd10 import find_codes, is_valid, title, to_dotted

    text = answer_section("icd10", raw)
    if _blank(text):
        return _no_answer(raw)
    titled = _TITLED_CODE.match(text.strip())
    if titled:
        code = to_dotted(titled["code"])
        # A title may itself hold a code-shaped word (B96.21: "... [STEC] O157 ..."):
        # the trained form wins when the words before the code are that code's own title.
        if is_valid(code) and titled["title"].strip().lower() == title(code).lower():
            return Extraction(prediction=code, malformed=False)
    spaced = _spaced_code(text)
    codes = find_codes(spaced if spaced else text)
    if not codes:
        return _malformed("no ICD-10-CM code found")
    if len(codes) > 1:
        return _malformed(f"several different codes ({', '.join(codes)})")
    return Extraction(prediction=codes[0], malformed=False)


def extract_regimen(raw: str) -> Extraction:
    from radonc_llm.data.regimen import parse_regimen

    text = answer_section("regimen", raw, fold=False)
    if _blank(text):
        return _no_answer(raw)
    # Free text, kept whole for ROUGE; but an answer with nothing of a regimen in it ("I cannot
    # determine the regimen") is unreadable, not a regimen.
    parsed = parse_regimen(text)
    if not (parsed.dose_gy or parsed.fractions or parsed.technique or parsed.concurrent):
        return _malformed("no dose, fractions, technique or drug found")
    return Extraction(prediction=re.sub(r"\s+", " ", text).strip(), malformed=False)


EXTRACTORS: dict[str, Callable[[str], Extraction]] = {
    "regimen": extract_regimen,
    "modality": extract_modality,
    "icd10": extract_icd10,
}
assert set(EXTRACTORS) == set(TASKS)  # noqa: S101 -- every task has exactly one extractor


def extract_answer(task: str, text: str | None) -> Extraction:
    """The normalised answer of `task` in a model's `text` (None text -> malformed)."""
    if task not in EXTRACTORS:
        raise ValueError(f"unknown task '{task}'; expected one of {', '.join(TASKS)}")
    if text is None:
        return _malformed("no answer")
    return EXTRACTORS[task](str(text))
