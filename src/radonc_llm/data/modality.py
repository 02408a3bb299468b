"""The four modality classes and how recorded or free-text modality maps to them.

Declared once, here: curation maps the export's modality column with `modality_class`, and
answer extraction maps a model's free-text answer with the same function, so "6 MV VMAT" in
the records and "Photon therapy." from a model land on the same class.

Rules:
- Terms match case-insensitively on word boundaries ("e-" never matches inside "ce-"), after
  folding accents and dashes ("protón", "électrons", "e–" read as "proton", "electrons", "e-").
  Terms in other languages ("Photonen", "fotones", "curiethérapie") are synonyms like any other.
- A text that names two different classes ("photon or proton", "EBRT then HDR boost") is
  ambiguous and maps to None; so does a text naming none of them ("TBD", "hyperthermia").
- A negated mention does not count ("photon, not proton", "not proton; photon", "photon rather
  than proton", "protons are not available; use photons" -> photon). A text whose only
  mentions are negated ("no protons", "neither photon nor proton") maps to None: a negation
  never becomes the class it negates, and the class meant is never guessed.
- Particles outside the four classes (neutrons, carbon or helium ions) map to None even when
  written with a term shared with protons (carbon ion doses are also given in Gy(RBE)).
- Generic external-beam words (EBRT, SBRT, SRS, stereotactic, TBI ...) mean photons unless
  the text names another external beam: "SBRT" is photon, "proton SBRT" is proton.
- Cobalt-60 and a bare "kV" mean photons only when nothing else is named ("HDR Co-60" is
  brachytherapy, "IMPT with kV imaging" proton).
- Beam energy decides where no word does: MV and kV are photons; MeV below 50 is an electron
  beam (clinical electrons are 4-22 MeV), 50 MeV and above a proton beam (70-250 MeV).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from radonc_llm.data.cases import MODALITIES

# Terms that name one class, written without accents (text is folded before matching).
# Spaces and hyphens inside a term match any run of spaces, hyphens or nothing, so "3D-CRT"
# also matches "3D CRT" and "3DCRT".
# fmt: off
MODALITY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "photon": (
        "photon", "photons", "x-ray", "x-rays", "megavoltage", "MV", "kilovoltage",
        "orthovoltage", "superficial x-ray", "SXRT", "FFF", "linac", "linear accelerator",
        "MR-linac", "IMRT", "intensity modulated radiation therapy",
        "intensity modulated radiotherapy", "VMAT", "volumetric modulated arc therapy",
        "volumetric modulated arc", "RapidArc", "3D-CRT", "3D conformal", "tomotherapy", "tomo",
        "CyberKnife", "Cyber Knife", "Gamma Knife", "Leksell", "GK", "CK", "grenz ray",
        "grenz rays",
        # Linac platforms that record-and-verify systems write in the modality column.
        "TrueBeam", "Halcyon", "Ethos", "Clinac", "Radixact",
        # Other languages (de, nl, es, it, pt; French "photons" is English).
        "Photonen", "Photonentherapie", "fotonen", "foton", "fotones", "fotoni", "fotons",
    ),
    "electron": (
        "electron", "electrons", "e-", "e-beam", "TSEBT", "TSET", "total skin electron", "IOERT",
        "Elektronen", "Elektronentherapie", "electrontherapie", "electrones", "elettroni", "eletron", "eletrons",
    ),
    "brachytherapy": (
        "brachytherapy", "brachy", "HDR", "LDR", "PDR", "high dose rate", "low dose rate",
        "pulsed dose rate", "Ir-192", "iridium", "I-125", "iodine-125", "Pd-103", "palladium",
        "Cs-131", "cesium-131", "Cs-137", "cesium-137", "seed", "seeds", "seed implant", "plaque",
        "tandem and ovoids", "tandem and ovoid", "tandem and ring", "T&O", "T&R", "vaginal cuff", "vaginal cylinder",
        "VCB", "VBT", "ICBT", "ISBT", "tandem", "ovoids", "interstitial", "intracavitary",
        "MammoSite", "SAVI", "afterloading",
        "Brachytherapie", "curietherapie", "braquiterapia", "brachiterapia",
    ),
    "proton": (
        "proton", "protons", "protontherapy", "PBT", "IMPT", "intensity modulated proton therapy",
        "PBS", "pencil beam scanning", "pencil beam", "passive scatter", "passive scattering",
        "GyRBE", "Gy (RBE)", "Gy RBE", "CGE", "GyE",
        "Protonen", "Protonentherapie", "protontherapie", "protones", "protoni", "protonterapia",
        "protonterapi",
    ),
}

# External-beam words that fit photons, electrons or protons: photon unless another
# external-beam class is named beside them ("proton SBRT", "electron EBRT").
EXTERNAL_BEAM_TERMS: tuple[str, ...] = (
    "EBRT", "external beam", "XRT", "stereotactic", "SBRT", "SABR", "SRS", "FSRT",
    "radiosurgery", "TBI", "WBRT", "CSI", "IGRT", "teletherapy",
    "radiotherapie externe", "radioterapia externa", "radioterapia esterna",
    "externe Strahlentherapie",
)

# Photons only when no class is named beside them: a cobalt-60 source is a teletherapy unit
# unless the text names brachytherapy ("HDR Co-60"), and a bare "kV" is a kilovoltage beam
# while beside another class it is the imaging ("IMPT, kV CBCT").
PHOTON_UNLESS_OTHER_TERMS: tuple[str, ...] = ("Co-60", "cobalt-60", "cobalt", "60-Co", "kV", "kVp")

# Radiation outside the four classes: naming one makes a text unmappable. A bare "carbon" or
# "helium" in a modality is the ion beam ("proton or carbon").
OTHER_RADIATION_TERMS: tuple[str, ...] = (
    "neutron", "neutrons", "carbon", "carbon ion", "carbon ions", "C-ion", "C-ions", "CIRT",
    "heavy ion", "heavy ions", "heavy particle", "heavy particles", "helium", "helium ion",
    "helium ions", "BNCT",
)

# Words that negate the mentions after them in their clause ("not proton", "no protons",
# "photon rather than proton", "keine Protonen"); "non" only the mention it is glued to
# ("non-proton"). English, then de, fr, es/it/pt, nl.
NEGATION_TERMS: tuple[str, ...] = (
    "not", "no", "never", "without", "neither", "nor", "rather than", "instead of", "except",
    "excluding", "cannot", "can't", "don't", "doesn't", "isn't", "aren't", "wasn't", "won't",
    "wouldn't", "shouldn't",
    "kein", "keine", "keinen", "nicht", "ohne", "pas", "sans", "ni", "sin", "senza", "sem",
    "nao", "geen", "niet", "zonder",
)
# Words that negate the mention just before them ("proton is not indicated", "protons are
# unavailable"), when nothing is named after them in the clause.
NEGATION_AFTER_TERMS: tuple[str, ...] = (
    "not", "never", "cannot", "can't", "isn't", "aren't", "wasn't", "weren't", "won't",
    "wouldn't", "shouldn't", "contraindicated", "unnecessary", "unavailable", "unsuitable",
    "inappropriate", "ruled out", "excluded", "nicht", "pas", "niet",
)
# A clause that is only a "no" rejects the mentions of the clause before it ("Proton? No.").
_BARE_NEGATIONS: tuple[str, ...] = ("no", "not", "nope", "never", "nein", "non", "nee")
# fmt: on

# Beam names as record-and-verify systems write them: "6X", "10XFFF", "6X-FFF", "X6" (photons),
# "9E", "12E", "E16" (electrons, Varian/Elekta style).
_PHOTON_ENERGY = re.compile(
    r"(?<![\w.])(?:\d+(?:\.\d+)?\s*(?:MV|kVp?)|(?:4|6|8|10|15|16|18|20|23|25)X(?:[\s-]?FFF)?"
    r"|X(?:4|6|8|10|15|18))(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_ELECTRON_ENERGY = re.compile(
    r"(?<![\w.])(?:(?:4|6|8|9|10|12|15|16|18|20|22)E|E(?:4|6|8|9|10|12|15|16|18|20|22))"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_MEV = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*MeV(?![A-Za-z0-9])", re.IGNORECASE)
_PROTON_MIN_MEV = 50.0


def _term_pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    parts = []
    for term in sorted(terms, key=len, reverse=True):
        if term.endswith("-"):  # "e-": the sign is part of the term
            parts.append(re.escape(term))
            continue
        pieces = [re.escape(piece) for piece in re.split(r"[\s-]+", term) if piece]
        parts.append(r"[\s-]*".join(pieces))
    # Letters (not digits) must not touch a term: "67.5GyRBE" and "6MV" still match.
    return re.compile(r"(?<![A-Za-z&])(?:" + "|".join(parts) + r")(?![A-Za-z0-9&])", re.IGNORECASE)


_CLASS_PATTERNS: dict[str, re.Pattern[str]] = {
    name: _term_pattern(terms) for name, terms in MODALITY_SYNONYMS.items()
}
_EXTERNAL_BEAM_PATTERN = _term_pattern(EXTERNAL_BEAM_TERMS)
_PHOTON_UNLESS_OTHER_PATTERN = _term_pattern(PHOTON_UNLESS_OTHER_TERMS)
_OTHER_PATTERN = _term_pattern(OTHER_RADIATION_TERMS)
_MENTION_PATTERNS: tuple[re.Pattern[str], ...] = (
    *_CLASS_PATTERNS.values(),
    _PHOTON_ENERGY,
    _ELECTRON_ENERGY,
    _MEV,
    _EXTERNAL_BEAM_PATTERN,
    _PHOTON_UNLESS_OTHER_PATTERN,
    _OTHER_PATTERN,
)
if set(_CLASS_PATTERNS) != set(MODALITIES):
    raise RuntimeError("MODALITY_SYNONYMS must list exactly the classes in cases.MODALITIES")


def _word_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(
        r"\s+".join(re.escape(piece) for piece in word.split())
        for word in sorted(words, key=len, reverse=True)
    )
    return re.compile(rf"(?<![\w'])(?:{alternatives})(?![\w'])", re.IGNORECASE)


_NEGATION = _word_pattern(NEGATION_TERMS)
_NEGATION_AFTER = _word_pattern(NEGATION_AFTER_TERMS)
_GLUED_NON = re.compile(r"(?<![\w'])non[\s-]*", re.IGNORECASE)
_BARE_NEGATION = re.compile(r"\W*(?:" + "|".join(_BARE_NEGATIONS) + r")\W*", re.IGNORECASE)
# Clauses end at punctuation (not a decimal point) and at words that turn the sentence:
# a negation reaches no further ("not proton; photon", "not proton but photon").
_CLAUSE_BREAK = re.compile(
    r"[;:,()\[\]{}!?\n|]|\.(?!\d)|(?<!\d)\.|\s-\s|(?<!\w)(?:but|however|although|though|"
    r"whereas|while|so|therefore|hence|thus|aber|sondern|mais|pero|maar)(?!\w)",
    re.IGNORECASE,
)
# Words a trailing negation may reach back over: "Proton beam therapy is not indicated".
_MAX_WORDS_BEFORE_NEGATION = 3
_WORD = re.compile(r"\w+")
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"), "-")
_APOSTROPHES = dict.fromkeys(map(ord, "\u2018\u2019\u02bc\uff07"), "'")


def _fold(text: str) -> str:
    """Accents, dashes and curly apostrophes folded: "protón" -> "proton", "e–" -> "e-"."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return plain.translate(_DASHES).translate(_APOSTROPHES)


