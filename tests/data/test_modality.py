import pytest

from radonc_llm.data.cases import MODALITIES
from radonc_llm.data.modality import (
    EXTERNAL_BEAM_TERMS,
    MODALITY_SYNONYMS,
    NEGATION_AFTER_TERMS,
    NEGATION_TERMS,
    OTHER_RADIATION_TERMS,
    modality_class,
    modality_classes,
    read_modality,
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
        "proton or carbon",  # a bare "carbon" in a modality is the ion beam
        "Heavy ion therapy",
        "IORT",  # intraoperative: electrons or low-kV photons
        "Radiotherapy",
        "photon (proton if available)",
        "Photon, although proton could be considered",
        "prefer proton over photon",
        "photon vs proton",
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
    assert modality_classes("photon, not proton") == {"photon"}  # a negated class is not named
    assert modality_classes("TBD") == set()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Photonen", "photon"),
        ("Strahlentherapie mit Photonen", "photon"),
        ("fotones", "photon"),
        ("fotón", "photon"),
        ("fotoni", "photon"),
        ("Protonentherapie", "proton"),
        ("protón", "proton"),
        ("protonthérapie", "proton"),
        ("protonterapia", "proton"),
        ("Elektronen", "electron"),
        ("électrons", "electron"),
        ("electrones", "electron"),
        ("curiethérapie", "brachytherapy"),
        ("braquiterapia", "brachytherapy"),
        ("HDR-Afterloading", "brachytherapy"),
        ("radiothérapie externe", "photon"),
        # Dashes other than the hyphen ("e–" from a word processor) are hyphens.
        ("12 MeV e–", "electron"),
        ("e−", "electron"),
        ("3D–CRT", "photon"),
        ("Intensity-modulated radiation therapy", "photon"),
        ("Volumetric modulated arc therapy", "photon"),
        ("intensity-modulated proton therapy", "proton"),
        ("Linear accelerator", "photon"),
        ("Cyber Knife", "photon"),
        ("protontherapy", "proton"),
    ],
)
def test_other_languages_accents_and_spelled_out_techniques(text, expected):
    assert modality_class(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("photon, not proton", "photon"),
        ("photon not proton", "photon"),
        ("Not proton; photon", "photon"),
        ("Not proton but photon", "photon"),
        ("Photon (not proton)", "photon"),
        ("photon rather than proton", "photon"),
        ("proton instead of photon", "proton"),
        ("electron rather than photon", "electron"),
        ("Photon-based IMRT, not protons", "photon"),
        ("photon (not proton or electron)", "photon"),
        ("Proton is not indicated; photon.", "photon"),
        ("protons are not available; use photons", "photon"),
        ("I would not recommend photon; proton is better", "proton"),
        ("The patient doesn't need protons; photons are fine", "photon"),
        ("Proton? No, photon.", "photon"),
        ("Photon: yes. Proton: no.", "photon"),
        ("Brachytherapy, not external beam", "brachytherapy"),
        ("HDR, no EBRT", "brachytherapy"),
        ("6 MeV electrons (not 6 MV photons)", "electron"),
        ("protons rather than carbon ions", "proton"),
        ("keine Protonen, sondern Photonen", "photon"),
        ("sin protones; fotones", "photon"),
        ("VMAT, not 3D-CRT", "photon"),  # a photon technique negated, another named
        # Negations that are about something else leave the class alone.
        ("Photon with no boost", "photon"),
        ("Proton therapy without anaesthesia", "proton"),
        ("non-coplanar VMAT", "photon"),
        ("IMPT without kV imaging", "proton"),
        ("Photon therapy because the lesion is not deep", "photon"),
        ("No. of fractions: 5; SBRT", "photon"),
    ],
)
def test_negated_mentions_do_not_count(text, expected):
    assert modality_class(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "No protons",
        "not photon",
        "It is not photon.",
        "Not brachytherapy",
        "non-proton",
        "neither photon nor proton",
        "Proton? No.",
        "proton is contraindicated",
        "keine Protonen",
        "pas de protons",
    ],
)
def test_a_negation_alone_never_becomes_the_class_it_negates(text):
    reading = read_modality(text)
    assert reading.label is None and not reading.named
    assert reading.negated


def test_every_negation_word_negates():
    for word in NEGATION_TERMS:
        assert modality_class(f"{word} proton") is None, word
        assert modality_class(f"photon, {word} proton") == "photon", word
    for word in NEGATION_AFTER_TERMS:
        assert modality_class(f"proton {word}") is None, word
        assert modality_class(f"photon; proton {word}") == "photon", word


def test_every_other_radiation_term_makes_a_text_unmappable():
    for term in OTHER_RADIATION_TERMS:
        assert modality_class(term) is None, term
        assert modality_class(f"proton or {term}") is None, term
        assert read_modality(term).other, term


def test_read_modality_says_what_is_named_negated_and_outside():
    reading = read_modality("photon, not proton")
    assert (reading.label, reading.named, reading.negated) == ("photon", {"photon"}, {"proton"})
    assert read_modality("photon or proton").named == {"photon", "proton"}
    assert read_modality("carbon ions").other == ("carbon ions",)
    assert read_modality("").label is None
