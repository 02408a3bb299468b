"""The site table: real billable codes, plausible prescriptions, decidable variants."""

from __future__ import annotations

import itertools
import re

import pytest

from radonc_llm.data import icd10
from radonc_llm.data.cases import MODALITIES
from radonc_llm.data.modality import modality_class
from radonc_llm.data.regimen import check_prescription, parse_regimen
from radonc_llm.data.sites import (
    RECORDED_MODALITY,
    SITES,
    SITES_BY_NAME,
    UNMAPPABLE_MODALITY,
    expected_modality_mix,
    regimen_by_key,
    site_for_icd10,
)
from radonc_llm.data.vocabulary import SUBSITE_PHRASES

ALL_CODES = [(site, code) for site in SITES for code in site.codes]


@pytest.mark.parametrize(("site", "code"), ALL_CODES, ids=[c.code for _, c in ALL_CODES])
def test_every_code_is_billable_with_its_official_title(site, code):
    assert icd10.is_billable(code.code), code.code
    assert icd10.title(code.code) == code.title
    assert any(code.code.startswith(prefix) for prefix in site.prefixes)
    assert site_for_icd10(code.code) == site.name
    assert SUBSITE_PHRASES[code.code]


def test_lateral_codes_carry_their_side_in_every_phrasing():
    side_words = {"R": r"\b(right|R|OD)\b|^R|\bR[A-Z]", "L": r"\b(left|L|OS|lingula)\b|\bL[A-Z]"}
    for _, code in ALL_CODES:
        if not re.search(r"\b(right|left)\b", code.title):
            continue  # the code does not depend on the side (C34.2 is always right)
        for phrase in SUBSITE_PHRASES[code.code]:
            assert re.search(side_words[code.side], phrase), (code.code, phrase)
            assert "{side}" not in phrase, (code.code, phrase)


def test_site_names_and_prefixes_are_unique():
    assert len(SITES_BY_NAME) == len(SITES)
    prefixes = [p for site in SITES for p in site.prefixes]
    assert len(prefixes) == len(set(prefixes))
    keys = [r.key for site in SITES for r in site.regimens]
    assert len(keys) == len(set(keys))
    site, regimen = regimen_by_key("gbm_stupp_60")
    assert (site.name, regimen.dose, regimen.fractions) == ("brain", 60, 30)


@pytest.mark.parametrize(
    ("code", "site"),
    [
        ("C34.12", "lung"), ("c3412", "lung"), (" C61 ", "prostate"), ("C50.412", "breast"),
        ("C79.31", "brain_metastases"), ("C79.51", "bone_metastases"), ("C79.9", "metastases"),
        ("C49.0", "rhabdomyosarcoma"), ("C49.5", "soft_tissue_sarcoma"), ("C4A.9", "merkel_cell"),
        ("C18.7", "colon"), ("C34", "lung"), ("C84.4", "lymphoma"), ("C90.00", "myeloma"),
        ("D05.11", "in_situ"), ("Z51.0", "other"), ("", "other"), ("not a code", "other"),
        ("C5O.412", "other"),
        # AJCC 8th: lingual tonsil, soft palate and uvula are oropharynx; hard palate oral cavity.
        ("C02.4", "oropharynx"), ("C05.1", "oropharynx"), ("C05.2", "oropharynx"),
        ("C05.0", "oral_cavity"), ("C02.1", "oral_cavity"),
    ],
)  # fmt: skip
def test_site_for_icd10_falls_back_to_a_coarse_group(code, site):
    assert site_for_icd10(code) == site


def test_site_for_icd10_never_raises_on_any_billable_code():
    sites = {site_for_icd10(code) for code in icd10.billable_codes()}
    assert "" not in sites
    assert {"breast", "lung", "colon", "other"} <= sites


def test_every_site_has_several_variants_with_plausible_prescriptions():
    for site in SITES:
        assert len(site.regimens) >= 2, site.name
        for regimen in site.regimens:
            assert regimen.modality in MODALITIES
            assert regimen.unit == ("GyRBE" if regimen.modality == "proton" else "Gy")
            technique = parse_regimen(regimen.technique).technique
            problem = check_prescription(
                regimen.dose, regimen.fractions, modality=regimen.modality, technique=technique,
                schedule=regimen.schedule,
            )  # fmt: skip
            assert problem is None, (regimen.key, problem)


def test_ways_of_writing_one_systemic_therapy_parse_to_the_same_drugs():
    for site in SITES:
        for regimen in site.regimens:
            drugs = {
                tuple(parse_regimen(f"with concurrent {c}").concurrent) for c in regimen.concurrent
            }
            assert len(drugs) <= 1, (regimen.key, drugs)
            assert drugs != {()}, regimen.key


def test_recorded_modalities_map_to_their_class_and_junk_maps_to_none():
    for key, strings in RECORDED_MODALITY.items():
        for text in strings:
            assert modality_class(text) == key.split("_")[0], text
    for text in UNMAPPABLE_MODALITY:
        assert modality_class(text) is None, text


def test_modality_mix_is_mostly_photon_with_every_class_present():
    mix = expected_modality_mix()
    assert set(mix) == set(MODALITIES)
    assert abs(sum(mix.values()) - 1) < 1e-9
    assert 0.80 <= mix["photon"] <= 0.90
    assert all(mix[m] >= 0.03 for m in ("proton", "electron", "brachytherapy"))


def _signature(regimen) -> tuple[list[frozenset[str]], set[str]]:
    """The deciding facts (no optional alternative) and every alternative of any fact."""
    deciding, everything = [], set()
    for fact in regimen.facts:
        alternatives = frozenset(fact.split("|"))
        everything |= alternatives
        if "" not in alternatives:
            deciding.append(alternatives)
    return deciding, everything


def _decidable(a, b) -> bool:
    age_a, age_b = a.age, b.age
    if age_a and age_b and (age_a[1] < age_b[0] or age_b[1] < age_a[0]):
        return True
    if a.codes and b.codes and not set(a.codes) & set(b.codes):
        return True
    if a.histology and b.histology and not set(a.histology) & set(b.histology):
        return True
    deciding_a, all_a = _signature(a)
    deciding_b, all_b = _signature(b)
    # One variant always states something the other never does.
    return any(not (fact & all_b) for fact in deciding_a) or any(
        not (fact & all_a) for fact in deciding_b
    )


def test_variants_of_a_site_are_told_apart_by_what_the_note_states():
    for site in SITES:
        for a, b in itertools.combinations(site.regimens, 2):
            assert _decidable(a, b), (site.name, a.key, b.key)
