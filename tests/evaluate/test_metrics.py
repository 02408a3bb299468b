"""Task metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from radonc_llm.evaluate.metrics import (
    MALFORMED_LABEL,
    _f1_from_indices,
    _label_indices,
    classification_f1,
    icd10_metrics,
    modality_metrics,
    regimen_metrics,
    rouge_f,
)

REQUIRED = {
    "modality": {
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "per_class",
        "confusion",
        "malformed_rate",
        "n",
        "rouge1_f",
    },
    "icd10": {
        "exact_accuracy",
        "category_accuracy",
        "chapter_accuracy",
        "macro_f1",
        "malformed_rate",
        "n",
        "accuracy",
        "rouge1_f",
    },
    "regimen": {
        "rouge1_f",
        "rougeL_f",
        "exact_match",
        "dose_match",
        "fractions_match",
        "concurrent_match",
        "eqd2_abs_error",
        "n",
        "accuracy",
    },
}


def test_modality_metrics_by_hand():
    refs = ["photon", "photon", "proton", "electron", "brachytherapy", "photon"]
    preds = ["photon", "proton", "proton", None, "brachytherapy", "photon"]
    raws = ["Photon", "proton", "proton", "neutrons", "brachytherapy", "photon"]
    block, rows = modality_metrics(refs, preds, raws, n_resamples=200)
    assert REQUIRED["modality"] <= set(block)
    assert block["accuracy"] == pytest.approx(4 / 6)
    # F1: photon 2tp/(2tp+fp+fn) = 4/5, proton 2/3, electron 0, brachytherapy 1.
    assert block["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 0 + 1) / 4)
    assert block["weighted_f1"] == pytest.approx((0.8 * 3 + 2 / 3 + 0 + 1) / 6)
    assert block["per_class"]["photon"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3, "predicted": 2}
    )
    # electron: one reference case, never answered -> recall 0, precision undefined.
    assert block["per_class"]["electron"] == {
        "precision": None,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
        "predicted": 0,
    }
    assert block["malformed_rate"] == pytest.approx(1 / 6)
    assert block["confusion"]["labels"] == [
        "photon",
        "proton",
        "electron",
        "brachytherapy",
        MALFORMED_LABEL,
    ]
    assert block["confusion"]["matrix"] == [
        [2, 1, 0, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0],
    ]
    # ROUGE-1 on the raw answer: case-insensitive, "neutrons" shares nothing with "electron".
    assert block["rouge1_f"] == pytest.approx(4 / 6)
    assert block["n"] == 6 and [r["correct"] for r in rows] == [1, 0, 1, 0, 1, 1]
    low, high = block["ci95"]["accuracy"]
    assert low <= block["accuracy"] <= high


def test_icd10_metrics_by_hand():
    refs = ["C50.412", "C61", "C71.1", "C44.311"]
    preds = ["C50.411", "C61", "C34.11", None]
    block, rows = icd10_metrics(
        refs, preds, ["C50.411", "C61", "C34.11", "no idea"], n_resamples=200
    )
    assert REQUIRED["icd10"] <= set(block)
    assert block["exact_accuracy"] == block["accuracy"] == pytest.approx(1 / 4)
    assert block["category_accuracy"] == pytest.approx(2 / 4)  # C50 = C50, C61 = C61
    assert block["chapter_accuracy"] == pytest.approx(3 / 4)  # C34 and C71 both chapter 2
    # Six labels occur (4 references + 2 other predictions); only C61 has F1 = 1.
    assert block["macro_f1"] == pytest.approx(1 / 6)
    assert block["malformed_rate"] == pytest.approx(1 / 4)
    assert [r["chapter_correct"] for r in rows] == [1, 1, 1, 0]


def test_regimen_metrics_by_hand():
    refs = [
        "60 Gy in 30 fractions IMRT with concurrent temozolomide",
        "70 Gy in 35 fractions with concurrent cisplatin",
        "8 Gy in 1 fraction",
    ]
    preds = [
        "60 Gy in 30 fractions IMRT with concurrent temozolomide.",
        "70 Gy in 33 fractions",
        None,
    ]
    block, rows = regimen_metrics(refs, preds, ["", "", ""], n_resamples=200)
    assert REQUIRED["regimen"] <= set(block)
    assert block["exact_match"] == block["accuracy"] == pytest.approx(1 / 3)
    assert block["dose_match"] == pytest.approx(2 / 3)
    assert block["fractions_match"] == pytest.approx(1 / 3)
    assert block["concurrent_match"] == pytest.approx(1 / 3)
    # EQD2 (alpha/beta 10): 70/35 -> 70; 70/33 -> 70 (1 + 2.1212/10) / 1.2 = 70.7071.
    assert block["eqd2_abs_error"] == pytest.approx((0 + 70 * (1 + 70 / 33 / 10) / 1.2 - 70) / 2)
    assert block["eqd2_n"] == 2 and block["dose_n"] == 3
    # Dose per fraction: 60/30 = 2 exactly; |70/33 - 70/35| = 2.1212 - 2 = 0.1212 Gy.
    assert [r["dose_per_fraction_abs_error"] for r in rows] == pytest.approx([0, 70 / 33 - 2, None])
    assert block["dose_per_fraction_abs_error"] == pytest.approx((70 / 33 - 2) / 2)
    assert block["dose_per_fraction_n"] == 2
    # ROUGE-1: identical; 4 shared of 5 predicted / 8 reference tokens -> F = 8/13; none.
    assert [r["rouge1_f"] for r in rows] == pytest.approx([1.0, 8 / 13, 0.0])
    assert block["rouge1_f"] == pytest.approx((1 + 8 / 13) / 3)
    assert block["malformed_rate"] == pytest.approx(1 / 3)


def test_unreadable_regimen_matches_no_drug_list():
    block, _ = regimen_metrics(
        ["8 Gy in 1 fraction"], ["see the tumour board"], [""], n_resamples=10
    )
    assert block["concurrent_match"] == 0.0 and block["dose_match"] == 0.0


def test_a_reference_without_a_dose_gives_no_drug_list_to_match():
    # "Observation only" and "see attached plan" state no regimen: a prediction with no drugs
    # used to "agree" on the (empty) drug list, scoring 1 of 1 where nothing was compared.
    refs = ["Observation only", "see attached plan", "60 Gy in 30 fractions", "60 Gy"]
    preds = ["60 Gy in 30 fractions"] * 4
    block, rows = regimen_metrics(refs, preds, preds, n_resamples=10)
    assert [r["concurrent_match"] for r in rows] == [None, None, 1, 1]
    assert block["concurrent_n"] == 2 and block["concurrent_match"] == 1.0
    # The unreadable references still count in n and ROUGE (0 shared words): 0, 0, 1, 4/7.
    assert block["n"] == 4 and block["rouge1_f"] == pytest.approx((1 + 4 / 7) / 4)
    assert block["dose_n"] == 2 and block["fractions_n"] == 1


def test_rouge_of_nothing_is_zero():
    assert rouge_f("60 Gy", None) == (0.0, 0.0)
    assert rouge_f("60 Gy", "  ") == (0.0, 0.0)


def test_numpy_f1_equals_scikit_learn():
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c", "d"]
    for _ in range(20):
        y_true = list(rng.choice(labels[:3], size=30))
        y_pred = [None if rng.random() < 0.2 else str(rng.choice(labels)) for _ in range(30)]
        names, t, p = _label_indices(y_true, y_pred)
        assert _f1_from_indices(t, p, len(names)) == pytest.approx(
            classification_f1(y_true, y_pred)
        )


def test_total_eqd2_adds_each_course_converted_on_its_own():
    from radonc_llm.data.regimen import parse_regimen, total_eqd2

    # 45 Gy/25 (1.8 Gy): 45 x 1.18 / 1.2 = 44.25; HDR 7 Gy x 3: 21 x 1.7 / 1.2 = 29.75.
    both = parse_regimen("EBRT 45 Gy/25 fx + HDR boost 7 Gy x 3")
    assert total_eqd2(both) == pytest.approx(74.0)
    # Without a boost it is the course's EQD2; a cumulative boost has no fractionation.
    assert total_eqd2(parse_regimen("60 Gy in 30 fractions")) == pytest.approx(60.0)
    assert total_eqd2(parse_regimen("50 Gy in 25 fractions, boost to 60 Gy")) is None
    assert total_eqd2(parse_regimen("Observation only")) is None


def test_regimen_metrics_score_the_boost_only_in_the_total_eqd2():
    refs = ["EBRT 45 Gy/25 fx + HDR boost 7 Gy x 3", "50 Gy/25 fx + 10 Gy/5 fx boost"]
    preds = ["EBRT 45 Gy/25 fx + HDR boost 6 Gy x 4", "50 Gy/25 fx, boost to 60 Gy"]
    block, rows = regimen_metrics(refs, preds, ["", ""], n_resamples=200)
    # The main courses agree; the first boosts differ: 24 x 1.6 / 1.2 = 32 vs 29.75 Gy.
    assert [r["eqd2_abs_error"] for r in rows] == pytest.approx([0.0, 0.0])
    assert rows[0]["total_eqd2_abs_error"] == pytest.approx(32.0 - 29.75)
    assert rows[1]["total_eqd2_abs_error"] is None  # "to 60 Gy" states no fractions
    assert block["total_eqd2_abs_error"] == pytest.approx(2.25)
    assert block["total_eqd2_n"] == 1 and block["eqd2_n"] == 2
