"""Answer extraction, declared per task in one place: model text -> normalised answer or malformed.

Prediction, baselines and evaluation all read answers through `extract_answer`, so a file
written by hand or by another tool is judged by the same rules as our own predictions.
What cannot be read is malformed, with a reason; nothing is guessed.

Every task first finds the answer in the text (`answer_section`): invisible characters go,
chat-template markup a server left in goes (an echoed conversation gives its last assistant
turn; "<|im_end|>", "</s>" and what follows end the answer), a reasoning model's `<think>`
block goes, an echoed question is skipped ("Treatment modality? photon"; an echoed prompt with
nothing after its question is an empty answer, never the note's history), a labelled answer is
taken ("Final answer: proton", "the final answer is C34.90", a last "\\boxed{...}";
"Regimen:"), and what follows it (a model going on with a new "Question:"/"Diagnosis:", or its
"Explanation:"/"Note:") is cut; a JSON answer is its task's field ({"modality": "photon",
"alternatives": ["proton"]} -> "photon"). A modality or code answer that ends on a word
promising another ("photon or", "C34.90 or", "EBRT followed by": a token limit cut it) and a
trained-form code cut inside its parentheses ("... lung (C34.1") are malformed. Then:
- modality: the foundation's `read_modality` maps synonyms to the four classes ("IMRT",
  "X-ray", "fotones" -> photon, "HDR" -> brachytherapy) and reads negations ("photon, not
  proton" -> photon); no class, two classes, only negated classes ("no protons") or a
  radiation outside the four ("carbon ions") -> malformed. The task asks the primary modality:
  a class named only as a boost or an alternative is not it ("photon; brachytherapy boost",
  "EBRT then HDR boost" -> photon; "Proton. Photon is an alternative." -> proton), while classes
  side by side ("photon or proton", "1. Photon 2. Proton", "EBRT then HDR brachytherapy")
  stay malformed. Full-width letters and Cyrillic or
  Greek look-alikes inside Latin words are read as the Latin letters ("Рhoton" -> photon).
- icd10: `find_codes` finds ICD-10-CM-shaped codes and returns them dotted upper case
  ("c50412" -> "C50.412"); none, or two different codes -> malformed (a second code given as
  "secondary", "also consider" or "primary" is still a second code: "primary" may name the
  primary tumour of a metastasis case, whose answer is the metastasis code). The trained form
  "official title (code)" reads as its code even when the title holds a code-shaped word.
  A made-up subcode of a real category ("C50.999") or a non-billable subcategory ("C34.1") is
  kept: it is an answer scored at category level, not an unreadable one. Codes labelled ICD-9
  ("ICD-9: 185") and ICD-O codes ("M8140/3") are not ICD-10-CM answers (`find_codes`); a whole answer
  that is one code with stray spaces, a decimal comma or a hyphen for the dot ("c 61",
  "C50. 911", "C50,911") is that code.
  A WHO ICD-10 code that is a non-billable ICD-10-CM subcategory ("C34.9") is read as written:
  wrong at full level, right at category level. A whole answer that is an ICD-9 code ("162.9")
  is malformed, its reason naming ICD-9.
- regimen: the text as written, with markdown (fences, emphasis, headings, list markers: items
  joined with "; ") and whitespace collapsed, and without what a reader skips: a lead-in or
  label ("Recommended regimen:", "Sure! Here is the regimen:", "Based on ..., I recommend",
  "I cannot give medical advice, but the standard regimen is") and trailing commentary ("This
  is standard per NCCN.", ", per NCCN guidelines", "Alternatively, ..."). Words that may name
  the target stay ("For the left breast, I recommend ..."). Nothing of a regimen (no dose,
  fractions, technique or drug), or whole courses offered side by side ("54 Gy in 3 fractions
  or 48 Gy in 4 fractions") -> malformed. A regimen cut by the token limit keeps what it says.
"""

from __future__ import annotations

