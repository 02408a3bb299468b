"""Primary site and subsite -> ICD-10-CM: the documented mapping the importers derive codes with.

The public cohorts carry no diagnosis codes. A case's `icd10` is derived here from the
registry's site and subsite and marked `label_source.icd10 = "derived-from-site"`: it is our
reading of the table, never a coder's label. Each choice follows the official ICD-10-CM Table
of Neoplasms (FY2023 index, column "Malignant Primary"; "Ca in situ" for stage 0), the index
term quoted in the comment. Every code is billable in the April 2026 tabular list (checked by
the tests with `icd10.is_billable`).

Scope: mucosal head-and-neck carcinoma sites (C00-C14, C15.3, C30-C32) and the major salivary
glands. Skin, sarcoma, paraganglioma and other entities are excluded, because their code
depends on histology, behaviour or laterality that the tables do not pin down, and so is an
unknown primary (nothing to code a primary from).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from radonc_llm.data.importers.result import RowExcluded


@dataclass(frozen=True)
class SiteCode:
    site: str  # primary site: the case's `site` and how the note names the region
    location: str  # the subsite as the note names it ("base of tongue"); == site when none
    icd10: str  # invasive carcinoma
    in_situ: str  # carcinoma in situ (stage 0)


# The official index term each code comes from is quoted in the comment ("term, subterm").
# Registry site (canonical) -> {subsite (canonical) or None for the site alone:
#                              (invasive code, carcinoma-in-situ code)}.
_CODES: dict[str, dict[str | None, tuple[str, str]]] = {
    # AJCC stages the soft palate and uvula with the oropharynx; ICD-10-CM files them under
    # the palate (C05), and the ICD-10-CM code is what we need.
    "oropharynx": {
        None: ("C10.9", "D00.08"),  # "oropharynx"
        "base of tongue": ("C01", "D00.07"),  # "tongue, base (dorsal surface)"
        "tonsil": ("C09.9", "D00.08"),  # "tonsil" (palatine)
        "tonsillar fossa": ("C09.0", "D00.08"),  # "tonsillar fossa"
        "tonsillar pillar": ("C09.1", "D00.08"),  # "tonsil, pillar (anterior) (posterior)"
        "glossopharyngeal sulcus": ("C09.0", "D00.08"),  # "glossopharyngeal sulcus"
        "soft palate": ("C05.1", "D00.04"),  # "palate, soft"
        "uvula": ("C05.2", "D00.04"),  # "uvula"
        "vallecula": ("C10.0", "D00.08"),  # "vallecula (epiglottis)"
        "lateral wall": ("C10.2", "D00.08"),  # "oropharynx, lateral wall"
        "posterior wall": ("C10.3", "D00.08"),  # "oropharynx, posterior wall"
        # MD Anderson files the retromolar trigone under the oropharynx; ICD-10-CM files it
        # in the mouth: "retromolar (area) (trigone)".
        "retromolar trigone": ("C06.2", "D00.00"),
    },
    "larynx": {
        None: ("C32.9", "D02.0"),  # "larynx, laryngeal NEC"
        "glottis": ("C32.0", "D02.0"),  # "glottis"
        "supraglottis": ("C32.1", "D02.0"),  # "supraglottis"
        "subglottis": ("C32.2", "D02.0"),  # "subglottis, subglottic"
        # Crosses the glottis and the supraglottis: "larynx, overlapping lesion".
        "transglottic": ("C32.8", "D02.0"),
    },
    "hypopharynx": {
        None: ("C13.9", "D00.08"),  # "hypopharynx, hypopharyngeal NEC"
        "pyriform sinus": ("C12", "D00.08"),  # "pyriform fossa or sinus"
        "postcricoid region": ("C13.0", "D00.08"),  # "postcricoid (region)"
        "aryepiglottic fold": ("C13.1", "D00.08"),  # "aryepiglottic fold, hypopharyngeal aspect"
        "posterior wall": ("C13.2", "D00.08"),  # "hypopharynx, posterior wall"
        # The index has no lateral hypopharyngeal wall: "hypopharynx NEC".
        "lateral wall": ("C13.9", "D00.08"),
        # Postcricoid tumour reaching the cervical oesophagus: no code spans C13 and C15, so
        # the registry's primary (hypopharynx, postcricoid) decides.
        "postcricoid region/cervical esophagus": ("C13.0", "D00.08"),
    },
    "nasopharynx": {
        None: ("C11.9", "D00.08"),  # "nasopharynx, nasopharyngeal"
        "superior wall": ("C11.0", "D00.08"),  # "nasopharynx, wall, superior"
        "posterior wall": ("C11.1", "D00.08"),  # "nasopharynx, wall, posterior"
        "lateral wall": ("C11.2", "D00.08"),  # "nasopharynx, wall, lateral"
    },
    "oral cavity": {
        None: ("C06.9", "D00.00"),  # "mouth"
        # The oral tongue is the mobile tongue (the base is oropharynx, filed apart): "tongue,
        # anterior (two-thirds) NEC" / "tongue, mobile part NEC". C02.9 says the part is unknown.
        "oral tongue": ("C02.3", "D00.07"),
        "buccal mucosa": ("C06.0", "D00.02"),  # "buccal (cavity), mucosa"
        "floor of mouth": ("C04.9", "D00.06"),  # "mouth, floor"
        "hard palate": ("C05.0", "D00.05"),  # "palate, hard"
        "retromolar trigone": ("C06.2", "D00.00"),  # "retromolar (area) (trigone)"
        "upper alveolus and gingiva": ("C03.0", "D00.03"),  # "gum, upper"
        "lower alveolus and gingiva": ("C03.1", "D00.03"),  # "gum, lower"
        "alveolar ridge": ("C03.9", "D00.03"),  # "alveolar, ridge or process, carcinoma"
        # Filed with the oral cavity, so the vermilion (mucosal) lip, not its skin (C44.0-):
        # "lip, lower".
        "lower lip": ("C00.1", "D00.01"),
    },
    # Filed under the nasal cavity by the registry, so the mucosal code ("nose, nasal,
    # cavity / septum / vestibule", "nostril"), not the skin of the nose (C44.3-).
    "nasal cavity": {
        None: ("C30.0", "D02.3"),
        "nasal septum": ("C30.0", "D02.3"),
        "nasal vestibule": ("C30.0", "D02.3"),
        "nasal vestibule/septum": ("C30.0", "D02.3"),
        "nostril": ("C30.0", "D02.3"),
    },
    "paranasal sinus": {
        None: ("C31.9", "D02.3"),  # "sinus (accessory)"
        "maxillary sinus": ("C31.0", "D02.3"),  # "sinus (accessory), maxillary"
        "ethmoid sinus": ("C31.1", "D02.3"),  # "sinus (accessory), ethmoidal"
        "frontal sinus": ("C31.2", "D02.3"),  # "sinus (accessory), frontal"
    },
    "salivary gland": {
        "parotid gland": ("C07", "D00.00"),  # "parotid (duct) (gland)"
        "submandibular gland": ("C08.0", "D00.00"),  # "submandibular gland"
    },
    "esophagus": {
        "cervical esophagus": ("C15.3", "D00.1"),  # "esophagus, cervical"
    },
}
# How a note names a subsite where the registry's word alone is unclear.
_LOCATIONS: dict[tuple[str, str], str] = {
    ("oropharynx", "lateral wall"): "lateral oropharyngeal wall",
    ("oropharynx", "posterior wall"): "posterior oropharyngeal wall",
    ("larynx", "transglottic"): "transglottic larynx",
    ("hypopharynx", "lateral wall"): "lateral hypopharyngeal wall",
    ("hypopharynx", "posterior wall"): "posterior hypopharyngeal wall",
    ("hypopharynx", "postcricoid region/cervical esophagus"): "postcricoid region",
    ("nasopharynx", "superior wall"): "superior nasopharyngeal wall",
    ("nasopharynx", "posterior wall"): "posterior nasopharyngeal wall",
    ("nasopharynx", "lateral wall"): "lateral nasopharyngeal wall",
    ("nasal cavity", "nasal vestibule/septum"): "nasal vestibule and septum",
}
# The region a subsite belongs to when the registry filed it elsewhere.
_SITES: dict[tuple[str, str], str] = {
    ("oropharynx", "retromolar trigone"): "oral cavity",
    ("oral cavity", "lower lip"): "lip",
}

# (canonical registry site, canonical subsite or None) -> code. The registry site is the key,
# not the output site, so that a subsite filed under an unexpected region still resolves.
SITE_CODES: dict[tuple[str, str | None], SiteCode] = {
    (site, subsite): SiteCode(
        site=_SITES.get((site, subsite or ""), site),
        location=_LOCATIONS.get((site, subsite or ""), subsite or site),
        icd10=icd10,
        in_situ=in_situ,
    )
    for site, subsites in _CODES.items()
    for subsite, (icd10, in_situ) in subsites.items()
}

# Registry wordings -> the canonical names used as keys above (after `canonical`).
SITE_ALIASES: dict[str, str] = {
    "lip and oral cavity": "oral cavity",
    "salivary glands": "salivary gland",
    "sinus": "paranasal sinus",
}
SUBSITE_ALIASES: dict[tuple[str, str], str | None] = {
    ("*", "lat wall"): "lateral wall",
    ("*", "post wall"): "posterior wall",
    ("*", "sup wall"): "superior wall",
    ("*", "bot"): "base of tongue",
    ("*", "tonsil pillar"): "tonsillar pillar",
    ("*", "trans- glottis"): "transglottic",
    ("*", "trans-glottis"): "transglottic",
    ("*", "transglottis"): "transglottic",
    ("*", "post-cricoid"): "postcricoid region",
    ("*", "post-cricoid/cerv esoph"): "postcricoid region/cervical esophagus",
    ("nasopharynx", "nasopharynx"): None,
    ("oropharynx", "nos"): None,
    ("oropharynx", "oropharynx"): None,
    ("oral cavity", "tongue"): "oral tongue",
    ("nasal cavity", "nasal cavity"): None,
    ("nasal cavity", "vestibule"): "nasal vestibule",
    # Filed under the nasal cavity by the registry (see the nasal cavity codes above).
    ("nasal cavity", "nose"): None,
}

UNKNOWN_PRIMARY = frozenset({"unknown", "cup", "unknown primary"})
# Sites whose code the site alone cannot give (see the module docstring).
OUT_OF_SCOPE: dict[str, str] = {
    "skin": "skin primaries are coded by histology and laterality (C44.-, C4A.-, C43.-)",
    "sarcoma": "sarcomas are coded by tissue of origin (C49.-, C41.-), not the mucosal site",
    "paraganglioma": "paragangliomas are coded by behaviour (C75.5 or D44.7)",
    "benign tumor": "benign tumours have no malignant primary code",
    "orbit": "orbital primaries are coded by structure and laterality (C69.-)",
    "lacrimal gland": "lacrimal gland primaries are coded by laterality (C69.5-)",
    "other": "the registry gives no site to code",
}
# Histologies whose ICD-10-CM code comes from the histology, not the site.
_HISTOLOGY_CODED = (
    (re.compile(r"neuroendocrine|small cell", re.I),
     "high-grade neuroendocrine carcinoma is coded C7A.1 at any site"),
    (re.compile(r"plasmacytoma", re.I), "plasmacytoma is coded C90.2-"),
    (re.compile(r"lymphoma", re.I), "lymphoma is coded C81-C88"),
    (re.compile(r"kaposi", re.I), "Kaposi sarcoma is coded C46.-"),
    (re.compile(r"(?<!\w)sarcoma(?!toid)", re.I), "sarcoma is coded by tissue (C49.-, C41.-)"),
)  # fmt: skip


def canonical(text: str | None) -> str:
    """Lower case, '&' as 'and', single spaces: the form the tables above are keyed by."""
    if text is None:
        return ""
    text = text.replace("&", " and ").lower()
    return re.sub(r"\s+", " ", text).strip()


def resolve_site(site: str, subsite: str | None) -> tuple[str, str | None]:
    """A registry's (site, subsite) wording as the canonical key of `SITE_CODES`."""
    site_key = canonical(site)
    site_key = SITE_ALIASES.get(site_key, site_key)
    subsite_key: str | None = canonical(subsite) or None
    if subsite_key is not None:
        for scope in (site_key, "*"):
            if (scope, subsite_key) in SUBSITE_ALIASES:
                subsite_key = SUBSITE_ALIASES[(scope, subsite_key)]
                break
    return site_key, subsite_key