def _classes_named(text: str) -> set[str]:
    found = {name for name, pattern in _CLASS_PATTERNS.items() if pattern.search(text)}
    if _PHOTON_ENERGY.search(text):
        found.add("photon")
    if _ELECTRON_ENERGY.search(text):
        found.add("electron")
    for match in _MEV.finditer(text):
        found.add("proton" if float(match.group(1)) >= _PROTON_MIN_MEV else "electron")
    if _EXTERNAL_BEAM_PATTERN.search(text) and not found & {"photon", "electron", "proton"}:
        found.add("photon")
    if not found and _PHOTON_UNLESS_OTHER_PATTERN.search(text):
        found.add("photon")
    return found


def _clauses(text: str) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for match in _CLAUSE_BREAK.finditer(text):
        bounds.append((start, match.start()))
        start = match.end()
    bounds.append((start, len(text)))
    return bounds


def _negated_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the mentions that `text` negates (see the module's rules)."""
    mentions = sorted(
        {match.span() for pattern in _MENTION_PATTERNS for match in pattern.finditer(text)}
    )
    negated: list[tuple[int, int]] = []
    previous: list[tuple[int, int]] = []
    for start, end in _clauses(text):
        inside = [span for span in mentions if start <= span[0] and span[1] <= end]
        if _BARE_NEGATION.fullmatch(text, start, end):
            negated += previous
            previous = []
            continue
        for non in _GLUED_NON.finditer(text, start, end):
            negated += [span for span in inside if span[0] == non.end()]
        for negation in _NEGATION.finditer(text, start, end):
            negated += [span for span in inside if span[0] >= negation.end()]
        for negation in _NEGATION_AFTER.finditer(text, start, end):
            if any(span[0] >= negation.end() for span in inside):
                continue  # "photon not proton": the negation is proton's
            before = [span for span in inside if span[1] <= negation.start()]
            gap = text[before[-1][1] : negation.start()] if before else ""
            if before and len(_WORD.findall(gap)) <= _MAX_WORDS_BEFORE_NEGATION:
                negated.append(before[-1])
        if inside:
            previous = inside
    return negated


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


@dataclass(frozen=True)
class ModalityReading:
    """What a modality text says: `label` is its class, or None with the reason in the rest.

    `named`: the classes it names and does not negate; `negated`: the classes it names only
    under a negation; `other`: radiation outside the four classes it names ("carbon ions").
    """

    label: str | None
    named: frozenset[str]
    negated: frozenset[str]
    other: tuple[str, ...]


@functools.lru_cache(maxsize=65536)
def read_modality(text: str) -> ModalityReading:
    """The class of a recorded or free-text modality, with what it names and negates."""
    if not isinstance(text, str) or not text.strip():
        return ModalityReading(None, frozenset(), frozenset(), ())
    folded = _fold(text)
    negated_spans = _negated_spans(folded)
    affirmed = _blank(folded, negated_spans) if negated_spans else folded
    named = _classes_named(affirmed)
    negated = _classes_named(" ; ".join(folded[a:b] for a, b in negated_spans)) - named
    other = tuple(match.group(0) for match in _OTHER_PATTERN.finditer(affirmed))
    label = next(iter(named)) if len(named) == 1 and not other else None
    return ModalityReading(label, frozenset(named), frozenset(negated), other)


def modality_classes(text: str) -> set[str]:
    """Every class that `text` names and does not negate (empty for junk); one is needed."""
    if not isinstance(text, str):
        return set()
    return set(read_modality(text).named)


def modality_class(text: str) -> str | None:
    """photon, electron, brachytherapy or proton; None if unknown, empty or ambiguous.

    "6 MV VMAT" -> "photon", "12 MeV e-" -> "electron", "HDR Ir-192" -> "brachytherapy",
    "PBS protons" -> "proton", "photon, not proton" -> "photon", "photon or proton" -> None,
    "no protons" -> None, "carbon ions" -> None.
    """
    if not isinstance(text, str):
        return None
    return read_modality(text).label
