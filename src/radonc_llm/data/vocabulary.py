"""The words synthetic diagnosis notes are made of: site and subsite phrasings, shorthand, typos.

The project's own vocabulary, written from the ICD-10-CM Table of Neoplasms (index terms such
as "tonsil, fossa", "tongue, base", "Rosenmuller's fossa", "fossa, posterior") and the tabular
titles, and from the shorthand real radiation oncology notes use ("s/p", "hx of", "w/",
"GS 4+3=7 (GG3)", "ER+/PR+/HER2-"). Nothing here is read from outside the package.

Two rules keep the synthetic task honest:
- A note never states the answer: no dose or fraction count, no modality or technique word,
  no ICD code (`answer_terms_in` finds any that slip in; the tests run it on every note).
- A note always states what decides the answer: the subsite phrasings of a code carry its
  laterality (and breast codes follow the patient's sex), so the code follows from the text.
"""

from __future__ import annotations

import math
import random
import re

# --- laterality, age and sex ------------------------------------------------------------------

SIDE_FULL: dict[str, tuple[str, ...]] = {"R": ("right",), "L": ("left",)}
SIDE_SHORT: dict[str, tuple[str, ...]] = {"R": ("R", "rt", "Rt", "R"), "L": ("L", "lt", "Lt", "L")}


def side_word(side: str, *, terse: bool, rng: random.Random) -> str:
    """'right' or a short form ('R', 'rt') for a side 'R'/'L'."""
    options = SIDE_SHORT[side] if terse else SIDE_FULL[side]
    return options[int(rng.random() * len(options))]


_ADULT = {"M": ("man", "male", "gentleman", "man"), "F": ("woman", "female", "lady", "woman")}
_CHILD = {"M": ("boy",), "F": ("girl",)}


def age_sex_terse(age: int, sex: str, rng: random.Random) -> str:
    """'67M', '67 y/o M', '67yo F', '7 yo boy'."""
    pick = rng.random()
    if pick < 0.5:
        return f"{age}{sex}"
    if pick < 0.75:
        return f"{age} y/o {sex}"
    if pick < 0.9:
        return f"{age}yo {sex}"
    return f"{age} {sex}"


def age_sex_full(age: int, sex: str, rng: random.Random) -> str:
    """'67-year-old man', '45 year old woman', '9-year-old girl'."""
    nouns = _CHILD[sex] if age < 16 else _ADULT[sex]
    noun = nouns[int(rng.random() * len(nouns))]
    return f"{age}-year-old {noun}" if rng.random() < 0.75 else f"{age} year old {noun}"


def pronoun(sex: str) -> str:
    return "He" if sex == "M" else "She"


# --- subsites: how a code's anatomical site is written ------------------------------------------
# Keyed by dotted code. Phrases of a lateral code carry the side; "{side}" marks where a side
# may be written for sites whose code does not depend on it (tonsil, frontal lobe).