import json
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
# "Answer:", "**Answer:**", "Final answer:", "The answer is:", and "the final answer is"
# without a colon (a reasoning model's last sentence).
_ANSWER_LABEL = re.compile(
    r"(?<!\w)(?:(?P<final>final\s+)?answer(?:\s+is)?\s*[*_]*\s*[:：]"
    r"|(?P<final_is>final\s+answer\s+(?:is|would\s+be))(?!\w))",
    re.IGNORECASE,
)
# A math-style reasoning model's boxed answer: "\boxed{C34.90}", "\boxed{\text{Photon}}".
_BOXED = re.compile(r"\\boxed\s*\{(?P<inner>(?:[^{}]|\{[^{}]*\})*)\}")
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|mathrm)\s*\{([^{}]*)\}")
# Where an answer ends: a line opening the next few-shot item the model went on to write, or
# the model explaining itself.
_END_LABEL = re.compile(
    r"^[\s*_#>]*(?:question|diagnosis|q)\s*[*_]*\s*[:：]"
    r"|(?<!\w)(?:explanation|rationale|reasoning|justification|note|notes|comment|comments"
    r"|disclaimer|references?)\s*[*_]*\s*[:：]",
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
    boxed = list(_BOXED.finditer(text))
    if boxed:  # the last boxed answer is the one the model settled on
        return _LATEX_TEXT.sub(r"\1", boxed[-1]["inner"])
    text = _json_answer(task, text)
    labels = list(_ANSWER_LABEL.finditer(text))
    finals = [label for label in labels if label["final"] or label["final_is"]]
    label = finals[-1] if finals else (labels[0] if labels else None)
    if label is not None and not _blank(text[label.end() :]):
        text = text[label.end() :]
    for end in _END_LABEL.finditer(text):
        if not _blank(text[: end.start()]):
            text = text[: end.start()]
            break
    text = _json_answer(task, text)  # "Answer: {...}"
    if task == "regimen":
        text = _REGIMEN_LABEL.sub("", text, count=1)
    return text


# A JSON answer's field for each task, by its key with case and punctuation dropped
# ({"modality": ...}, {"ICD-10-CM": ...}, {"icd10_code": ...}); "answer" fits every task.
_JSON_KEYS: dict[str, tuple[str, ...]] = {
    "modality": ("modality", "treatmentmodality", "primarymodality", "answer"),
    "icd10": (
        "icd10", "icd10cm", "icd10code", "icd10cmcode", "icdcode", "code", "diagnosiscode",
        "answer",
    ),
    "regimen": ("regimen", "radiotherapyregimen", "treatmentregimen", "rtregimen", "answer"),
}  # fmt: skip
_CODE_FENCE = re.compile(r"^\s*```[\w-]*\s*\n?|\n?\s*```\s*$")


def _json_answer(task: str, text: str) -> str:
    """A whole answer that is a JSON object ({"modality": "photon", "alternatives": [...]}) is
    the value of the task's field; any other text, or an object without that field, is kept."""
    body = _CODE_FENCE.sub("", text.strip()).strip()
    if not body.startswith("{"):
        return text
    try:
        parsed = json.loads(body)
    except ValueError:
        return text
    if not isinstance(parsed, dict):
        return text
    fields = {re.sub(r"[\W_]", "", str(key)).lower(): value for key, value in parsed.items()}
    for key in _JSON_KEYS[task]:
        value = fields.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return " or ".join(value)  # a list of answers is read as offering each
    return text


# An answer that stops on a word that promises another answer ("photon or", "C34.90 or",
# "EBRT followed by") was cut (a token limit): what would have followed may change it, so it
# is not read. A code's title cut after the code ("C34.90 Malignant neoplasm of ... or") is.
_DANGLING = re.compile(
    r"(?<!\w)(?P<word>or|and|and/or|vs\.?|versus|then|followed\s+by|plus|either|nor)"
    r"[\s*_`'\"]*$|(?P<sign>[+/&])[\s*_`'\"]*$",
    re.IGNORECASE,
)
_ENDS_ON_CODE = re.compile(r"[A-Za-z]\d[0-9A-Za-z](?:\.?[0-9A-Za-z]{1,4})?[\s*_`'\",;:.)\]-]*$")


def _dangling(text: str, *, after_code: bool = False) -> Extraction | None:
    """Malformed when `text` ends on a connective (with `after_code`, one right after a code)."""
    end = _DANGLING.search(text.rstrip())
    if end is None or (after_code and not _ENDS_ON_CODE.search(text, 0, end.start())):
        return None
    word = end["word"] or end["sign"]
    return _malformed(f"ends on '{word}': cut off before the answer was complete")


# The task asks for the primary modality. A class named only as a boost ("photon;
# brachytherapy boost", "EBRT then HDR boost", "photon whole breast, electron boost") or only
# as an alternative ("proton; photon is an acceptable alternative", "Photon. Proton could be
# considered") is not it: the one class named outside such clauses is. Classes offered side by
# side ("photon or proton", "1. Photon 2. Proton", "EBRT then HDR brachytherapy") stay malformed.
_SECONDARY_CLAUSE_BREAK = re.compile(
    r"[;,()\[\]{}\n]|\.(?!\d)|(?<!\w)(?:followed\s+by|then|with|plus|after|following|and)"
    r"(?!\w)|\+|\s-\s",
    re.IGNORECASE,
)
_SECONDARY_MARK = re.compile(
    r"(?<!\w)(?:boost(?:s|ed)?|alternatives?|alternatively"
    r"|(?:could|may|can|might)\s+(?:also\s+)?be\s+(?:considered|used|an\s+option)"
    r"|if\s+(?:un|not\s+)available|second[\s-]*line|back[\s-]*up|fallback)(?!\w)",
    re.IGNORECASE,
)
# "Alternatively, photon": the comma does not end what "alternatively" marks.
_ALTERNATIVELY = re.compile(r"(?<!\w)(alternatively|as\s+an\s+alternative)\s*[,:]", re.I)


def _primary_modality(text: str) -> str | None:
    from radonc_llm.data.modality import read_modality

    text = _ALTERNATIVELY.sub(r"\1 ", text)
    kept, start = [], 0
    for end in [*_SECONDARY_CLAUSE_BREAK.finditer(text), None]:
        stop = end.start() if end else len(text)
        clause = text[start:stop]
        kept.append(" " * len(clause) if _SECONDARY_MARK.search(clause) else clause)
        if end:
            kept.append(end.group(0))
            start = end.end()
    if len(kept) == 1:
        return None  # one clause: nothing to set aside
    primary = read_modality("".join(kept))
    return primary.label


def extract_modality(raw: str) -> Extraction:
    from radonc_llm.data.modality import read_modality

    text = answer_section("modality", raw)
    if _blank(text):
        return _no_answer(raw)
    cut = _dangling(text)
    if cut is not None:
        return cut
    reading = read_modality(text)
    if reading.label is not None:
        return Extraction(prediction=reading.label, malformed=False)
    primary = _primary_modality(text)
    if primary is not None:
        return Extraction(prediction=primary, malformed=False)
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


# The trained form stopped inside its parentheses: "... lung (C34.1", "... lung (C34.".
_UNCLOSED_CODE = re.compile(r"\(\s*(?P<code>[A-Za-z]\d[0-9A-Za-z](?:\.[0-9A-Za-z]{0,4})?)\s*$")
# A whole answer that is an ICD-9-CM code ("162.9", "ICD-9: 185", "V58.0 (ICD-9)"): named in the
# reason, so a run of a model answering in the wrong code system is recognised as such.
_ICD9_ONLY = re.compile(
    r"[\s*_`'\"]*(?:ICD[\s-]*9(?:[\s-]*CM)?(?:\s*code)?\s*[:=]?\s*)?"
    r"(?P<code>\d{3}(?:\.\d{1,2})?|[VE]\d{2,3}(?:\.\d{1,2})?)"
    r"(?:\s*[(\[]?\s*ICD[\s-]*9(?:[\s-]*CM)?\s*[)\]]?)?[\s*_`'\".]*",
    re.IGNORECASE,
)


def extract_icd10(raw: str) -> Extraction:
    from radonc_llm.data.icd10 import find_codes, is_billable, is_valid, title, to_dotted

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
    cut = _dangling(text, after_code=True)
    if cut is not None:
        return cut
    spaced = _spaced_code(text)
    codes = find_codes(spaced if spaced else text)
    if not codes:
        icd9 = _ICD9_ONLY.fullmatch(text)
        if icd9:
            return _malformed(f"no ICD-10-CM code found: {icd9['code']} is an ICD-9 code")
        return _malformed("no ICD-10-CM code found")
    if len(codes) > 1:
        return _malformed(f"several different codes ({', '.join(codes)})")
    unclosed = _UNCLOSED_CODE.search(text)
    if unclosed and not is_billable(codes[0]):
        # "... right bronchus or lung (C34.1": the token limit fell inside the code.
        return _malformed(
            f"cut off inside the code: '({unclosed['code']}' is never closed and "
            f"{codes[0]} is not a complete (billable) code"
        )
    return Extraction(prediction=codes[0], malformed=False)


def _has_regimen_part(text: str) -> bool:
    from radonc_llm.data.regimen import parse_regimen

    parsed = parse_regimen(text)
    return bool(parsed.dose_gy or parsed.fractions or parsed.technique or parsed.concurrent)


# Markdown a chat model wraps a regimen in: fences, emphasis, headings, quotes, list markers.
_FENCE_LINE = re.compile(r"^\s*```[\w-]*\s*$", re.MULTILINE)
_EMPHASIS = re.compile(r"\*\*|__|`")
_LINE_MARK = re.compile(r"^[ \t]*(?:#+[ \t]+|>[ \t]*)", re.MULTILINE)
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*•·][ \t]+|\(?\d{1,2}[.)][ \t]+|\(?[a-h][.)][ \t]+)")
# Words before the regimen that are no part of it: a label ("Recommended regimen:", "Plan:"),
# a lead-in ("I recommend", "The recommended regimen is", "Here is the regimen:"), courtesies
# ("Sure!"), and what may come before those: "Based on the findings," or a refusal ("I cannot
# give medical advice, but"). Words that could name the target ("Whole breast plan:", "For the
# left breast, I recommend") are none of these and stay.
_LEAD_WORD = (
    r"(?:recommended|suggested|proposed|preferred|final|typical|usual|standard|appropriate"
    r"|optimal|my|our|the|radiotherapy|radiation|treatment|rt|dose|fractionation|and)"
)
_LEAD_NOUN = r"(?:regimen|recommendation|prescription|plan|rx|fractionation|schedule)"
_LEAD_IN = re.compile(
    r"(?:sure|certainly|of\s+course|okay|absolutely)\s*[!.,]"
    r"|(?:i|we)\s+(?:would\s+|strongly\s+|typically\s+|generally\s+)?"
    r"(?:recommend|suggest|propose|advise)(?:\s+(?:the\s+following|a|an))?"
    r"(?:\s+(?:regimen|course|treatment|schedule|fractionation))?(?:\s+of)?\s*[:,]?"
    rf"|(?:here\s+is|here's|here\s+are)(?:\s+(?:a|{_LEAD_WORD}))*\s+{_LEAD_NOUN}s?\s*[:.,]?"
    rf"|(?:the|a|an|my|this)(?:\s+{_LEAD_WORD})*\s+{_LEAD_NOUN}"
    r"(?:\s+(?:for|in)\s+(?:this|the)\s+(?:patient|case))?(?:\s+here)?"
    r"\s+(?:is|would\s+be|will\s+be|consists\s+of)\s*[:,]?"
    rf"|(?:{_LEAD_WORD}[\s-]+)*(?:{_LEAD_NOUN}|recommended|recommendation)\s*[:：]",
    re.IGNORECASE,
)
_LABEL_LINE = re.compile(rf"\s*(?:{_LEAD_WORD}[\s-]+)*{_LEAD_NOUN}\s*[:：]?\s*", re.IGNORECASE)
_LEAD_GAP = re.compile(
    r"[\s,]*(?:(?:based\s+on|given|considering|in\s+view\s+of)\s[^,;:.]*[,:]"
    r"|[^.;]*(?<!\w)(?:cannot|can't|unable|not\s+able|medical\s+advice|not\s+a\s+(?:doctor|"
    r"physician|substitute))(?!\w)[^.;]*?(?:[.!;]|,?\s+but|,?\s+however,?))?\s*",
    re.IGNORECASE,
)
# After the regimen: a sentence of commentary ("This is standard per NCCN.", "Please consult
# ...") or one offering an alternative ("Alternatively, 40.05 Gy in 15 fractions ..."; the
# alternative is not the answer, as for the modality).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_COMMENTARY = re.compile(
    r"(?:this|that|these|those|it|such|per|according|as\s+per|based\s+on|consistent|note|"
    r"please|consult|i|i'm|i'd|however|ultimately|always|treatment\s+decisions?|"
    r"in\s+(?:line|keeping|accordance)|the\s+(?:above|rationale|goal|aim|exact|final|specific))"
    r"(?!\w)"
    r"|.*(?<!\w)(?:NCCN|ASTRO|ESTRO|ESMO|guidelines?|standard\s+of\s+care)(?!\w)",
    re.IGNORECASE,
)
_ALTERNATIVE_SENTENCE = re.compile(
    r"(?:alternatively|an?\s+(?:acceptable\s+|reasonable\s+)?alternative|another\s+option"
    r"|other\s+options?)(?!\w)",
    re.IGNORECASE,
)
_TRAILING_GUIDELINE = re.compile(
    r"[,;]?\s*\(?(?:as\s+)?(?:per|according\s+to|consistent\s+with|in\s+(?:line|keeping|"
    r"accordance)\s+with)\s+(?:the\s+)?(?:current\s+)?(?:NCCN|ASTRO|ESTRO|ESMO)(?!\w)[^.;()]*\)?"
    r"(?=[.\s]*$)",
    re.IGNORECASE,
)
# Two whole courses offered side by side ("54 Gy in 3 fractions or 48 Gy in 4 fractions"); an
# "or" inside one part of a sequence ("45 Gy/25 fx then HDR 7 Gy x 4 or 6 Gy x 5") leaves the
# main course readable, and is kept.
_OR = re.compile(r"(?<!\w)(?:or|either)(?!\w)", re.IGNORECASE)
_SEQUENCE = re.compile(r"(?<!\w)(?:then|followed\s+by|plus|boost|sequential|after)(?!\w)|\+", re.I)


