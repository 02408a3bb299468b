"""Answer extraction on answers written as instruction-tuned and reasoning models write them
(Llama-3, Mistral, Qwen, GPT-style, DeepSeek-R1-style), each checked by hand against what a
radiation oncologist reads in it; what is ambiguous or cut off is malformed, never guessed."""

from __future__ import annotations

import pytest

from radonc_llm.infer.extract import extract_answer


def _read(task: str, text: str) -> tuple[str | None, bool]:
    result = extract_answer(task, text)
    return result.prediction, result.malformed


def _malformed_reason(task: str, text: str) -> str:
    result = extract_answer(task, text)
    assert result.malformed and result.prediction is None, result
    return result.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The treatment modality is **photon** (IMRT).", "photon"),
        ("Modality: Photon-based EBRT (VMAT)", "photon"),
        ("Recommended: proton beam therapy", "proton"),
        ("Photons.", "photon"),
        ("External beam radiotherapy (photons)", "photon"),
        ("HDR brachytherapy", "brachytherapy"),
        ("Electrons (6 MeV)", "electron"),
        ("- **Modality:** Photon\n- **Technique:** IMRT", "photon"),
        ('{"modality": "photon"}', "photon"),
        ('```json\n{"modality": "photon"}\n```', "photon"),
        # The task's field of a JSON answer, not its other fields.
        ('{"modality": "photon", "technique": "IMRT", "alternatives": ["proton"]}', "photon"),
        ('{"answer": "Electron", "reasoning": "superficial; protons not needed"}', "electron"),
        (
            "<think>Young patient, proton would spare dose... standard is photon.</think>\n\n**Photon**",
            "photon",
        ),
        ("The final answer is $\\boxed{\\text{Proton}}$", "proton"),
        ("Answer: Photon\n\nReasoning: protons not needed", "photon"),
    ],
)
def test_modality_as_chat_models_write_it(text, expected):
    assert _read("modality", text) == (expected, False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A boost is not the primary course: the other class named is.
        ("photon; brachytherapy boost", "photon"),
        ("Photon (EBRT) followed by brachytherapy boost", "photon"),
        ("EBRT with HDR brachytherapy boost", "photon"),
        ("Primary modality: photon (with brachytherapy boost)", "photon"),
        ("Photon whole breast, electron boost", "photon"),
        ("HDR brachytherapy boost after 45 Gy EBRT", "photon"),
        # An alternative is not the recommendation: the class recommended is.
        ("* Photon (IMRT)\n* Proton is an alternative", "photon"),
        ("Proton beam therapy is recommended; photon IMRT is an acceptable alternative.", "proton"),
        ("Photon. Proton therapy could be considered in selected cases.", "photon"),
        ("Proton. Alternatively, photon.", "proton"),
        ("Photon\n\nNote: proton therapy could be considered.", "photon"),
    ],
)
def test_modality_primary_is_the_class_not_named_as_boost_or_alternative(text, expected):
    assert _read("modality", text) == (expected, False)


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("either photon or proton", "several"),
        ("1. Photon\n2. Proton", "several"),
        ("EBRT then HDR brachytherapy", "several"),  # no boost named: two courses
        ("Photon or proton; brachytherapy boost", "several"),
        ("Photon therapy. Proton", "several"),  # cut, or two answers: either way not one
        ("I cannot provide medical advice. Please consult a radiation oncologist.", "none"),
        ('{"modality": ["photon", "proton"]}', "several"),
        # Cut by the token limit on a word that promises another answer.
        ("photon or", "cut off"),
        ("The modality would be photon and", "cut off"),
        ("EBRT followed by", "cut off"),
        ("Photon +", "cut off"),
        ("<think>The patient is 8 years old so proton", "reasoning"),
    ],
)
def test_modality_side_by_side_or_cut_off_is_malformed(text, reason_part):
    assert reason_part in _malformed_reason("modality", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: C34.90", "C34.90"),
        (
            "ICD-10-CM: C34.90 – Malignant neoplasm of unspecified part of unspecified "
            "bronchus or lung",
            "C34.90",
        ),
        ("C3490", "C34.90"),
        ("c34.90", "C34.90"),
        (
            "**C34.90** - Malignant neoplasm of unspecified part of unspecified bronchus or lung",
            "C34.90",
        ),
        (
            "- C34.90: Malignant neoplasm of unspecified part of unspecified bronchus or lung",
            "C34.90",
        ),
        ("```\nC34.90\n```", "C34.90"),
        ('{"code": "C34.90", "description": "Malignant neoplasm of lung"}', "C34.90"),
        ('{"ICD-10-CM": "C61"}', "C61"),
        ("ICD-10 code C34.90; ICD-9 code 162.9", "C34.90"),
        # WHO ICD-10's C34.9 is a non-billable ICD-10-CM subcategory: read as written (wrong
        # at full level, right at category level), not corrected to one of its codes.
        ("C34.9 (lung, unspecified)", "C34.9"),
        # The code the model settles on, not one it considered while reasoning.
        ("<think>Could be C34.11, upper lobe... lobe not stated.</think>C34.90", "C34.90"),
        (
            "The code could be C34.11. However, the lobe is not specified, so the final answer "
            "is C34.90.",
            "C34.90",
        ),
        ("Reasoning: C34.11 needs a lobe.\n\nFinal answer: \\boxed{C34.90}", "C34.90"),
        # The trained form's title cut after its code: the code is whole.
        ("C34.90 Malignant neoplasm of unspecified part of unspecified bronchus or", "C34.90"),
        ("Malignant neoplasm of prostate (C61", "C61"),  # C61 is billable: nothing was lost
    ],
)
def test_icd10_as_chat_models_write_it(text, expected):
    assert _read("icd10", text) == (expected, False)


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("C34.90 or C34.91", "several"),
        ('{"icd10": ["C34.90", "C34.91"]}', "several"),
        # "Primary" may name the primary tumour of a metastasis case (answer C79.51): not read.
        ("Primary: C61\nSecondary: C79.51", "several"),
        ("C50.912, Z17.0", "several"),
        ("Initially I thought C34.11, but the correct code is C34.90.", "several"),
        ("162.9", "ICD-9"),
        ("ICD-9: 162.9", "ICD-9"),
        ("I cannot provide medical advice.", "no ICD-10-CM code"),
        # Cut by the token limit inside the code or right after it.
        ("Malignant neoplasm of upper lobe, right bronchus or lung (C34.1", "cut off"),
        ("Malignant neoplasm of upper lobe, right bronchus or lung (C34.", "cut off"),
        ("C34.90 or", "cut off"),
    ],
)
def test_icd10_several_other_system_or_cut_off_is_malformed(text, reason_part):
    assert reason_part in _malformed_reason("icd10", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Recommended regimen: 70 Gy in 35 fractions with concurrent cisplatin.",
            "70 Gy in 35 fractions with concurrent cisplatin.",
        ),
        (
            "70 Gy in 35 fractions with concurrent cisplatin. This is standard per NCCN.",
            "70 Gy in 35 fractions with concurrent cisplatin.",
        ),
        (
            "70 Gy in 35 fractions with cisplatin, per NCCN guidelines.",
            "70 Gy in 35 fractions with cisplatin.",
        ),
        (
            "The recommended regimen is 60 Gy in 30 fractions with concurrent temozolomide.",
            "60 Gy in 30 fractions with concurrent temozolomide.",
        ),
        ("Sure! Here is the regimen: 20 Gy in 5 fractions.", "20 Gy in 5 fractions."),
        (
            "Based on the diagnosis, I recommend 54 Gy in 3 fractions (SBRT).",
            "54 Gy in 3 fractions (SBRT).",
        ),
        (
            "I'm not able to give medical advice, but a typical regimen is 60 Gy in 30 fractions.",
            "60 Gy in 30 fractions.",
        ),
        (
            "60 Gy in 30 fractions. Alternatively, 40.05 Gy in 15 fractions in frail patients.",
            "60 Gy in 30 fractions.",
        ),
        (
            "36.25 Gy in 5 fractions (SBRT). It is well tolerated.",
            "36.25 Gy in 5 fractions (SBRT).",
        ),
        # Markdown goes; list items are joined with "; ".
        (
            "1. 70 Gy in 35 fractions\n2. Concurrent cisplatin",
            "70 Gy in 35 fractions; Concurrent cisplatin",
        ),
        (
            "### Regimen\n- **70 Gy** in 35 fractions\n- Concurrent cisplatin 100 mg/m² q3w",
            "70 Gy in 35 fractions; Concurrent cisplatin 100 mg/m² q3w",
        ),
        ("```\n60 Gy/30 fx\n```", "60 Gy/30 fx"),
        ('{"regimen": "60 Gy in 30 fractions"}', "60 Gy in 30 fractions"),
        ("<think>Stupp protocol</think>60 Gy/30 fx + TMZ", "60 Gy/30 fx + TMZ"),
        # What may name the target, or is part of the regimen, stays.
        (
            "Whole breast plan: 40.05 Gy in 15 fractions",
            "Whole breast plan: 40.05 Gy in 15 fractions",
        ),
        (
            "For the left breast, I recommend 40.05 Gy in 15 fractions.",
            "For the left breast, I recommend 40.05 Gy in 15 fractions.",
        ),
        (
            "20 Gy in 5 fractions. Treat the whole pelvis.",
            "20 Gy in 5 fractions. Treat the whole pelvis.",
        ),
        (
            "45 Gy in 25 fractions, then HDR 7 Gy x 4 or 6 Gy x 5",
            "45 Gy in 25 fractions, then HDR 7 Gy x 4 or 6 Gy x 5",
        ),
        # Cut by the token limit: what it says is kept as written.
        (
            "60 Gy in 30 fractions with concurrent temozolomide, followed by",
            "60 Gy in 30 fractions with concurrent temozolomide, followed by",
        ),
    ],
)
def test_regimen_as_chat_models_write_it(text, expected):
    assert _read("regimen", text) == (expected, False)


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("Either 54 Gy in 3 fractions or 48 Gy in 4 fractions.", "several regimens"),
        ("I cannot provide medical advice. Please consult a radiation oncologist.", "no dose"),
        ("50.4-54 Gy/28-30 fx", "dose range (50.4-54 Gy)"),  # a guideline range, not a dose
    ],
)
def test_regimen_alternatives_side_by_side_or_refusal_is_malformed(text, reason_part):
    assert reason_part in _malformed_reason("regimen", text)