SUBSITE_PHRASES: dict[str, tuple[str, ...]] = {
    "C61": ("prostate", "prostate gland"),
    # lung: lobes, main bronchus, overlapping, unspecified part
    "C34.11": ("right upper lobe", "RUL", "R upper lobe", "right upper lobe of lung"),
    "C34.12": ("left upper lobe", "LUL", "L upper lobe", "left upper lobe of lung", "lingula"),
    "C34.2": ("right middle lobe", "RML", "middle lobe", "R middle lobe"),
    "C34.31": ("right lower lobe", "RLL", "R lower lobe", "right lower lobe of lung"),
    "C34.32": ("left lower lobe", "LLL", "L lower lobe", "left lower lobe of lung"),
    "C34.01": ("right main bronchus", "R mainstem bronchus", "right mainstem bronchus"),
    "C34.02": ("left main bronchus", "L mainstem bronchus", "left mainstem bronchus"),
    "C34.81": ("right lung, overlapping upper and lower lobes", "R lung crossing the fissure"),
    "C34.82": ("left lung, overlapping upper and lower lobes", "L lung crossing the fissure"),
    "C34.91": ("right lung", "R lung", "right lung (lobe not specified)"),
    "C34.92": ("left lung", "L lung", "left lung (lobe not specified)"),
    # oropharynx
    "C09.9": ("{side} tonsil", "{side} palatine tonsil", "{side} faucial tonsil", "tonsil"),
    "C09.0": ("{side} tonsillar fossa", "tonsillar fossa"),
    "C09.1": ("{side} tonsillar pillar", "{side} anterior tonsillar pillar", "pillar of fauces"),
    "C01": ("base of tongue", "BOT", "tongue base", "{side} base of tongue"),
    "C10.9": ("oropharynx", "oropharyngeal"),
    "C10.0": ("vallecula", "{side} vallecula"),
    "C10.2": ("{side} lateral oropharyngeal wall", "lateral wall of oropharynx"),
    # larynx
    "C32.0": ("glottis", "glottic larynx", "{side} true vocal cord", "{side} TVC", "vocal cord"),
    "C32.1": ("supraglottis", "supraglottic larynx", "epiglottis", "{side} false cord"),
    # oral cavity
    "C02.1": ("{side} lateral tongue", "{side} lateral border of tongue", "{side} tongue margin"),
    "C02.9": ("oral tongue", "tongue", "{side} oral tongue"),
    "C04.0": ("anterior floor of mouth", "anterior FOM"),
    "C04.9": ("floor of mouth", "FOM", "{side} floor of mouth"),
    "C06.0": ("{side} buccal mucosa", "{side} cheek mucosa", "buccal mucosa"),
    "C03.1": ("{side} lower gum", "{side} lower gingiva", "mandibular gingiva"),
    # nasopharynx
    "C11.9": ("nasopharynx", "nasopharyngeal", "postnasal space"),
    "C11.2": ("{side} fossa of Rosenmuller", "{side} lateral nasopharyngeal wall"),
    "C11.1": ("posterior nasopharyngeal wall", "posterior wall of nasopharynx"),
    # primary brain
    "C71.0": ("{side} thalamus", "{side} basal ganglia", "{side} cerebral hemisphere"),
    "C71.1": ("{side} frontal lobe", "{side} frontal", "{side} frontal pole"),
    "C71.2": ("{side} temporal lobe", "{side} temporal", "{side} temporal pole"),
    "C71.3": ("{side} parietal lobe", "{side} parietal"),
    "C71.4": ("{side} occipital lobe", "{side} occipital"),
    "C71.8": ("{side} frontoparietal", "corpus callosum (butterfly)", "{side} temporoparietal"),
    "C71.6": ("cerebellum", "cerebellar vermis", "vermis"),
    "C71.7": ("fourth ventricle", "4th ventricle", "brainstem", "pons"),
    "C71.9": ("posterior fossa", "posterior fossa (site not specified)"),
    "D32.0": ("intracranial", "cerebral", "cranial"),
    "C79.31": ("brain",),
    "C79.51": ("bone",),
    "C20": ("rectum", "rectal"),
    "C21.1": ("anal canal",),
    "C21.0": ("anus", "anal"),
    "C15.3": ("upper third of the esophagus", "upper esophagus", "cervical esophagus"),
    "C15.4": ("mid esophagus", "middle third of the esophagus", "thoracic esophagus"),
    "C15.5": ("distal esophagus", "lower third of the esophagus", "lower esophagus"),
    "C25.0": ("head of pancreas", "pancreatic head"),
    "C25.1": ("body of pancreas", "pancreatic body"),
    "C25.2": ("tail of pancreas", "pancreatic tail"),
    "C22.0": ("liver",),
    "C53.9": ("cervix", "cervix uteri", "uterine cervix"),
    "C53.0": ("endocervix", "endocervical canal"),
    "C53.1": ("exocervix", "ectocervix"),
    "C53.8": ("cervix, overlapping endo- and exocervix", "squamocolumnar junction"),
    "C54.1": ("endometrium", "endometrial"),
    "C54.9": ("corpus uteri", "uterine corpus"),
    "C55": ("uterus", "uterine"),
    "C51.9": ("vulva", "vulvar"),
    "C51.0": ("{side} labium majus", "{side} labia majora"),
    "C51.1": ("{side} labium minus", "{side} labia minora"),
    "C67.9": ("bladder", "urinary bladder"),
    "C67.2": ("{side} lateral bladder wall", "{side} lateral wall of bladder"),
    "C67.0": ("bladder trigone", "trigone"),
    "C67.4": ("posterior bladder wall", "posterior wall of bladder"),
    "C67.1": ("bladder dome", "dome of bladder"),
    "C62.11": ("right testis", "R testis", "right testicle"),
    "C62.12": ("left testis", "L testis", "left testicle"),
    "C62.91": ("right testis (descent not documented)", "R testicular"),
    "C62.92": ("left testis (descent not documented)", "L testicular"),
    # skin: the histology belongs to the code, see sites.py
    "C44.311": ("nasal ala", "nose", "{side} nasal sidewall", "nasal tip"),
    "C44.321": ("nasal ala", "nose", "{side} nasal sidewall", "nasal dorsum"),
    "C44.310": ("face", "facial skin"),
    "C44.319": ("{side} cheek", "forehead", "{side} temple", "{side} malar cheek"),
    "C44.329": ("{side} cheek", "forehead", "{side} temple", "{side} preauricular skin"),
    "C44.212": ("right ear", "R helix", "right pinna"),
    "C44.219": ("left ear", "L helix", "left pinna"),
    "C44.222": ("right ear", "R helix", "right pinna"),
    "C44.229": ("left ear", "L helix", "left pinna"),
    "C44.41": ("scalp", "vertex scalp", "{side} neck skin"),
    "C44.42": ("scalp", "vertex scalp", "{side} neck skin"),
    "C44.01": ("lower lip skin", "upper lip skin"),
    "C44.02": ("lower lip skin", "upper lip skin"),
    "C4A.31": ("nose", "nasal tip"),
    "C4A.39": ("{side} cheek", "forehead", "{side} temple"),
    "C4A.4": ("scalp", "{side} neck"),
    "C4A.61": ("right forearm", "R upper arm", "right shoulder"),
    "C4A.62": ("left forearm", "L upper arm", "left shoulder"),
    "C4A.71": ("right thigh", "R lower leg", "right calf"),
    "C4A.72": ("left thigh", "L lower leg", "left calf"),
    "C84.00": ("skin",),
    "L91.0": ("keloid",),
    "C81.12": ("mediastinal", "anterior mediastinal nodes", "mediastinum"),
    "C81.11": ("{side} cervical nodes", "{side} neck nodes", "{side} supraclavicular nodes"),
    "C83.32": ("mediastinal", "mediastinal nodes"),
    "C83.31": ("{side} cervical nodes", "{side} neck nodes"),
    "C83.33": ("mesenteric nodes", "retroperitoneal nodes", "intra-abdominal nodes"),
    "C83.38": ("multiple nodal sites", "neck and mediastinal nodes"),
    "C82.01": ("{side} cervical nodes", "{side} neck nodes"),
    "C82.02": ("mediastinal nodes", "hilar nodes"),
    "C82.03": ("mesenteric nodes", "para-aortic nodes"),
    "C82.04": ("{side} axillary nodes", "{side} axilla"),
    "C82.05": ("{side} inguinal nodes", "{side} groin nodes"),
    "C82.08": ("multiple nodal sites", "widespread nodes"),
    "C88.40": ("stomach", "gastric"),
    "C49.21": ("right thigh", "R thigh", "right posterior thigh", "right calf", "R knee"),
    "C49.22": ("left thigh", "L thigh", "left posterior thigh", "left calf", "L knee"),
    "C49.11": ("right forearm", "R upper arm", "right arm"),
    "C49.12": ("left forearm", "L upper arm", "left arm"),
    "C41.0": ("clivus", "skull base", "clival", "petroclival"),
    "C41.4": ("sacrum", "sacral", "S2-S3 sacrum"),
    "C69.31": ("right choroid", "R choroidal", "right eye (choroid)", "OD choroid"),
    "C69.32": ("left choroid", "L choroidal", "left eye (choroid)", "OS choroid"),
    "C69.41": ("right ciliary body", "R ciliary body", "OD ciliary body"),
    "C69.42": ("left ciliary body", "L ciliary body", "OS ciliary body"),
    "C49.0": (
        "parameningeal soft tissue",
        "infratemporal fossa",
        "pterygoid fossa",
        "soft tissue of the parapharyngeal space",
    ),
    "C69.61": ("right orbit", "R orbital", "right orbital"),
    "C69.62": ("left orbit", "L orbital", "left orbital"),
    "D44.4": ("sellar/suprasellar", "suprasellar"),
    "D33.3": ("{side} vestibular nerve", "{side} CPA/IAC", "{side} internal auditory canal"),
    "G50.0": ("{side} V2", "{side} V3", "{side} V2-V3", "{side}-sided"),
    "C37": ("thymus", "anterior mediastinum"),
    "C45.0": ("{side} pleura", "{side} pleural"),
}