def code_site(
    site: str,
    subsite: str | None,
    *,
    in_situ: bool = False,
    histology: str | None = None,
    site_column: str | None = None,
    subsite_column: str | None = None,
    histology_column: str | None = None,
) -> tuple[SiteCode, str]:
    """The mapping entry and the derived dotted code; RowExcluded when there is none.

    `in_situ` picks the carcinoma-in-situ code (stage 0). The column names only label
    the ledger entry.
    """
    site_key, subsite_key = resolve_site(site, subsite)
    if site_key in UNKNOWN_PRIMARY or not site_key:
        raise RowExcluded(
            "unknown_primary",
            f"unknown primary (site '{site}'): no primary site to derive a code from",
            column=site_column,
        )
    if site_key in OUT_OF_SCOPE:
        raise RowExcluded(
            "site_out_of_scope", f"site '{site}': {OUT_OF_SCOPE[site_key]}", column=site_column
        )
    for pattern, why in _HISTOLOGY_CODED:
        if histology and pattern.search(histology):
            raise RowExcluded(
                "histology_not_site_coded", f"'{histology}': {why}", column=histology_column
            )
    entry = SITE_CODES.get((site_key, subsite_key))
    if entry is None:
        if not any(key[0] == site_key for key in SITE_CODES):
            raise RowExcluded(
                "unmapped_site", f"no ICD-10-CM mapping for site '{site}'", column=site_column
            )
        raise RowExcluded(
            "unmapped_subsite",
            f"no ICD-10-CM mapping for subsite '{subsite}' of site '{site}'",
            column=subsite_column,
        )
    return entry, entry.in_situ if in_situ else entry.icd10


def is_in_situ(
    t: str | None,
    n: str | None,
    histology: str | None,
    *,
    t_column: str | None = None,
    n_column: str | None = None,
    histology_column: str | None = None,
) -> bool:
    """True for a carcinoma in situ (Tis, or an in-situ histology), whose code is the
    "Ca in situ" one; RowExcluded when the row contradicts itself (an in-situ histology
    staged T1-T4, or an in-situ primary with nodal disease, which proves invasion)."""
    in_situ_t = t == "Tis"
    in_situ_histology = bool(histology and re.search(r"in[- ]situ", histology, re.IGNORECASE))
    if in_situ_histology and t and re.match(r"[cpr]?T[1-4]", t):
        raise RowExcluded(
            "conflicting_histology_stage",
            f"histology '{histology}' but invasive {t}",
            column=histology_column,
        )
    in_situ = in_situ_t or in_situ_histology
    if in_situ and n and not re.match(r"[cpr]?N[0X]", n):
        raise RowExcluded(
            "conflicting_histology_stage",
            f"carcinoma in situ ({t or histology}) with nodal disease {n}",
            column=n_column or t_column,
        )
    return in_situ
