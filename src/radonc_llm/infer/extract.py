"""Answer extraction, declared per task in one place: model text -> normalised answer or malformed.

Prediction, baselines and evaluation all read answers through `extract_answer`, so a file
written by hand or by another tool is judged by the same rules as our own predictions.
What cannot be read is malformed, with a reason; nothing is guessed:
- modality: the foundation's `modality_class` maps synonyms to the four classes ("IMRT",
  "X-ray" -> photon, "HDR" -> brachytherapy); no class or two classes -> malformed.
- icd10: `find_codes` finds ICD-10-CM-shaped codes and returns them dotted upper case
  ("c50412" -> "C50.412"); none, or two different codes -> malformed. The trained form
  "official title (code)" reads as its code even when the title holds a code-shaped word.
  A made-up subcode of a real category ("C50.999") is kept: it is a wrong answer, not an
  unreadable one.
- regimen: the text itself with whitespace collapsed; empty -> malformed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from radonc_llm.data.cases import TASKS


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


def extract_modality(text: str) -> Extraction:
    from radonc_llm.data.modality import modality_class, modality_classes

    if _blank(text):
        return _malformed("empty answer")
    label = modality_class(text)
    if label is not None:
        return Extraction(prediction=label, malformed=False)
    classes = modality_classes(text)
    if len(classes) > 1:
        return _malformed(f"names several modalities ({', '.join(sorted(classes))})")
    return _malformed("names none of photon, proton, electron, brachytherapy")


# The trained form "official title (code)": the code in parentheses ends the answer.
_TITLED_CODE = re.compile(r"^(?P<title>.*)\((?P<code>[^()]+)\)\s*\.?\s*$", re.DOTALL)


def extract_icd10(text: str) -> Extraction:
    from radonc_llm.data.icd10 import find_codes, is_valid, title, to_dotted

    if _blank(text):
        return _malformed("empty answer")
    titled = _TITLED_CODE.match(text.strip())
    if titled:
        code = to_dotted(titled["code"])
        # A title may itself hold a code-shaped word (B96.21: "... [STEC] O157 ..."):
        # the trained form wins when the words before the code are that code's own title.
        if is_valid(code) and titled["title"].strip().lower() == title(code).lower():
            return Extraction(prediction=code, malformed=False)
    codes = find_codes(text)
    if not codes:
        return _malformed("no ICD-10-CM code found")
    if len(codes) > 1:
        return _malformed(f"several different codes ({', '.join(codes)})")
    return Extraction(prediction=codes[0], malformed=False)


def extract_regimen(text: str) -> Extraction:
    from radonc_llm.data.regimen import parse_regimen

    if _blank(text):
        return _malformed("empty answer")
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