# Breast codes C50.QST: Q quadrant, S sex (1 female, 2 male), T side (1 right, 2 left).
_BREAST_QUADRANTS: dict[str, tuple[str, ...]] = {
    "0": ("nipple-areolar complex", "retroareolar", "subareolar"),
    "1": ("central portion", "central"),
    "2": ("upper inner quadrant", "UIQ", "upper-inner quadrant"),
    "3": ("lower inner quadrant", "LIQ", "lower-inner quadrant"),
    "4": ("upper outer quadrant", "UOQ", "upper-outer quadrant"),
    "5": ("lower outer quadrant", "LOQ", "lower-outer quadrant"),
    "6": ("axillary tail", "tail of Spence"),
    "8": ("12 o'clock (overlapping upper quadrants)", "6 o'clock (overlapping lower quadrants)"),
}
# Clock positions as seen facing the patient: the outer quadrants are on the right breast's
# 9-11 side and on the left breast's 1-2 side.
_BREAST_CLOCK: dict[tuple[str, str], tuple[str, ...]] = {
    ("4", "R"): ("10", "11", "9:30"), ("2", "R"): ("1", "2"), ("3", "R"): ("4", "5"),
    ("5", "R"): ("7", "8"), ("4", "L"): ("1", "2", "2:30"), ("2", "L"): ("10", "11"),
    ("3", "L"): ("7", "8"), ("5", "L"): ("4", "5"),
}  # fmt: skip


