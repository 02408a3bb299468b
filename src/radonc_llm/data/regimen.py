"""Free-text radiotherapy regimens <-> `RegimenStructured`, dose arithmetic and sanity checks.

`parse_regimen` reads what clinicians write ("70Gy/35fx", "7000 cGy in 35 fx", "5 x 5 Gy",
"45 Gy/30 fx BID w/ cis/etoposide", "40.05 Gy/15 fx + boost 10 Gy/5 fx") and
`render_regimen` writes one canonical form ("45 Gy in 30 fractions BID with concurrent
cisplatin and etoposide"); parse(render(x)) == x. Both curation (recorded plans) and
evaluation (model answers) use this module, so one vocabulary of techniques, schedules and
drugs lives here.

Reading rules, each a clinical convention:
- "d Gy x N" and "N x d Gy" are N fractions of d Gy, unless that product is no course in use
  while D Gy in N is ("60 Gy x 30 fx", "25 Gy x 5": the total and the count); "D Gy/N" is D
  Gy in N fractions, and so is "D Gy in N" where the clause ends after N ("SABR 54 Gy in 3",
  not "60 Gy in 6 weeks").
- "D Gy in d Gy fractions" and "D Gy @ d Gy" give N = D/d when it is a whole number, and so
  do "d Gy BID to D Gy" and labelled fields ("Dose per fraction: 2 Gy; Total dose: 60 Gy").
- "single 8 Gy fraction", "five 5 Gy fractions": a count before the dose per fraction; "8 Gy
  single", "8 Gy once", "single 8 Gy" are one fraction. "30.0 fractions" is 30, but a count
  that is not whole ("30.5 fractions", "60 Gy/30.5") is never rounded: no count is read, and
  `regimen_text_problem` flags it. A unit-less product is read only in brachytherapy and
  stereotactic shorthand, dose first ("HDR 7x3" is 7 Gy x 3); "5x5" alone stays unread. A
  product beside the total that adds up to it gives the count: "50.4 Gy (1.8 Gy x 28)".
- EMR labels count too ("Fractions: 25", "No. of fractions 30"), but a bare "Fx 12" is a tally.
- "70/63/56 Gy": the dose levels of an integrated boost (falling, within 70% of the highest);
  the highest is the prescription, and an "SIB" clause that holds the only dose is the
  prescription, not a boost ("SIB 70/59.4/54 Gy in 33").
- A dose in words is read like digits: "sixty Gy in thirty fractions", "fifty point four Gy",
  "forty-five hundred cGy". "approx. 60 Gy", "~60 Gy" and "≈60 Gy" read 60 Gy.
- cGy is converted to Gy; Gray and centigray too; GyRBE, Gy(RBE), CGE and GyE are all written
  GyRBE.
- Ranges ("66-70 Gy", "33-35 fx") are guideline ranges, not prescriptions: no value is read;
  nor from rates ("5 fx/week", "0.5 Gy/h"), EQD2 or BED values, or a year ("60 Gy in 2018").
- Radiotherapy given before ("prior 30 Gy/10 fx", "s/p 60 Gy in 2018", "history of 50 Gy")
  is history, not the plan: that clause is not read at all.
- Several targets with their own dose ("54 Gy in 30 fx to elective nodes, 70 Gy to GTV",
  "PTV70/PTV63/PTV56", "PTV70 70 Gy, PTV56 56 Gy in 35 fx"): the highest level is the
  prescription. Its fraction count is its own, or one written once for all the levels (SIB,
  PTV labels, a count before them all, or after a list of three); else it is unknown (None)
  rather than borrowed from another level.
- A second course in a clause of its own is a sequential boost, "boost" written or not, when it
  follows "then"/"followed by" or "+" (counting its fractions), when it is brachytherapy after
  external beam ("EBRT 45 Gy/25 fx; HDR 28 Gy/4 fx"), or when it gives a lower dose in another
  number of fractions to a sub-volume (tumour bed, cavity, primary, GTV, prostate, posterior
  fossa) or is called "sequential": "50 Gy/25 fx to breast, 10 Gy/5 fx to tumour bed" is 50 Gy
  in 25 fractions with a 10 Gy in 5 boost. A higher dose to a sub-volume is a dose level (the
  rule above): "45 Gy/25 fx to pelvis, 50.4 Gy/28 fx to primary" is 50.4 Gy in 28.
- Courses to unrelated sites ("8 Gy/1 fx to T-spine, 20 Gy/5 fx to L hip"; each with its own
  dose and count, in its own clause, no target a plan volume such as GTV, nodes, primary, bed)
  are not a boost: the first-listed is the prescription and the others are kept, canonical, in
  the extra field `other_courses`; their EQD2 is not added to the main course's.
- "Observation", "active surveillance", "no radiotherapy", "declined RT" hold no dose;
  `regimen_text_problem` says they are not a radiotherapy regimen.
- A split course ("30 Gy/10 fx, 2-week break, then 30 Gy/10 fx") is one prescription, the sum
  of its parts (60 Gy in 20 fractions), not a course and a boost.
- The prescription is what was planned: "planned 70 Gy/35 fx, stopped at 46 Gy" is 70 Gy in
  35 fractions. A dose after "stopped/discontinued/terminated at", "only received" is the
  delivered dose and is not read; written alone it leaves the dose unknown.
- The first dose outside a boost clause is the prescription; "boost ..." up to the next
  clause ("with", "+", ";", a drug) is the boost, kept as canonical text ("10 Gy in 5
  fractions", "to 60 Gy") and a technique written right before "boost" ("HDR boost") is the
  boost's. A dose written just before the keyword is the boost's too ("+ 9 Gy/5 fx boost"),
  and so is a course counted in fractions after "+" ("45 Gy/25 fx + HDR 7 Gy x 4"). A sum
  after the keyword ("9 Gy/5 fx boost (total 63 Gy)", "= 60 Gy") is not the boost's own dose.
- A schedule word next to a drug ("weekly cisplatin", "capecitabine 825 mg/m2 BID") is the
  drug's, not the radiotherapy's; it is kept in the extra field `concurrent_schedule`.
- Drugs given before or after radiotherapy are not concurrent: a clause with "after",
  "adjuvant", "induction", "maintenance" ... or a drug before the dose followed by "then"
  ("ABVD x2 then 20 Gy/10 fx") is left out; "concurrent and adjuvant TMZ" is concurrent.
- A class and its agent ("chemo (cisplatin)", "cisplatin-based chemotherapy", "chemo-RT 70
  Gy/35 fx with cisplatin") are one drug, listed by the agent; "chemoradiation" alone is
  "chemotherapy". A drug stopped part way ("cisplatin held after 2 cycles") was concurrent.
  "Chemo: none", "nil", "N/A" is no drug.
- The boost is kept as text: dose_gy/fractions are the main course's only, so an EQD2 from
  them is that course's. "EBRT 45 Gy/25 fx + HDR boost 7 Gy x 3" is 45 Gy in 25 (EQD2_10
  44.25 Gy) plus a 21 Gy in 3 boost (29.75 Gy); the total, 74 Gy, is the sum of the courses'
  EQD2s, never the EQD2 of 66 Gy in 28.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import re
from dataclasses import dataclass

from radonc_llm.data.cases import RegimenStructured

# ---------------------------------------------------------------------------------------------
# Vocabularies (canonical name -> what people write). Spaces and hyphens inside an entry match
# any run of spaces or hyphens, or nothing ("5-FU" matches "5FU", "5 FU").

SCHEDULES: tuple[str, ...] = ("daily", "BID", "weekly", "every other day")
# A drug may also be given every 3 weeks (cisplatin 100 mg/m2); radiotherapy never is.
DRUG_SCHEDULES: tuple[str, ...] = (*SCHEDULES, "every 3 weeks")

# fmt: off
SCHEDULE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "every 3 weeks": (
        "every 3 weeks", "every three weeks", "3-weekly", "three-weekly", "q3w", "q3 weeks",
        "q3wk", "q3weeks", "q 3 weeks", "q3 weekly", "q3 wk", "q21d", "q21 days", "every 21 days",
    ),
    "every other day": (
        "every other day", "every second day", "alternate days", "alternate day",
        "on alternate days", "QOD", "q.o.d.", "q.o.d",
    ),
    "BID": (
        "BID", "b.i.d.", "b.i.d", "twice daily", "twice a day", "twice-daily", "2x daily",
        "2x/day", "two fractions per day", "two fractions a day",
    ),
    "weekly": ("weekly", "once weekly", "once a week", "every week", "qweek", "qwk", "q1w"),
    "daily": ("daily", "once daily", "once a day", "every day", "QD", "q.d."),
}

TECHNIQUE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "IMRT": (
        "IMRT", "intensity modulated radiation therapy", "intensity modulated radiotherapy",
        "intensity modulated",
    ),
    "VMAT": ("VMAT", "RapidArc", "volumetric modulated arc therapy", "volumetric modulated arc"),
    "3D-CRT": ("3D-CRT", "3D conformal radiotherapy", "3D conformal radiation therapy",
               "3D conformal"),
    "SBRT": (
        "SBRT", "SABR", "stereotactic body radiation therapy", "stereotactic body radiotherapy",
        "stereotactic ablative radiotherapy", "stereotactic ablative body radiotherapy",
    ),
    "SRS": ("SRS", "stereotactic radiosurgery", "radiosurgery", "Gamma Knife"),
    "FSRT": (
        "FSRT", "HSRT", "fractionated stereotactic radiotherapy",
        "hypofractionated stereotactic radiotherapy",
    ),
    "HDR": ("HDR", "high dose rate"),
    "LDR": ("LDR", "low dose rate", "seed implant", "permanent seed implant", "seeds"),
    "PDR": ("PDR", "pulsed dose rate"),
    "plaque": ("plaque", "episcleral plaque"),
    "IMPT": ("IMPT", "intensity modulated proton therapy", "intensity modulated proton"),
    "PBS": ("PBS", "pencil beam scanning", "pencil beam"),
    "TSEBT": ("TSEBT", "TSET", "total skin electron beam therapy", "total skin electrons",
                "total skin electron"),
    "Tomotherapy": ("Tomotherapy", "helical tomotherapy"),
}
BRACHYTHERAPY_TECHNIQUES: frozenset[str] = frozenset({"HDR", "LDR", "PDR", "plaque"})
STEREOTACTIC_TECHNIQUES: frozenset[str] = frozenset({"SBRT", "SRS", "FSRT"})

DRUG_SYNONYMS: dict[str, tuple[str, ...]] = {
    "cisplatin": ("cisplatin", "cis", "cisplat", "cis-platinum", "CDDP", "DDP", "Platinol"),
    "carboplatin": ("carboplatin", "carbo", "CBDCA", "Paraplatin"),
    "oxaliplatin": ("oxaliplatin", "oxali", "Eloxatin"),
    "paclitaxel": ("paclitaxel", "Taxol", "pacli"),
    "docetaxel": ("docetaxel", "Taxotere", "doce"),
    "temozolomide": ("temozolomide", "temozolamide", "TMZ", "Temodar", "Temodal"),
    "capecitabine": ("capecitabine", "cape", "Xeloda"),
    "fluorouracil": ("fluorouracil", "5-fluorouracil", "5-FU", "5FU"),
    "mitomycin": ("mitomycin", "mitomycin C", "MMC", "mito", "Mutamycin"),
    "etoposide": ("etoposide", "VP-16", "etop", "VePesid"),
    "cetuximab": ("cetuximab", "Erbitux", "cetux"),
    "gemcitabine": ("gemcitabine", "gem", "Gemzar"),
    "irinotecan": ("irinotecan", "CPT-11"),
    "leucovorin": ("leucovorin", "folinic acid"),
    "trastuzumab": ("trastuzumab", "Herceptin"),
    "durvalumab": ("durvalumab", "Imfinzi", "durva"),
    "pembrolizumab": ("pembrolizumab", "Keytruda", "pembro"),
    "nivolumab": ("nivolumab", "Opdivo", "nivo"),
    "rituximab": ("rituximab", "Rituxan"),
    "cyclophosphamide": ("cyclophosphamide", "Cytoxan"),
    "doxorubicin": ("doxorubicin", "Adriamycin"),
    "vincristine": ("vincristine", "Oncovin"),
    "vinblastine": ("vinblastine",),
    "bleomycin": ("bleomycin",),
    "dacarbazine": ("dacarbazine", "DTIC"),
    "prednisone": ("prednisone",),
    "procarbazine": ("procarbazine",),
    "lomustine": ("lomustine", "CCNU"),
    "hydroxyurea": ("hydroxyurea", "Hydrea"),
    "tamoxifen": ("tamoxifen",),
    "letrozole": ("letrozole", "Femara"),
    "anastrozole": ("anastrozole", "Arimidex"),
    "bicalutamide": ("bicalutamide", "Casodex"),
    "leuprolide": ("leuprolide", "leuprorelin", "Lupron"),
    "goserelin": ("goserelin", "Zoladex"),
    "memantine": ("memantine", "Namenda"),
    "erlotinib": ("erlotinib", "Tarceva"),
    "gefitinib": ("gefitinib", "Iressa"),
    "vandetanib": ("vandetanib", "Caprelsa"),
    "panitumumab": ("panitumumab", "Vectibix"),
    "nimotuzumab": ("nimotuzumab",),
    # Classes recorded without the agent (public head-and-neck cohorts): kept as written, unless
    # the agent is named with them ("chemo (cisplatin)", "cisplatin-based chemotherapy").
    "EGFR inhibitor": ("EGFR inhibitor", "anti-EGFR therapy", "anti-EGFR"),
    # "chemoradiation" says chemotherapy was given with the radiotherapy, agent unnamed.
    "chemotherapy": (
        "chemotherapy", "chemo", "systemic chemotherapy", "chemoradiation", "chemoradiotherapy",
        "chemo-radiation", "chemo-radiotherapy", "chemoirradiation",
    ),
    # Androgen deprivation is prescribed as a class more often than as one agent.
    "ADT": ("ADT", "androgen deprivation therapy", "androgen deprivation"),
}
_AGENT_CLASSES: frozenset[str] = frozenset({"EGFR inhibitor", "chemotherapy"})
# What each class stands for: "chemo-RT 70 Gy/35 fx with cisplatin" is one drug, cisplatin,
# even when the class and the agent are written apart; "cetuximab + chemo" is two.
_CLASS_MEMBERS: dict[str, frozenset[str]] = {
    "chemotherapy": frozenset({
        "cisplatin", "carboplatin", "oxaliplatin", "paclitaxel", "docetaxel", "temozolomide",
        "capecitabine", "fluorouracil", "mitomycin", "etoposide", "gemcitabine", "irinotecan",
        "cyclophosphamide", "doxorubicin", "vincristine", "vinblastine", "bleomycin",
        "dacarbazine", "procarbazine", "lomustine", "hydroxyurea",
    }),
    "EGFR inhibitor": frozenset({
        "cetuximab", "panitumumab", "nimotuzumab", "erlotinib", "gefitinib", "vandetanib",
    }),
}
# Regimen abbreviations that stand for several drugs, expanded in this order.
DRUG_COMBINATIONS: dict[str, tuple[str, ...]] = {
    "R-CHOP": ("rituximab", "cyclophosphamide", "doxorubicin", "vincristine", "prednisone"),
    "CHOP": ("cyclophosphamide", "doxorubicin", "vincristine", "prednisone"),
    "ABVD": ("doxorubicin", "bleomycin", "vinblastine", "dacarbazine"),
    "PCV": ("procarbazine", "lomustine", "vincristine"),
    "FOLFOX": ("fluorouracil", "leucovorin", "oxaliplatin"),
    "FOLFIRINOX": ("fluorouracil", "leucovorin", "irinotecan", "oxaliplatin"),
    "CAPOX": ("capecitabine", "oxaliplatin"),
    "XELOX": ("capecitabine", "oxaliplatin"),
    "TPF": ("docetaxel", "cisplatin", "fluorouracil"),
}
# fmt: on

# ---------------------------------------------------------------------------------------------
# Patterns

_NUMBER_WORDS: dict[str, int] = {"single": 1, "a single": 1}
_UNITS = "one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER_WORDS.update({word: i + 1 for i, word in enumerate(_UNITS)})
_NUMBER_WORDS.update({word: i + 10 for i, word in enumerate(_TEENS)})
for _i, _tens in enumerate(_TENS):
    _NUMBER_WORDS[_tens] = 20 + 10 * _i
    for _j, _unit in enumerate(_UNITS):
        _NUMBER_WORDS[f"{_tens}-{_unit}"] = 20 + 10 * _i + _j + 1
        _NUMBER_WORDS[f"{_tens} {_unit}"] = 20 + 10 * _i + _j + 1


def _phrase(term: str) -> str:
    pieces = [re.escape(piece) for piece in re.split(r"[\s-]+", term) if piece]
    return r"[\s-]*".join(pieces)


def _squash(text: str) -> str:
    return re.sub(r"[\s-]+", "", text).lower()


def _vocabulary(table: dict[str, tuple[str, ...]]) -> tuple[str, dict[str, str]]:
    """A regex alternation of every synonym (longest first) and a lookup to the canonical."""
    written: dict[str, str] = {}  # squashed -> as written
    lookup: dict[str, str] = {}  # squashed -> canonical
    for canonical, synonyms in table.items():
        for synonym in (canonical, *synonyms):
            written.setdefault(_squash(synonym), synonym)
            lookup[_squash(synonym)] = canonical
    body = "|".join(_phrase(written[key]) for key in sorted(written, key=len, reverse=True))
    return f"(?:{body})", lookup


def _word_pattern(alternation: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){alternation}(?![A-Za-z0-9])", re.IGNORECASE)


_SCHED_ALT, _SCHEDULE_LOOKUP = _vocabulary(SCHEDULE_SYNONYMS)
_TECHNIQUE_ALT, _TECHNIQUE_LOOKUP = _vocabulary(TECHNIQUE_SYNONYMS)
_DRUG_ALT, _DRUG_LOOKUP = _vocabulary({**DRUG_SYNONYMS, **dict.fromkeys(DRUG_COMBINATIONS, ())})
_SCHEDULE_RE = _word_pattern(_SCHED_ALT)
_TECHNIQUE_RE = _word_pattern(_TECHNIQUE_ALT)
_DRUG_RE = _word_pattern(_DRUG_ALT)

_NUM = r"\d+(?:[.,]\d+)?"
_UNIT = r"c?Gy\s*\(\s*RBE\s*\)|c?Gy[\s-]?RBE|c?GyE|CGE|c?Gy|(?:centi[\s-]?)?grays?"
_COUNT_WORDS = "|".join(sorted((re.escape(w) for w in _NUMBER_WORDS), key=len, reverse=True))
# "30.0 fractions" (a float column) is 30; "30.5 fractions" is no count at all, never 30.
_COUNT = rf"\d+(?:[.,]0+)?(?![.,]?\d)|{_COUNT_WORDS}"
# "fractons", "fracitons", "fracions": typos of "fractions" seen in notes.
_FX = (
    r"(?:fractions?|fract?i?ons?|fracitons?|fracs?|fxs?|fr|#|treatments?|sessions?)"
    r"(?![A-Za-z])"
)
_TIMES = r"[x×*✕✖⨯]"  # x, multiplication sign, multiplication x, heavy x, vector cross
_START = r"(?<![\w.,/-])"  # a number that is not the tail of "I-125", "4.5" or "C50"
_END = r"(?![A-Za-z0-9])"
# "SABR 54 Gy in 3", "WBRT 20 Gy in 5, then ...": a bare count after "in" is the number of
# fractions only where the clause ends or moves on; "in 6 weeks", "in 5 days", "in 2 Gy
# fractions", "in 5 to 6 weeks", "in 2 phases" and "in 2018." say something else.
_BARE_COUNT_END = (
    rf"(?=\s*(?:$|[^\w\s%.\-–]|\.(?!\d)|(?:with|w/|and|plus|then|followed|for|boost|"
    rf"to(?!\s*\d)|{_SCHED_ALT}|{_TECHNIQUE_ALT})(?![A-Za-z0-9])))"
)
# "Fractions: 25", "No. of fractions 30", "#fx: 5": an EMR field label before the count. A
# bare "Fx 12" is a treatment tally ("Fx 12/30", "Fx 12 of 30"), so without "number of" the
# label needs a colon or "=".
_FX_LABEL = (
    r"(?:(?:number|no\.?|num|\#)\s*(?:of\s*)?(?:fractions?|fxs?|fr)\s*[:=]?"
    r"|(?:fractions?|fxs?|\#\s*fxs?)\s*[:=])"
)
# "Dose per fraction: 2 Gy", "Dose/fx 1.8 Gy", "Fraction size: 3 Gy".
_PER_FX_LABEL = (
    r"(?:dose\s*(?:per|/)\s*(?:fraction|fx|fr)|fraction(?:al)?\s*(?:dose|size)"
    r"|per[\s-]fraction\s+dose)\s*[:=]?"
)
# "1.5 Gy twice daily to 45 Gy", "2 Gy daily to a total of 60 Gy"
_TO_TOTAL = (
    rf"\s*,?\s*(?:(?:up\s+)?to|for)\s+(?:a\s+)?(?:total\s+(?:dose\s+)?(?:of\s+)?)?"
    rf"{_NUM}\s*(?:{_UNIT}){_END}"
)
# EQD2 and BED values are biological equivalents, never the physical prescription ("EQD2 74
# Gy", "BED10 = 100 Gy", "90 Gy EQD2"). BED is matched in capitals only: "tumour bed 10 Gy".
_DERIVED = r"(?:EQD2?|(?-i:BED))"


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# In priority order; a span read by one pattern is not read again by a later one. Spans of the
# kinds "range", "rate" and "derived" are set aside unread; "levels" is read in `_dose_mentions`.
_DOSE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # "PTV70", "PTV_5600", "CTV 60": a target named by its dose level (Gy, or cGy in 4 digits);
    # "CTV 1", "GTV 45 cc" and "PTV 70 Gy" (a dose written after the target) are not labels.
    (
        "label",
        _compile(
            r"(?<![A-Za-z])(?:PTV|CTV|GTV)[\s_-]?(?P<label>\d{2,4}(?:[.,]\d{1,2})?)"
            rf"(?![\d.,]|\s*(?:cc|cm|ml|mm|%|{_UNIT}){_END})"
        ),
    ),
    ("per_fx", _compile(rf"(?<![A-Za-z]){_PER_FX_LABEL}\s*(?P<d>{_NUM})\s*(?P<u>{_UNIT}){_END}")),
    (
        "derived",
        _compile(
            rf"(?<![A-Za-z]){_DERIVED}[\w₀-₉]*\s*(?:\([^)]{{0,20}}\)\s*)?(?:[:=≈~]|of|was|is)?"
            rf"\s*{_NUM}\s*(?:{_UNIT})[\w₀-₉]*"
        ),
    ),
    (
        "derived",
        _compile(rf"{_START}{_NUM}\s*(?:{_UNIT})[\w₀-₉]*\s*\(?\s*{_DERIVED}(?![A-Za-z])"),
    ),
    # "2 Gy x 30 to 60 Gy": after a times sign "30 to 60 Gy" is a count and a total.
    (
        "range",
        _compile(
            rf"{_START}(?<!{_TIMES})(?<!{_TIMES}\s){_NUM}\s*(?:-|–|to)\s*{_NUM}\s*(?:{_UNIT}){_END}"
        ),
    ),
    ("range", _compile(rf"{_START}\d+\s*(?:-|–|to)\s*\d+\s*{_FX}")),
    # "5 fx per week", "2 fractions a day": a rate, not the number of fractions.
    (
        "rate",
        _compile(
            rf"(?<![\w.,/-])(?:{_COUNT})\s*{_FX}\s*(?:/|per|a|each)\s*(?:weeks?|wks?|days?|d)"
            rf"(?![A-Za-z])"
        ),
    ),
    # "0.5 Gy/h", "600 cGy/min": a dose rate (LDR/PDR, linac output), not a dose.
    (
        "rate",
        _compile(
            rf"{_START}{_NUM}\s*(?:{_UNIT})\s*(?:/|per|an?)\s*"
            rf"(?:min(?:ute)?s?|h(?:ou)?rs?|h|sec(?:ond)?s?|s)(?![A-Za-z])"
        ),
    ),
    # "70/63/56 Gy": the dose levels of an integrated boost, highest first.
    (
        "levels",
        _compile(
            rf"{_START}(?P<d>{_NUM})(?P<levels>(?:\s*/\s*{_NUM})+)\s*(?P<u>{_UNIT}){_END}"
            rf"(?:\s+in\s+(?P<n>\d{{1,3}}){_BARE_COUNT_END})?"
        ),
    ),
    (
        "total_fx",
        _compile(
            rf"{_START}(?P<d>{_NUM})\s*(?P<u>{_UNIT})\s*(?:(?:in|over|,|/|:)\s*)?"
            rf"(?P<n>{_COUNT})\s*(?:(?:{_SCHED_ALT})\s*)?{_FX}"
        ),
    ),
    # "12 Gy/50% IDL" is a dose to an isodose line, not 50 fractions; in "70 Gy/63 Gy" the
    # second number is another dose.
    (
        "total_fx",
        _compile(
            rf"{_START}(?P<d>{_NUM})\s*(?P<u>{_UNIT})\s*/\s*(?P<n>\d+)f?{_END}(?![.,]\d)"
            rf"(?!\s*%|\s*(?:{_UNIT}){_END})"
        ),
    ),
    (
        "total_fx",
        _compile(
            rf"{_START}(?P<d>{_NUM})\s*(?P<u>{_UNIT})\s+in\s+(?P<n>\d{{1,3}}){_BARE_COUNT_END}"
        ),
    ),
    (
        "per_fx_times",
        _compile(
            rf"{_START}(?P<d>{_NUM})\s*(?P<u>{_UNIT})\s*(?:(?:{_SCHED_ALT})\s*)?{_TIMES}\s*"
            rf"(?P<n>\d+|(?:{_COUNT_WORDS})(?![A-Za-z]))"
            rf"(?![\d.]|\s*(?:{_UNIT}){_END})(?:\s*{_FX})?"
        ),
    ),
    (
        "per_fx_times",
        _compile(
            rf"{_START}(?P<n>\d+)\s*(?:(?:{_FX}\s*)?(?:{_TIMES}|@)|{_FX}\s*(?:of|at))\s*"
            rf"(?P<d>{_NUM})\s*(?P<u>{_UNIT}){_END}"
        ),
    ),
    # "a single 8 Gy fraction", "five 5-Gy fractions", "25 daily 2-Gy fractions"
    (
        "per_fx_times",
        _compile(
            rf"{_START}(?P<n>\d{{1,2}}|(?:{_COUNT_WORDS}))\s+(?:(?:{_SCHED_ALT})\s+)?"
            rf"(?P<d>{_NUM})[\s-]*(?P<u>{_UNIT})[\s-]*(?:(?:{_SCHED_ALT})\s*)?"
            rf"(?:fractions?|fxs?|fr){_END}"
        ),
    ),
    # "8 Gy single", "8 Gy once", "single 8 Gy", "single dose of 8 Gy": one fraction. Not
    # "once weekly", a schedule.
    (
        "per_fx_times",
        _compile(
            rf"{_START}(?P<d>{_NUM})\s*(?P<u>{_UNIT})\s*(?P<n>single|once)(?:\s+dose)?{_END}"
            rf"(?!\s*(?:{_SCHED_ALT}|a\s+(?:day|week)|per|every)(?![A-Za-z]))"
        ),
    ),
    (
        "per_fx_times",
        _compile(
            rf"(?<![A-Za-z])(?P<n>single)(?:[\s-]+(?:dose|fraction|fx))?(?:\s+of)?\s+"
            rf"(?P<d>{_NUM})\s*(?P<u>{_UNIT}){_END}"
        ),
    ),
    (
        "per_fx",
        _compile(
            rf"{_START}(?P<d>{_NUM})\s*(?P<u>{_UNIT})\s*(?:/|per|a|each)\s*"
            rf"(?:fraction|fx|fr|treatment|day)s?{_END}"
        ),
    ),
    # "60 Gy @ 2 Gy": a dose after "@" is the dose per fraction.
    ("per_fx", _compile(rf"@\s*(?P<d>{_NUM})\s*(?P<u>{_UNIT}){_END}")),
    # "50 Gy in 2 Gy fractions", "54 Gy in 1.8-Gy daily fractions"
    (
        "per_fx",
        _compile(
            rf"{_START}(?P<d>{_NUM})[\s-]*(?P<u>{_UNIT})[\s-]*(?:(?:{_SCHED_ALT})\s*)?"
            rf"(?:fractions?|fxs?|fr){_END}"
        ),
    ),
    # "1.5 Gy BID to 45 Gy": a dose given on a schedule up to a total is the dose per fraction.
    (
        "per_fx",
        _compile(
            rf"{_START}(?P<d>{_NUM})\s*(?P<u>{_UNIT})\s*(?:{_SCHED_ALT})(?![A-Za-z])(?={_TO_TOTAL})"
        ),
    ),
    # ... and with the schedule first: "twice daily 1.5 Gy to 45 Gy", "daily 2 Gy to 60 Gy".
    (
        "per_fx",
        _compile(
            rf"(?<![A-Za-z])(?:{_SCHED_ALT})\s+(?P<d>{_NUM})\s*(?P<u>{_UNIT}){_END}(?={_TO_TOTAL})"
        ),
    ),
    ("total", _compile(rf"{_START}(?P<d>{_NUM})\s*(?P<u>{_UNIT}){_END}")),
    (
        "fx",
        _compile(rf"(?<![\w.,/-])(?P<n>{_COUNT})\s*(?:(?:{_SCHED_ALT})\s*)?{_FX}"),
    ),
    ("fx", _compile(r"(?<![\w.,/-])(?P<n>\d+)f(?![A-Za-z0-9])")),
    (
        "fx",
        _compile(
            rf"(?<![A-Za-z]){_FX_LABEL}\s*(?P<n>\d{{1,3}}(?:[.,]0+)?)"
            rf"(?![\d/%]|[.,]\d|\s*(?:{_UNIT}|{_TIMES}|of\b|-|–|to\b))"
        ),
    ),
]

_FX_AFTER_RE = _compile(rf"\s*{_FX}")
_BOOST_RE = _compile(r"(?<![A-Za-z])(?:boost|SIB)(?![A-Za-z])")
_GLUED_BOOST_RE = _compile(r"(?<![A-Za-z])(?:boost|SIB)(?=[^\sA-Za-z])")
# A boost clause ends where the next clause starts.
_BOOST_END_RE = _compile(
    r"\bwith\b|\bw/|\bconcurrent|\bconcomitant|\+|;|\bthen\b|\bfollowed by\b|\bboost\b"
)
_CLAUSE_SEPARATOR_RE = _compile(
    r"\+|;|,|\(|\)|\bwith\b|\bw/|\bconcurrent(?:ly)?\b|\bconcomitant(?:ly)?\b|\bthen\b"
    r"|\bfollowed by\b|->|→"
)
# "cisplatin held after 2 cycles", "stopped after cycle 3": it was given with the radiotherapy
# and then stopped, so the "after" is not a sequence.
_STOPPED_BEFORE_RE = _compile(
    r"\b(?:held|stopped|discontinued|ceased|suspended|interrupted|omitted|withheld|reduced|"
    r"dose[\s-]*reduced|switched|changed|halted)\s*$"
)
_SEQUENTIAL_RE = _compile(
    r"\b(?:after|following|adjuvant|induction|neoadjuvant|maintenance|consolidation|"
    r"consolidative|prior|before|previous|previously|s/p|post)\b"
)
# Radiotherapy given before this course ("prior 30 Gy/10 fx to T-spine", "s/p 60 Gy in 2018",
# "history of 50 Gy to the pelvis") is history, not the plan: from the cue to the end of its
# clause nothing is read. The cue leads straight to a dose, past radiotherapy words only, so
# "s/p lumpectomy 40.05 Gy/15 fx" and "ADT prior to 78 Gy/39 fx" keep their dose.
_HISTORY_RE = _compile(
    r"(?<![A-Za-z])(?:prior(?!\s+to\b)|previous(?:ly)?|history\s+of|hx\s+of|h/o|s/p|status\s+post)"
    r"(?:\s*(?:RT|XRT|EBRT|WBRT|radiotherapy|radiation(?:\s+therapy)?|irradiation|irradiated|"
    rf"treated|treatment|course|received|with|to|of|a|dose|{_TECHNIQUE_ALT})(?![A-Za-z])\s*:?)*"
    rf"\s*\(?\s*(?={_NUM}\s*(?:{_UNIT}){_END})"
)
_HISTORY_END_RE = _compile(
    r";|,|\.\s|\.$|\(|\)|\b(?:now|plan(?:ned)?|current(?:ly)?|today|this\s+course)\b"
)
# A dose after the boost that sums the course is not the boost's own: "9 Gy/5 fx boost (total
# 63 Gy)", "+ 10 Gy/5 fx boost = 60 Gy"; alone it is a cumulative "boost to" dose.
_CUMULATIVE_RE = _compile(r"\W*(?:=|(?:to\s+)?(?:a\s+)?(?:total|cumulative)\b)")
# "+" joins a second course only when that course counts its fractions ("45 Gy/25 fx + HDR
# 7 Gy x 4"); "(46 Gy + 14 Gy)" or "+ 6 months ADT" is not one. A ";" starts a new statement
# ("8 Gy x 1; may repeat 8 Gy x 1") and joins nothing.
_SEQUENCE_RE = _compile(r"\bthen\b|\bfollowed by\b|->|→|\+")
_THEN_RE = _compile(r"\bthen\b|\bfollowed by\b|->|→|\bprior to\b|\bbefore\b")
# A drug that a note says was not given: "no concurrent chemotherapy", "without cisplatin",
# "declined chemo", "not a candidate for cisplatin", "cisplatin-ineligible", "cetuximab
# contraindicated". The cue stands at most three words before the drug, or right after it,
# with no hard break (comma, semicolon, plus, bracket, sequence word) in between: in
# "No nodal disease. 70 Gy/35 fx with concurrent cisplatin" the "No" is about something else.
_HARD_BREAK_RE = _compile(r"\+|;|,|\.\s|\(|\)|\bthen\b|\bfollowed by\b|->|→")
_NEGATION_BEFORE_RE = _compile(
    r"(?:\b(?:no|not|without|declined|refused|ineligible|unfit|contraindicat\w*|omit(?:ted)?|"
    r"withheld|deferred)\b|\bw/o\b)(?:\W+\w+){0,3}\W*$"
)
# "cisplatin held" was not given; "cis (held wk 4)", "held after cycle 2" was, in part.
_NEGATION_AFTER_RE = _compile(
    r"\W*(?:(?:was|is|were)\s+)?(?:not\b|none\b|nil\b|n/a\b|declined|refused|ineligible|"
    r"contraindicat|omitted|withheld|deferred|"
    r"held\b(?!\s*(?:after|from|at|on|in|during|for\s+(?:wk|week|cycle|c\d|\d)|"
    r"(?:wks?|weeks?|cycles?|c|\#)\s*\d|x\s*\d|\d)))"
)
# "concurrent and adjuvant TMZ" (Stupp): given during radiotherapy as well as after it.
_CONCURRENT_AND_AFTER_RE = _compile(
    r"\b(?:concurrent|concomitant)(?:ly)?\s*(?:and|&|/|\+|,|plus|then|followed\s+by|->)\s*"
    r"(?:adjuvant|maintenance|consolidation|consolidative|sequential)\s*$"
)
# A class is named by its agent when they touch: "chemo (cisplatin)", "chemotherapy with weekly
# cisplatin", "cisplatin-based chemotherapy", "cisplatin chemo".
_CLASS_THEN_AGENT_GAP = _compile(rf"\s*[(:-]?\s*(?:(?:with|of|using)\s+)?(?:(?:{_SCHED_ALT})\s+)?")
_AGENT_THEN_CLASS_GAP = _compile(r"\s*(?:-?\s*based\s*)?")
# A schedule right after a drug dose is the drug's: "cetuximab 400 mg/m2 loading then 250 mg/m2
# weekly", "carboplatin AUC2 weekly".
_DRUG_DOSE_BEFORE_RE = _compile(
    r"(?:\d\s*mg|AUC\s*\d+(?:\.\d+)?)(?:\s*/\s*(?:m2|m²|m\^2|kg|d|day))?\s*\)?\s*,?\s*$"
)
_DRUG_PREFIX_GAP = _compile(r"\s*(?:(?:concurrent|concomitant)\s*)?(?:chemo(?:therapy)?\s*)?")
# "cis 100 q3wk": a bare number after the drug is its dose in mg/m2.
_DRUG_SUFFIX_GAP = _compile(
    r"\s*(?:\(?\s*\d+(?:\.\d+)?\s*(?:mg(?:\s*/\s*(?:m2|m²|m\^2|kg))?)?\s*\)?)?\s*,?\s*"
)


@dataclass(frozen=True)
class _DoseMention:
    kind: str
    start: int
    end: int
    total: float | None = None
    fractions: int | None = None
    per_fraction: float | None = None
    unit: str = "Gy"


def _number(text: str) -> float:
    if "," in text:
        whole, part = text.split(",", 1)
        # "7,000 cGy" groups thousands; "40,05 Gy" is a European decimal comma.
        return float(whole + part) if len(part) == 3 else float(f"{whole}.{part}")
    return float(text)


def _count(text: str) -> int:
    text = re.sub(r"\s+", " ", text.strip().lower())
    if re.fullmatch(r"\d+(?:[.,]0+)?", text):
        return int(re.split(r"[.,]", text)[0])
    return 1 if text == "once" else _NUMBER_WORDS[text]


def _clean(value: float) -> float:
    # Products like 1.8 * 28 carry float noise (50.400000000000006); doses have <= 4 decimals.
    return round(value, 4)


def _dose_mentions(text: str) -> list[_DoseMention]:
    mentions: list[_DoseMention] = []
    masked = text
    for kind, pattern in _DOSE_PATTERNS:
        for match in pattern.finditer(masked):
            groups = match.groupdict()
            n = _count(groups["n"]) if groups.get("n") else None
            d, unit = None, "Gy"
            if groups.get("d"):
                d, unit = normalize_dose(_number(groups["d"]), groups["u"])
            values: dict = {"fractions": n, "unit": unit}
            if kind == "label":
                values["total"] = _label_dose(groups["label"])
            elif kind in ("total_fx", "total"):
                values["total"] = d
            elif kind == "levels":
                # "SIB 70/59.4/54 Gy in 33": the count after the levels is the fractions'.
                levels = _is_dose_levels(groups["d"], groups["levels"])
                values.update(total=d if levels else None, fractions=n if levels else None)
            elif kind == "per_fx_times" and _is_total_over_count(d, n):
                # "60 Gy x 30 fx" is 60 Gy in 30 fractions, not 1800 Gy.
                kind = "total_fx"
                values["total"] = d
            elif kind == "per_fx_times":
                values.update(total=_clean(d * n), per_fraction=d)
            elif kind == "per_fx":
                values["per_fraction"] = d
            mentions.append(_DoseMention(kind, match.start(), match.end(), **values))
        masked = pattern.sub(lambda m: " " * len(m.group(0)), masked)
    return sorted(mentions, key=lambda m: m.start)


def _label_dose(text: str) -> float | None:
    value = _number(text)
    if 10 <= value < 100:
        return value
    if 1000 <= value < 10000 and value == int(value):
        return _clean(value / 100)  # "PTV_5040" is 50.4 Gy written in cGy
    return None


def _is_total_over_count(dose: float, count: int) -> bool:
    """Whether "d Gy x N" means d Gy in N fractions: the product is no course in use (above
    ~82 Gy, or above 25 Gy in each of several fractions) while d Gy in N is one (0.5-25 Gy
    per fraction). "8 Gy x 3" is 24 Gy and "7 Gy x 4 HDR" 28 Gy, but "60 Gy x 30 fx" is a
    shorthand for 60 Gy in 30 fractions and "25 Gy x 5" for the 25 Gy short course."""
    if count < 2 or not _MIN_PER_FX <= dose / count <= _MAX_CONVENTIONAL_PER_FX:
        return False
    return dose * count > _MAX_EBRT_TOTAL_GY or dose > _MAX_CONVENTIONAL_PER_FX


def _is_dose_levels(first: str, rest: str) -> bool:
    """Whether "70/63/56" lists dose levels: falling, the lowest at least 70% of the highest
    (SIB levels are 70-90% apart). "50/25 Gy" or "45/25 Gy" (1.8-2 Gy per fraction) reads as
    dose over fractions; rising levels are left unread."""
    levels = [_number(first), *(_number(level) for level in re.split(r"\s*/\s*", rest)[1:])]
    falling = all(a > b for a, b in itertools.pairwise(levels))
    return falling and levels[-1] >= 0.7 * levels[0]


@dataclass
class _Core:
    dose_gy: float | None = None
    fractions: int | None = None
    dose_unit: str = "Gy"
    dose_start: int | None = None


# "54 Gy in 30 fx to elective nodes, 70 Gy to GTV": a dose given to a named target. Not "to a
# total of 60 Gy", "to 50.4 Gy" or "to max 45 Gy".
_TO_TARGET_RE = _compile(
    r"\s*(?:\([^()]{0,30}\)\s*)?,?\s*to\s+(?:the\s+)?"
    r"(?!(?:a\s+)?(?:total|cumulative|max(?:imum)?|mean|dose)\b)[A-Za-z]"
)
# Words that make one fraction count, written once, every dose level's.
_INTEGRATED_RE = _compile(
    r"(?<![A-Za-z])(?:SIB|simultaneous(?:ly)?[\s-]+integrated|integrated[\s-]+boost|"
    r"dose[\s-]*paint\w*|dose[\s-]+levels?)(?![A-Za-z])"
)
_LEVEL_KINDS = ("total", "total_fx", "per_fx_times")
_BRACHY_RE = _compile(
    rf"(?<![A-Za-z])(?:brachy\w*|implant|ovoids?|tandem|cylinder|"
    rf"{'|'.join(_phrase(s) for t in BRACHYTHERAPY_TECHNIQUES for s in TECHNIQUE_SYNONYMS[t])})"
    rf"(?![A-Za-z])"
)
# Where a second course is a boost: a sub-volume of the first course's target ("50 Gy/25 fx to
# breast, 10 Gy/5 fx to tumour bed"), or a course called sequential.
_BOOST_TARGETS = (
    r"tumou?r\s+bed|(?:surgical|operative|resection|lumpectomy|excision)\s+(?:bed|cavity)"
    r"|cavity|seroma|primary|GTV[\w-]*|gross\s+(?:tumou?r|disease)|residual|tumou?r"
    r"|high[\s-]*risk|posterior\s+fossa|prostate|sequential(?:ly)?"
)
_BOOST_TARGET_RE = _compile(rf"(?<![A-Za-z])(?:{_BOOST_TARGETS})(?![A-Za-z])")
# Targets of one plan's dose levels ("54 Gy to elective nodes, 70 Gy to GTV"), as opposed to
# anatomic sites of separate courses ("8 Gy/1 fx to T-spine, 20 Gy/5 fx to L hip").
_VOLUME_RE = _compile(
    rf"(?<![A-Za-z])(?:{_BOOST_TARGETS}|[CPI]TV[\w-]*|nod(?:e|es|al)|neck|elective|bed"
    r"|(?:intermediate|low)[\s-]*risk|SIB|integrated|boost)(?![A-Za-z])"
)
# A new clause that may hold a second course: "50 Gy/25 fx to breast, 10 Gy/5 fx to bed".
_COURSE_SEPARATOR_RE = _compile(r",|;|\+|\band\b|\bplus\b")
_COURSE_END_RE = _compile(
    r",|;|\+|\band\b|\bplus\b|\bwith\b|\bw/|\bconcurrent|\bconcomitant|\bthen\b"
    r"|\bfollowed by\b|\bboost\b"
)


def _read_dose_levels(text: str, mentions: list[_DoseMention]) -> _Core | None:
    """The prescription of a plan that gives several targets their own dose, else None.

    Dose levels are targets named by their dose ("PTV70/PTV63/PTV56") or two or more doses
    written "to" a target ("54 Gy in 30 fx to elective nodes, 70 Gy to GTV"). The highest
    level is the prescription, with its own fraction count. Without one, a count written once
    is every level's only where the text says the levels are integrated (SIB, PTV labels),
    puts the count before them all ("In 35 fx: 70 Gy to GTV, 56 Gy to nodes") or after a list
    of three or more written apart from every dose ("70 Gy to PTV-high, 63 Gy to PTV-int, 56
    Gy to PTV-low in 35 fractions"). Otherwise the count is unknown: in "54 Gy in 30 fx to
    elective nodes, 70 Gy to GTV" or "60 Gy to the bed, 45 Gy to nodes in 25 fractions" it
    may be one level's alone, and the other given in the same fractions (integrated) or more
    (sequential).
    """
    labels = [m for m in mentions if m.kind == "label" and m.total is not None]
    targeted = [
        m
        for m in mentions
        if m.kind in _LEVEL_KINDS and m.total is not None and _TO_TARGET_RE.match(text, m.end)
    ]
    if not labels and len(targeted) < 2:
        return None
    written = [m for m in mentions if m.kind in _LEVEL_KINDS and m.total is not None]
    units = {m.unit for m in written}
    if len(units) > 1:
        return None
    top_dose = max(m.total for m in labels + targeted)
    candidates = [m for m in written if m.total == top_dose] or [
        m for m in labels if m.total == top_dose
    ]
    top = min(candidates, key=lambda m: (m.fractions is None, m.start))
    core = _Core(top.total, top.fractions, units.pop() if units else "Gy", top.start)
    if core.fractions is None:
        counted = [m for m in mentions if m.fractions is not None and m.kind != "rate"]
        counts = {m.fractions for m in counted}
        apart = all(m.kind == "fx" for m in counted)
        first_level = min(m.start for m in labels + targeted)
        shared = (
            labels
            or _INTEGRATED_RE.search(text)
            or (apart and all(m.start < first_level for m in counted))
            or (apart and len(targeted) >= 3)
        )
        if shared and len(counts) == 1:
            core.fractions = counts.pop()
    return core


def _read_dose(text: str) -> _Core:
    mentions = _dose_mentions(text)
    levels = _read_dose_levels(text, mentions)
    if levels is not None:
        return levels
    core = _Core()
    main = next((m for m in mentions if m.total is not None), None)
    per_fraction = next((m for m in mentions if m.kind == "per_fx"), None)
    fraction_only = next((m for m in mentions if m.kind == "fx"), None)
    if main is not None:
        core.dose_gy, core.fractions, core.dose_unit = main.total, main.fractions, main.unit
        core.dose_start = main.start
        if core.fractions is None and fraction_only is not None:
            core.fractions = fraction_only.fractions
        # "50.4 Gy (1.8 Gy x 28)": a product that adds up to the total counts its fractions.
        if core.fractions is None:
            product = next(
                (
                    m
                    for m in mentions
                    if m.kind == "per_fx_times"
                    and m is not main
                    and (m.total, m.unit) == (main.total, main.unit)
                ),
                None,
            )
            if product is not None:
                core.fractions = product.fractions
        if core.fractions is None and per_fraction is not None and per_fraction.per_fraction:
            count = core.dose_gy / per_fraction.per_fraction
            if count >= 1 and abs(count - round(count)) < 1e-6:
                core.fractions = round(count)
    elif per_fraction is not None and fraction_only is not None:
        core.fractions = fraction_only.fractions
        core.dose_gy = _clean(per_fraction.per_fraction * core.fractions)
        core.dose_unit = per_fraction.unit
        core.dose_start = min(per_fraction.start, fraction_only.start)
    elif fraction_only is not None:
        core.fractions = fraction_only.fractions
    else:
        _read_bare_shorthand(text, core)
    return core


# "WBRT 30/10", "8/1": dose/fractions with no unit at all, read only when nothing else names a
# dose and the pair is a plausible course (0.8-25 Gy per fraction, at most 45 fractions and
# 90 Gy; no leading zero in the count), so "ER 90/PR 80" or a date "12/03" is not taken for
# one, and two such pairs ("30/10 then 20/5") leave the dose unread rather than guessed.
_BARE_SHORTHAND = _compile(r"(?<![\w./])(\d{1,2}(?:\.\d{1,2})?)\s*/\s*([1-9]\d?)(?![\w./])")
# "HDR 7x3", "SBRT 18x3": a product with no unit is read only in brachytherapy and stereotactic
# shorthand, which puts the dose per fraction first (7 Gy x 3). Elsewhere the order and even
# the meaning are unclear ("5x5" may be a size, "7x3" 3 Gy x 7).
_BARE_TIMES = _compile(
    rf"(?<![\w./])(\d{{1,2}}(?:\.\d{{1,2}})?)\s*{_TIMES}\s*(\d{{1,2}})"
    r"(?![\w./]|\s*(?:cm|mm|cc|ml|%))"
)
_DOSE_FIRST_RE = _compile(
    rf"{_BRACHY_RE.pattern}|(?<![A-Za-z])(?:{'|'.join(STEREOTACTIC_TECHNIQUES)})(?![A-Za-z])"
)


def _plausible_course(dose: float, fractions: int) -> bool:
    return 1 <= fractions <= 45 and dose <= 90 and 0.8 <= dose / fractions <= 25


def _read_bare_shorthand(text: str, core: _Core) -> None:
    found = [
        (match.start(), float(match.group(1)), int(match.group(2)))
        for match in _BARE_SHORTHAND.finditer(text)
    ]
    plausible = [course for course in found if _plausible_course(*course[1:])]
    if not found:
        plausible = [
            course for match in _BARE_TIMES.finditer(text) if (course := _bare_product(text, match))
        ]
    if len(plausible) == 1:
        core.dose_start, core.dose_gy, core.fractions = plausible[0]


def _bare_product(text: str, match: re.Match[str]) -> tuple[int, float, int] | None:
    """(start, total, fractions) of a unit-less "d x N", or None where it is no course."""
    dose, fractions = float(match.group(1)), int(match.group(2))
    if not (_DOSE_FIRST_RE.search(text) and _plausible_course(dose * fractions, fractions)):
        return None
    return match.start(), _clean(dose * fractions), fractions


def _first_canonical(pattern: re.Pattern[str], lookup: dict[str, str], text: str) -> str | None:
    match = pattern.search(text)
    return lookup[_squash(match.group(0))] if match else None


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _clause_end(text: str, start: int) -> int:
    stop = _BOOST_END_RE.search(text, start)
    drug = _DRUG_RE.search(text, start)
    return min(stop.start() if stop else len(text), drug.start() if drug else len(text))


def _dose_before_keyword(text: str, keyword: re.Match[str]) -> int | None:
    """Where the clause holding the boost's dose starts when it is written before the keyword
    ("45 Gy/25 fx + 9 Gy/5 fx boost", "40.05 Gy/15 fx, 10 Gy/5 fx electron boost"); None when
    that clause has no dose or holds the first, main, dose."""
    separators = list(_CLAUSE_SEPARATOR_RE.finditer(text, 0, keyword.start()))
    if not separators:
        return None
    start = separators[-1].end()
    if _read_dose(text[start : keyword.start()]).dose_gy is None:
        return None
    if _read_dose(text[: separators[-1].start()]).dose_gy is None:
        return None
    return start


def _boost_clause(text: str) -> tuple[re.Match[str], int, int] | None:
    """The keyword that names the boost and the span of the clause holding its dose.

    "boost"/"SIB" names it; the clause follows the keyword ("boost 10 Gy/5 fx") or, when
    nothing dosed follows, precedes it ("+ 10 Gy/5 fx boost"). Without a keyword, a dosed
    course after "then"/"followed by" that comes after the first dose is a sequential boost
    ("45 Gy/25 fx then HDR 28 Gy/4 fx"), and so is one after "+" that counts its fractions
    ("45 Gy/25 fx + HDR 7 Gy x 4").
    """
    match = _BOOST_RE.search(text)
    if match is not None:
        end = _clause_end(text, match.end())
        after = text[match.end() : end]
        if _read_dose(after).dose_gy is None or _CUMULATIVE_RE.match(after):
            start = _dose_before_keyword(text, match)
            if start is not None:
                return match, start, match.start()
        return match, match.end(), end
    first_dose = _read_dose(text).dose_start if _SEQUENCE_RE.search(text) else None
    if first_dose is not None:
        for match in _SEQUENCE_RE.finditer(text, first_dose):
            end = _clause_end(text, match.end())
            course = _read_dose(text[match.end() : end])
            if course.dose_gy is not None and (course.fractions or match.group(0) != "+"):
                return match, match.end(), end
    return _sub_volume_course(text)


def _course_clause(text: str, before: int, mention: _DoseMention) -> tuple[re.Match, int] | None:
    """The separator that opens the clause holding `mention` (after position `before`) and
    where that clause ends; None when the mention shares a clause with what comes before."""
    separators = list(_COURSE_SEPARATOR_RE.finditer(text, before, mention.start))
    if not separators:
        return None
    stop = _COURSE_END_RE.search(text, mention.end)
    drug = _DRUG_RE.search(text, mention.end)
    end = min(stop.start() if stop else len(text), drug.start() if drug else len(text))
    return separators[-1], end


def _sub_volume_course(text: str) -> tuple[re.Match[str], int, int] | None:
    """A later course in a clause of its own that is a sequential boost without the keyword:
    a lower dose to a sub-volume ("50 Gy/25 fx to breast, 10 Gy/5 fx to tumour bed",
    "42.56 Gy/16 fx, sequential 10 Gy/4 fx tumour bed"), or brachytherapy after external beam
    ("EBRT 45 Gy/25 fx; HDR 28 Gy/4 fx"). A higher dose to a sub-volume is a cumulative dose
    level ("45 Gy/25 fx to pelvis, 50.4 Gy/28 fx to primary"), and one in the same number of
    fractions an integrated level: neither is a boost on top of the first course.
    """
    doses = [m for m in _dose_mentions(text) if m.kind in _LEVEL_KINDS and m.total is not None]
    if len(doses) < 2:
        return None
    first = doses[0]
    first_is_brachy = _BRACHY_RE.search(text, 0, first.end) is not None
    for later in doses[1:]:
        found = _course_clause(text, first.end, later)
        if found is None or later.unit != first.unit:
            continue
        separator, end = found
        clause = text[separator.end() : end]
        brachy = _BRACHY_RE.search(clause) is not None and not first_is_brachy
        smaller = later.total < first.total and (
            None in (later.fractions, first.fractions) or later.fractions != first.fractions
        )
        if brachy or (smaller and _BOOST_TARGET_RE.search(clause)):
            return separator, separator.end(), end
    return None


def _split_boost(text: str) -> tuple[str, str | None]:
    """Return (text with the boost clause blanked, canonical boost text or None)."""
    found = _boost_clause(text)
    if found is None:
        return text, None
    match, seg_start, seg_end = found
    segment = text[seg_start:seg_end]
    # A technique written right before the keyword ("HDR boost") belongs to the boost.
    clause_start, own_technique = min(seg_start, match.start()), None
    if match.group(0).lower() == "boost":  # an integrated boost (SIB) shares the technique
        for technique in _TECHNIQUE_RE.finditer(text, 0, match.start()):
            if not text[technique.end() : match.start()].strip(" -"):
                clause_start = min(clause_start, technique.start())
                own_technique = _TECHNIQUE_LOOKUP[_squash(technique.group(0))]
    main_text = _blank(text, clause_start, max(seg_end, match.end()))
    # "SIB 70/59.4/54 Gy in 33": an integrated boost that holds the only dose is the
    # prescription itself, not a boost on top of one.
    if match.group(0).upper() == "SIB" and _read_dose(main_text).dose_gy is None:
        return text, None

    segment = re.sub(r"\s+", " ", segment).strip(" :,-")
    core = _read_dose(segment)
    if core.dose_gy is None and core.fractions is None:  # no dose: keep the words as written
        return main_text, " ".join(part for part in (segment, own_technique) if part)
    # "boost to 60 Gy" is a cumulative dose, "boost of 10 Gy" the boost's own.
    lead = re.match(r"(to|of)\b\s*", segment, re.IGNORECASE)
    cumulative = (lead and lead.group(1).lower() == "to") or _CUMULATIVE_RE.match(segment)
    prefix = "to " if cumulative else ""
    return main_text, prefix + _course_text(segment, core, technique=own_technique)


def _course_text(segment: str, core: _Core, *, technique: str | None = None) -> str:
    """Canonical text of a second course: its dose, schedule and technique."""
    technique = technique or _first_canonical(_TECHNIQUE_RE, _TECHNIQUE_LOOKUP, segment)
    schedule = _first_canonical(_SCHEDULE_RE, _SCHEDULE_LOOKUP, segment)
    sub = RegimenStructured(
        dose_gy=core.dose_gy,
        fractions=core.fractions,
        dose_unit=core.dose_unit,
        schedule=schedule if schedule in SCHEDULES else None,
        technique=technique,
    )
    return render_regimen(sub)


# How `render_regimen` names the site of a course to another site.
_OTHER_SITE = "to another site"


def _split_other_courses(text: str) -> tuple[str, list[str]]:
    """(text with the later courses blanked, their canonical texts) when the text gives
    separate courses to unrelated sites, else (text, []).

    Separate courses: two or more, each with its own dose and fraction count, each in a clause
    of its own, a target written ("to ..."), and no target a volume of one plan (GTV,
    nodes, primary, tumour bed, PTV ...; those are dose levels, see `_read_dose_levels`).
    "8 Gy/1 fx to T-spine, 20 Gy/5 fx to L hip" is 8 Gy in 1 fraction, the first-listed
    course, and another course of 20 Gy in 5 fractions; their EQD2s are never summed.
    """
    courses = [
        m for m in _dose_mentions(text) if m.kind in _COURSE_KINDS and m.fractions is not None
    ]
    if (
        len(courses) < 2
        or len({m.unit for m in courses}) > 1
        or _VOLUME_RE.search(text)
        or not _TO_TARGET_RE.search(text)
    ):
        return text, []
    clauses = []
    for before, course in itertools.pairwise(courses):
        found = _course_clause(text, before.end, course)
        if found is None:
            return text, []
        clauses.append((found[0].end(), found[1]))
    others = []
    for start, end in clauses:
        segment = re.sub(r"\s+", " ", text[start:end]).strip(" :,-")
        others.append(_course_text(segment, _read_dose(segment)))
        text = _blank(text, start, end)
    return text, others


@dataclass(frozen=True)
class _DrugMention:
    start: int
    end: int
    drugs: tuple[str, ...]


def _drug_mentions(text: str) -> list[_DrugMention]:
    mentions = []
    for match in _DRUG_RE.finditer(text):
        name = _DRUG_LOOKUP[_squash(match.group(0))]
        drugs = DRUG_COMBINATIONS.get(name, (name,))
        mentions.append(_DrugMention(match.start(), match.end(), drugs))
    return mentions


def _is_negated(text: str, drug: _DrugMention) -> bool:
    breaks = list(_HARD_BREAK_RE.finditer(text))
    start = max((b.end() for b in breaks if b.end() <= drug.start), default=0)
    # After the drug a bracket may hold the cue: "cisplatin (declined)".
    end = min(
        (b.start() for b in breaks if b.start() >= drug.end and b.group(0) != "("),
        default=len(text),
    )
    return bool(
        _NEGATION_BEFORE_RE.search(text[start : drug.start])
        or _NEGATION_AFTER_RE.match(text, drug.end, end)
    )


def _is_concurrent(text: str, drug: _DrugMention, dose_start: int | None) -> bool:
    if _is_negated(text, drug):
        return False
    if _CONCURRENT_AND_AFTER_RE.search(text, 0, drug.start):
        return True
    separators = list(_CLAUSE_SEPARATOR_RE.finditer(text))
    before = [s for s in separators if s.end() <= drug.start]
    after = [s for s in separators if s.start() >= drug.end]
    clause_start = before[-1].end() if before else 0
    clause_end = after[0].start() if after else len(text)
    if any(
        cue.group(0).lower() != "after"
        or not _STOPPED_BEFORE_RE.search(text, clause_start, cue.start())
        for cue in _SEQUENTIAL_RE.finditer(text, clause_start, clause_end)
    ):
        return False
    opener = before[-1].group(0).lower() if before else ""
    if opener in ("then", "->", "→") or opener.startswith("followed"):
        return False
    # Given before the radiotherapy: "ABVD x2 then 20 Gy/10 fx".
    return not (
        dose_start is not None
        and drug.end <= dose_start
        and _THEN_RE.search(text, drug.end, dose_start)
    )


def _class_beside(text: str, agent: _DrugMention, drugs: list[_DrugMention]) -> _DrugMention | None:
    """The class ("chemotherapy") that `agent` names, written right beside it, if any."""
    if agent.drugs[0] in _AGENT_CLASSES:
        return None
    for other in drugs:
        if other.drugs[0] not in _AGENT_CLASSES:
            continue
        if other.end <= agent.start and _CLASS_THEN_AGENT_GAP.fullmatch(
            text, other.end, agent.start
        ):
            return other
        if agent.end <= other.start and _AGENT_THEN_CLASS_GAP.fullmatch(
            text, agent.end, other.start
        ):
            return other
    return None


def _schedules(
    text: str, drugs: list[_DrugMention], concurrent: list[_DrugMention]
) -> tuple[str | None, str | None]:
    """The radiotherapy schedule and the concurrent drugs' schedule written in `text`."""
    rt_schedule = drug_schedule = None
    for match in _SCHEDULE_RE.finditer(text):
        name = _SCHEDULE_LOOKUP[_squash(match.group(0))]
        # "24 Gy in 3 weekly fractions": three fractions given weekly, not every 3 weeks.
        if name == "every 3 weeks" and _FX_AFTER_RE.match(text, match.end()):
            name = "weekly"
        following = next((d for d in drugs if d.start >= match.end()), None)
        preceding = next((d for d in reversed(drugs) if d.end <= match.start()), None)
        dosed = _DRUG_DOSE_BEFORE_RE.search(text, 0, match.start())
        attached = None
        if following and _DRUG_PREFIX_GAP.fullmatch(text, match.end(), following.start):
            attached = following
        elif preceding and (
            dosed or _DRUG_SUFFIX_GAP.fullmatch(text, preceding.end, match.start())
        ):
            attached = preceding
        if attached is not None:
            if attached in concurrent and drug_schedule is None:
                drug_schedule = name
        elif rt_schedule is None and name in SCHEDULES and not dosed:
            rt_schedule = name
    return rt_schedule, drug_schedule


def _main_statement_end(text: str, core: _Core) -> int:
    """Where the statement holding the prescription ends: at the first ";" after it that
    starts a dosed statement of its own ("EBRT 45 Gy/25 fx; HDR 28 Gy/4 fx": HDR is the second
    course's technique, not the main one's), else the end of the text."""
    if core.dose_start is None:
        return len(text)
    statements = [m.start() for m in re.finditer(";", text)] + [len(text)]
    for start, end in itertools.pairwise(statements):
        if start > core.dose_start and _read_dose(text[start + 1 : end]).dose_gy is not None:
            return start
    return len(text)


# "sixty Gy in thirty fractions", "fifty point four Gy", "forty-five hundred cGy": a dose
# written in words is read as its digits (counts in words are read where they stand).
_DIGIT_WORDS = {"zero": "0", "oh": "0", **{w: str(i + 1) for i, w in enumerate(_UNITS)}}
_DOSE_WORDS = "|".join(
    sorted((re.escape(w) for w in _NUMBER_WORDS if "single" not in w), key=len, reverse=True)
)
_WORD_DOSE_RE = _compile(
    rf"(?<![A-Za-z-])(?P<whole>{_DOSE_WORDS})(?:[\s-]+(?P<scale>hundred|thousand))?"
    rf"(?:\s+point(?P<decimals>(?:\s+(?:{'|'.join(_DIGIT_WORDS)}))+))?"
    rf"(?=[\s-]*(?:{_UNIT}){_END})"
)


def _spell_out_word_doses(text: str) -> str:
    def digits(match: re.Match[str]) -> str:
        value = _count(match["whole"])
        if match["scale"]:
            value *= 100 if match["scale"].lower() == "hundred" else 1000
        decimals = "".join(_DIGIT_WORDS[w.lower()] for w in (match["decimals"] or "").split())
        return f"{value}.{decimals}" if decimals else str(value)

    return _WORD_DOSE_RE.sub(digits, text)


# A course stopped early: "planned 70 Gy/35 fx, stopped at 46 Gy", "discontinued after 23
# fractions". The regimen is the prescription, so the delivered dose after such a cue is not
# read; written alone ("treatment stopped at 46 Gy") it leaves the dose unknown.
_STOPPED_EARLY_RE = _compile(
    r"(?<![A-Za-z])(?:stopped|discontinued|terminated|halted|aborted|ceased|interrupted|"
    r"abandoned|truncated|incomplete|only\s+(?:received|delivered|completed|got)|"
    r"(?:received|delivered|completed)\s+only)"
    r"(?:\s+(?:early|prematurely|treatment|RT|radiotherapy|radiation))*"
    r"\s*(?:at|after|with|on|following)?\s*(?:(?:fraction|fx|\#)\s*\d+(?:\s*/\s*\d+)?"
    rf"|{_NUM}\s*(?:{_UNIT}){_END}(?:\s*(?:/|in|over|,)\s*(?:{_COUNT})\s*{_FX}?)?"
    rf"|(?:{_COUNT})\s*{_FX}|{_NUM}(?=\s*(?:of|/)\s*{_NUM}\s*(?:{_UNIT}){_END}))"
)


def _blank_stopped_early(text: str) -> str:
    for match in _STOPPED_EARLY_RE.finditer(text):
        text = _blank(text, match.start(), match.end())
    return text


# A split course ("30 Gy/10 fx, 2-week break, then 30 Gy/10 fx") is one course given in parts:
# the prescription is their sum (60 Gy in 20 fractions), not a course and a boost.
_SPLIT_COURSE_RE = _compile(r"(?<![A-Za-z])split[\s-]*course(?![A-Za-z])")
_BREAK_RE = _compile(
    r"(?<![A-Za-z])(?:break|gap|pause|rest(?:\s+period)?|treatment\s+holiday)(?![A-Za-z])"
)
_COURSE_KINDS = ("total_fx", "per_fx_times")


def _merge_split_course(text: str) -> tuple[str, _Core | None]:
    """(text with the later parts blanked, the summed course) for a split course, else
    (text, None). The parts are the courses that count their fractions; with a boost keyword
    the later course is the boost's, and parts in different units are not summed, nor external
    beam and brachytherapy ("45 Gy/25 fx, 1-week gap, then HDR 7 Gy x 4" is EBRT and a boost).
    """
    if _BOOST_RE.search(text) or _BRACHY_RE.search(text):
        return text, None
    courses = [
        m for m in _dose_mentions(text) if m.kind in _COURSE_KINDS and m.fractions is not None
    ]
    if len(courses) < 2 or len({m.unit for m in courses}) > 1:
        return text, None
    split = _SPLIT_COURSE_RE.search(text) or _BREAK_RE.search(text, courses[0].end)
    if not split:
        return text, None
    for course in courses[1:]:
        text = _blank(text, course.start, course.end)
    total = _Core(
        dose_gy=_clean(sum(m.total for m in courses)),
        fractions=sum(m.fractions for m in courses),
        dose_unit=courses[0].unit,
        dose_start=courses[0].start,
    )
    return text, total


def _blank_history(text: str) -> str:
    for match in _HISTORY_RE.finditer(text):
        end = _HISTORY_END_RE.search(text, match.end())
        text = _blank(text, match.start(), end.start() if end else len(text))
    return text


@functools.lru_cache(maxsize=32768)
def _parse_cached(text: str) -> RegimenStructured:
    # "boost10 Gy", "boost5-FU": the keyword glued to what follows reads as if spaced.
    text = _GLUED_BOOST_RE.sub(r"\g<0> ", text)
    text = _spell_out_word_doses(text)
    text = _blank_history(text)
    text = _blank_stopped_early(text)
    text, split_course = _merge_split_course(text)
    main_text, boost = _split_boost(text)
    main_text, other_courses = _split_other_courses(main_text)
    core = split_course or _read_dose(main_text)
    drugs = _drug_mentions(main_text)
    # A class and the agent that names it ("adjuvant chemo (cisplatin)") are one drug: it is
    # concurrent when both mentions are, and listed by the agent alone.
    named = {d: _class_beside(main_text, d, drugs) for d in drugs}
    concurrent_mentions = [
        d
        for d in drugs
        if d not in named.values()
        and all(
            _is_concurrent(main_text, mention, core.dose_start)
            for mention in (d, named[d])
            if mention is not None
        )
    ]
    concurrent: dict[str, None] = {}
    for mention in concurrent_mentions:
        concurrent.update(dict.fromkeys(mention.drugs))
    for name, members in _CLASS_MEMBERS.items():
        if name in concurrent and members.intersection(concurrent):
            del concurrent[name]
    # Drug names are blanked so that "cis" never reads as a technique or schedule.
    plain = main_text
    for mention in drugs:
        plain = _blank(plain, mention.start, mention.end)
    rt_schedule, drug_schedule = _schedules(main_text, drugs, concurrent_mentions)
    regimen = RegimenStructured(
        dose_gy=core.dose_gy,
        fractions=core.fractions,
        dose_unit=core.dose_unit,
        schedule=rt_schedule,
        technique=_first_canonical(
            _TECHNIQUE_RE, _TECHNIQUE_LOOKUP, plain[: _main_statement_end(plain, core)]
        ),
        boost=boost,
        concurrent=list(concurrent),
    )
    if drug_schedule is not None and concurrent:
        regimen.concurrent_schedule = drug_schedule
    if other_courses:
        regimen.other_courses = other_courses
    return regimen


def parse_regimen(text: str) -> RegimenStructured:
    """Read a free-text regimen; parts not found stay None/empty. Never raises on junk.

    The drugs' own schedule, when written ("weekly cisplatin"), is in the extra field
    `concurrent_schedule` ("weekly", "daily", "BID", "every other day", "every 3 weeks").
    Courses to other, unrelated sites ("8 Gy/1 fx to T-spine, 20 Gy/5 fx to L hip") are in
    the extra field `other_courses`, canonical texts ("20 Gy in 5 fractions").
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    # Cached: curation parses the same few hundred technique strings ~160k times.
    return _parse_cached(text).model_copy(deep=True)


# "Observation", "declined RT", "surgery alone": an answer that gives no radiotherapy.
_RT_WORDS = r"(?:RT|XRT|EBRT|PORT|radiotherapy|radiation(?:\s+therapy)?|irradiation|radiosurgery)"
_NO_RADIOTHERAPY_RE = _compile(
    r"(?<![A-Za-z])(?:observation|(?:active|clinical|radiological|imaging)?\s*surveillance"
    r"|watchful\s+waiting|watch\s+and\s+wait|active\s+monitoring|best\s+supportive\s+care"
    r"|hospice|comfort\s+care|(?:no|nil|without|omit(?:ted)?|declined|refused|defer(?:red)?|"
    rf"not\s+for|not\s+a\s+candidate\s+for)\s+(?:\w+\s+){{0,2}}{_RT_WORDS}"
    rf"|{_RT_WORDS}\s+(?:(?:is|was)\s+)?(?:not\s+(?:indicated|recommended|given|offered)|"
    r"declined|refused|omitted|deferred|contraindicated)"
    r"|(?:surgery|resection|chemo(?:therapy)?|systemic\s+therapy|hormon(?:e|al)\s+therapy|"
    r"endocrine\s+therapy|ADT|immunotherapy)\s+(?:alone|only))(?![A-Za-z])"
)
# "30.5 fractions", "60 Gy/30.5", "Fractions: 30.5": a count that is not a whole number.
_FRACTIONAL_COUNT_RE = _compile(
    rf"(?<![\w.,])\d+[.,]\d*[1-9]\d*\s*{_FX}"
    rf"|(?:{_UNIT})\s*/\s*\d+[.,]\d*[1-9]\d*(?![\d.,]|\s*(?:{_UNIT}|%))"
    rf"|{_FX_LABEL}\s*\d+[.,]\d*[1-9]\d*"
)


def regimen_text_problem(text: str) -> str | None:
    """Why a regimen text is no radiotherapy prescription to score against, or None.

    "Observation", "active surveillance", "no radiotherapy", "declined RT", "surgery alone"
    (with no dose read) say that no radiotherapy is given; a fraction count that is not a
    whole number ("60 Gy in 30.5 fractions") is a recording error, never rounded.
    """
    text = "" if text is None else str(text)
    fractional = _FRACTIONAL_COUNT_RE.search(text)
    if fractional:
        return f"the fraction count is not a whole number: '{fractional.group(0).strip()}'"
    no_rt = _NO_RADIOTHERAPY_RE.search(text)
    if no_rt and parse_regimen(text).dose_gy is None:
        return f"not a radiotherapy regimen: '{no_rt.group(0).strip()}'"
    return None


# ---------------------------------------------------------------------------------------------
# Rendering


def format_dose(value: float) -> str:
    """A dose without trailing zeros: 70 -> "70", 40.05 -> "40.05", 67.50 -> "67.5"."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def render_regimen(r: RegimenStructured) -> str:
    """Canonical clinical text: "70 Gy in 35 fractions IMRT with concurrent weekly cisplatin".

    Order: dose and unit, fractions, radiotherapy schedule, technique, boost, concurrent drugs
    (their schedule before the names when daily/weekly, after them otherwise), then each
    course to another site after a ";" ("8 Gy in 1 fraction; 20 Gy in 5 fractions to another
    site").
    """
    parts: list[str] = []
    if r.dose_gy is not None:
        parts.append(f"{format_dose(r.dose_gy)} {r.dose_unit}")
    if r.fractions is not None:
        parts.append(f"in {r.fractions} fraction{'' if r.fractions == 1 else 's'}")
    if r.schedule:
        parts.append(r.schedule)
    if r.technique:
        parts.append(r.technique)
    if r.boost is not None:
        parts.append(f"with boost {r.boost}".rstrip())
    if r.concurrent:
        drug_schedule = (r.model_extra or {}).get("concurrent_schedule")
        drugs = _join(list(r.concurrent))
        if drug_schedule in ("daily", "weekly"):
            drugs = f"{drug_schedule} {drugs}"
        elif drug_schedule:
            drugs = f"{drugs} {drug_schedule}"
        parts.append(f"with concurrent {drugs}")
    for course in (r.model_extra or {}).get("other_courses") or ():
        parts[-1] += ";"
        parts.append(f"{course} {_OTHER_SITE}")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# Dose arithmetic

_GY_UNITS = {
    "gy": (1.0, "Gy"),
    "cgy": (0.01, "Gy"),
    "gray": (1.0, "Gy"),
    "grays": (1.0, "Gy"),
    "centigray": (0.01, "Gy"),
    "centigrays": (0.01, "Gy"),
}
_RBE_UNITS = {
    "gyrbe": (1.0, "GyRBE"),
    "gy(rbe)": (1.0, "GyRBE"),
    "gye": (1.0, "GyRBE"),
    "cge": (1.0, "GyRBE"),  # cobalt gray equivalent: the older name of Gy(RBE), not centi-
    "cgyrbe": (0.01, "GyRBE"),
    "cgye": (0.01, "GyRBE"),
    "cgy(rbe)": (0.01, "GyRBE"),
}


def normalize_dose(value: float, unit: str) -> tuple[float, str]:
    """(value, unit) -> (value in Gy, "Gy" or "GyRBE"): 7000 cGy -> (70.0, "Gy")."""
    key = re.sub(r"[\s-]", "", str(unit)).lower()
    factor_unit = _GY_UNITS.get(key) or _RBE_UNITS.get(key)
    if factor_unit is None:
        raise ValueError(
            f"unknown dose unit '{unit}': expected Gy, cGy or GyRBE (also Gy(RBE), CGE, GyE)"
        )
    factor, canonical = factor_unit
    return _clean(float(value) * factor), canonical


def _check_course(dose_gy: float, fractions: float) -> None:
    if not (isinstance(dose_gy, numbers.Real) and math.isfinite(dose_gy) and dose_gy >= 0):
        raise ValueError(f"dose must be a finite number >= 0 Gy, got {dose_gy!r}")
    if not (isinstance(fractions, numbers.Real) and math.isfinite(fractions) and fractions > 0):
        raise ValueError(f"fractions must be a positive number, got {fractions!r}")


def dose_per_fraction(dose_gy: float, fractions: int) -> float:
    """d = D / N."""
    _check_course(dose_gy, fractions)
    return dose_gy / fractions


def bed(dose_gy: float, fractions: int, *, alpha_beta: float = 10.0) -> float:
    """Biologically effective dose, BED = D (1 + d / (alpha/beta)), linear-quadratic model."""
    if not alpha_beta > 0:
        raise ValueError(f"alpha_beta must be > 0 Gy, got {alpha_beta!r}")
    return dose_gy * (1 + dose_per_fraction(dose_gy, fractions) / alpha_beta)


def eqd2(dose_gy: float, fractions: int, *, alpha_beta: float = 10.0) -> float:
    """Equivalent dose in 2 Gy fractions, EQD2 = BED / (1 + 2 / (alpha/beta))."""
    return bed(dose_gy, fractions, alpha_beta=alpha_beta) / (1 + 2 / alpha_beta)


def total_eqd2(regimen: RegimenStructured, *, alpha_beta: float = 10.0) -> float | None:
    """EQD2 of the whole prescription: the main course's, plus a boost's that states its own
    dose and fractions, each course converted on its own ("EBRT 45 Gy/25 fx + HDR boost 7 Gy
    x 3": 44.25 + 29.75 = 74.0 Gy at alpha/beta 10, not the EQD2 of 66 Gy in 28).

    None where the main course lacks dose or fractions, or the boost lacks either or is a
    cumulative dose ("to 60 Gy"), whose fractionation the text does not give.
    """
    if regimen.dose_gy is None or not regimen.fractions:
        return None
    total = eqd2(regimen.dose_gy, regimen.fractions, alpha_beta=alpha_beta)
    if regimen.boost:
        if re.match(r"\s*to\b", regimen.boost, re.IGNORECASE):
            return None
        boost = parse_regimen(regimen.boost)
        if boost.dose_gy is None or not boost.fractions:
            return None
        total += eqd2(boost.dose_gy, boost.fractions, alpha_beta=alpha_beta)
    return total


# ---------------------------------------------------------------------------------------------
# Plausibility of a prescription. Limits follow common practice (see the domain reference);
# they flag records to look at, they are not clinical advice.

_MAX_ANY_TOTAL_GY = 160.0  # LDR I-125 prostate monotherapy 145 Gy is the largest in use
_MAX_EBRT_TOTAL_GY = 82.0  # 81 Gy/45 fx prostate; 81.6 Gy/68 fx BID head and neck (RTOG 9003)
_MAX_EBRT_FRACTIONS = 45  # 81 Gy/45 fx; 1.8-2 Gy courses stay within 45
_MAX_BID_FRACTIONS = 70  # hyperfractionation: 81.6 Gy in 68 fractions of 1.2 Gy twice daily
_MAX_CONVENTIONAL_PER_FX = 25.0  # above this only stereotactic or brachytherapy
_MAX_SBRT_PER_FX = 40.0  # single-fraction lung SBRT is 34 Gy (RTOG 0915)
_MAX_SRS_GY = 90.0  # trigeminal neuralgia SRS: up to 90 Gy maximum dose in 1 fraction
_MAX_LDR_TOTAL_GY = 160.0  # I-125 145 Gy, Pd-103 125 Gy, Cs-131 115 Gy
_MAX_PLAQUE_GY = 100.0  # uveal melanoma plaques: 70-100 Gy to the apex (85 Gy COMS)
_MAX_HDR_TOTAL_GY = 60.0  # HDR/PDR courses: cervix 28 Gy/4, APBI 34 Gy/10, skin 40 Gy/10
_MAX_HDR_FRACTIONS = 10  # APBI 34 Gy in 10 fractions BID is the longest common HDR course
_MAX_PDR_PULSES = 200  # PDR records may count hourly pulses as fractions
_MIN_PER_FX = 0.5  # low-dose benign/palliative courses go down to 0.5 Gy per fraction
_MIN_TSEBT_PER_FX = 0.25  # total skin electrons: per-field doses are recorded as fractions


def _canonical_technique(technique: str | None) -> str | None:
    if not technique:
        return None
    return _first_canonical(_TECHNIQUE_RE, _TECHNIQUE_LOOKUP, str(technique))


def check_prescription(
    dose_gy: float,
    fractions: int,
    *,
    modality: str | None = None,
    technique: str | None = None,
    schedule: str | None = None,
) -> str | None:
    """None if the prescription is plausible, else a short reason.

    `modality` and `technique` may be free text ("brachytherapy", "HDR", "SBRT"); `schedule`
    "BID" allows the longer hyperfractionated courses.
    """
    from radonc_llm.data.modality import modality_class

    if isinstance(dose_gy, bool) or not isinstance(dose_gy, numbers.Real):
        return f"total dose must be a number, got {dose_gy!r}"
    if not math.isfinite(dose_gy) or dose_gy <= 0:
        return f"total dose must be positive, got {dose_gy:g} Gy"
    if isinstance(fractions, bool) or not isinstance(fractions, numbers.Real):
        return f"number of fractions must be a whole number, got {fractions!r}"
    if not math.isfinite(fractions) or fractions != int(fractions) or fractions < 1:
        return f"number of fractions must be a positive whole number, got {fractions:g}"
    fractions = int(fractions)
    per_fx = dose_gy / fractions
    tech = _canonical_technique(technique)
    modality_name = modality_class(modality) if modality else None
    brachy = modality_name == "brachytherapy" or tech in BRACHYTHERAPY_TECHNIQUES
    bid = (
        schedule is not None
        and _first_canonical(_SCHEDULE_RE, _SCHEDULE_LOOKUP, str(schedule)) == "BID"
    )

    if dose_gy > _MAX_ANY_TOTAL_GY:
        hint = f" (a cGy value recorded as Gy? {format_dose(dose_gy / 100)} Gy)"
        return f"total dose {format_dose(dose_gy)} Gy is implausible{hint}"
    if per_fx < _MIN_PER_FX and not (tech == "TSEBT" and per_fx >= _MIN_TSEBT_PER_FX):
        return f"{format_dose(per_fx)} Gy per fraction is below any clinical schedule"

    if brachy:
        if tech in ("LDR", "plaque"):
            limit = _MAX_PLAQUE_GY if tech == "plaque" else _MAX_LDR_TOTAL_GY
            if dose_gy > limit:
                return f"{tech} dose {format_dose(dose_gy)} Gy is above {format_dose(limit)} Gy"
            if fractions > 2:
                return f"{tech} is one implant, not {fractions} fractions"
            return None
        max_fractions = _MAX_PDR_PULSES if tech == "PDR" else _MAX_HDR_FRACTIONS
        if fractions > max_fractions:
            return f"{fractions} brachytherapy fractions is more than {max_fractions}"
        if tech in ("HDR", "PDR") and dose_gy > _MAX_HDR_TOTAL_GY:
            return f"{tech} total {format_dose(dose_gy)} Gy is above {_MAX_HDR_TOTAL_GY:g} Gy"
        if tech in ("HDR", "PDR") and per_fx > _MAX_CONVENTIONAL_PER_FX:
            return f"{format_dose(per_fx)} Gy per {tech} fraction is above 25 Gy"
        return None

    max_fractions = _MAX_BID_FRACTIONS if bid else _MAX_EBRT_FRACTIONS
    if fractions > max_fractions:
        return f"{fractions} fractions is more than {max_fractions} for external beam"
    if tech == "SRS":
        if dose_gy > _MAX_SRS_GY:
            return f"SRS dose {format_dose(dose_gy)} Gy is above {_MAX_SRS_GY:g} Gy"
        return None
    if tech in ("SBRT", "FSRT"):
        if per_fx > _MAX_SBRT_PER_FX:
            return f"{format_dose(per_fx)} Gy per {tech} fraction is above {_MAX_SBRT_PER_FX:g} Gy"
    elif per_fx > _MAX_CONVENTIONAL_PER_FX:
        return f"{format_dose(per_fx)} Gy per fraction is only used with SRS/SBRT or brachytherapy"
    if dose_gy > _MAX_EBRT_TOTAL_GY:
        return f"total {format_dose(dose_gy)} Gy is unusual for external beam (above ~81 Gy)"
    return None
