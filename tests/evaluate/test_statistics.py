"""Paired tests and corrections against values worked out by hand and SciPy's documentation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from radonc_llm.evaluate.metrics import rouge_f
from radonc_llm.evaluate.statistics import (
    bootstrap_ci,
    holm,
    mcnemar_exact,
    rank_biserial,
    wilcoxon_signed_rank,
)

# scipy.stats.wilcoxon documentation: differences in height of cross- and self-fertilised
# Zea mays pairs (Fisher's design of experiments example).
SCIPY_DOC_D = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]


def test_wilcoxon_matches_the_scipy_documentation_example():
    zeros = [0] * len(SCIPY_DOC_D)
    greater = wilcoxon_signed_rank(SCIPY_DOC_D, zeros, alternative="greater")
    assert greater.statistic == 96.0
    assert greater.p_value == pytest.approx(0.0206298828125, abs=1e-12)
    assert greater.method.startswith("exact") and greater.n == 15 and greater.n_nonzero == 15
    two_sided = wilcoxon_signed_rank(SCIPY_DOC_D, zeros, alternative="two-sided")
    assert two_sided.statistic == 24.0
    assert two_sided.p_value == pytest.approx(0.041259765625, abs=1e-12)
    # Rank-biserial by hand: R- = 10 + 14 = 24 (ranks of 48 and 67), R+ = 120 - 24 = 96.
    assert greater.effect_size == pytest.approx((96 - 24) / 120)


def test_wilcoxon_drops_zero_differences_and_handles_all_ties():
    # Differences [1, 1, 1, -1, 0, 0, 0]: zeros dropped, four tied ranks of 2.5, R+ = 7.5.
    system = [1, 1, 1, 0, 1, 0, 1]
    baseline = [0, 0, 0, 1, 1, 0, 1]
    result = wilcoxon_signed_rank(system, baseline)
    assert result.n == 7 and result.n_nonzero == 4
    assert result.statistic == 7.5
    assert result.p_value == pytest.approx(5 / 16)  # exact over the 2^4 sign flips
    assert result.effect_size == pytest.approx(0.5)  # (7.5 - 2.5) / 10
    same = wilcoxon_signed_rank([1, 0, 1], [1, 0, 1])
    assert (same.p_value, same.statistic, same.effect_size) == (1.0, 0.0, 0.0)


def test_dropped_ties_do_not_change_the_p_value():
    # Three won pairs and 11 or 27 tied ones: under Wilcoxon's method the tied pairs carry no
    # information, so p is the exact 1/8 (all three of 2^3 sign flips positive) either way.
    # SciPy's method="auto" counted the zeros and used the normal approximation: p = 0.042.
    for tied in (10, 11, 27, 60):
        result = wilcoxon_signed_rank([1] * (3 + tied), [0] * 3 + [1] * tied)
        assert (result.n, result.n_nonzero, result.statistic) == (3 + tied, 3, 6.0)
        assert result.p_value == pytest.approx(1 / 8), tied
        assert result.method.startswith("exact")


def test_exact_p_with_tied_ranks_beyond_thirteen_pairs():
    # 15 wins, 5 losses, all |d| = 1 (McNemar-like 0/1 scores): every rank is 10.5, so R+ is
    # 10.5 x (number of positive signs) and p = P(Binomial(20, 1/2) >= 15)
    # = (C(20,15) + ... + C(20,20)) / 2^20 = (15504 + 4845 + 1140 + 190 + 20 + 1) / 2^20.
    result = wilcoxon_signed_rank([1] * 15 + [0] * 5, [0] * 15 + [1] * 5)
    assert result.statistic == 15 * 10.5
    assert result.p_value == pytest.approx(21700 / 2**20, abs=1e-15)
    assert result.method == "exact (all 2^20 sign flips of the non-zero differences)"
    # The other direction and two-sided, by the same count: P(X <= 15) and 2 min(...).
    less = wilcoxon_signed_rank([1] * 15 + [0] * 5, [0] * 15 + [1] * 5, alternative="less")
    assert less.p_value == pytest.approx(1 - (21700 - 15504) / 2**20)
    both = wilcoxon_signed_rank([1] * 15 + [0] * 5, [0] * 15 + [1] * 5, alternative="two-sided")
    assert both.p_value == pytest.approx(2 * 21700 / 2**20)


def test_wilcoxon_exact_and_normal_agree_with_scipy():
    rng = np.random.default_rng(3)
    d = rng.normal(size=40)  # no ties, no zeros: SciPy's exact distribution
    for alternative in ("greater", "less", "two-sided"):
        ours = wilcoxon_signed_rank(d, np.zeros(40), alternative=alternative)
        scipy_result = stats.wilcoxon(d, alternative=alternative, method="exact")
        assert ours.p_value == pytest.approx(scipy_result.pvalue, rel=1e-9)
        assert ours.statistic == scipy_result.statistic
    # Tied and zero differences, few enough to flip every sign: SciPy's permutation test.
    tied = np.array([1.0, 1.0, -1.0, 2.0, 0.0, 2.0, 3.0, -2.0, 1.0, 0.0, 3.0])
    scipy_result = stats.wilcoxon(tied[tied != 0], alternative="greater")
    assert wilcoxon_signed_rank(tied, np.zeros(11)).p_value == pytest.approx(scipy_result.pvalue)
    d = rng.normal(size=80)  # above 50 non-zero differences: SciPy's normal approximation
    ours = wilcoxon_signed_rank(d, np.zeros(80))
    assert ours.p_value == pytest.approx(stats.wilcoxon(d, alternative="greater").pvalue)
    assert ours.method.startswith("asymptotic")


def test_rouge_float_noise_is_a_tie_not_a_difference():
    # 4/7 two ways: "50 Gy" (P = 1, R = 2/5) and a 9-word answer with 4 words right
    # (P = 4/9, R = 4/5). The floats differ in the last bit; the scores are equal.
    reference = "50 Gy in 25 fractions"
    short = rouge_f(reference, "50 Gy")[0]
    long = rouge_f(reference, "50 Gy in 25 fx to the left breast")[0]
    assert short != long and short == pytest.approx(4 / 7) and long == pytest.approx(4 / 7)
    # Case 1 ties; cases 2-5 favour the system by 3/7, 3/7, 1 and 8/9.
    system = [long, 1.0, 1.0, 1.0, 8 / 9]
    baseline = [short, 4 / 7, 4 / 7, 0.0, 0.0]
    result = wilcoxon_signed_rank(system, baseline)
    assert result.n_nonzero == 4  # not 5
    # Ranks 1.5, 1.5, 4, 3 all positive: R+ = 10, p = 1/16, effect +1 (was 0.867 with noise).
    assert (result.statistic, result.effect_size) == (10.0, 1.0)
    assert result.p_value == pytest.approx(1 / 16)
    assert rank_biserial([short], [long]) == 0.0


def test_rank_biserial_by_hand():
    # d = [2, -1, 3, 0, 4]: ranks of |d| without the zero: 2, 1, 3, 4; R+ = 9, R- = 1.
    assert rank_biserial([2, -1, 3, 0, 4], [0] * 5) == pytest.approx(0.8)
    assert rank_biserial([1, 2, -3], [0, 0, 0]) == pytest.approx(0.0)
    assert rank_biserial([1, 1], [0, 0]) == 1.0


def test_exact_mcnemar_by_hand():
    system = [1, 1, 1, 1, 1, 0, 1, 0]
    baseline = [0, 0, 0, 0, 1, 1, 1, 0]
    result = mcnemar_exact(system, baseline)
    # b = 4, c = 1: P(X >= 4 | n = 5, p = 1/2) = (5 + 1) / 32.
    assert result.statistic == 4
    assert result.p_value == pytest.approx(6 / 32)
    assert result.n_nonzero == 5 and result.effect_size == pytest.approx(3 / 5)
    assert mcnemar_exact([1, 0], [1, 0]).p_value == 1.0
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_exact([0.5, 1], [0, 1])


def test_holm_by_hand_and_against_statsmodels():
    # Sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    p = [0.001, 0.2, 0.04, 0.03, 0.5, 0.012]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_bootstrap_ci():
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    assert bootstrap_ci([1.0]) is None
    values = np.random.default_rng(1).normal(size=200)
    low, high = bootstrap_ci(values, n_resamples=500)
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(200), rel=0.25)
    assert bootstrap_ci(values, n_resamples=500) == (low, high)  # seeded


def test_paired_scores_must_align():
    with pytest.raises(ValueError, match="equal"):
        wilcoxon_signed_rank([1, 0], [1])