def _breast_phrases(quadrant: str, side: str) -> tuple[str, ...]:
    full, short = SIDE_FULL[side][0], SIDE_SHORT[side][0]
    if quadrant == "9":
        return (f"{full} breast", f"{short} breast", f"{full} breast (quadrant not documented)")
    phrases = []
    for name in _BREAST_QUADRANTS[quadrant]:
        phrases += [
            f"{short} breast {name}",
            f"{name} of the {full} breast",
            f"{full} breast, {name}",
        ]
    for clock in _BREAST_CLOCK.get((quadrant, side), ()):
        phrases += [f"{full} breast at {clock} o'clock", f"{short} breast {clock}:00"]
    return tuple(phrases)


for _q in (*_BREAST_QUADRANTS, "9"):
    for _sex_digit in ("1", "2"):
        for _side_digit, _side in (("1", "R"), ("2", "L")):
            SUBSITE_PHRASES[f"C50.{_q}{_sex_digit}{_side_digit}"] = _breast_phrases(_q, _side)

# --- how the diagnosis is written ---------------------------------------------------------------
# Templates fill {hist} (histology, full), {hs} (histology, short) and {sub} (subsite phrase).
# "full" templates read as prose, "short" ones as shorthand. Sites not listed use the default.

DX_DEFAULT = {
    "full": ("{hist} of the {sub}", "{sub} {hist}", "{hist}, {sub}"),
    "short": ("{sub} {hs}", "{hs} {sub}", "{hs} of {sub}"),
}
DX_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "prostate": {
        "full": (
            "{hist} of the prostate", "prostatic {hist}", "prostate cancer", "carcinoma of the "
            "prostate", "malignant neoplasm of prostate", "prostate {hist}",
        ),
        "short": ("CaP", "PCa", "prostate ca", "prostate adenoCA", "adenoCA prostate"),
    },
    "breast": {
        "full": ("{hist} of the {sub}", "{sub} {hist}", "{hist}, {sub}", "breast cancer, {sub}"),
        "short": ("{sub} {hs}", "{hs} {sub}", "{hs}, {sub}"),
    },
    "lung": {
        "full": ("{hist} of the {sub}", "{sub} {hist}", "{hist}, {sub}", "{sub} lung cancer ({hist})"),
        "short": ("{sub} {hs}", "{hs} {sub}", "{sub} mass, {hs}"),
    },
    "brain_metastases": {
        "full": ("{hist} {primary}", "{hist}, {primary}", "secondary malignant neoplasm of brain "
                 "{primary}"),
        "short": ("{hs} {primary}", "{hs} ({primary})"),
    },
    "bone_metastases": {
        "full": ("{hist} {primary}", "{hist}, {primary}", "secondary malignant neoplasm of bone "
                 "{primary}"),
        "short": ("{hs} {primary}", "{hs} ({primary})"),
    },
    "rectum": {
        "full": ("{hist} of the rectum", "rectal {hist}", "rectal cancer", "malignant neoplasm "
                 "of rectum"),
        "short": ("rectal ca", "rectal adenoCA", "CA rectum", "low rectal ca"),
    },
    "liver": {
        "full": ("hepatocellular carcinoma", "liver cell carcinoma", "hepatoma", "primary liver "
                 "cancer (hepatocellular)"),
        "short": ("HCC", "hepatoma", "HCC (liver)"),
    },
    "keloid": {
        "full": ("keloid", "keloid scar", "hypertrophic scar (keloid)"),
        "short": ("keloid", "keloid scar"),
    },
    "mycosis_fungoides": {
        "full": ("{hist}", "{hist} of the skin"),
        "short": ("{hs}", "{hs} (skin)"),
    },
    "craniopharyngioma": {
        "full": ("{hist}", "{sub} {hist}", "{hist}, {sub}"),
        "short": ("{hs}", "{sub} {hs}"),
    },
    "vestibular_schwannoma": {
        "full": ("{hist}, {sub}", "{sub} {hist}"),
        "short": ("{sub} {hs}", "{hs} {sub}"),
    },
    "trigeminal_neuralgia": {
        "full": ("{sub} trigeminal neuralgia", "trigeminal neuralgia ({sub})"),
        "short": ("{sub} TN", "TN {sub}"),
    },
    "thymoma": {
        "full": ("{hist}", "{hist} of the {sub}"),
        "short": ("{hs}", "{hs}, {sub}"),
    },
    "mesothelioma": {
        "full": ("{hist} of the {sub}", "{sub} {hist}"),
        "short": ("{sub} {hs}", "{hs} {sub}"),
    },
    "meningioma": {
        "full": ("{sub} {hist}", "{hist} ({sub})"),
        "short": ("{sub} {hs}", "{hs}"),
    },
    "uveal_melanoma": {
        "full": ("{hist} of the {sub}", "{sub} {hist}"),
        "short": ("{sub} {hs}", "{hs} {sub}"),
    },
    "malt_lymphoma": {
        "full": ("{sub} {hist}", "{hist} of the stomach"),
        "short": ("{sub} {hs}", "{hs} (stomach)"),
    },
}  # fmt: skip
# Lymphoma codes name nodal regions: "{hist} involving {sub}" reads better than "of the".
for _site in ("hodgkin_lymphoma", "dlbcl", "follicular_lymphoma"):
    DX_TEMPLATES[_site] = {
        "full": ("{hist} involving {sub}", "{hist}, {sub}", "{sub} {hist}"),
        "short": ("{hs} {sub}", "{hs}, {sub}"),
    }

