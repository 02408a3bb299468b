"""Answer extraction: synonyms, codes, and what counts as malformed (never guessed)."""

from __future__ import annotations

import pytest

from radonc_llm.data.cases import TASKS
from radonc_llm.infer.extract import EXTRACTORS, extract_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("photon", "photon"),
        ("Photon.", "photon"),
        ("IMRT", "photon"),
        ("X-ray therapy", "photon"),
        ("HDR brachytherapy.", "brachytherapy"),
        ("HDR", "brachytherapy"),
        ("Protons (PBS)", "proton"),
        ("Electrons, 12 MeV", "electron"),
    ],
)
def test_modality_synonyms_map_to_the_four_classes(text, expected):
    result = extract_answer("modality", text)
    assert (result.prediction, result.malformed) == (expected, False)


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("photon or proton", "several"),
        ("EBRT then HDR boost", "several"),
        ("Neutronotherapy", "none"),
        ("carbon ions", "none"),
        ("", "empty"),
        ("   \n", "empty"),
    ],
)
def test_modality_unreadable_or_ambiguous_is_malformed(text, reason_part):
    result = extract_answer("modality", text)
    assert result.malformed and result.prediction is None
    assert reason_part in result.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C50.412", "C50.412"),
        ("c50412", "C50.412"),
        ("The code is C61.", "C61"),
        ("C61 (C61)", "C61"),  # the same code twice is one answer
        ("C50.999", "C50.999"),  # made-up subcode of a real category: wrong, not unreadable
        ("Malignant neoplasm of upper-outer quadrant of left female breast (C50.412)", "C50.412"),
        ("Malignant neoplasm of prostate (c61).", "C61"),
        ("ICD-10: C34.11 (keep lung V20Gy < 35%)", "C34.11"),  # a DVH metric is not a code
        # The trained form wins over a code-shaped word in the code's own title ("O157").
        (
            "Shiga toxin-producing Escherichia coli [E. coli] [STEC] O157 as the cause of "
            "diseases classified elsewhere (B96.21)",
            "B96.21",
        ),
    ],
)
def test_icd10_codes_found_and_dotted(text, expected):
    result = extract_answer("icd10", text)
    assert (result.prediction, result.malformed) == (expected, False)


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("C61 or C50.412", "several"),
        ("Malignant neoplasm of prostate C61 (C50.412)", "several"),  # not the code's title
        ("T2N1M0, HER2-", "no ICD-10-CM code"),
        ("prostate cancer", "no ICD-10-CM code"),
        ("", "empty"),
    ],
)
def test_icd10_none_or_several_codes_is_malformed(text, reason_part):
    result = extract_answer("icd10", text)
    assert result.malformed and result.prediction is None
    assert reason_part in result.reason


def test_regimen_text_is_whitespace_normalised_and_empty_is_malformed():
    assert extract_answer("regimen", "  70 Gy in\n35 fractions ").prediction == (
        "70 Gy in 35 fractions"
    )
    assert extract_answer("regimen", " \n ").malformed


def test_every_task_has_one_extractor_and_none_text_is_malformed():
    assert set(EXTRACTORS) == set(TASKS)
    for task in TASKS:
        result = extract_answer(task, None)
        assert result.malformed and result.prediction is None


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task"):
        extract_answer("staging", "T2")


@pytest.mark.parametrize("text", ["I cannot determine the regimen.", "Observation", "N/A"])
def test_regimen_answer_with_nothing_of_a_regimen_is_malformed(text):
    extraction = extract_answer("regimen", text)
    assert extraction.malformed and extraction.prediction is None


@pytest.mark.parametrize("text", ["HDR brachytherapy", "SBRT", "8 Gy", "concurrent cisplatin"])
def test_regimen_answer_with_any_part_of_a_regimen_is_kept_whole(text):
    assert extract_answer("regimen", text).prediction == text