def _regimen_lines(text: str) -> str:
    """Markdown dropped, lines joined: list items with "; ", wrapped lines with a space; a
    heading or a line that is only a label ("### Regimen", "**Recommended regimen**") goes."""
    text = _EMPHASIS.sub("", _FENCE_LINE.sub("", text))
    joined = ""
    for line in text.splitlines():
        mark = _LINE_MARK.match(line)
        if mark and mark.group(0).lstrip().startswith("#") and not _has_regimen_part(line):
            continue
        line = line[mark.end() :] if mark else line
        if _LABEL_LINE.fullmatch(line):
            continue
        item = _LIST_ITEM.match(line)
        line = line[item.end() :] if item else line
        if not line.strip():
            continue
        if joined and item and not joined.rstrip().endswith((";", ",", ":", ".")):
            joined = joined.rstrip() + ";"
        joined += " " + line.strip()
    return joined.strip()


def _regimen_text(text: str) -> str:
    """The regimen a reader finds in `text`: what comes before and after it cut (see the
    patterns above), the regimen's own words kept as written."""
    text = _regimen_lines(text)
    start = 0
    while lead := _LEAD_IN.match(text, _LEAD_GAP.match(text, start).end()):
        if _has_regimen_part(text[: lead.end()]) or not _has_regimen_part(text[lead.end() :]):
            break
        start = lead.end()
    text = text[start:].lstrip(" :,")
    sentences = _SENTENCE_END.split(text)
    while len(sentences) > 1 and (
        _ALTERNATIVE_SENTENCE.match(sentences[-1])
        or (_COMMENTARY.match(sentences[-1]) and not _has_regimen_part(sentences[-1]))
    ):
        sentences.pop()
    text = " ".join(sentences)
    return _TRAILING_GUIDELINE.sub("", text).strip()