# --- the plan line: why the patient is seen --------------------------------------------------------

INTENT_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "curative": {
        "full": ("to discuss curative-intent treatment", "for consideration of radical treatment",
                 "regarding definitive radiotherapy"),
        "short": ("plan curative RT", "for definitive tx", "curative intent"),
    },
    "definitive": {
        "full": ("to discuss definitive treatment", "for consideration of definitive radiotherapy"),
        "short": ("plan definitive RT", "for definitive RT", "definitive intent"),
    },
    "adjuvant": {
        "full": ("for consideration of adjuvant radiotherapy", "to discuss post-operative "
                 "radiotherapy"),
        "short": ("for adjuvant RT", "post-op RT", "plan adjuvant RT"),
    },
    "neoadjuvant": {
        "full": ("to discuss pre-operative treatment", "for consideration of neoadjuvant therapy"),
        "short": ("for neoadjuvant tx", "preop RT", "plan neoadjuvant RT"),
    },
    "salvage": {
        "full": ("to discuss salvage radiotherapy", "for consideration of salvage treatment"),
        "short": ("for salvage RT", "plan salvage RT"),
    },
    "consolidation": {
        "full": ("for consideration of consolidation radiotherapy", "to discuss consolidation"),
        "short": ("for consolidative RT", "consolidation RT"),
    },
    "prophylactic": {
        "full": ("to discuss prophylactic cranial treatment", "regarding prophylactic brain "
                 "treatment"),
        "short": ("for prophylactic brain RT", "?prophylactic cranial RT"),
    },
    "palliative": {
        "full": ("for palliation", "to discuss palliative radiotherapy", "for symptom control"),
        "short": ("for palliative RT", "pall RT for symptoms", "palliative intent"),
    },
}  # fmt: skip
# With concurrent systemic therapy the plan line names chemoradiation, as notes do.
CHEMORT_PHRASES: dict[str, tuple[str, ...]] = {
    "full": ("to discuss definitive chemoradiotherapy", "for consideration of concurrent "
             "chemoradiation"),
    "short": ("plan definitive CRT", "for chemoRT", "plan CRT"),
}  # fmt: skip

