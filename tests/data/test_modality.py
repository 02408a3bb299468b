import pytest

from radonc_llm.data.cases import MODALITIES
from radonc_llm.data.modality import (
    EXTERNAL_BEAM_TERMS,
    MODALITY_SYNONYMS,
    modality_class,
    modality_classes,
)


@pytest.mark.parametrize(
    "text",
    [
        "6X",
        "10XFFF",
        "6X-FFF",
        "X6",
        "10X",
        "15MV",
        "6 MV FFF",
        "VMAT",
        "IMRT",
        "3D-CRT",
        "3D CRT",
        "3DCRT",
        "SBRT",
        "SRS",
        "Tomotherapy",
        "CyberKnife",
        "Gamma Knife",
        "X-ray",
        "photons",
        "orthovoltage",
        "250 kV",
        "Photon therapy.",
        "  PHOTON  ",
        "6 MV VMAT SBRT",
        "EBRT",
        "WBRT",
        "GK SRS",
        "CK",
        "Co-60",
        "Cobalt-60",
        "kV",
        "grenz rays",
        "Halcyon",
        "TrueBeam 6X",
    ],
)
def test_photon(text):
    assert modality_class(text) == "photon"


@pytest.mark.parametrize(
    "text",
    [
        "12 MeV e-",
        "9E",
        "12E",
        "E16",
        "9MeV electrons",
        "TSEBT",
        "e-",
        "Electron",
        "en face electrons",
        "e-beam",
        "6 MeV",
    ],
)
def test_electron(text):
    assert modality_class(text) == "electron"


@pytest.mark.parametrize(
    "text",
    [
        "HDR Ir-192",
        "LDR I-125 seeds",
        "plaque",
        "brachy",
        "Pd-103",
        "Cs-131",
        "Cs-137",
        "vaginal cuff HDR",
        "Brachytherapy",
        "T&O",
        "tandem and ring",
        "Ir192 HDR",
        "I125 seed implant",
        "tandem & ovoids",
        "Tandem/ring",
        "VBT",
        "ICBT",
        # A cobalt-60 source beside a brachytherapy word is an HDR source.
        "HDR Co-60",
    ],
)
def test_brachytherapy(text):
    assert modality_class(text) == "brachytherapy"


@pytest.mark.parametrize(
    "text",
    [
        "PBS protons",
        "proton",
        "PBT",
        "IMPT",
        "67.5 GyRBE in 15 fractions",
        "70 Gy(RBE)",
        "74 CGE",
        "230 MeV",
        "proton SBRT",
        "Proton beam therapy",
        "IMPT, kV CBCT",  # kV beside another class is the imaging
    ],
)
def test_proton(text):
    assert modality_class(text) == "proton"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "TBD",
        "hyperthermia",
        "neutrons",
        "carbon ions",
        "carbon ion 70 Gy(RBE)",
        "photon or proton",
        "photon/electron mix",
        "EBRT then HDR boost",
        "IMRT + IMPT",
        "6X + 12E",
        "ce-",
        "face-lift",
        "5e-3",
        "once-daily",
        "5 x 5 Gy",
        "unknown",
        "N/A",
        "chemo only",
    ],
)
def test_unknown_or_ambiguous_is_none(text):
    assert modality_class(text) is None


def test_non_text_is_none():
    assert modality_class(None) is None  # type: ignore[arg-type]
    assert modality_class(6) is None  # type: ignore[arg-type]


def test_every_synonym_maps_to_its_own_class():
    for name, terms in MODALITY_SYNONYMS.items():
        for term in terms:
            assert modality_class(term) == name, term
            assert modality_class(term.upper()) == name, term
            assert modality_class(f" {term.lower()} ") == name, term


def test_generic_external_beam_terms_default_to_photon():
    for term in EXTERNAL_BEAM_TERMS:
        assert modality_class(term) == "photon", term
        assert modality_class(f"proton {term}") == "proton", term
        assert modality_class(f"{term} then HDR") is None, term


def test_table_covers_the_four_classes():
    assert set(MODALITY_SYNONYMS) == set(MODALITIES)


def test_modality_classes_lists_every_class_named():
    assert modality_classes("photon or proton") == {"photon", "proton"}
    assert modality_classes("TBD") == set()
