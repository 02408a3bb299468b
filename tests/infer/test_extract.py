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
        ("Photon therapy (IMRT)", "photon"),
        ("**Modality:** Proton", "proton"),
        ("The recommended modality is external beam photon radiotherapy.", "photon"),
        ("Brachytherapy (HDR)", "brachytherapy"),
        ("e-", "electron"),
        ("6 MV photons", "photon"),
        ("15MV", "photon"),
        ("Co-60", "photon"),
        ("Gamma Knife", "photon"),
        ("TomoTherapy", "photon"),
        ("SBRT", "photon"),
        ("'photon'", "photon"),
        ("`electron`", "electron"),
        ("```\nphoton\n```", "photon"),
        ('```json\n{"modality": "proton"}\n```', "proton"),
        ("PHOTON?", "photon"),
        ("fotones", "photon"),
        ("Protonentherapie", "proton"),
        ("protón", "proton"),
        ("curiethérapie", "brachytherapy"),
        ("Elektronen", "electron"),
        ("photon, not proton", "photon"),
        ("Not proton; photon", "photon"),
        ("photon rather than proton", "photon"),
        # The primary modality: a boost or an alternative is not it.
        ("EBRT then HDR boost", "photon"),
        ("Proton therapy. Photon therapy would be an alternative.", "proton"),
    ],
)
def test_modality_synonyms_map_to_the_four_classes(text, expected):
    result = extract_answer("modality", text)
    assert (result.prediction, result.malformed) == (expected, False)


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("photon or proton", "several"),
        ("Neutronotherapy", "none"),
        ("carbon ions", "outside"),
        ("Proton or carbon", "outside"),
        ("No protons", "negates"),
        ("neither photon nor proton", "negates"),
        ("Photon or proton", "several"),
        ("None", "none"),
        ("N/A", "none"),
        ("I cannot determine the modality.", "none"),
        ("фотоны", "none"),  # a language not declared: unread, never guessed
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
    ("text", "expected"),
    [
        ("C61", "C61"),
        ("c61", "C61"),
        ("C50911", "C50.911"),
        ("ICD-10: C34.11 (malignant neoplasm of upper lobe, right bronchus or lung)", "C34.11"),
        # A category or a code with a made-up digit is an answer, scored at category level.
        ("C34.1", "C34.1"),
        ("C34.1x", "C34.1X"),
        ("C61 - Malignant neoplasm of prostate", "C61"),
        ("Code: C71.9.", "C71.9"),
        ("**C61**", "C61"),
        ("```\nC61\n```", "C61"),
        ('{"icd10": "C50.911"}', "C50.911"),
        # Another code system beside the ICD-10-CM code is not a second answer.
        ("ICD-9 185 / ICD-10 C61", "C61"),
        ("C61 (ICD-9: 185)", "C61"),
        ("ICD-O: 8140/3, ICD-10: C61", "C61"),
        ("C61 (ICD-O-3 M8140/3)", "C61"),
        # One code with stray spaces, a decimal comma or a hyphen for the dot.
        ("c 61", "C61"),
        ("Answer: c 61.", "C61"),
        ("C 50.911", "C50.911"),
        ("C50. 911", "C50.911"),
        ("C50 .911", "C50.911"),
        ("C50,911", "C50.911"),
        ("C50-911", "C50.911"),
        # Full-width digits and letters, a Cyrillic C, zero-width characters.
        ("Ｃ６１", "C61"),
        ("\u0421" + "61", "C61"),
        ("C\u200b61", "C61"),
        ("\ufeffC50.911\u200b", "C50.911"),
        ("ICD-10-CM diagnosis? C61", "C61"),  # the question echoed
        ("<think>C50.911 or C50.912?</think> C50.912", "C50.912"),
        ("C61\nExplanation: not C50.911, which is breast", "C61"),
        ("Primary diagnosis: C61", "C61"),
    ],
)
def test_icd10_answers_as_models_write_them(text, expected):
    result = extract_answer("icd10", text)
    assert (result.prediction, result.malformed) == (expected, False)


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("C61 or C50.412", "several"),
        ("C61 and C50.911", "several"),
        ("C34.11/C34.12", "several"),
        ("C00-C14", "several"),  # a block is not a code
        ("ICD-9 185", "no ICD-10-CM code"),
        ("ICD-9-CM: V58.0", "no ICD-10-CM code"),  # would read as the ICD-10-CM V58.0
        ("M8140/3", "no ICD-10-CM code"),  # ICD-O morphology, not M81.40
        ("None", "no ICD-10-CM code"),
        ("\u200b", "empty"),
        ("<think>C61 or C50.911", "reasoning"),
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Invisible characters, full-width letters, a Cyrillic "Р" inside a Latin word.
        ("photon\u200b", "photon"),
        ("\u200bproton", "proton"),
        ("ｐｈｏｔｏｎ", "photon"),
        ("\u0420hoton", "photon"),
        ("12 MeV e\u2013", "electron"),
        # A reasoning model's thinking is not its answer.
        ("<think>Maybe proton, but photon is standard.</think>\nPhoton", "photon"),
        ("Maybe proton</think> electron", "electron"),  # server dropped the opening tag
        # An echoed prompt, labelled answers, a question list echoed before the answer.
        ("Treatment modality? photon", "photon"),
        ("Diagnosis: 70M prostate, s/p HDR 2019.\n\nTreatment modality? proton", "proton"),
        ("Which modality? photon, proton, electron or brachytherapy. Answer: photon", "photon"),
        (
            "Question: Which modality (photon, proton, electron, brachytherapy)?\nAnswer: proton",
            "proton",
        ),
        ("The answer is: proton", "proton"),
        ("Let me think: photon or proton. Final answer: electron", "electron"),
        # What follows the answer: a next item the model went on to write, an explanation.
        ("photon\n\nDiagnosis: 50F breast\n\nTreatment modality? electron", "photon"),
        ("Answer: photon\n\nQuestion: next case? Answer: proton", "photon"),
        ("Photon.\n\nExplanation: Proton therapy would add cost without benefit.", "photon"),
        ("**Answer:** Brachytherapy\n**Rationale:** cervix boost after EBRT", "brachytherapy"),
    ],
)
def test_modality_answer_found_in_what_models_write(text, expected):
    result = extract_answer("modality", text)
    assert (result.prediction, result.malformed) == (expected, False)