REFERRERS: tuple[str, ...] = (
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Patel",
    "Nakamura",
    "Schmidt",
    "O'Brien",
    "Rossi",
    "Kowalski",
    "Haddad",
    "Fernandes",
    "MacLeod",
    "Chen",
    "Novak",
    "Abebe",
    "Jensen",
)

# --- shorthand, abbreviation, casing, typos -----------------------------------------------------
# Canonical wording -> what notes write instead. Applied word-bounded, each hit with the
# style's probability, so one cohort mixes "status post" and "s/p", "with" and "w/".

SHORTHAND: dict[str, tuple[str, ...]] = {
    "status post": ("s/p",),
    "history of": ("hx of", "h/o"),
    "with": ("w/",),
    "without": ("w/o",),
    "complains of": ("c/o",),
    "patient": ("pt",),
    "diagnosis": ("dx",),
    "treatment": ("tx",),
    "radiotherapy": ("RT", "XRT"),
    "chemotherapy": ("chemo",),
    "chemoradiotherapy": ("CRT", "chemoRT"),
    "metastases": ("mets",),
    "metastasis": ("met",),
    "metastatic": ("met.",),
    "positive": ("pos", "+ve"),
    "negative": ("neg", "-ve"),
    "carcinoma": ("ca", "CA"),
    "squamous cell carcinoma": ("SCC",),
    "adenocarcinoma": ("adenoCA", "adenoca"),
    "performance status": ("PS",),
    "lymph nodes": ("LNs",),
    "lymph node": ("LN",),
    "bilateral": ("bilat",),
    "and": ("&",),
    "months": ("mo", "mos"),
    "weeks": ("wks",),
    "year-old": ("y/o", "yo"),
    "approximately": ("~", "approx"),
    "recommended": ("rec'd",),
    "discussed": ("d/w",),
    "tumour": ("tumor",),
    "esophagus": ("oesophagus",),
    "esophageal": ("oesophageal",),
    "resection": ("resxn",),
    "hysterectomy": ("hyst",),
    "previous": ("prev",),
    "following": ("f/b",),
    "secondary": ("2ndary",),
    "right": ("rt",),
    "left": ("lt",),
    "referred": ("ref'd",),
    "consultation": ("consult",),
    "management": ("mgmt",),
    "multidisciplinary team": ("MDT",),
}
# Case-sensitive with capitalised variants listed: twice as fast as IGNORECASE on long notes.
_SHORTHAND_KEYS = sorted(
    {form for key in SHORTHAND for form in (key, key[0].upper() + key[1:])}, key=len, reverse=True
)
_SHORTHAND_RE = re.compile(
    r"(?<![\w/])(" + "|".join(re.escape(key) for key in _SHORTHAND_KEYS) + r")(?![\w/])"
)


def abbreviate(text: str, rng: random.Random, rate: float) -> str:
    """Replace canonical words by their shorthand, each occurrence with probability `rate`."""
    if rate <= 0:
        return text

    def swap(match: re.Match[str]) -> str:
        if rng.random() >= rate:
            return match.group(0)
        options = SHORTHAND[match.group(0).lower()]
        return options[int(rng.random() * len(options))]

    return _SHORTHAND_RE.sub(swap, text)


