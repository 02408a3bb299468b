"""The diagnosis note of an imported case, rendered from a registry row's structured fields.

Public tables hold fields, not notes; the model reads notes. A few clinical-style templates
(shorthand, prose, headed, consult) are picked per patient by a seeded draw, so that a model
does not learn one fixed layout, and the same row always renders the same note. A note holds
only what is known before treatment planning: never the dose, fractions, concurrent therapy,
ICD-10 code or modality.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass

# Registry histology wordings (canonical lower case) -> how a note writes them.
HISTOLOGY_DISPLAY: dict[str, str] = {
    "scc": "squamous cell carcinoma",
    "squamous cell carcinoma??": "squamous cell carcinoma",
    "squamous cell carcinoma in-situ": "squamous cell carcinoma in situ",
    # The older WHO typing of nasopharyngeal carcinoma, as the registry records it.
    "npc: type 3 (who iib)": "undifferentiated nasopharyngeal carcinoma (WHO type 3)",
    "npc, type 2 (who iia)": "non-keratinizing nasopharyngeal carcinoma (WHO type 2)",
    "npc, type 1 (who i)": "keratinizing squamous cell carcinoma (WHO type 1)",
    "adenoid cystic": "adenoid cystic carcinoma",
    "adenosquamous cell": "adenosquamous carcinoma",
    "verrucous squamous cell carcinoma": "verrucous carcinoma",
    "large cell carcinoma": "large cell carcinoma",
    "sinonasal ud (snuc)": "sinonasal undifferentiated carcinoma (SNUC)",
    "nut midline": "NUT carcinoma",
    "ini1-deficient sinonasal ca": "SMARCB1 (INI1)-deficient sinonasal carcinoma",
    "malignant melanoma": "mucosal melanoma",
    "salivary duct ca": "salivary duct carcinoma",
}
SHORT_HISTOLOGY = {
    "squamous cell carcinoma": "SCC",
    "squamous cell carcinoma in situ": "SCC in situ",
}
_SEX_WORDS = {"M": ("M", "man", "male"), "F": ("F", "woman", "female")}
_SMOKING_WORDS = {
    "current": ("current smoker", "current smoker"),
    "former": ("ex-smoker", "former smoker"),
    "never": ("never smoker", "non-smoker"),
}
N_TEMPLATES = 4


def histology_display(raw: str | None) -> str | None:
    """A registry histology as a note writes it ("Adenoid Cystic" -> "adenoid cystic carcinoma")."""
    if raw is None or not raw.strip():
        return None
    text = re.sub(r"\s+", " ", raw).strip()
    key = text.lower()
    if key in HISTOLOGY_DISPLAY:
        return HISTOLOGY_DISPLAY[key]
    key = re.sub(r"\bca\b", "carcinoma", key)
    return HISTOLOGY_DISPLAY.get(key, key)


@dataclass(frozen=True)
class ClinicalFacts:
    """What a registry row says about the patient and the tumour, before treatment."""

    site: str
    location: str
    age: int | None = None
    sex: str | None = None  # "M" or "F"
    laterality: str | None = None  # "left", "right", "midline"
    histology: str | None = None  # as a note writes it
    grade: str | None = None  # "moderately differentiated"
    t: str | None = None  # "T2", "T4a", "Tis"
    n: str | None = None  # "N2b"
    m: str | None = None  # "M0"
    stage: str | None = None  # "IVA"
    hpv: bool | None = None
    hpv_test: str = "HPV"  # what was tested, as the registry names it ("HPV", "HPV/p16")
    ecog: str | None = None  # "0", "1", "0-1"
    smoking: str | None = None  # "current", "former", "never"
    pack_years: str | None = None  # as recorded: "50", ">50"
    history: tuple[str, ...] = ()  # treatment before radiotherapy: "induction chemotherapy"

    def as_dict(self) -> dict:
        facts = {key: value for key, value in asdict(self).items() if value not in (None, ())}
        if self.hpv is None:
            del facts["hpv_test"]
        if self.history:
            facts["history"] = list(self.history)
        return facts


def _tnm(facts: ClinicalFacts, *, compact: bool, clinical: bool) -> str | None:
    parts = [part for part in (facts.t, facts.n, facts.m) if part]
    if not parts:
        return None
    if compact and all(" " not in part for part in parts):
        return ("c" if clinical else "") + "".join(parts)
    return " ".join(parts)


def _hpv(facts: ClinicalFacts, style: int) -> str | None:
    if facts.hpv is None:
        return None
    word = "positive" if facts.hpv else "negative"
    if style == 0:
        return f"{facts.hpv_test}{'+' if facts.hpv else '-'}"
    if style == 2:
        return f"{facts.hpv_test}: {word}"
    return f"{facts.hpv_test}-{word}"


def _where(facts: ClinicalFacts, *, with_site: bool) -> str:
    location = facts.location
    if facts.laterality in ("left", "right") and location != facts.site:
        location = f"{facts.laterality} {location}"
    if with_site and location != facts.site and facts.site not in location:
        return f"{location} ({facts.site})"
    return location


def _histology(facts: ClinicalFacts, *, short: bool) -> str:
    histology = facts.histology or "carcinoma"
    if short:
        histology = SHORT_HISTOLOGY.get(histology, histology)
    return f"{facts.grade} {histology}" if facts.grade and not short else histology


def _pack_years(facts: ClinicalFacts) -> str | None:
    if facts.pack_years is None or (facts.smoking == "never" and facts.pack_years == "0"):
        return None
    return f"{facts.pack_years} pack-years"


def _smoking(facts: ClinicalFacts, variant: int) -> str | None:
    if facts.smoking is None:
        return None
    words = _SMOKING_WORDS[facts.smoking][variant % 2]
    pack_years = _pack_years(facts)
    return f"{words} ({pack_years})" if pack_years else words


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


def _shorthand(facts: ClinicalFacts) -> str:
    who = ""
    if facts.age is not None:
        who = f"{facts.age}{_SEX_WORDS[facts.sex][0] if facts.sex else ' y/o'}"
    elif facts.sex:
        who = _SEX_WORDS[facts.sex][2]
    dx = f"{_histology(facts, short=True)} of the {_where(facts, with_site=False)}"
    tnm = _tnm(facts, compact=True, clinical=True)
    head = " w/ ".join(part for part in (who, " ".join(filter(None, (tnm, dx)))) if part)
    bits = [head]
    if facts.stage:
        bits.append(f"stage {facts.stage}")
    if hpv := _hpv(facts, 0):
        bits.append(hpv)
    text = ", ".join(bits) + "."
    extra = []
    if facts.ecog:
        extra.append(f"ECOG {facts.ecog}")
    if smoking := _smoking(facts, 0):
        extra.append(_sentence(smoking))
    extra += [f"s/p {item}" for item in facts.history]
    return " ".join([text, *(f"{item}." for item in extra)])


def _prose(facts: ClinicalFacts) -> str:
    who = []
    if facts.age is not None:
        who.append(f"{facts.age}-year-old")
    who.append(_SEX_WORDS[facts.sex][1] if facts.sex else "patient")
    text = f"{_sentence(' '.join(who))} with {_histology(facts, short=False)} of the "
    text += _where(facts, with_site=True)
    staging = []
    if tnm := _tnm(facts, compact=False, clinical=False):
        staging.append(f"clinically {tnm}")
    if facts.stage:
        staging.append(f"AJCC stage {facts.stage}")
    if staging:
        text += ", " + ", ".join(staging)
    text += "."
    if hpv := _hpv(facts, 1):
        text += f" {_sentence(hpv)}."
    if facts.ecog:
        text += f" ECOG performance status {facts.ecog}."
    if smoking := _smoking(facts, 1):
        text += f" {_sentence(smoking)}."
    if facts.history:
        text += f" Previously treated with {' and '.join(facts.history)}."
    return text


def _headed(facts: ClinicalFacts) -> str:
    lines = [f"Diagnosis: {_histology(facts, short=False)}, {_where(facts, with_site=True)}."]
    staging = [part for part in (_tnm(facts, compact=True, clinical=False),) if part]
    if facts.stage:
        staging.append(f"stage {facts.stage}")
    if staging:
        lines.append(f"Staging: {', '.join(staging)}.")
    if hpv := _hpv(facts, 2):
        lines.append(f"{hpv}.")
    patient = []
    if facts.age is not None:
        patient.append(f"{facts.age} y/o")
    if facts.sex:
        patient.append(_SEX_WORDS[facts.sex][2])
    details = [" ".join(patient)] if patient else []
    if facts.ecog:
        details.append(f"ECOG {facts.ecog}")
    if smoking := _smoking(facts, 0):
        details.append(smoking)
    if details:
        lines.append(f"Patient: {', '.join(details)}.")
    if facts.history:
        lines.append(f"Prior treatment: {', '.join(facts.history)}.")
    return " ".join(lines)


def _consult(facts: ClinicalFacts) -> str:
    primary = f"{_sentence(facts.site)} primary"
    if facts.location != facts.site:
        primary += f", {_where(facts, with_site=False)}"
    parts = [_histology(facts, short=False)]
    if tnm := _tnm(facts, compact=False, clinical=False):
        parts.append(tnm + (f" (stage {facts.stage})" if facts.stage else ""))
    elif facts.stage:
        parts.append(f"stage {facts.stage}")
    if hpv := _hpv(facts, 3):
        parts.append(hpv)
    text = f"{primary}: {', '.join(parts)}"
    who = []
    if facts.age is not None:
        who.append(f"{facts.age}-year-old")
    if facts.sex:
        who.append(_SEX_WORDS[facts.sex][2])
    if facts.smoking:
        who.append(_SMOKING_WORDS[facts.smoking][1])
    else:
        who.append("patient")
    article = "an" if re.match(r"8|1[18]-", who[0]) else "a"
    text += f", in {article} {' '.join(who)}"
    if pack_years := _pack_years(facts):
        text += f" ({pack_years})"
    if facts.ecog:
        text += f", ECOG {facts.ecog}"
    text += "."
    if facts.history:
        text += f" S/p {' and '.join(facts.history)}."
    return text


_TEMPLATES = (_shorthand, _prose, _headed, _consult)


def render_note(facts: ClinicalFacts, *, seed: str) -> str:
    """The note for one patient; `seed` (cohort and patient id) picks the template."""
    template = _TEMPLATES[random.Random(seed).randrange(len(_TEMPLATES))]  # noqa: S311
    return re.sub(r"\s+", " ", template(facts)).strip()