_DOSE_RANGE = re.compile(
    r"\d+(?:\.\d+)?\s*(?:-|–|to)\s*\d+(?:\.\d+)?\s*(?:c?Gy(?:\s*\(?RBE\)?)?|Gray)(?!\w)",
    re.IGNORECASE,
)


def _side_by_side_courses(text: str) -> list[str]:
    from radonc_llm.data.regimen import parse_regimen

    parts = [part for part in _OR.split(text) if part.strip()]
    if len(parts) < 2 or _SEQUENCE.search(text):
        return []
    courses = [parse_regimen(part) for part in parts]
    if not all(course.dose_gy and course.fractions for course in courses):
        return []
    return [part.strip(" ,;.") for part in parts]


def extract_regimen(raw: str) -> Extraction:
    text = answer_section("regimen", raw, fold=False)
    if _blank(text):
        return _no_answer(raw)
    # Free text, kept for ROUGE as written; but an answer with nothing of a regimen in it ("I
    # cannot determine the regimen") is unreadable, not a regimen.
    if not _has_regimen_part(text):
        dose_range = _DOSE_RANGE.search(text)
        if dose_range:  # the parser reads no value from a guideline range, by design
            return _malformed(f"gives a dose range ({dose_range.group(0)}), not one prescription")
        return _malformed("no dose, fractions, technique or drug found")
    text = re.sub(r"\s+", " ", _regimen_text(text)).strip()
    courses = _side_by_side_courses(text)
    if courses:
        return _malformed(f"offers several regimens ({' | '.join(courses)}); which is not guessed")
    return Extraction(prediction=text, malformed=False)


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
