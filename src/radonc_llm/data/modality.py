"""The four modality classes and how recorded or free-text modality maps to them.

Declared once, here: curation maps the export's modality column with `modality_class`, and
answer extraction maps a model's free-text answer with the same function, so "6 MV VMAT" in
the records and "Photon therapy." from a model land on the same class.

Rules:
- Terms match case-insensitively on word boundaries ("e-" never matches inside "ce-").
- A text that names two different classes ("photon or proton", "EBRT then HDR boost") is
  ambiguous and maps to None; so does a text naming none of them ("TBD", "hyperthermia").
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

from radonc_llm.data.cases import MODALITIES

# Terms that name one class. Spaces and hyphens inside a term match any run of spaces,
# hyphens or nothing, so "3D-CRT" also matches "3D CRT" and "3DCRT".
# fmt: off
MODALITY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "photon": (
        "photon", "photons", "x-ray", "x-rays", "megavoltage", "MV", "kilovoltage",
        "orthovoltage", "superficial x-ray", "SXRT", "FFF", "linac", "MR-linac", "IMRT",
        "VMAT", "RapidArc", "3D-CRT", "3D conformal", "tomotherapy", "tomo", "CyberKnife",
        "Gamma Knife", "GK", "CK", "grenz ray", "grenz rays",
        # Linac platforms that record-and-verify systems write in the modality column.
        "TrueBeam", "Halcyon", "Ethos", "Clinac", "Radixact",
    ),
    "electron": (
        "electron", "electrons", "e-", "e\N{MINUS SIGN}", "e-beam", "TSEBT", "TSET",
        "total skin electron", "IOERT",
    ),
    "brachytherapy": (
        "brachytherapy", "brachy", "HDR", "LDR", "PDR", "high dose rate", "low dose rate",
        "pulsed dose rate", "Ir-192", "iridium", "I-125", "iodine-125", "Pd-103", "palladium",
        "Cs-131", "cesium-131", "Cs-137", "cesium-137", "seed", "seeds", "seed implant", "plaque",
        "tandem and ovoids", "tandem and ovoid", "tandem and ring", "T&O", "T&R", "vaginal cuff", "vaginal cylinder",
        "VCB", "VBT", "ICBT", "ISBT", "tandem", "ovoids", "interstitial", "intracavitary",
        "MammoSite", "SAVI",
    ),
    "proton": (
        "proton", "protons", "PBT", "IMPT", "PBS", "pencil beam scanning", "pencil beam",
        "passive scatter", "passive scattering", "GyRBE", "Gy (RBE)", "Gy RBE", "CGE", "GyE",
    ),
}

# External-beam words that fit photons, electrons or protons: photon unless another
# external-beam class is named beside them ("proton SBRT", "electron EBRT").
EXTERNAL_BEAM_TERMS: tuple[str, ...] = (
    "EBRT", "external beam", "XRT", "stereotactic", "SBRT", "SABR", "SRS", "FSRT",
    "radiosurgery", "TBI", "WBRT", "CSI", "IGRT",
)

# Photons only when no class is named beside them: a cobalt-60 source is a teletherapy unit
# unless the text names brachytherapy ("HDR Co-60"), and a bare "kV" is a kilovoltage beam
# while beside another class it is the imaging ("IMPT, kV CBCT").
PHOTON_UNLESS_OTHER_TERMS: tuple[str, ...] = ("Co-60", "cobalt-60", "cobalt", "60-Co", "kV", "kVp")

# Radiation outside the four classes: naming one makes a text unmappable.
OTHER_RADIATION_TERMS: tuple[str, ...] = (
    "neutron", "neutrons", "carbon ion", "carbon ions", "heavy ion", "heavy ions",
    "helium ion", "helium ions", "BNCT",
)
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
        if term.endswith(("-", "\N{MINUS SIGN}")):  # "e-": the sign is part of the term
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
if set(_CLASS_PATTERNS) != set(MODALITIES):
    raise RuntimeError("MODALITY_SYNONYMS must list exactly the classes in cases.MODALITIES")


def modality_classes(text: str) -> set[str]:
    """Every class that `text` names (empty for junk); `modality_class` needs exactly one."""
    if not isinstance(text, str) or not text.strip():
        return set()
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


@functools.lru_cache(maxsize=65536)
def modality_class(text: str) -> str | None:
    """photon, electron, brachytherapy or proton; None if unknown, empty or ambiguous.

    "6 MV VMAT" -> "photon", "12 MeV e-" -> "electron", "HDR Ir-192" -> "brachytherapy",
    "PBS protons" -> "proton", "photon or proton" -> None, "carbon ions" -> None.
    """
    if not isinstance(text, str) or _OTHER_PATTERN.search(text):
        return None
    found = modality_classes(text)
    return found.pop() if len(found) == 1 else None
