"""Review statistics checked against values worked out by hand."""

from __future__ import annotations

import pytest

from radonc_llm.review.metrics import (
    RatingRecord,
    acceptability_by_source,
    cohen_kappas,
    fleiss,
    krippendorff_ordinal,
    paired_comparison,
    review_metrics,
    wilson_interval,
)

NAMES = {2: "acceptable", 1: "minor_edits", 0: "unacceptable"}


def records(source: str, scores_by_reviewer: dict[str, list[int]]) -> list[RatingRecord]:
    """Item i of `source` is case c{i}; each reviewer's list gives the scores of items 0.."""
    return [
        RatingRecord(f"{source}-{i}", f"c{i}", source, reviewer, NAMES[score])
        for reviewer, scores in scores_by_reviewer.items()
        for i, score in enumerate(scores)
    ]


def test_wilson_interval_by_hand():
    # p = 0.8, n = 10, z = 1.95996: centre 0.71674, half-width 0.22658.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.49016, abs=1e-5) and high == pytest.approx(0.94332, abs=1e-5)
    assert wilson_interval(0, 0) is None


def test_acceptability_counts_minor_edits_as_acceptable():
    result = acceptability_by_source(records("base", {"a": [2, 1, 0, 0], "b": [2]}))
    base = result["base"]
    assert base["n"] == 5
    assert base["counts"] == {"acceptable": 2, "minor_edits": 1, "unacceptable": 2}
    assert base["acceptable_rate"] == pytest.approx(3 / 5)
    assert base["as_is_rate"] == pytest.approx(2 / 5)
    # Item 0 is rated twice (both acceptable): acceptable per item a = 2, 1, 0, 0 of m = 2, 1,
    # 1, 1; p = 0.6; sum (a - p m)^2 = 0.64 + 0.16 + 0.36 + 0.36 = 1.52; variance = 1.52 /
    # (4 x 3 x 1.25^2) = 0.0810667; effective n = 0.24 / 0.0810667 = 2.9605, not 5.
    assert base["n_items"] == 4
    assert base["acceptable_n_effective"] == pytest.approx(0.24 / (1.52 / 18.75))
    assert base["acceptable_ci95"] == pytest.approx(
        wilson_interval(0.6 * 2.96053, 2.96053), abs=1e-5
    )
    assert base["acceptable_ci95"][0] < wilson_interval(3, 5)[0]


def test_items_rated_once_keep_wilson_over_ratings_and_agreeing_pairs_count_once():
    once = acceptability_by_source(records("base", {"a": [2, 1, 0, 0, 2]}))["base"]
    assert once["acceptable_n_effective"] == 5
    assert once["acceptable_ci95"] == pytest.approx(wilson_interval(3, 5))
    # Two reviewers who agree on every item: 4 items, 8 ratings, all acceptable -> 4 units.
    agreeing = acceptability_by_source(records("base", {"a": [2, 2, 1, 1], "b": [2, 2, 1, 1]}))
    assert agreeing["base"]["acceptable_n_effective"] == 4
    assert agreeing["base"]["acceptable_ci95"] == pytest.approx(wilson_interval(4, 4))


def test_paired_wilcoxon_on_mean_case_scores():
    # Per-case means (two reviewers): tuned 2, 2, 2, 1.5, 1 vs base 0, 0.5, 1, 1, 1.
    # Differences 2, 1.5, 1, 0.5 and one zero (dropped): W+ = 1+2+3+4 = 10, exact one-sided
    # p = 1/2^4 = 0.0625.
    tuned = records("finetuned", {"a": [2, 2, 2, 1, 1], "b": [2, 2, 2, 2, 1]})
    base = records("base", {"a": [0, 0, 1, 1, 1], "b": [0, 1, 1, 1, 1]})
    result = paired_comparison(tuned + base, treatment="finetuned", control="base")
    assert result["n_cases"] == 5 and result["n_nonzero"] == 4
    assert result["statistic"] == 10.0
    assert result["p_value"] == pytest.approx(0.0625)
    assert result["mean_treatment"] == pytest.approx(1.7)
    # Reversed, the one-sided test finds nothing.
    reverse = paired_comparison(tuned + base, treatment="base", control="finetuned")
    assert reverse["p_value"] == pytest.approx(1.0)


def test_paired_wilcoxon_p_does_not_depend_on_how_many_cases_tie():
    # 3 cases rated higher for the tuned model, 11 the same: only 3 pairs carry information,
    # exact one-sided p = 1/2^3 whatever the ties (SciPy's method="auto" gave 0.042 here).
    ratings = {case: 1 for case in "abcdefghijklmn"}
    tuned = records("finetuned", {"a": [2 if c in "abc" else 1 for c in ratings]})
    base = records("base", {"a": list(ratings.values())})
    result = paired_comparison(tuned + base, treatment="finetuned", control="base")
    assert result["n_cases"] == 14 and result["n_nonzero"] == 3
    assert result["p_value"] == pytest.approx(1 / 8)
    assert result["method"].startswith("exact")


def test_paired_wilcoxon_degenerate_inputs():
    same = records("finetuned", {"a": [2, 1]}) + records("base", {"a": [2, 1]})
    result = paired_comparison(same, treatment="finetuned", control="base")
    assert result["p_value"] is None and "zero" in result["note"]
    none = paired_comparison(records("base", {"a": [2]}), treatment="finetuned", control="base")
    assert none["n_cases"] == 0 and none["p_value"] is None
    block = review_metrics(same, treatment="tuned", control="base", sources=["base", "finetuned"])
    assert (
        block["comparison"]["p_value"] is None
        and "no source 'tuned'" in block["comparison"]["note"]
    )


def test_cohen_kappa_by_hand():
    # Observed agreement 4/6; chance (3*3 + 1*2 + 2*1)/36 = 13/36; kappa = (24-13)/(36-13).
    pair = cohen_kappas(records("s", {"a": [2, 2, 1, 0, 0, 2], "b": [2, 1, 1, 0, 2, 2]}))
    assert len(pair) == 1 and pair[0]["n"] == 6
    assert pair[0]["kappa"] == pytest.approx(11 / 23)
    constant = cohen_kappas(records("s", {"a": [2, 2], "b": [2, 2]}))
    assert constant[0]["kappa"] is None and "single category" in constant[0]["note"]


def test_fleiss_kappa_by_hand():
    # Items rated (2,2), (1,2), (0,0): P-bar = 2/3, P_e = (2^2 + 1^2 + 3^2)/6^2 = 14/36,
    # kappa = (2/3 - 14/36) / (1 - 14/36) = 5/11.
    result = fleiss(records("s", {"a": [2, 1, 0], "b": [2, 2, 0]}))
    assert result["value"] == pytest.approx(5 / 11)
    assert result["n_items"] == 3 and result["raters_per_item"] == 2
    assert fleiss(records("s", {"a": [2, 1]}))["value"] is None


def test_krippendorff_alpha_ordinal():
    perfect = krippendorff_ordinal(records("s", {"a": [2, 1, 0, 2], "b": [2, 1, 0, 2]}))
    assert perfect["value"] == pytest.approx(1.0)
    # A missing rating is allowed: item 3 is rated by one reviewer only.
    partial = records("s", {"a": [2, 1, 0, 2], "b": [2, 1, 0]})
    assert krippendorff_ordinal(partial)["n_items"] == 3
    opposed = krippendorff_ordinal(records("s", {"a": [2, 0, 2, 0], "b": [0, 2, 0, 2]}))
    assert opposed["value"] < 0
    assert krippendorff_ordinal(records("s", {"a": [2]}))["value"] is None