_KEYBOARD_NEIGHBOURS = {
    "a": "qsz", "b": "vgn", "c": "xdv", "d": "sfe", "e": "wrd", "f": "dgr", "g": "fht",
    "h": "gjy", "i": "uok", "j": "hku", "k": "jli", "l": "kop", "m": "nj", "n": "bmh",
    "o": "ipl", "p": "ol", "q": "wa", "r": "etf", "s": "adw", "t": "ryg", "u": "yij",
    "v": "cbf", "w": "qes", "x": "zcs", "y": "tuh", "z": "xa",
}  # fmt: skip


def make_typo(word: str, rng: random.Random) -> str:
    """One realistic slip in a word: swapped, dropped, doubled or neighbouring-key letter."""
    n = len(word)
    i = 1 + int(rng.random() * (n - 2))  # never the first or last letter
    kind = rng.random()
    if kind < 0.35:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind < 0.6:
        return word[:i] + word[i + 1 :]
    if kind < 0.8:
        return word[:i] + word[i] + word[i:]
    near = _KEYBOARD_NEIGHBOURS.get(word[i].lower())
    if not near:
        return word[:i] + word[i + 1 :]
    return word[:i] + near[int(rng.random() * len(near))] + word[i + 1 :]


_WORD_RE = re.compile(r"[A-Za-z]{5,}")
# Words that carry the laterality deciding a code (C50.411 vs C50.412, "lingula" is left lung)
# are never misspelt; "left" and the short forms are too short to get typos anyway.
_NO_TYPO = frozenset({"right", "Right", "RIGHT", "lingula", "Lingula", "LINGULA"})


def _words_to_skip(rng: random.Random, rate: float) -> int:
    """Words without a typo before the next one: geometric, so each word has `rate`."""
    if rate >= 1:
        return 0
    return int(math.log(1.0 - rng.random()) / math.log(1.0 - rate))


def add_typos(text: str, rng: random.Random, rate: float) -> str:
    """Put a typo into each word of five or more letters with probability `rate`."""
    if rate <= 0:
        return text
    skip = _words_to_skip(rng, rate)
    # An eligible word and its separator take six characters: most notes need no scan at all.
    if skip >= (len(text) + 1) // 6:
        return text
    out, last = [], 0
    for match in _WORD_RE.finditer(text):
        if skip:
            skip -= 1
            continue
        skip = _words_to_skip(rng, rate)
        if match.group(0) in _NO_TYPO:
            continue
        out += [text[last : match.start()], make_typo(match.group(0), rng)]
        last = match.end()
    out.append(text[last:])
    return "".join(out)


# --- what a note must never say ---------------------------------------------------------------
# Words that give away the modality or the regimen: the answer terms of the three tasks.
ANSWER_TERMS: tuple[str, ...] = (
    "photon", "proton", "electron", "brachy", "brachytherapy", "Gy", "cGy", "GyRBE", "MeV",
    "MV", "HDR", "LDR", "PDR", "IMRT", "VMAT", "IMPT", "PBS", "SBRT", "SABR", "SRS", "FSRT",
    "TSEBT", "WBRT", "3D-CRT", "stereotactic", "radiosurgery", "seed", "seeds", "plaque",
    "intracavitary", "interstitial", "iridium", "Ir-192", "I-125", "fraction", "fractions",
    "fx", "tandem", "ovoid", "Gamma Knife", "CyberKnife", "orthovoltage", "x-ray",
)  # fmt: skip
_ANSWER_RE = re.compile(
    r"(?<![A-Za-z])(" + "|".join(re.escape(t) for t in sorted(ANSWER_TERMS, key=len, reverse=True))
    + r")(?![A-Za-z])",
    re.IGNORECASE,
)  # fmt: skip
_DOSE_RE = re.compile(r"\d\s*(c?Gy|Gy ?\(?RBE\)?|fx|fractions?)\b", re.IGNORECASE)


def answer_terms_in(note: str, *, icd10: str | None = None) -> list[str]:
    """Answer words found in a note (empty when the note is clean): modality and technique
    words, doses with a unit, fraction counts, and the ICD-10 code dotted or dotless."""
    found = [m.group(0) for m in _ANSWER_RE.finditer(note)]
    found += [m.group(0) for m in _DOSE_RE.finditer(note)]
    if icd10:
        dotless = icd10.replace(".", "")
        for form in {icd10, dotless}:
            if re.search(r"(?<![0-9A-Za-z])" + re.escape(form) + r"(?![0-9A-Za-z])", note, re.I):
                found.append(form)
    return found