def test_unfinished_reasoning_is_malformed_not_read():
    result = extract_answer("modality", "<think>photon is the standard here, so")
    assert result.malformed and "reasoning" in result.reason


def test_regimen_answer_is_found_but_its_text_is_kept_as_written():
    assert extract_answer("regimen", "<think>long</think>60 Gy in 30 fractions").prediction == (
        "60 Gy in 30 fractions"
    )
    assert extract_answer("regimen", "60 Gy/30 fx\nRationale: standard").prediction == "60 Gy/30 fx"
    # Only invisible characters go: "m²" stays as the model wrote it.
    assert extract_answer("regimen", "70 Gy/35 fx + cisplatin 40 mg/m²\u200b").prediction == (
        "70 Gy/35 fx + cisplatin 40 mg/m²"
    )


# A note that names a modality, a code and a dose of the patient's history, never the answer.
_HISTORY_NOTE = (
    "73F. Hx R breast ca 2014 (C50.411), 50 Gy in 25 fractions with electron boost. "
    "New RUL adenocarcinoma."
)


@pytest.mark.parametrize(
    ("task", "question"),
    [
        ("modality", "Treatment modality?"),
        ("icd10", "ICD-10-CM diagnosis?"),
        ("regimen", "Radiotherapy regimen?"),
    ],
)
def test_prompt_echoed_without_an_answer_is_empty_not_the_note(task, question):
    # The echoed note holds "electron", "C50.411" and "50 Gy in 25 fractions": none is an answer.
    result = extract_answer(task, f"Diagnosis: {_HISTORY_NOTE}\n\n{question}\n")
    assert result.malformed and result.prediction is None
    assert "empty" in result.reason


@pytest.mark.parametrize(
    ("task", "text", "expected"),
    [
        # The conversation echoed in a chat template: the answer is the last assistant turn.
        (
            "icd10",
            "<|im_start|>system\nYou are a radiation oncology assistant.<|im_end|>\n"
            f"<|im_start|>user\nDiagnosis: {_HISTORY_NOTE}\n\nICD-10-CM diagnosis?<|im_end|>\n"
            "<|im_start|>assistant\n"
            "Malignant neoplasm of upper lobe, right bronchus or lung (C34.11)<|im_end|>",
            "C34.11",
        ),
        (
            "modality",
            f"<s>[INST] Diagnosis: {_HISTORY_NOTE}\n\nTreatment modality? [/INST] photon </s>",
            "photon",
        ),
        (
            "modality",
            "<|start_header_id|>user<|end_header_id|>\n\nDiagnosis: prior electron boost\n\n"
            "Treatment modality?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
            "photon<|eot_id|>",
            "photon",
        ),
        # An answer followed by an end-of-turn token and a turn the model went on to write.
        (
            "regimen",
            "54 Gy in 3 fractions SBRT<|im_end|>\n<|im_start|>user\nDiagnosis: hx 50 Gy/25 fx",
            "54 Gy in 3 fractions SBRT",
        ),
        ("regimen", "54 Gy in 3 fractions SBRT</s>", "54 Gy in 3 fractions SBRT"),
        ("regimen", "<s> 8 Gy in 1 fraction", "8 Gy in 1 fraction"),
        (
            "icd10",
            "Malignant neoplasm of upper lobe, right bronchus or lung (C34.11)<|im_end|>\n"
            "<|im_start|>user\nICD-10-CM diagnosis?<|im_end|>\n<|im_start|>assistant\nC50.411",
            "C34.11",
        ),
        ("modality", "<|im_start|>assistant\n<think>photon?</think>electron<|im_end|>", "electron"),
    ],
)
def test_chat_template_markup_in_a_servers_text(task, text, expected):
    result = extract_answer(task, text)
    assert (result.prediction, result.malformed) == (expected, False)


def test_chat_template_echo_without_an_answer_is_empty_not_the_note():
    for text in (
        f"[INST] Diagnosis: {_HISTORY_NOTE}\n\nTreatment modality? [/INST]",
        f"<|im_start|>user\nDiagnosis: {_HISTORY_NOTE}\n\nTreatment modality?<|im_end|>",
    ):
        result = extract_answer("modality", text)
        assert result.malformed and "empty" in result.reason


@pytest.mark.parametrize(
    "text",
    ["Regimen: 8 Gy in 1 fraction", "**Radiotherapy regimen:** 8 Gy in 1 fraction"],
)
def test_regimen_label_is_not_kept_in_the_regimen_text(text):
    assert extract_answer("regimen", text).prediction == "8 Gy in 1 fraction"
