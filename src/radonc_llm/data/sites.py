"""The project's site table: site -> ICD-10-CM codes -> regimen variants -> modality.

Written from public practice guidelines and landmark trials (ASTRO/ESTRO guidance, CHHiP,
START B, FAST-Forward, PACIFIC, Stupp, CROSS, RTOG 0529, BC2001, PORTEC ...). It drives the
synthetic export (`synth.py`) and gives curation and importers `site_for_icd10`.

A site is anatomical and owns a set of ICD-10-CM prefixes (`C34` lung, `C79.3` brain
metastases), so that every code maps to one site. Each site has several regimen variants; a
variant lists the facts a note states about the patient (stage, risk group, age, prior
surgery, performance status, a deciding finding), and those facts differ between the variants
of a site, so the regimen can be decided from the note. The weights are relative patient
numbers, roughly those of a general radiation oncology department; the modality mix comes out
near 85% photon with proton, electron and brachytherapy around 4-6% each.

Fact strings hold alternatives separated by "|" (an empty alternative makes a fact optional),
numeric ranges "{3-8}" (whole numbers) or "{0.2-0.9}" (one decimal), and "{side}" for the
laterality written in the note.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from radonc_llm.data.vocabulary import SUBSITE_PHRASES

# Recorded modality strings, as treatment planning systems and record-and-verify exports write
# them; every one maps to its class with `radonc_llm.data.modality.modality_class`.
RECORDED_MODALITY: dict[str, tuple[str, ...]] = {
    "photon": ("6X", "10X", "6X", "6MV", "VMAT 6MV", "15X", "Photon 6MV", "18X", "6X/18X"),
    "photon_stereotactic": ("6FFF", "10FFF", "6X FFF", "CyberKnife 6X", "6FFF"),
    "photon_gamma": ("Gamma Knife", "Gamma Knife", "6FFF"),
    "electron": ("6 MeV e-", "9 MeV e-", "12 MeV e-", "e- 9 MeV", "Electron 12MeV", "16 MeV e-"),
    "proton": ("PBS protons", "Proton PBS", "IMPT", "protons", "PBT"),
    "brachytherapy_hdr": ("HDR Ir-192", "Ir-192 HDR", "HDR"),
    "brachytherapy_ldr": ("LDR I-125 seeds", "I-125 seeds", "I-125 LDR"),
    "brachytherapy_plaque": ("I-125 plaque", "plaque I-125"),
}
# Recorded values that name no class (or two): curation cannot map them.
UNMAPPABLE_MODALITY: tuple[str, ...] = (
    "TBD", "hyperthermia", "", "unknown", "see plan notes", "N/A", "photon or proton",
    "EBRT + HDR", "carbon ions", "?",
)  # fmt: skip

CURATIVE_INTENTS: tuple[str, ...] = (
    "curative",
    "definitive",
    "adjuvant",
    "neoadjuvant",
    "salvage",
    "consolidation",
)


@dataclass(frozen=True)
class SiteCode:
    """A billable ICD-10-CM code of a site and what the note must say to reach it."""

    code: str
    title: str  # the official ICD-10-CM title
    weight: float = 1.0
    side: str | None = None  # "R"/"L" when the code carries laterality
    sex: str | None = None  # "F"/"M" when the code carries sex (breast)
    histology: tuple[tuple[str, str], ...] | None = None  # when the code fixes it (skin)


@dataclass(frozen=True)
class Course:
    """A second plan of the same treatment: a sequential boost, or the phase before it."""

    dose: float
    fractions: int
    technique: str
    modality: str
    target: str
    when: str = "boost"  # "boost" (after the primary plan) or "prior" (before it)
    recorded: str | None = None  # key of RECORDED_MODALITY; default from modality/technique


@dataclass(frozen=True)
class Regimen:
    """One regimen variant of a site: the prescription, and the facts that decide it."""

    key: str
    dose: float  # total, in `unit`
    fractions: int
    technique: str
    modality: str  # photon | proton | electron | brachytherapy
    target: str  # "{side}" is filled with the patient's side
    facts: tuple[str, ...]
    weight: float = 1.0
    unit: str = "Gy"
    schedule: str = "daily"
    intent: str = "curative"
    concurrent: tuple[str, ...] = ()  # ways the export writes the same systemic therapy
    extra: tuple[Course, ...] = ()
    age: tuple[int, int, int] | None = None  # low, high, mode; default the site's
    codes: tuple[str, ...] | None = None  # subset of the site's codes; default all
    female: float | None = None  # share of women; default the site's
    histology: tuple[tuple[str, str], ...] | None = None  # default the site's
    recorded: str | None = None  # key of RECORDED_MODALITY; default from modality/technique
    situation: str = ""  # the guideline situation this variant stands for

    @property
    def regimen_text(self) -> str:
        """The prescription in words, e.g. '60 Gy in 30 fractions VMAT with temozolomide'."""
        schedule = "" if self.schedule == "daily" else f" {self.schedule}"
        text = f"{self.dose:g} {self.unit} in {self.fractions} fractions{schedule} {self.technique}"
        if self.concurrent:
            text += f" with concurrent {self.concurrent[0]}"
        return text


@dataclass(frozen=True)
class Site:
    name: str
    prefixes: tuple[str, ...]  # ICD-10-CM prefixes (dotted) this site owns
    codes: tuple[SiteCode, ...]
    regimens: tuple[Regimen, ...]
    weight: float
    histology: tuple[tuple[str, str], ...]  # (full, short) names
    age: tuple[int, int, int]
    female: float
    plan_tag: str
    facts: tuple[str, ...] = ()  # stated for every variant, after the variant's own
    primary: tuple[str, ...] = field(default=())  # metastases: "from NSCLC" ...


def _rx(key: str, dose: float, fractions: int, technique: str, modality: str, target: str,
        *facts: str, **options) -> Regimen:  # fmt: skip
    if modality == "proton":
        options.setdefault("unit", "GyRBE")
    return Regimen(key, dose, fractions, technique, modality, target, facts, **options)


def _code(code: str, title: str, weight: float = 1.0, **options) -> SiteCode:
    side = options.pop("side", None)
    if side is None and re.search(r"\bright\b", title):
        side = "R"
    elif side is None and re.search(r"\bleft\b", title):
        side = "L"
    return SiteCode(code, title, weight, side=side, **options)


def _breast_codes() -> tuple[SiteCode, ...]:
    names = {
        "0": "nipple and areola", "1": "central portion", "2": "upper-inner quadrant",
        "3": "lower-inner quadrant", "4": "upper-outer quadrant", "5": "lower-outer quadrant",
        "6": "axillary tail", "8": "overlapping sites", "9": "unspecified site",
    }  # fmt: skip
    # Share of tumours per quadrant: about half arise in the upper-outer quadrant.
    weights = {"0": 0.3, "1": 0.6, "2": 1.2, "3": 0.6, "4": 4.5, "5": 0.9, "6": 0.3, "8": 0.6,
               "9": 1.0}  # fmt: skip
    codes = []
    for quadrant, name in names.items():
        for sex_digit, sex, sex_word in (("1", "F", "female"), ("2", "M", "male")):
            for side_digit, side, side_word in (("1", "R", "right"), ("2", "L", "left")):
                where = f"{side_word} {sex_word} breast"
                title = (
                    f"Malignant neoplasm of {name}, {where}"
                    if quadrant == "0"
                    else f"Malignant neoplasm of {name} of {where}"
                )
                codes.append(
                    SiteCode(
                        f"C50.{quadrant}{sex_digit}{side_digit}",
                        title,
                        weights[quadrant],
                        side=side,
                        sex=sex,
                    )  # fmt: skip
                )
    return tuple(codes)


_SCC = (("squamous cell carcinoma", "SCC"), ("squamous cell carcinoma", "SCC"),
        ("keratinizing squamous cell carcinoma", "SCC"))  # fmt: skip
_BCC = (("basal cell carcinoma", "BCC"), ("nodular basal cell carcinoma", "BCC"),
        ("infiltrative basal cell carcinoma", "BCC"))  # fmt: skip
_CSCC = (("cutaneous squamous cell carcinoma", "cSCC"), ("squamous cell carcinoma", "SCC"))
_ECOG01 = "ECOG {0-1}|ECOG 0|ECOG 1|KPS {8-10}0"
_CIS_Q3W = (
    "cisplatin 100 mg/m2 every 3 weeks",
    "cisplatin 100 mg/m2 q3w",
    "cisplatin 100mg/m2 q3w",
)
_CIS_WEEKLY = ("weekly cisplatin 40 mg/m2", "cisplatin 40 mg/m2 weekly", "cisplatin 40mg/m2 weekly")
_CARBO_TAX = ("weekly carboplatin AUC2/paclitaxel 45 mg/m2", "carboplatin AUC2 + paclitaxel "
              "45 mg/m2 weekly", "weekly carboplatin/paclitaxel")  # fmt: skip
_CAPE = ("capecitabine 825 mg/m2 BID", "capecitabine 825mg/m2 twice daily", "capecitabine")
_FU_MMC = ("5-FU/MMC", "5-FU + mitomycin C", "5FU/MMC")
_TMZ = ("TMZ 75 mg/m2 daily", "temozolomide 75 mg/m2 daily", "temozolomide 75mg/m2")
_ADT6 = ("ADT 6 months", "ADT x6 mo", "androgen deprivation 6 months")
_ADT24 = ("ADT 24 months", "ADT x24 mo", "androgen deprivation 2 years")

# One row per variant reads better than one argument per line: keep the table compact.
# fmt: off
SITES: tuple[Site, ...] = (
    Site(
        name="prostate", prefixes=("C61",), plan_tag="PROS", weight=150,
        codes=(_code("C61", "Malignant neoplasm of prostate"),),
        histology=(("adenocarcinoma", "adenoCA"), ("acinar adenocarcinoma", "adenoCA")),
        age=(50, 86, 70), female=0.0,
        regimens=(
            _rx("prostate_ldr_145", 145, 1, "LDR", "brachytherapy", "prostate",
                "low risk|NCCN low-risk|low-risk disease",
                "GS 3+3=6 (GG1)|Gleason 3+3=6|Gleason 6 (GG1)", "PSA {3.1-9.6}|PSA {3.1-9.6} ng/mL",
                "cT1c|cT1c, nonpalpable|cT2a", "gland volume {18-40} cc on TRUS|prostate {18-40} cc",
                "IPSS {2-8}", "|no prior TURP",
                "declines active surveillance|does not wish to continue surveillance",
                weight=14, situation="prostate, low risk, implant"),
            _rx("prostate_hdr_mono", 27, 2, "HDR", "brachytherapy", "prostate",
                "favourable intermediate risk", "GS 3+4=7 (GG2)|Gleason 3+4=7, grade group 2",
                "PSA {4.0-9.5}", "cT1c|cT2a", "gland {20-40} cc", "IPSS {3-9}",
                "enrolled on institutional temporary-implant monotherapy protocol|on the "
                "departmental single-modality temporary implant protocol",
                weight=3, situation="prostate, low risk, implant"),
            _rx("prostate_sbrt_3625", 36.25, 5, "SBRT", "photon", "prostate",
                "favourable intermediate risk|low or favourable intermediate risk",
                "GS 3+4=7 (GG2)|Gleason 3+4=7", "PSA {4.0-12.0}", "cT1c|cT2a",
                "prostate {25-50} cc", "IPSS {4-12}",
                "prefers a short course|lives {90-250} miles away, prefers the fewest visits"
                "|wishes to minimise the number of visits",
                weight=14, situation="prostate, low/favourable-intermediate risk"),
            _rx("prostate_chhip_60", 60, 20, "VMAT", "photon", "prostate + proximal SV",
                "favourable intermediate risk|intermediate risk (favourable)",
                "GS 3+4=7 (GG2)|Gleason 3+4=7", "PSA {6.0-15.0}", "cT1c|cT2a|cT2b",
                "gland {30-70} cc", "IPSS {5-15}", "|no ADT planned|declines ADT",
                weight=28, situation="prostate, low/favourable-intermediate risk"),
            _rx("prostate_70_28", 70, 28, "VMAT", "photon", "prostate + proximal SV",
                "favourable intermediate risk", "GS 3+4=7 (GG2)", "PSA {5.0-14.0}",
                "cT1c|cT2a", "hx of TURP {2012-2020}|status post TURP|prior TURP, IPSS {14-22}",
                weight=10, situation="prostate, low/favourable-intermediate risk"),
            _rx("prostate_78_adt", 78, 39, "IMRT", "photon", "prostate + SV",
                "unfavourable intermediate risk|intermediate risk (unfavourable)",
                "GS 4+3=7 (GG3)|Gleason 4+3=7", "PSA {10.0-19.9}", "cT2b|cT2c",
                "{3-6}/12 cores positive|{50-80}% cores positive",
                "ADT started by urology|LHRH agonist started {1-3} months ago",
                concurrent=_ADT6, weight=18,
                situation="prostate, unfavourable-intermediate/high risk"),
            _rx("prostate_pelvis_hdr_boost", 45, 25, "VMAT", "photon", "prostate + SV + pelvic nodes",
                "high risk|NCCN high-risk", "GS 4+4=8 (GG4)|GS 4+5=9 (GG5)", "PSA {20.0-45.0}",
                "cT3a|cT2c", "PSMA PET: no nodal or distant disease|cN0M0 on PSMA PET",
                "fit for combined treatment incl. temporary implant boost|gland {25-45} cc, fit "
                "for anaesthesia and an implant boost",
                concurrent=_ADT24, weight=10,
                extra=(Course(15, 1, "HDR", "brachytherapy", "prostate"),),
                situation="prostate, unfavourable-intermediate/high risk"),
            _rx("prostate_81_adt", 81, 45, "IMRT", "photon", "prostate + SV",
                "high risk|NCCN high-risk", "GS 4+4=8 (GG4)|GS 4+5=9 (GG5)", "PSA {20.0-45.0}",
                "cT3a|cT2c", "cN0M0 on PSMA PET",
                "not fit for anaesthesia (severe COPD)|on anticoagulation, not for procedures "
                "under anaesthesia",
                concurrent=_ADT24, weight=8,
                situation="prostate, unfavourable-intermediate/high risk"),
            _rx("prostate_bed_66", 66, 33, "VMAT", "photon", "prostate bed",
                "status post RALP {2014-2021}|status post radical prostatectomy ({2014-2021})",
                "pT2cN0, R0|pT2N0 (0/{6-14} LN)", "GS 3+4=7 (GG2) on pathology",
                "PSA rising to {0.2-0.4}|biochemical recurrence, PSA {0.2-0.4}",
                "PSMA PET negative|no uptake on PSMA PET", "|continent",
                intent="salvage", weight=8,
                situation="prostate bed, salvage after prostatectomy (rising PSA)"),
            _rx("prostate_bed_70_adt", 70, 35, "VMAT", "photon", "prostate bed",
                "status post RALP {2013-2020}|status post radical prostatectomy ({2013-2020})",
                "pT3bN0|pT3aN0, R1", "GS 4+3=7 (GG3)|GS 4+4=8 (GG4)",
                "PSA {0.6-1.8}|PSA doubling time {4-9} months, PSA {0.6-1.8}",
                "|local recurrence at the anastomosis on MRI",
                concurrent=_ADT6, intent="salvage", weight=5,
                situation="prostate bed, salvage after prostatectomy (rising PSA)"),
        ),
    ),
    Site(
        name="breast", prefixes=("C50",), plan_tag="BRST", weight=200, codes=_breast_codes(),
        histology=(("invasive ductal carcinoma", "IDC"), ("invasive lobular carcinoma", "ILC"),
                   ("invasive carcinoma of no special type", "IDC NST"),
                   ("invasive ductal carcinoma", "IDC")),
        age=(32, 88, 60), female=1.0,
        regimens=(
            _rx("breast_4005_boost", 40.05, 15, "3D-CRT", "photon", "{side} breast",
                "status post lumpectomy + SLNB|status post WLE and sentinel node biopsy"
                "|status post breast-conserving surgery",
                "pT1cN0(sn)|pT2N0(sn)|pT1bN0(sn)|pT2N0", "grade 3|G3|grade 2",
                "ER+/PR+/HER2-|ER-/PR-/HER2- (triple negative)|ER+ PR+ HER2 neg",
                "margins clear ({2-6} mm)|negative margins", "|premenopausal",
                intent="adjuvant", weight=24, age=(30, 49, 43),
                extra=(Course(10, 5, "electron", "electron", "{side} breast tumour bed"),),
                situation="breast after lumpectomy"),
            _rx("breast_4005_nodes", 40.05, 15, "VMAT", "photon", "{side} breast + SCF/axilla",
                "status post lumpectomy + ALND|status post WLE, axillary clearance",
                "pT2N1a ({1-3}/{10-18} nodes)|pT1cN1a ({1-3}/{8-16} LN+)", "G{2-3}",
                "ER+/PR+/HER2-|ER+/PR-/HER2-",
                "completed adjuvant chemo (EC-T)|status post adjuvant AC-T",
                intent="adjuvant", weight=16, age=(45, 80, 62),
                situation="breast after lumpectomy"),
            _rx("breast_ff_26", 26, 5, "3D-CRT", "photon", "{side} whole breast",
                "status post lumpectomy + SLNB", "pT1cN0(sn)|pT2N0(sn)|pT1bN0",
                "G{1-2}", "ER+/PR+/HER2-|ER+ PR+ HER2 negative", "margins clear",
                "|postmenopausal", intent="adjuvant", weight=28, age=(50, 85, 64),
                situation="breast after lumpectomy"),
            _rx("breast_4256", 42.56, 16, "3D-CRT", "photon", "{side} whole breast",
                "status post lumpectomy + SLNB", "pT1cN0|pT2N0", "G{1-2}",
                "ER+/PR+/HER2-|ER+/PR-/HER2-",
                "large pendulous breast, separation {26-33} cm|breast separation {26-33} cm, "
                "D cup or larger",
                intent="adjuvant", weight=8, age=(50, 82, 65), situation="breast after lumpectomy"),
            _rx("breast_apbi_30", 30, 5, "IMRT every other day", "photon",
                "{side} breast tumour bed (partial breast)",
                "status post lumpectomy + SLNB", "pT1aN0|pT1bN0(sn)", "G1", "ER+/PR+/HER2-",
                "unifocal, margins >= {3-8} mm|unifocal, widely clear margins",
                "ASTRO suitable group|meets low-risk suitability criteria",
                schedule="every other day", intent="adjuvant", weight=8, age=(60, 85, 70),
                situation="breast APBI"),
            _rx("breast_apbi_hdr", 34, 10, "HDR BID", "brachytherapy",
                "{side} breast lumpectomy cavity", "status post lumpectomy + SLNB",
                "pT1bN0|pT1cN0(sn)", "G{1-2}", "ER+/PR+/HER2-",
                "balloon catheter placed at lumpectomy|applicator catheter placed in the cavity "
                "at surgery",
                schedule="BID", intent="adjuvant", weight=3, age=(55, 85, 68),
                situation="breast APBI"),
            _rx("breast_pmrt_50", 50, 25, "VMAT", "photon", "{side} chest wall + regional nodes",
                "status post mastectomy + ALND|status post modified radical mastectomy",
                "pT2N2a ({4-9}/{12-22} nodes)|pT3N2a|pT2N3a ({10-14} nodes+)",
                "G{2-3}", "ER+/PR+/HER2-|ER+/PR-/HER2-|ER-/PR-/HER2-",
                "|status post neoadjuvant chemo, residual disease",
                intent="adjuvant", weight=14, age=(35, 80, 55), female=0.96,
                situation="breast/chest wall post-mastectomy with nodes"),
            _rx("breast_pmrt_50_her2", 50, 25, "VMAT", "photon",
                "{side} chest wall + regional nodes",
                "status post mastectomy + ALND", "pT2N2a|pT3N1a|pT2N2a ({4-8} nodes+)",
                "ER-/PR-/HER2+ (IHC 3+)|HER2 3+, ER/PR negative|ER+/PR-/HER2+",
                "on maintenance anti-HER2 therapy|HER2-directed therapy ongoing",
                concurrent=("trastuzumab 6 mg/kg every 3 weeks", "trastuzumab q3w",
                            "trastuzumab"),
                intent="adjuvant", weight=4, age=(35, 75, 52), female=0.97,
                situation="breast/chest wall post-mastectomy with nodes"),
            _rx("breast_pmrt_4005", 40.05, 15, "VMAT", "photon",
                "{side} chest wall + regional nodes",
                "status post mastectomy + SLNB|status post simple mastectomy, no reconstruction",
                "pT2N1a ({1-3} nodes+)|pT1cN1a|pT3N1a", "G{1-3}", "ER+/PR+/HER2-",
                "no reconstruction|declined reconstruction",
                intent="adjuvant", weight=8, age=(40, 85, 63), female=0.96,
                situation="breast/chest wall post-mastectomy with nodes"),
            _rx("breast_pmrt_proton", 50, 25, "PBS", "proton",
                "{side} chest wall + regional nodes incl. IMN",
                "status post mastectomy + ALND", "pT2N2a|pT3N1a|pT2N1a",
                "FDG-avid internal mammary node on staging PET|IMN involvement on PET-CT",
                "|history of cardiomyopathy (anthracycline)|pre-existing cardiac disease, LVEF "
                "{40-50}%", "ER+/PR+/HER2-|ER-/PR-/HER2+",
                intent="adjuvant", weight=7, age=(30, 65, 45),
                codes=tuple(f"C50.{q}12" for q in "0124568"),
                situation="breast/chest wall post-mastectomy with nodes (left, IMN)"),
            _rx("breast_boost_10", 10, 5, "electron", "electron", "{side} breast tumour bed",
                "completed whole-breast RT elsewhere|completed whole breast irradiation at an "
                "outside centre",
                "referred for tumour-bed boost|referred here for boost to the lumpectomy cavity",
                "cavity {1.5-3.5} cm deep on CT|seroma depth {1.5-3.5} cm", "pT1cN0|pT2N0",
                "margins clear|negative margins ({3-8} mm)",
                intent="adjuvant", weight=6, age=(35, 75, 52),
                situation="breast tumour-bed boost"),
            _rx("breast_boost_16", 16, 8, "electron", "electron", "{side} breast tumour bed",
                "completed whole-breast RT elsewhere|completed whole breast irradiation at an "
                "outside centre",
                "referred for tumour-bed boost|referred here for boost to the lumpectomy cavity",
                "cavity {1.5-3.5} cm deep on CT|seroma depth {1.5-3.5} cm", "pT1cN0|pT2N0",
                "close margin ({1-2} mm)|focally close margin",
                intent="adjuvant", weight=3, age=(35, 75, 52),
                situation="breast tumour-bed boost"),
        ),
    ),
    Site(
        name="lung", prefixes=("C34",), plan_tag="LUNG", weight=120,
        codes=(
            _code("C34.11", "Malignant neoplasm of upper lobe, right bronchus or lung", 3),
            _code("C34.12", "Malignant neoplasm of upper lobe, left bronchus or lung", 2.5),
            _code("C34.2", "Malignant neoplasm of middle lobe, bronchus or lung", 0.7, side="R"),
            _code("C34.31", "Malignant neoplasm of lower lobe, right bronchus or lung", 2),
            _code("C34.32", "Malignant neoplasm of lower lobe, left bronchus or lung", 1.8),
            _code("C34.01", "Malignant neoplasm of right main bronchus", 0.3),
            _code("C34.02", "Malignant neoplasm of left main bronchus", 0.3),
            _code("C34.81", "Malignant neoplasm of overlapping sites of right bronchus and lung",
                  0.2),
            _code("C34.82", "Malignant neoplasm of overlapping sites of left bronchus and lung",
                  0.2),
            _code("C34.91", "Malignant neoplasm of unspecified part of right bronchus or lung",
                  0.4),
            _code("C34.92", "Malignant neoplasm of unspecified part of left bronchus or lung",
                  0.4),
        ),
        histology=(("adenocarcinoma", "adenoCA"), ("squamous cell carcinoma", "SCC"),
                   ("non-small cell lung cancer", "NSCLC"), ("adenocarcinoma", "NSCLC adeno")),
        age=(45, 88, 69), female=0.47,
        regimens=(
            _rx("lung_sbrt_54", 54, 3, "SBRT", "photon", "{side} lung lesion",
                "cT1bN0M0|cT1cN0M0|cT2aN0M0",
                "peripheral, not abutting the chest wall|peripheral nodule, {2-5} cm from the "
                "chest wall",
                "PET-CT: no nodal uptake|EBUS negative",
                "medically inoperable (FEV1 {30-48}%)|declined surgery|COPD GOLD {3-4}, not a "
                "surgical candidate", "ECOG {0-2}",
                weight=12, situation="NSCLC stage I peripheral, inoperable"),
            _rx("lung_sbrt_48", 48, 4, "SBRT", "photon", "{side} lung lesion",
                "cT1cN0M0|cT2aN0M0", "peripheral, abutting the chest wall|peripheral, "
                "broad contact with the chest wall", "PET-CT: no nodal uptake",
                "medically inoperable (FEV1 {30-48}%)|declined surgery", "ECOG {0-2}",
                weight=6, situation="NSCLC stage I peripheral, inoperable"),
            _rx("lung_sbrt_50_central", 50, 5, "SBRT", "photon", "{side} lung lesion",
                "cT1cN0M0|cT2aN0M0",
                "central, within 2 cm of the proximal bronchial tree|central lesion near the "
                "proximal bronchial tree",
                "medically inoperable|declined lobectomy", "ECOG {0-2}",
                weight=5, situation="NSCLC stage I central"),
            _rx("lung_sbrt_60_8", 60, 8, "SBRT", "photon", "{side} lung lesion",
                "cT1cN0M0|cT2aN0M0",
                "ultracentral, abutting the main bronchus|ultra-central (overlaps the mainstem "
                "bronchus)", "medically inoperable", "ECOG {0-2}",
                weight=3, situation="NSCLC stage I central"),
            _rx("lung_sbrt_34", 34, 1, "SBRT", "photon", "{side} lung lesion",
                "cT1aN0M0|cT1bN0M0",
                "small peripheral nodule ({1.0-2.0} cm), away from the chest wall",
                "frail, ECOG 2, travel difficult|ECOG 2, lives alone far from the centre",
                weight=3, situation="NSCLC stage I peripheral, inoperable"),
            _rx("lung_stage3_60", 60, 30, "IMRT", "photon", "{side} lung primary + involved nodes",
                "stage IIIA|stage IIIB|stage IIIA (cT2bN2M0)|stage IIIB (cT3N2M0)|cT4N1M0, "
                "stage IIIA",
                "unresectable per MDT|N2 multistation, unresectable", _ECOG01,
                "PD-L1 {1-90}%|PD-L1 TPS {1-90}%", "|EGFR/ALK negative",
                "durvalumab planned to follow|consolidation durvalumab planned",
                concurrent=_CARBO_TAX, intent="definitive", weight=26,
                situation="NSCLC stage III unresectable"),
            _rx("lung_palliative_20", 20, 5, "3D-CRT", "photon", "{side} lung / hilum",
                "stage IV|stage IVB|cT4N3M1c",
                "complains of hemoptysis|complains of dyspnoea from bronchial compression"
                "|symptomatic hemoptysis",
                "ECOG {2-3}", "|best supportive care otherwise",
                intent="palliative", weight=7, situation="NSCLC palliative (not in guideline table)"),
            _rx("lung_sclc_45_bid", 45, 30, "3D-CRT BID", "photon", "{side} lung primary + nodes",
                "limited-stage|limited stage (cT2N2M0)|limited stage (cT1cN2M0)",
                "ECOG {0-1}", "MRI brain negative",
                "chemo to start with cycle {1-2}|cisplatin-eligible",
                schedule="BID", concurrent=("cisplatin/etoposide", "cisplatin + etoposide",
                                            "cisplatin/VP-16"),
                intent="definitive", weight=6,
                histology=(("small cell lung cancer", "SCLC"), ("small cell carcinoma", "SCLC")),
                situation="SCLC limited stage"),
            _rx("lung_sclc_66", 66, 33, "IMRT", "photon", "{side} lung primary + nodes",
                "limited-stage|limited stage (cT2N2M0)", "ECOG {1-2}",
                "COPD, lives {60-150} miles away: cannot attend twice a day|unable to attend "
                "twice a day",
                concurrent=("cisplatin/etoposide", "cisplatin + etoposide"),
                intent="definitive", weight=4,
                histology=(("small cell lung cancer", "SCLC"), ("small cell carcinoma", "SCLC")),
                situation="SCLC limited stage"),
            _rx("lung_sclc_pci", 25, 10, "3D-CRT", "photon", "whole brain (PCI)",
                "limited-stage, complete response after chemoRT|LS-SCLC status post concurrent "
                "chemoRT, CR", "MRI brain negative", "ECOG {0-1}",
                intent="prophylactic", weight=3,
                histology=(("small cell lung cancer", "SCLC"), ("small cell carcinoma", "SCLC")),
                situation="SCLC limited stage (PCI)"),
            _rx("lung_endobronchial_14", 14, 2, "HDR weekly", "brachytherapy",
                "{side} main bronchus",
                "recurrent endobronchial tumour after previous chest RT|endobronchial recurrence "
                "following prior chest RT", "complains of hemoptysis and cough|obstructive "
                "symptoms", "ECOG {1-3}",
                schedule="weekly", intent="palliative", weight=1.5,
                codes=("C34.01", "C34.02"), situation="bronchus palliation"),
        ),
    ),
    Site(
        # The lingual tonsil (C02.4), soft palate (C05.1) and uvula (C05.2) are oropharynx
        # (AJCC 8th), though their categories are tongue and palate.
        name="oropharynx", prefixes=("C01", "C09", "C10", "C02.4", "C05.1", "C05.2"),
        plan_tag="OPX", weight=40,
        codes=(
            _code("C09.9", "Malignant neoplasm of tonsil, unspecified", 4),
            _code("C09.0", "Malignant neoplasm of tonsillar fossa", 1),
            _code("C09.1", "Malignant neoplasm of tonsillar pillar (anterior) (posterior)", 0.6),
            _code("C01", "Malignant neoplasm of base of tongue", 3),
            _code("C10.9", "Malignant neoplasm of oropharynx, unspecified", 0.6),
            _code("C10.0", "Malignant neoplasm of vallecula", 0.4),
            _code("C10.2", "Malignant neoplasm of lateral wall of oropharynx", 0.4),
        ),
        histology=_SCC, age=(38, 84, 61), female=0.2,
        facts=("|never smoker|{10-50} pack-year smoker|ex-smoker",),
        regimens=(
            _rx("opx_crt_q3w", 70, 35, "VMAT", "photon", "oropharynx + bilat neck",
                "cT2N1M0|cT3N1M0|cT2N2M0|cT4aN1M0", "p16+|p16 positive|HPV-associated (p16+)"
                "|p16 negative", _ECOG01,
                "eGFR {75-110}, audiogram normal|normal renal function and hearing",
                concurrent=_CIS_Q3W, intent="definitive", weight=14, age=(35, 60, 52),
                situation="oropharynx definitive"),
            _rx("opx_crt_weekly", 70, 35, "VMAT", "photon", "oropharynx + bilat neck",
                "cT2N1M0|cT3N1M0|cT2N2M0|cT4aN1M0", "p16+|p16 positive|p16 negative", _ECOG01,
                "eGFR {60-90}|creatinine clearance {60-90} mL/min",
                concurrent=_CIS_WEEKLY, intent="definitive", weight=14, age=(61, 76, 67),
                situation="oropharynx definitive"),
            _rx("opx_rt_alone", 70, 35, "IMRT", "photon", "oropharynx + bilat neck",
                "cT1N1M0|cT2N0M0|cT2N1M0", "p16+|p16 negative",
                "cisplatin-ineligible (eGFR {30-45})|not a cisplatin candidate: hearing loss, "
                "CKD 3b", "ECOG {1-2}",
                intent="definitive", weight=6, age=(60, 88, 75),
                situation="oropharynx definitive"),
            _rx("opx_proton", 70, 35, "IMPT", "proton", "oropharynx + bilat neck",
                "cT2N1M0|cT1N2M0", "p16+", "never smoker", "ECOG 0",
                "enrolled on the institutional xerostomia-sparing protocol, insurance approval "
                "obtained|on the dysphagia/xerostomia-sparing protocol",
                concurrent=_CIS_WEEKLY, intent="definitive", weight=4, age=(35, 62, 50),
                situation="oropharynx definitive (proton)"),
            _rx("opx_postop_60", 60, 30, "IMRT", "photon", "tumour bed + ipsilateral neck",
                "status post TORS + ipsilateral neck dissection|status post transoral resection "
                "and neck dissection", "pT2N1 (1/{15-30})|pT1N1",
                "margins negative, no ENE|R0, ENE-", "PNI+|LVI+",
                intent="adjuvant", weight=4, situation="oropharynx postoperative"),
            _rx("opx_postop_66_cis", 66, 33, "IMRT", "photon", "tumour bed + bilat neck",
                "status post TORS + neck dissection", "pT2N2|pT3N1",
                "ENE+|positive margin (R1)|ENE present, close margin",
                concurrent=_CIS_Q3W, intent="adjuvant", weight=3,
                situation="oropharynx postoperative"),
        ),
    ),
    Site(
        name="larynx", prefixes=("C32",), plan_tag="LARX", weight=18,
        codes=(_code("C32.0", "Malignant neoplasm of glottis", 3),
               _code("C32.1", "Malignant neoplasm of supraglottis", 1.2)),
        histology=_SCC, age=(45, 86, 66), female=0.18,
        facts=("|active smoker, {20-60} pack-years|ex-smoker",),
        regimens=(
            _rx("larynx_t1_63", 63, 28, "3D-CRT", "photon", "larynx",
                "cT1aN0M0|T1a N0|cT1bN0M0", "normal cord mobility|mobile cords", "ECOG {0-1}",
                intent="definitive", weight=8, codes=("C32.0",), situation="larynx glottic T1/T2"),
            _rx("larynx_t2_6525", 65.25, 29, "IMRT", "photon", "larynx",
                "cT2N0M0|T2N0, impaired cord mobility", "supraglottic extension|subglottic "
                "extension", "ECOG {0-1}",
                intent="definitive", weight=5, codes=("C32.0",), situation="larynx glottic T1/T2"),
            _rx("larynx_t2_66", 66, 33, "IMRT", "photon", "larynx",
                "cT2N0M0", "anterior commissure involvement|involves the anterior commissure",
                "ECOG {0-1}", intent="definitive", weight=2, codes=("C32.0",),
                situation="larynx glottic T1/T2"),
            _rx("larynx_supraglottic_crt", 70, 35, "VMAT", "photon", "larynx + bilat neck",
                "cT3N1M0|cT3N2bM0|cT2N2M0", "wishes larynx preservation|larynx preservation "
                "approach chosen", _ECOG01, "cisplatin-eligible",
                concurrent=_CIS_Q3W, intent="definitive", weight=6, codes=("C32.1",),
                situation="larynx locally advanced (larynx preservation)"),
        ),
    ),
    Site(
        name="oral_cavity", prefixes=("C02", "C03", "C04", "C05.0", "C06"), plan_tag="ORAL",
        weight=18,
        codes=(
            _code("C02.1", "Malignant neoplasm of border of tongue", 3),
            _code("C02.9", "Malignant neoplasm of tongue, unspecified", 1),
            _code("C04.0", "Malignant neoplasm of anterior floor of mouth", 1),
            _code("C04.9", "Malignant neoplasm of floor of mouth, unspecified", 0.7),
            _code("C06.0", "Malignant neoplasm of cheek mucosa", 1.2),
            _code("C03.1", "Malignant neoplasm of lower gum", 0.6),
        ),
        histology=_SCC, age=(38, 86, 63), female=0.35,
        regimens=(
            _rx("oral_postop_60", 60, 30, "IMRT", "photon", "tumour bed + ipsilateral neck",
                "status post resection + neck dissection|status post wide local excision + SND"
                "|status post composite resection + neck dissection",
                "pT2N1|pT3N0|pT2N0", "margins clear ({5-9} mm)|R0",
                "PNI+|LVI+|DOI {6-12} mm, PNI+",
                intent="adjuvant", weight=6, situation="oral cavity postoperative"),
            _rx("oral_postop_66_cis", 66, 33, "IMRT", "photon", "tumour bed + bilat neck",
                "status post resection + bilateral neck dissection", "pT3N2b|pT2N2a|pT4aN1",
                "ENE+|positive margin|R1 margin", _ECOG01,
                concurrent=_CIS_Q3W, intent="adjuvant", weight=4,
                situation="oral cavity postoperative"),
        ),
    ),
    Site(
        name="nasopharynx", prefixes=("C11",), plan_tag="NPX", weight=8,
        codes=(_code("C11.9", "Malignant neoplasm of nasopharynx, unspecified", 2),
               _code("C11.2", "Malignant neoplasm of lateral wall of nasopharynx", 1),
               _code("C11.1", "Malignant neoplasm of posterior wall of nasopharynx", 0.5)),
        histology=(("non-keratinizing carcinoma", "NPC, non-keratinizing"),
                   ("undifferentiated carcinoma (WHO type III)", "NPC WHO III")),
        age=(25, 75, 50), female=0.3,
        regimens=(
            _rx("npx_70_33", 70, 33, "VMAT", "photon", "nasopharynx + bilat neck",
                "cT3N2M0, stage III|cT2N2M0|cT4N1M0, stage IVA",
                "EBV DNA {500-20000} copies/mL|plasma EBV DNA elevated",
                "induction gemcitabine/cisplatin x3 completed|status post induction GP x3",
                _ECOG01, concurrent=_CIS_Q3W, intent="definitive", weight=5,
                situation="nasopharynx"),
            _rx("npx_70_35", 70, 35, "IMRT", "photon", "nasopharynx + bilat neck",
                "cT2N1M0, stage II|cT1N1M0, stage II", "no induction planned", _ECOG01,
                concurrent=_CIS_WEEKLY, intent="definitive", weight=2, situation="nasopharynx"),
            _rx("npx_proton", 70, 33, "PBS", "proton", "nasopharynx + bilat neck",
                "cT4N1M0|cT4N0M0",
                "intracranial extension to the cavernous sinus, abutting the optic chiasm|skull "
                "base erosion with tumour abutting the chiasm and temporal lobes",
                "ECOG 0", "induction GP x3 completed",
                concurrent=_CIS_Q3W, intent="definitive", weight=2.5,
                situation="nasopharynx (proton)"),
        ),
    ),
    Site(
        name="brain", prefixes=("C71",), plan_tag="CNS", weight=42,
        codes=(
            _code("C71.0", "Malignant neoplasm of cerebrum, except lobes and ventricles", 1),
            _code("C71.1", "Malignant neoplasm of frontal lobe", 3),
            _code("C71.2", "Malignant neoplasm of temporal lobe", 3),
            _code("C71.3", "Malignant neoplasm of parietal lobe", 2),
            _code("C71.4", "Malignant neoplasm of occipital lobe", 0.8),
            _code("C71.8", "Malignant neoplasm of overlapping sites of brain", 0.6),
            _code("C71.6", "Malignant neoplasm of cerebellum", 1),
            _code("C71.7", "Malignant neoplasm of brain stem", 1),
            _code("C71.9", "Malignant neoplasm of brain, unspecified", 0.5),
        ),
        histology=(("glioblastoma, IDH-wildtype", "GBM"), ("glioblastoma", "GBM"),
                   ("WHO grade 4 glioblastoma", "GBM")),
        age=(30, 80, 60), female=0.42,
        regimens=(
            _rx("gbm_stupp_60", 60, 30, "VMAT", "photon", "resection cavity + FLAIR",
                "status post gross total resection|status post subtotal resection|status post "
                "biopsy only", "MGMT methylated|MGMT unmethylated|MGMT promoter methylated",
                "KPS {7-10}0", "|IDH-wt",
                concurrent=_TMZ, intent="definitive", weight=14, age=(30, 70, 58),
                codes=("C71.0", "C71.1", "C71.2", "C71.3", "C71.4", "C71.8"),
                situation="glioblastoma, age <= 70"),
            _rx("gbm_elderly_4005", 40.05, 15, "VMAT", "photon", "resection cavity + FLAIR",
                "status post resection|status post biopsy", "MGMT methylated|MGMT unmethylated",
                "KPS {7-8}0", concurrent=_TMZ, intent="definitive", weight=6, age=(71, 85, 76),
                codes=("C71.0", "C71.1", "C71.2", "C71.3", "C71.4", "C71.8"),
                situation="glioblastoma, elderly/frail"),
            _rx("gbm_frail_25", 25, 5, "3D-CRT", "photon", "enhancing tumour + margin",
                "status post biopsy|biopsy only", "KPS {4-6}0", "MGMT unmethylated|MGMT unknown",
                "frail|dependent for ADLs", intent="palliative", weight=3, age=(71, 88, 79),
                codes=("C71.0", "C71.1", "C71.2", "C71.3", "C71.4", "C71.8"),
                situation="glioblastoma, elderly/frail"),
            _rx("lgg_54", 54, 30, "VMAT", "photon", "residual tumour + cavity",
                "status post subtotal resection, residual FLAIR signal|status post STR",
                "high-risk LGG (age over 40, residual)|residual disease after surgery",
                "KPS {8-10}0", "adjuvant TMZ to follow|PCV to follow",
                intent="adjuvant", weight=3, age=(41, 65, 48),
                codes=("C71.0", "C71.1", "C71.2", "C71.3", "C71.4"),
                histology=(("IDH-mutant astrocytoma, WHO grade 2", "LGG (astrocytoma G2)"),
                           ("diffuse astrocytoma, IDH-mutant, grade 2", "astro G2")),
                situation="low-grade glioma"),
            _rx("lgg_504", 50.4, 28, "VMAT", "photon", "residual tumour + cavity",
                "status post subtotal resection|status post STR", "1p/19q codeleted",
                "KPS {8-10}0", "PCV to follow",
                intent="adjuvant", weight=2, age=(36, 65, 46),
                codes=("C71.0", "C71.1", "C71.2", "C71.3"),
                histology=(("oligodendroglioma, IDH-mutant and 1p/19q-codeleted, grade 2",
                            "oligodendroglioma G2"),),
                situation="low-grade glioma"),
            _rx("lgg_proton", 54, 30, "PBS", "proton", "residual tumour + cavity",
                "status post subtotal resection|status post STR",
                "young adult with long expected survival, tumour near the optic chiasm|tumour "
                "abutting the chiasm and hippocampus, long expected survival", "KPS {9-10}0",
                intent="adjuvant", weight=2, age=(18, 35, 27),
                codes=("C71.0", "C71.1", "C71.2"),
                histology=(("IDH-mutant astrocytoma, WHO grade 2", "LGG (astrocytoma G2)"),),
                situation="low-grade glioma (proton)"),
            _rx("medullo_standard", 23.4, 13, "PBS", "proton", "craniospinal axis",
                "status post gross total resection|status post GTR, residual under 1.5 cm2",
                "M0 (CSF cytology and spine MRI negative)|M0", "standard risk|average risk",
                "|WNT-activated|SHH-activated|group 4",
                concurrent=("weekly vincristine", "vincristine weekly"),
                extra=(Course(30.6, 17, "PBS", "proton", "posterior fossa / tumour bed"),),
                intent="curative", weight=2.5, age=(4, 16, 9), codes=("C71.6",),
                histology=(("medulloblastoma", "MB"), ("medulloblastoma", "medulloblastoma")),
                situation="paediatric medulloblastoma"),
            _rx("medullo_high_risk", 36, 20, "PBS", "proton", "craniospinal axis",
                "M+ (spinal drop metastases)|M1 disease (positive CSF cytology)|residual over "
                "1.5 cm2", "high risk",
                concurrent=("weekly vincristine", "vincristine weekly"),
                extra=(Course(18, 10, "PBS", "proton", "posterior fossa / tumour bed"),),
                intent="curative", weight=1.5, age=(4, 16, 8), codes=("C71.6",),
                histology=(("medulloblastoma", "MB"),), situation="paediatric medulloblastoma"),
            _rx("ependymoma_594", 59.4, 33, "PBS", "proton", "tumour bed",
                "status post gross total resection|status post near-total resection",
                "WHO grade {2-3}", "M0, spine MRI clear",
                intent="adjuvant", weight=2, age=(2, 17, 7), codes=("C71.7", "C71.9"),
                histology=(("ependymoma", "ependymoma"), ("posterior fossa ependymoma",
                                                         "PF ependymoma")),
                situation="paediatric ependymoma"),
        ),
    ),
    Site(
        name="meningioma", prefixes=("D32",), plan_tag="MEN", weight=12,
        codes=(_code("D32.0", "Benign neoplasm of cerebral meninges"),),
        histology=(("meningioma", "meningioma"), ("WHO grade 1 meningioma", "G1 meningioma")),
        age=(35, 86, 62), female=0.7,
        regimens=(
            _rx("meningioma_54", 54, 30, "IMRT", "photon", "meningioma + dural tail",
                "cavernous sinus location, not resectable|residual after STR, progressive on MRI",
                "{2.5-4.5} cm", "KPS {7-10}0", "|diplopia|visual symptoms",
                intent="definitive", weight=3, situation="meningioma"),
            _rx("meningioma_srs_14", 14, 1, "SRS", "photon", "meningioma",
                "convexity lesion {1.2-2.8} cm, growing on serial MRI|small ({1.2-2.8} cm) "
                "convexity lesion, enlarging", "away from the optic apparatus|over 3 mm from the "
                "optic chiasm", "KPS {8-10}0",
                intent="definitive", weight=2, recorded="photon_gamma", situation="meningioma"),
        ),
    ),
    Site(
        name="brain_metastases", prefixes=("C79.3",), plan_tag="BMET", weight=60,
        codes=(_code("C79.31", "Secondary malignant neoplasm of brain"),),
        histology=(("brain metastases", "brain mets"), ("intracranial metastases", "brain mets"),
                   ("cerebral metastases", "mets to brain")),
        primary=("from NSCLC", "from lung adenocarcinoma", "from breast cancer (HER2+)",
                 "from melanoma", "from renal cell carcinoma", "from breast cancer"),
        age=(35, 86, 64), female=0.5,
        regimens=(
            _rx("bmet_srs_24", 24, 1, "SRS", "photon", "brain metastases",
                "{1-3} lesions, largest {0.6-1.9} cm|{1-3} metastases, all under 2 cm",
                "KPS {7-10}0", "extracranial disease controlled|stable extracranial disease",
                intent="palliative", weight=6, recorded="photon_stereotactic",
                situation="brain metastases, 1-4 lesions"),
            _rx("bmet_srs_20", 20, 1, "SRS", "photon", "brain metastases",
                "{1-4} lesions, largest {2.1-2.9} cm", "KPS {7-10}0",
                "extracranial disease controlled|stable extracranial disease",
                intent="palliative", weight=3, recorded="photon_stereotactic",
                situation="brain metastases, 1-4 lesions"),
            _rx("bmet_cavity_27", 27, 3, "SRS", "photon", "resection cavity",
                "status post resection of the dominant lesion, cavity {2.5-4.0} cm|post-operative "
                "cavity {2.5-4.0} cm", "KPS {7-10}0",
                intent="palliative", weight=3, recorded="photon_stereotactic",
                situation="brain metastases, 1-4 lesions"),
            _rx("bmet_30_5", 30, 5, "SRS", "photon", "brain metastasis",
                "single lesion {3.1-4.0} cm, not resectable|one {3.1-4.0} cm lesion near eloquent "
                "cortex", "KPS {7-10}0",
                intent="palliative", weight=2, recorded="photon_stereotactic",
                situation="brain metastases, 1-4 lesions"),
            _rx("bmet_hawbrt_30", 30, 10, "VMAT", "photon",
                "whole brain (hippocampal avoidance)",
                "{10-25} lesions|innumerable (over 10) metastases|multiple (over 10) brain "
                "metastases", "KPS {7-9}0",
                "no lesions within 5 mm of the hippocampi|hippocampi uninvolved",
                concurrent=("memantine 20 mg daily", "memantine"),
                intent="palliative", weight=6, situation="brain metastases, many"),
            _rx("bmet_wbrt_20", 20, 5, "3D-CRT", "photon", "whole brain",
                "multiple metastases ({5-20})|numerous metastases", "KPS {4-6}0",
                "progressive extracranial disease, poor prognosis|uncontrolled systemic disease",
                intent="palliative", weight=4, situation="brain metastases, many"),
        ),
    ),
    Site(
        name="bone_metastases", prefixes=("C79.5",), plan_tag="BONE", weight=90,
        codes=(_code("C79.51", "Secondary malignant neoplasm of bone"),),
        histology=(("bone metastases", "bone mets"), ("osseous metastases", "osseous mets"),
                   ("metastatic disease to bone", "bony mets")),
        primary=("from prostate cancer", "from breast cancer", "from NSCLC",
                 "from renal cell carcinoma", "from prostate adenocarcinoma"),
        age=(40, 90, 68), female=0.45,
        regimens=(
            _rx("bone_8_1", 8, 1, "3D-CRT", "photon", "painful bone metastasis",
                "painful metastases to L2, T11|pain from a {side} iliac metastasis|painful rib "
                "metastasis|painful {side} sacral ala metastasis|painful T{4-12} metastasis",
                "no cord compression|no neurological deficit", "ECOG {2-3}|limited prognosis",
                intent="palliative", weight=30, situation="bone metastasis, painful"),
            _rx("bone_20_5", 20, 5, "3D-CRT", "photon", "spine metastasis",
                "epidural extension at T{4-12} with cord compression, on dexamethasone|MSCC at "
                "T{4-12}, not a surgical candidate|neuropathic pain with soft-tissue extension "
                "at L{1-5}", "ECOG {2-3}",
                intent="palliative", weight=12, situation="bone metastasis, painful"),
            _rx("bone_30_10", 30, 10, "3D-CRT", "photon", "{side} femur / humerus",
                "status post IM nailing of a pathological fracture of the {side} femur|status "
                "post fixation of a {side} humerus pathological fracture", "ECOG {1-2}",
                intent="palliative", weight=6, situation="bone metastasis, painful (post-op)"),
            _rx("bone_spine_sbrt_24", 24, 2, "SBRT", "photon", "spine metastasis",
                "oligometastatic (up to 3 sites)|oligometastatic disease",
                "spine metastasis at T{4-12}|L{1-5} vertebral body metastasis",
                "no epidural disease (Bilsky 0)|Bilsky 0-1", "ECOG {0-1}",
                intent="palliative", weight=6, recorded="photon_stereotactic",
                situation="bone metastasis (spine, oligometastatic)"),
        ),
    ),
    Site(
        name="rectum", prefixes=("C20",), plan_tag="RECT", weight=35,
        codes=(_code("C20", "Malignant neoplasm of rectum"),),
        histology=(("adenocarcinoma", "adenoCA"),), age=(35, 86, 64), female=0.4,
        regimens=(
            _rx("rectum_lc_504", 50.4, 28, "IMRT", "photon", "rectum + mesorectum + pelvic nodes",
                "cT3N1M0|cT3cN1|cT4aN0M0", "MRF threatened|CRM involved on MRI|EMVI+",
                "{3-9} cm from the anal verge", "TME planned after|surgery planned to follow",
                _ECOG01, concurrent=_CAPE, intent="neoadjuvant", weight=12,
                situation="rectum"),
            _rx("rectum_sc_25", 25, 5, "3D-CRT", "photon", "rectum + mesorectum + pelvic nodes",
                "cT3N0M0, MRF clear|cT3bN1, MRF clear",
                "TNT with consolidation CAPOX (RAPIDO approach)|elderly, unfit for chemo, surgery "
                "planned", "ECOG {0-2}",
                intent="neoadjuvant", weight=8, situation="rectum (short course)"),
        ),
    ),
    Site(
        name="anal_canal", prefixes=("C21",), plan_tag="ANAL", weight=10,
        codes=(_code("C21.1", "Malignant neoplasm of anal canal", 3),
               _code("C21.0", "Malignant neoplasm of anus, unspecified", 1)),
        histology=_SCC, age=(40, 86, 62), female=0.65,
        regimens=(
            _rx("anal_54", 54, 30, "IMRT", "photon", "anal primary + pelvic/inguinal nodes",
                "cT3N1M0|cT2N1M0|cT4N0M0", "|HIV negative", _ECOG01,
                concurrent=_FU_MMC, intent="definitive", weight=6, situation="anal canal"),
            _rx("anal_504", 50.4, 28, "IMRT", "photon", "anal primary + pelvic/inguinal nodes",
                "cT2N0M0", "tumour {2.1-4.9} cm", _ECOG01,
                concurrent=_FU_MMC, intent="definitive", weight=4, situation="anal canal"),
        ),
    ),
    Site(
        name="esophagus", prefixes=("C15",), plan_tag="ESOP", weight=15,
        codes=(_code("C15.5", "Malignant neoplasm of lower third of esophagus", 3),
               _code("C15.4", "Malignant neoplasm of middle third of esophagus", 1.5),
               _code("C15.3", "Malignant neoplasm of upper third of esophagus", 0.7)),
        histology=(("adenocarcinoma", "adenoCA"), ("squamous cell carcinoma", "SCC")),
        age=(45, 86, 66), female=0.25,
        regimens=(
            _rx("esophagus_cross", 41.4, 23, "IMRT", "photon", "esophageal primary + nodes",
                "cT3N1M0|cT2N1M0|cT3N0M0", "surgical candidate, esophagectomy planned|Ivor Lewis "
                "esophagectomy planned to follow", _ECOG01,
                concurrent=_CARBO_TAX, intent="neoadjuvant", weight=8,
                codes=("C15.4", "C15.5"), situation="oesophagus (neoadjuvant)"),
            _rx("esophagus_def_504", 50.4, 28, "IMRT", "photon", "esophageal primary + nodes",
                "cT3N1M0|cT4aN0M0", "medically inoperable|declines surgery|not a surgical "
                "candidate", "ECOG {1-2}",
                concurrent=_CARBO_TAX, intent="definitive", weight=5,
                situation="oesophagus (definitive)"),
            _rx("esophagus_palliative_hdr", 16, 2, "HDR weekly", "brachytherapy", "esophagus",
                "stage IV|metastatic disease", "progressive dysphagia|dysphagia to solids",
                "ECOG {2-3}", "|declined a stent",
                schedule="weekly", intent="palliative", weight=1,
                situation="oesophagus palliation"),
        ),
    ),
    Site(
        name="pancreas", prefixes=("C25",), plan_tag="PANC", weight=12,
        codes=(_code("C25.0", "Malignant neoplasm of head of pancreas", 3),
               _code("C25.1", "Malignant neoplasm of body of pancreas", 1),
               _code("C25.2", "Malignant neoplasm of tail of pancreas", 0.5)),
        histology=(("adenocarcinoma", "PDAC"), ("ductal adenocarcinoma", "PDAC")),
        age=(45, 86, 67), female=0.48,
        regimens=(
            _rx("pancreas_sbrt_33", 33, 5, "SBRT", "photon", "pancreatic tumour + vessel interface",
                "borderline resectable (SMV abutment)|borderline resectable",
                "status post mFOLFIRINOX x{4-8}", "CA19-9 {30-400}",
                "surgical exploration planned after",
                intent="neoadjuvant", weight=4, situation="pancreas"),
            _rx("pancreas_sbrt_40", 40, 5, "SBRT", "photon", "pancreatic tumour",
                "locally advanced, SMA encasement over 180 degrees|unresectable (celiac "
                "encasement)", "status post mFOLFIRINOX x{6-8}, no progression", _ECOG01,
                intent="definitive", weight=3, situation="pancreas"),
            _rx("pancreas_crt_504", 50.4, 28, "IMRT", "photon", "pancreatic tumour + nodes",
                "locally advanced, unresectable", "status post gemcitabine/nab-paclitaxel "
                "x{4-6}", "ECOG {1-2}", "|duodenal invasion",
                concurrent=_CAPE, intent="definitive", weight=4, situation="pancreas"),
        ),
    ),
    Site(
        name="liver", prefixes=("C22",), plan_tag="LIVR", weight=8,
        codes=(_code("C22.0", "Liver cell carcinoma"),),
        histology=(("hepatocellular carcinoma", "HCC"),), age=(45, 86, 66), female=0.25,
        regimens=(
            _rx("hcc_sbrt_40", 40, 5, "SBRT", "photon", "liver lesion",
                "single {3.1-5.0} cm lesion in segment {2-8}", "Child-Pugh A{5-6}",
                "not a candidate for resection or ablation|unsuitable for RFA (subcapsular, near "
                "vessels)", intent="definitive", weight=3, situation="hepatocellular carcinoma"),
            _rx("hcc_sbrt_50", 50, 5, "SBRT", "photon", "liver lesion",
                "single {1.5-3.0} cm lesion in segment {2-8}", "Child-Pugh A5",
                "bridge to transplant|recurrence after TACE",
                intent="definitive", weight=2, situation="hepatocellular carcinoma"),
            _rx("hcc_proton_675", 67.5, 15, "PBS", "proton", "liver lesion",
                "large {6.0-11.0} cm lesion|{6.0-11.0} cm mass with portal vein tumour thrombus",
                "Child-Pugh A{5-6}|Child-Pugh B7", "AFP {20-3000}",
                intent="definitive", weight=3, situation="hepatocellular carcinoma (proton)"),
        ),
    ),
    Site(
        name="cervix", prefixes=("C53",), plan_tag="CERV", weight=22,
        codes=(_code("C53.9", "Malignant neoplasm of cervix uteri, unspecified", 3),
               _code("C53.0", "Malignant neoplasm of endocervix", 1),
               _code("C53.1", "Malignant neoplasm of exocervix", 1),
               _code("C53.8", "Malignant neoplasm of overlapping sites of cervix uteri", 0.4)),
        histology=(("squamous cell carcinoma", "SCC"), ("adenocarcinoma", "adenoCA"),
                   ("squamous cell carcinoma", "SCC")),
        age=(25, 82, 48), female=1.0,
        regimens=(
            _rx("cervix_ebrt_45", 45, 25, "VMAT", "photon", "pelvis (cervix, uterus, nodes)",
                "FIGO IB3|FIGO IIB|FIGO IIIC1r (pelvic nodes)|FIGO IIA2", "newly diagnosed",
                "tumour {4.1-7.0} cm on MRI", _ECOG01,
                concurrent=_CIS_WEEKLY, intent="definitive", weight=10,
                situation="cervix, locally advanced"),
            _rx("cervix_hdr_28", 28, 4, "HDR", "brachytherapy", "cervix (HR-CTV)",
                "FIGO IIB|FIGO IB3|FIGO IIIC1r",
                "completed pelvic chemoRT with weekly cisplatin|finished external pelvic "
                "chemoradiation", "residual tumour {0.5-3.0} cm on MRI|good response on "
                "mid-treatment MRI", "referred for the boost phase|now for the boost phase",
                intent="definitive", weight=8,
                extra=(Course(45, 25, "VMAT", "photon", "pelvis", when="prior"),),
                situation="cervix, locally advanced (boost)"),
        ),
    ),
    Site(
        name="endometrium", prefixes=("C54", "C55"), plan_tag="ENDO", weight=25,
        codes=(_code("C54.1", "Malignant neoplasm of endometrium", 4),
               _code("C54.9", "Malignant neoplasm of corpus uteri, unspecified", 0.5),
               _code("C55", "Malignant neoplasm of uterus, part unspecified", 0.3)),
        histology=(("endometrioid adenocarcinoma", "endometrioid adenoCA"),
                   ("endometrioid carcinoma", "EEC")),
        age=(45, 86, 65), female=1.0,
        regimens=(
            _rx("endometrium_vcb_21", 21, 3, "HDR", "brachytherapy", "vaginal cuff",
                "status post TLH/BSO|status post robotic hysterectomy + BSO + SLN",
                "FIGO IA G3|FIGO IB G{1-2}", "LVSI negative|LVSI focal", "pN0(sn)|",
                "|p53 wild-type",
                intent="adjuvant", weight=12, situation="endometrium, adjuvant"),
            _rx("endometrium_pelvis_45", 45, 25, "VMAT", "photon", "pelvis",
                "FIGO II (cervical stromal invasion)|FIGO IB G3, substantial LVSI",
                "status post TLH/BSO", "pN0",
                intent="adjuvant", weight=4, situation="endometrium, adjuvant"),
            _rx("endometrium_portec3", 48.6, 27, "VMAT", "photon", "pelvis",
                "FIGO IIIC1 ({1-4} pelvic nodes+)|FIGO IIIA", "status post TAH/BSO + "
                "lymphadenectomy", "carboplatin/paclitaxel x4 to follow",
                concurrent=("cisplatin 50 mg/m2 weeks 1 and 4", "cisplatin 50 mg/m2 wk 1, 4"),
                intent="adjuvant", weight=4, situation="endometrium, adjuvant"),
        ),
    ),
    Site(
        name="vulva", prefixes=("C51",), plan_tag="VULV", weight=5,
        codes=(_code("C51.9", "Malignant neoplasm of vulva, unspecified", 2),
               _code("C51.0", "Malignant neoplasm of labium majus", 1),
               _code("C51.1", "Malignant neoplasm of labium minus", 0.6)),
        histology=_SCC, age=(50, 90, 72), female=1.0,
        regimens=(
            _rx("vulva_definitive", 45, 25, "IMRT", "photon", "vulva + inguinal/pelvic nodes",
                "cT2N1|cT3N0|FIGO III", "inoperable (extends to the urethra)|not resectable "
                "without exenteration", "ECOG {1-2}",
                concurrent=_CIS_WEEKLY, intent="definitive", weight=3,
                extra=(Course(16.2, 9, "IMRT", "photon", "vulvar primary"),),
                situation="vulva"),
            _rx("vulva_postop_504", 50.4, 28, "IMRT", "photon", "vulvar bed + groins",
                "status post radical vulvectomy + bilateral IFL",
                "{2-4} inguinal nodes+, ENE+|close margin ({2-5} mm)",
                concurrent=_CIS_WEEKLY, intent="adjuvant", weight=2, situation="vulva"),
        ),
    ),
    Site(
        name="bladder", prefixes=("C67",), plan_tag="BLAD", weight=15,
        codes=(_code("C67.9", "Malignant neoplasm of bladder, unspecified", 2),
               _code("C67.2", "Malignant neoplasm of lateral wall of bladder", 1.5),
               _code("C67.0", "Malignant neoplasm of trigone of bladder", 0.6),
               _code("C67.4", "Malignant neoplasm of posterior wall of bladder", 0.8),
               _code("C67.1", "Malignant neoplasm of dome of bladder", 0.5)),
        histology=(("urothelial carcinoma", "UC"), ("transitional cell carcinoma", "TCC")),
        age=(55, 90, 74), female=0.25,
        regimens=(
            _rx("bladder_64", 64, 32, "IMRT", "photon", "bladder",
                "status post maximal TURBT|status post visibly complete TURBT",
                "cT2N0M0|muscle-invasive, cT2N0", "declines cystectomy|bladder preservation "
                "preferred", "no hydronephrosis|no CIS",
                concurrent=_FU_MMC, intent="definitive", weight=5, situation="bladder"),
            _rx("bladder_55", 55, 20, "IMRT", "photon", "bladder",
                "status post maximal TURBT", "cT2N0M0|cT3aN0M0",
                "prefers a shorter schedule|limited mobility, prefers fewer visits",
                concurrent=_FU_MMC, intent="definitive", weight=5, situation="bladder"),
        ),
    ),
    Site(
        name="testis", prefixes=("C62",), plan_tag="TEST", weight=4,
        codes=(_code("C62.11", "Malignant neoplasm of descended right testis", 2),
               _code("C62.12", "Malignant neoplasm of descended left testis", 2),
               _code("C62.91", "Malignant neoplasm of right testis, unspecified whether "
                     "descended or undescended", 0.5),
               _code("C62.92", "Malignant neoplasm of left testis, unspecified whether "
                     "descended or undescended", 0.5)),
        histology=(("seminoma", "seminoma"), ("classic seminoma", "pure seminoma")),
        age=(20, 60, 36), female=0.0,
        regimens=(
            _rx("seminoma_20", 20, 10, "3D-CRT", "photon", "para-aortic nodes",
                "status post radical inguinal orchiectomy", "stage I (pT1N0M0)|stage IA",
                "markers normal after orchiectomy|AFP, \u03b2-hCG normal post-op",
                "declines surveillance and carboplatin|surveillance not feasible",
                intent="adjuvant", weight=2.5, situation="seminoma stage I/IIA"),
            _rx("seminoma_30", 30, 15, "3D-CRT", "photon", "para-aortic + ipsilateral pelvic nodes",
                "stage IIA|retroperitoneal node {1.1-1.9} cm (stage IIA)",
                "status post radical orchiectomy",
                intent="curative", weight=1.5, situation="seminoma stage I/IIA"),
        ),
    ),
    Site(
        name="skin", prefixes=("C44",), plan_tag="SKIN", weight=25,
        codes=(
            _code("C44.311", "Basal cell carcinoma of skin of nose", 3, histology=_BCC),
            _code("C44.310", "Basal cell carcinoma of skin of unspecified parts of face", 0.6,
                  histology=_BCC),
            _code("C44.319", "Basal cell carcinoma of skin of other parts of face", 2,
                  histology=_BCC),
            _code("C44.212", "Basal cell carcinoma of skin of right ear and external auricular "
                  "canal", 1, histology=_BCC),
            _code("C44.219", "Basal cell carcinoma of skin of left ear and external auricular "
                  "canal", 1, histology=_BCC),
            _code("C44.41", "Basal cell carcinoma of skin of scalp and neck", 1.5,
                  histology=_BCC),
            _code("C44.01", "Basal cell carcinoma of skin of lip", 0.5, histology=_BCC),
            _code("C44.321", "Squamous cell carcinoma of skin of nose", 1, histology=_CSCC),
            _code("C44.329", "Squamous cell carcinoma of skin of other parts of face", 1.5,
                  histology=_CSCC),
            _code("C44.222", "Squamous cell carcinoma of skin of right ear and external "
                  "auricular canal", 0.7, histology=_CSCC),
            _code("C44.229", "Squamous cell carcinoma of skin of left ear and external "
                  "auricular canal", 0.7, histology=_CSCC),
            _code("C44.42", "Squamous cell carcinoma of skin of scalp and neck", 1.5,
                  histology=_CSCC),
            _code("C44.02", "Squamous cell carcinoma of skin of lip", 0.4, histology=_CSCC),
        ),
        histology=_BCC, age=(55, 97, 78), female=0.4,
        regimens=(
            _rx("skin_50_20", 50, 20, "electron", "electron", "skin lesion + margin",
                "lesion {1.5-3.0} cm", "surgery would be disfiguring|declines surgery "
                "(cosmesis)|comorbidity precludes surgery", "|on anticoagulation",
                intent="definitive", weight=8, age=(55, 79, 70),
                situation="skin BCC/SCC (face, nose, ear, scalp)"),
            _rx("skin_40_10", 40, 10, "electron", "electron", "skin lesion + margin",
                "lesion {1.0-2.5} cm", "elderly, prefers a shorter course|declines surgery, "
                "prefers fewer visits",
                intent="definitive", weight=4, age=(80, 89, 84),
                situation="skin BCC/SCC (face, nose, ear, scalp)"),
            _rx("skin_35_5", 35, 5, "electron", "electron", "skin lesion + margin",
                "lesion {1.0-2.5} cm", "frail, limited mobility, transport difficult|very frail, "
                "nursing home resident", intent="definitive", weight=2, age=(90, 99, 92),
                situation="skin BCC/SCC (face, nose, ear, scalp)"),
            _rx("skin_hdr_surface", 40, 10, "HDR", "brachytherapy", "skin lesion + margin",
                "{2.0-4.0} cm lesion on a curved surface|lesion on a curved surface, unsuitable "
                "for a flat field", "custom surface mould made|surface mould fabricated",
                intent="definitive", weight=1.2, age=(60, 92, 78),
                codes=("C44.311", "C44.321", "C44.212", "C44.219", "C44.222", "C44.229",
                       "C44.41", "C44.42"),
                situation="skin BCC/SCC (surface applicator)"),
            _rx("skin_scc_pni_60", 60, 30, "VMAT", "photon", "tumour bed + parotid + neck",
                "status post excision + parotidectomy|status post Mohs excision and "
                "parotidectomy", "PNI of a named nerve|extensive perineural invasion",
                "pN1 (parotid node)", intent="adjuvant", weight=1.5, age=(55, 90, 74),
                codes=("C44.329", "C44.222", "C44.229", "C44.42"),
                situation="skin SCC with perineural invasion (postoperative)"),
        ),
    ),
    Site(
        name="merkel_cell", prefixes=("C4A",), plan_tag="MCC", weight=4,
        codes=(_code("C4A.31", "Merkel cell carcinoma of nose", 0.6),
               _code("C4A.39", "Merkel cell carcinoma of other parts of face", 1.2),
               _code("C4A.4", "Merkel cell carcinoma of scalp and neck", 1),
               _code("C4A.61", "Merkel cell carcinoma of right upper limb, including shoulder"),
               _code("C4A.62", "Merkel cell carcinoma of left upper limb, including shoulder"),
               _code("C4A.71", "Merkel cell carcinoma of right lower limb, including hip", 0.7),
               _code("C4A.72", "Merkel cell carcinoma of left lower limb, including hip", 0.7)),
        histology=(("Merkel cell carcinoma", "MCC"),), age=(55, 92, 76), female=0.4,
        regimens=(
            _rx("merkel_electron_50", 50, 25, "electron", "electron", "primary tumour bed",
                "status post WLE, margins negative|status post wide excision, R0",
                "SLNB negative|pN0(sn)", "primary bed only",
                intent="adjuvant", weight=2, codes=("C4A.31", "C4A.39", "C4A.4"),
                situation="Merkel cell carcinoma"),
            _rx("merkel_photon_56", 56, 28, "VMAT", "photon", "tumour bed + nodal basin",
                "status post WLE, positive margin|R1 margin",
                "SLNB positive ({1-2} nodes)|pN1a(sn)", "primary and nodal basin to be treated",
                intent="adjuvant", weight=2, situation="Merkel cell carcinoma"),
        ),
    ),
    Site(
        name="mycosis_fungoides", prefixes=("C84.0",), plan_tag="MF", weight=3,
        codes=(_code("C84.00", "Mycosis fungoides, unspecified site"),),
        histology=(("mycosis fungoides", "MF"),
                   ("cutaneous T-cell lymphoma (mycosis fungoides)", "CTCL/MF")),
        age=(40, 85, 62), female=0.4,
        regimens=(
            _rx("mf_tsebt_12", 12, 3, "TSEBT", "electron", "total skin",
                "stage IB|stage IIA",
                "widespread patches and plaques, {15-60}% BSA|generalised plaques (T2)",
                "progressed on topical steroids and phototherapy|refractory to skin-directed "
                "therapy", intent="palliative", weight=2, situation="mycosis fungoides"),
            _rx("mf_tsebt_30", 30, 20, "TSEBT", "electron", "total skin",
                "stage IIB (tumour stage)|tumour-stage disease", "thick plaques and tumours",
                intent="curative", weight=1, situation="mycosis fungoides"),
        ),
    ),
    Site(
        name="keloid", prefixes=("L91.0",), plan_tag="KEL", weight=5,
        codes=(_code("L91.0", "Hypertrophic scar"),),
        histology=(("keloid", "keloid"),), age=(18, 62, 32), female=0.55,
        regimens=(
            _rx("keloid_12", 12, 3, "electron", "electron", "excision scar + margin",
                "{side} earlobe|earlobe", "excised today, treatment within 24 h|excision "
                "planned, to start within 24 h", "recurrent after excision and steroid "
                "injection|",
                intent="definitive", weight=3, situation="keloid after excision"),
            _rx("keloid_20", 20, 4, "electron", "electron", "excision scar + margin",
                "presternal|{side} shoulder|upper back", "high-tension site, recurrent",
                "excised today, treatment within 24 h|to start within 24 h of excision",
                intent="definitive", weight=2, situation="keloid after excision"),
        ),
    ),
    Site(
        name="hodgkin_lymphoma", prefixes=("C81",), plan_tag="HL", weight=8,
        codes=(_code("C81.12", "Nodular sclerosis Hodgkin lymphoma, intrathoracic lymph nodes", 3),
               _code("C81.11", "Nodular sclerosis Hodgkin lymphoma, lymph nodes of head, face, "
                     "and neck", 1.5)),
        histology=(("nodular sclerosis classical Hodgkin lymphoma", "NS cHL"),
                   ("nodular sclerosis Hodgkin lymphoma", "NSHL")),
        age=(16, 50, 28), female=0.55,
        regimens=(
            _rx("hodgkin_20", 20, 10, "3D-CRT", "photon", "involved site",
                "stage IIA, early favourable (GHSG)|stage IA, favourable",
                "status post ABVD x2, PET negative (Deauville 2)|ABVD x2, Deauville {1-2}",
                "no bulk", intent="consolidation", weight=3,
                situation="Hodgkin lymphoma, early favourable"),
            _rx("hodgkin_30", 30, 15, "IMRT", "photon", "involved site",
                "stage IIB, early unfavourable|stage IIA with bulky mediastinal mass",
                "status post ABVD x4|status post ABVD x4, Deauville 3",
                intent="consolidation", weight=2.5, situation="Hodgkin lymphoma, early unfavourable"),
            _rx("hodgkin_proton", 30, 15, "PBS", "proton", "involved site (mediastinum)",
                "stage IIA bulky mediastinal|stage IIB, unfavourable (bulk)",
                "status post ABVD x4",
                "disease extends below the carina; breast and cardiac sparing prioritised|lower "
                "mediastinal disease in a young woman, breast/heart sparing prioritised",
                intent="consolidation", weight=2, age=(16, 30, 22), female=1.0,
                codes=("C81.12",), situation="Hodgkin lymphoma, young, mediastinal (proton)"),
        ),
    ),
    Site(
        name="dlbcl", prefixes=("C83.3",), plan_tag="DLBC", weight=10,
        codes=(_code("C83.32", "Diffuse large B-cell lymphoma, intrathoracic lymph nodes", 1.5),
               _code("C83.31", "Diffuse large B-cell lymphoma, lymph nodes of head, face, and "
                     "neck", 1.5),
               _code("C83.33", "Diffuse large B-cell lymphoma, intra-abdominal lymph nodes"),
               _code("C83.38", "Diffuse large B-cell lymphoma, lymph nodes of multiple sites",
                     0.8)),
        histology=(("diffuse large B-cell lymphoma", "DLBCL"),), age=(30, 86, 62), female=0.45,
        regimens=(
            _rx("dlbcl_30", 30, 15, "VMAT", "photon", "involved site",
                "status post R-CHOP x{4-6}, PET complete response (Deauville {1-3})",
                "initially bulky ({7.5-11.0} cm)|bulky at diagnosis",
                intent="consolidation", weight=5, situation="DLBCL, consolidation"),
            _rx("dlbcl_36", 36, 18, "VMAT", "photon", "involved site",
                "status post R-CHOP x6, PET-positive residual (Deauville 4)|partial response, "
                "Deauville 4", intent="consolidation", weight=3, situation="DLBCL, consolidation"),
        ),
    ),
    Site(
        name="follicular_lymphoma", prefixes=("C82",), plan_tag="FL", weight=6,
        codes=(_code("C82.01", "Follicular lymphoma grade I, lymph nodes of head, face, and neck",
                     1.5),
               _code("C82.02", "Follicular lymphoma grade I, intrathoracic lymph nodes", 0.5),
               _code("C82.03", "Follicular lymphoma grade I, intra-abdominal lymph nodes", 0.5),
               _code("C82.04", "Follicular lymphoma grade I, lymph nodes of axilla and upper "
                     "limb"),
               _code("C82.05", "Follicular lymphoma grade I, lymph nodes of inguinal region and "
                     "lower limb", 1.2),
               _code("C82.08", "Follicular lymphoma grade I, lymph nodes of multiple sites", 1.5)),
        histology=(("follicular lymphoma grade I", "FL G1"), ("follicular lymphoma, grade 1",
                                                           "FL grade 1")),
        age=(35, 86, 62), female=0.5,
        regimens=(
            _rx("follicular_24", 24, 12, "3D-CRT", "photon", "involved site",
                "stage IA|stage IIA (contiguous)", "FLIPI {0-1}", "|asymptomatic",
                intent="curative", weight=3,
                codes=("C82.01", "C82.02", "C82.03", "C82.04", "C82.05"),
                situation="follicular lymphoma, early"),
            _rx("follicular_4", 4, 2, "3D-CRT", "photon", "symptomatic nodal mass",
                "stage IV|advanced stage, widespread disease",
                "bulky symptomatic {side} neck mass|symptomatic bulky inguinal nodes",
                "for symptom control|palliation of symptomatic nodes",
                intent="palliative", weight=2, codes=("C82.08",),
                situation="follicular lymphoma, palliative"),
        ),
    ),
    Site(
        name="malt_lymphoma", prefixes=("C88.4",), plan_tag="MALT", weight=3,
        codes=(_code("C88.40", "Extranodal marginal zone B-cell lymphoma of mucosa-associated "
                     "lymphoid tissue [MALT-lymphoma] not having achieved remission"),),
        histology=(("MALT lymphoma", "MALT lymphoma"),
                   ("extranodal marginal zone lymphoma (MALT)", "MZL/MALT")),
        age=(40, 86, 64), female=0.5,
        regimens=(
            _rx("malt_30", 30, 20, "IMRT", "photon", "whole stomach",
                "stage IE", "H. pylori-positive, persistent lymphoma after eradication|persistent "
                "after H. pylori eradication", intent="curative", weight=1.5,
                situation="gastric MALT lymphoma"),
            _rx("malt_24", 24, 12, "IMRT", "photon", "whole stomach",
                "stage IE", "H. pylori-negative at diagnosis|H. pylori negative", "|t(11;18)+",
                intent="curative", weight=1.5, situation="gastric MALT lymphoma"),
        ),
    ),
    Site(
        name="soft_tissue_sarcoma", prefixes=("C49",), plan_tag="STS", weight=10,
        codes=(_code("C49.21", "Malignant neoplasm of connective and soft tissue of right lower "
                     "limb, including hip", 2),
               _code("C49.22", "Malignant neoplasm of connective and soft tissue of left lower "
                     "limb, including hip", 2),
               _code("C49.11", "Malignant neoplasm of connective and soft tissue of right upper "
                     "limb, including shoulder"),
               _code("C49.12", "Malignant neoplasm of connective and soft tissue of left upper "
                     "limb, including shoulder")),
        histology=(("undifferentiated pleomorphic sarcoma", "UPS"), ("myxofibrosarcoma", "MFS"),
                   ("myxoid liposarcoma", "myxoid LPS"), ("synovial sarcoma", "synovial sarcoma")),
        age=(25, 86, 58), female=0.45,
        regimens=(
            _rx("sarcoma_preop_50", 50, 25, "IMRT", "photon", "{side} extremity sarcoma",
                "cT2N0M0, high grade (FNCLCC 3)|{5.5-15.0} cm, grade 3",
                "resection planned afterwards|wide excision planned to follow", _ECOG01,
                intent="neoadjuvant", weight=6, situation="soft-tissue sarcoma extremity, preop"),
            _rx("sarcoma_postop_60", 60, 30, "IMRT", "photon", "{side} extremity tumour bed",
                "status post resection, R1 margin|status post unplanned excision, positive margin",
                "G{2-3}", intent="adjuvant", weight=3,
                situation="soft-tissue sarcoma extremity, postop"),
        ),
    ),
    Site(
        name="chordoma", prefixes=("C41.0", "C41.4"), plan_tag="CHOR", weight=4,
        codes=(_code("C41.0", "Malignant neoplasm of bones of skull and face", 3),
               _code("C41.4", "Malignant neoplasm of pelvic bones, sacrum and coccyx", 1.5)),
        histology=(("chordoma", "chordoma"),), age=(25, 76, 50), female=0.4,
        regimens=(
            _rx("chordoma_skull_base_74", 74, 37, "PBS", "proton", "skull base residual",
                "status post endoscopic endonasal subtotal resection|status post partial "
                "resection", "residual abutting the brainstem|residual tumour near the "
                "brainstem and chiasm", "KPS {8-10}0",
                intent="adjuvant", weight=2, codes=("C41.0",), situation="skull-base chordoma"),
            _rx("chondrosarcoma_skull_base_70", 70, 35, "PBS", "proton", "skull base residual",
                "grade {1-2}", "status post resection, residual at the petroclival junction",
                intent="adjuvant", weight=1, codes=("C41.0",),
                histology=(("chondrosarcoma", "chondrosarcoma"),),
                situation="skull-base chordoma/chondrosarcoma"),
            _rx("chordoma_sacral_702", 70.2, 39, "PBS", "proton", "sacral tumour",
                "unresectable without loss of sphincter function|status post en bloc resection, "
                "close margin", "KPS {7-10}0",
                intent="definitive", weight=1.5, codes=("C41.4",),
                situation="sacral chordoma (beside the guideline table)"),
        ),
    ),
    Site(
        name="uveal_melanoma", prefixes=("C69.3", "C69.4"), plan_tag="EYE", weight=5,
        codes=(_code("C69.31", "Malignant neoplasm of right choroid", 2),
               _code("C69.32", "Malignant neoplasm of left choroid", 2),
               _code("C69.41", "Malignant neoplasm of right ciliary body", 0.6),
               _code("C69.42", "Malignant neoplasm of left ciliary body", 0.6)),
        histology=(("melanoma", "melanoma"), ("uveal melanoma", "uveal melanoma")),
        age=(35, 86, 62), female=0.5,
        regimens=(
            _rx("uveal_i125_85", 85, 1, "plaque", "brachytherapy", "tumour apex",
                "medium-sized (COMS medium)|apical height {3.0-8.0} mm, basal diameter "
                "{8.0-15.0} mm", "over {3-6} mm from the optic disc|away from the disc and fovea",
                intent="definitive", weight=3, recorded="brachytherapy_plaque",
                situation="uveal melanoma"),
            _rx("uveal_proton_60", 60, 4, "PBS", "proton", "uveal tumour",
                "peripapillary/juxtapapillary location|posterior pole tumour abutting the optic "
                "disc", "apical height {3.0-9.0} mm",
                intent="definitive", weight=2, situation="uveal melanoma (proton)"),
        ),
    ),
    Site(
        name="rhabdomyosarcoma", prefixes=("C49.0", "C69.6"), plan_tag="RMS", weight=3,
        codes=(_code("C49.0", "Malignant neoplasm of connective and soft tissue of head, face "
                     "and neck", 2),
               _code("C69.61", "Malignant neoplasm of right orbit", 0.6),
               _code("C69.62", "Malignant neoplasm of left orbit", 0.6)),
        histology=(("embryonal rhabdomyosarcoma", "ERMS"), ("alveolar rhabdomyosarcoma", "ARMS")),
        age=(2, 16, 6), female=0.45,
        regimens=(
            _rx("rms_parameningeal_504", 50.4, 28, "PBS", "proton", "parameningeal primary",
                "parameningeal, IRS group III|intermediate risk (IRS group III)",
                "week {9-13} of VAC chemotherapy|on VAC", concurrent=(
                    "vincristine/cyclophosphamide", "vincristine + cyclophosphamide"),
                intent="curative", weight=2, codes=("C49.0",),
                situation="rhabdomyosarcoma, head and neck (child)"),
            _rx("rms_orbit_45", 45, 25, "PBS", "proton", "orbital primary",
                "orbital primary, IRS group III|orbital, group III", "on VAC|week {9-13} of VAC",
                concurrent=("vincristine/cyclophosphamide",),
                intent="curative", weight=1, codes=("C69.61", "C69.62"),
                situation="rhabdomyosarcoma, orbit (child)"),
        ),
    ),
    Site(
        name="craniopharyngioma", prefixes=("D44.4",), plan_tag="CPH", weight=3,
        codes=(_code("D44.4", "Neoplasm of uncertain behavior of craniopharyngeal duct"),),
        histology=(("craniopharyngioma", "craniopharyngioma"),
                   ("adamantinomatous craniopharyngioma", "adamantinomatous CP")),
        age=(4, 17, 9), female=0.5,
        regimens=(
            _rx("cranio_child_54", 54, 30, "PBS", "proton", "residual tumour + cyst",
                "status post subtotal resection + cyst drainage|status post STR, residual cystic "
                "component", "visual fields stable|on hydrocortisone and thyroxine",
                intent="adjuvant", weight=2, situation="craniopharyngioma"),
            _rx("cranio_adult_54", 54, 30, "VMAT", "photon", "residual tumour",
                "status post transsphenoidal STR|residual after endoscopic resection",
                "visual fields stable|mild bitemporal field loss", intent="adjuvant", weight=1,
                age=(30, 76, 52), situation="craniopharyngioma (adult)"),
        ),
    ),
    Site(
        name="vestibular_schwannoma", prefixes=("D33.3",), plan_tag="VS", weight=5,
        codes=(_code("D33.3", "Benign neoplasm of cranial nerves"),),
        histology=(("vestibular schwannoma", "VS"), ("acoustic neuroma", "acoustic neuroma")),
        age=(30, 82, 56), female=0.5,
        regimens=(
            _rx("vs_srs_12", 12, 1, "SRS", "photon", "schwannoma",
                "Koos {1-2}|{1.0-2.2} cm, intracanalicular/CPA", "serviceable hearing (GR class "
                "{1-2})|useful hearing", intent="definitive", weight=3,
                recorded="photon_gamma", situation="vestibular schwannoma"),
            _rx("vs_srs_13", 13, 1, "SRS", "photon", "schwannoma",
                "Koos {2-3}", "non-serviceable hearing|hearing GR class {3-4}",
                intent="definitive", weight=1.5, recorded="photon_gamma",
                situation="vestibular schwannoma"),
        ),
    ),
    Site(
        name="trigeminal_neuralgia", prefixes=("G50",), plan_tag="TN", weight=4,
        codes=(_code("G50.0", "Trigeminal neuralgia"),),
        histology=(("trigeminal neuralgia", "TN"),), age=(45, 92, 68), female=0.6,
        regimens=(
            _rx("tn_srs_80", 80, 1, "SRS", "photon", "trigeminal nerve root",
                "refractory to carbamazepine/oxcarbazepine|medically refractory",
                "not a candidate for MVD|declines microvascular decompression",
                "BNI pain score {4-5}", intent="definitive", weight=2, recorded="photon_gamma",
                situation="trigeminal neuralgia"),
            _rx("tn_srs_90", 90, 1, "SRS", "photon", "trigeminal nerve root",
                "pain recurrence after prior MVD|recurrent after microvascular decompression",
                "BNI {4-5}", intent="definitive", weight=1.5, recorded="photon_gamma",
                situation="trigeminal neuralgia"),
        ),
    ),
    Site(
        name="thymoma", prefixes=("C37",), plan_tag="THYM", weight=4,
        codes=(_code("C37", "Malignant neoplasm of thymus"),),
        histology=(("thymoma", "thymoma"), ("type B2 thymoma", "thymoma B2"),
                   ("type B3 thymoma", "thymoma B3")),
        age=(30, 80, 57), female=0.5,
        regimens=(
            _rx("thymoma_504", 50.4, 28, "VMAT", "photon", "thymic bed",
                "status post thymectomy (median sternotomy)",
                "Masaoka stage III, R0 with close margin|Masaoka-Koga III, R0",
                intent="adjuvant", weight=2, situation="thymoma, postoperative"),
            _rx("thymoma_54", 54, 30, "VMAT", "photon", "thymic bed",
                "status post thymectomy, R1 margin|status post thymectomy, positive margin",
                "Masaoka-Koga II|Masaoka-Koga III", intent="adjuvant", weight=2,
                situation="thymoma, postoperative"),
        ),
    ),
    Site(
        name="mesothelioma", prefixes=("C45",), plan_tag="MESO", weight=3,
        codes=(_code("C45.0", "Mesothelioma of pleura"),),
        histology=(("malignant pleural mesothelioma", "MPM"),
                   ("epithelioid pleural mesothelioma", "epithelioid MPM")),
        age=(50, 86, 70), female=0.2,
        regimens=(
            _rx("meso_hemithorax_504", 50.4, 28, "VMAT", "photon", "{side} hemithorax",
                "status post pleurectomy/decortication|status post P/D", "epithelioid subtype",
                _ECOG01, intent="adjuvant", weight=1.5, situation="mesothelioma"),
            _rx("meso_palliative_20", 20, 5, "3D-CRT", "photon", "{side} chest wall mass",
                "chest wall pain from tumour infiltration|painful chest wall mass", "ECOG {2-3}",
                intent="palliative", weight=1.5, situation="mesothelioma (palliative)"),
        ),
    ),
)
# fmt: on

SITES_BY_NAME: dict[str, Site] = {site.name: site for site in SITES}

# --- ICD-10-CM code -> site -------------------------------------------------------------------
# Coarse groups by category for codes outside the table (ranges are inclusive, by category).
_COARSE_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("C00", "C14", "head_and_neck"), ("C15", "C15", "esophagus"), ("C16", "C16", "stomach"),
    ("C17", "C17", "small_intestine"), ("C18", "C19", "colon"), ("C20", "C20", "rectum"),
    ("C21", "C21", "anal_canal"), ("C22", "C22", "liver"), ("C23", "C24", "biliary"),
    ("C25", "C25", "pancreas"), ("C26", "C26", "digestive_other"),
    ("C30", "C31", "sinonasal"), ("C32", "C32", "larynx"), ("C33", "C34", "lung"),
    ("C37", "C38", "thorax_other"), ("C39", "C39", "thorax_other"), ("C40", "C41", "bone"),
    ("C43", "C43", "melanoma"), ("C44", "C44", "skin"), ("C45", "C45", "mesothelioma"),
    ("C46", "C49", "soft_tissue_sarcoma"), ("C4A", "C4A", "merkel_cell"),
    ("C50", "C50", "breast"), ("C51", "C52", "vulva_vagina"), ("C53", "C53", "cervix"),
    ("C54", "C55", "endometrium"), ("C56", "C58", "gynaecological_other"),
    ("C60", "C60", "penis"), ("C61", "C61", "prostate"), ("C62", "C62", "testis"),
    ("C63", "C63", "genitourinary_other"), ("C64", "C66", "kidney_ureter"),
    ("C67", "C67", "bladder"), ("C68", "C68", "genitourinary_other"), ("C69", "C69", "eye"),
    ("C70", "C72", "cns_other"), ("C73", "C75", "endocrine"), ("C76", "C76", "ill_defined"),
    ("C77", "C77", "nodal_metastases"), ("C78", "C79", "metastases"),
    ("C80", "C80", "unknown_primary"), ("C81", "C81", "hodgkin_lymphoma"),
    ("C82", "C88", "lymphoma"), ("C90", "C90", "myeloma"), ("C91", "C96", "leukaemia"),
    ("D00", "D09", "in_situ"), ("D10", "D36", "benign"), ("D37", "D49", "uncertain_behaviour"),
)  # fmt: skip


def _category_key(category: str) -> tuple[str, int, str]:
    # C4A sorts between C49 and C50: compare the letter, the two-digit number, then the suffix.
    digits = re.match(r"([A-Z])(\d)([0-9A-Z])", category)
    if digits is None:
        return (category, 0, "")
    letter, tens, third = digits.groups()
    return (letter, int(tens) * 10 + (int(third) if third.isdigit() else 9), third)


@functools.cache
def _prefix_sites() -> dict[str, str]:
    table: dict[str, str] = {}
    for site in SITES:
        for prefix in site.prefixes:
            key = prefix.replace(".", "")
            if key in table:
                raise RuntimeError(f"ICD-10-CM prefix {prefix} belongs to two sites")
            table[key] = site.name
    return table


def site_for_icd10(code: str) -> str:
    """The site of any ICD-10-CM code: the table's site owning the longest matching prefix,
    else a coarse group by category ("C18.7" -> "colon"), else "other". Never raises.

    Accepts dotted or dotless, any case and surrounding spaces: " c34.12 " -> "lung".
    """
    key = re.sub(r"[\s.]", "", str(code)).upper()
    table = _prefix_sites()
    for length in range(min(len(key), 7), 2, -1):
        site = table.get(key[:length])
        if site is not None:
            return site
    category = key[:3]
    if len(category) == 3 and category[0].isalpha():
        ckey = _category_key(category)
        for low, high, group in _COARSE_GROUPS:
            if category[0] == low[0] and _category_key(low) <= ckey <= _category_key(high):
                return group
    return "other"


def regimen_by_key(key: str) -> tuple[Site, Regimen]:
    """The site and variant with this key (KeyError if none)."""
    for site in SITES:
        for regimen in site.regimens:
            if regimen.key == key:
                return site, regimen
    raise KeyError(key)


def expected_modality_mix() -> dict[str, float]:
    """Share of each modality over all patients implied by site and variant weights."""
    total_weight = sum(site.weight for site in SITES)
    mix: dict[str, float] = {}
    for site in SITES:
        variant_total = sum(r.weight for r in site.regimens)
        for regimen in site.regimens:
            share = site.weight / total_weight * regimen.weight / variant_total
            mix[regimen.modality] = mix.get(regimen.modality, 0.0) + share
    return mix


# Every code of the table must have note phrasings: checked once at import, cheaply.
for _site in SITES:
    for _code_entry in _site.codes:
        if _code_entry.code not in SUBSITE_PHRASES:
            raise RuntimeError(f"no subsite phrasing for {_code_entry.code} in vocabulary.py")
