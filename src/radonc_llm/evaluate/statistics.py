"""Paired tests, effect sizes, multiplicity correction and bootstrap intervals.

Two systems answer the same cases, so every comparison is paired on case_id:
- one-sided Wilcoxon signed-rank test on per-case scores (correct 0/1, ROUGE-1 F);
  zero differences are dropped before ranking (Wilcoxon's own method, `zero_method="wilcox"`),
  so `n` counts all pairs and `n_nonzero` the pairs that carry information. The p-value is
  exact (all 2^n_nonzero sign flips, tied ranks included) up to `EXACT_MAX_NONZERO` non-zero
  differences and SciPy's normal approximation above. How many tied pairs were dropped must
  not change it: SciPy's method="auto" chooses on all pairs, zeros included, and falls back
  to the normal approximation for 14 pairs with 3 non-zero ones (p = 0.042 where the exact
  value is 1/8);
- exact McNemar test for 0/1 scores: a binomial test on the discordant pairs;
- matched-pairs rank-biserial correlation (Kerby 2014) as effect size, on the same
  non-zero differences the Wilcoxon test ranks: (R+ - R-) / (R+ + R-), in [-1, 1];
- Holm's step-down correction across a family of p-values.

Differences are rounded to `DIFFERENCE_DECIMALS` places before they are tested: the same
ROUGE F-measure reached from different precision/recall pairs (4/7 from P = 1, R = 2/5 and
from P = 4/9, R = 4/5) differs in its last bit, and that noise must neither turn a tie into
a "non-zero" pair nor break a tie between equal differences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

ZERO_METHOD = "wilcox"
ZERO_METHOD_NOTE = (
    "zero differences dropped before ranking (Wilcoxon's method, scipy zero_method='wilcox'); "
    "p = 1 when every difference is zero; differences are rounded to 12 decimals first, so "
    "equal scores computed along different float paths count as ties; p exact (all sign "
    "flips of the non-zero differences, tied ranks averaged) up to 50 non-zero differences, "
    "normal approximation above"
)
Alternative = str  # "greater" | "less" | "two-sided"
# Up to this many non-zero differences the null distribution is enumerated exactly (SciPy's
# own limit for its exact test without ties).
EXACT_MAX_NONZERO = 50
# Per-case scores are ratios of small counts: real differences are far above 1e-12, float
# rounding noise (~1e-16) far below it.
DIFFERENCE_DECIMALS = 12


@dataclass(frozen=True)
class PairedTest:
    """The outcome of one paired test of `system` against `baseline` scores."""

    test: str
    alternative: str
    statistic: float
    p_value: float
    effect_size: float
    n: int
    n_nonzero: int
    method: str
    mean_system: float
    mean_baseline: float

    def as_dict(self) -> dict:
        return asdict(self)


def _paired_arrays(system: Sequence[float], baseline: Sequence[float]) -> tuple[np.ndarray, ...]:
    x = np.asarray(system, dtype=float)
    y = np.asarray(baseline, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores need equal 1-D lengths, got {x.shape} and {y.shape}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("paired scores contain NaN; score malformed answers as 0 first")
    return x, y


def _differences(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`x - y` with float rounding noise removed (+ 0.0 turns -0.0 into 0.0)."""
    return np.round(x - y, DIFFERENCE_DECIMALS) + 0.0


def rank_biserial(system: Sequence[float], baseline: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation of `system - baseline` (0.0 when all tie)."""
    x, y = _paired_arrays(system, baseline)
    d = _differences(x, y)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    r_plus = ranks[d > 0].sum()
    r_minus = ranks[d < 0].sum()
    return float((r_plus - r_minus) / (r_plus + r_minus))


def _exact_signed_rank_p(nonzero: np.ndarray, alternative: Alternative) -> float:
    """Exact p of R+ over all sign flips of the non-zero differences, with average ranks for
    ties (ranks are multiples of 1/2, so twice a rank is a whole number to count in)."""
    units = np.rint(2 * stats.rankdata(np.abs(nonzero))).astype(np.int64)
    # P(2R+ = s) under the null: each rank joins R+ with probability 1/2, independently.
    distribution = np.zeros(int(units.sum()) + 1)
    distribution[0] = 1.0
    for unit in units:
        distribution[unit:] = (distribution[unit:] + distribution[:-unit].copy()) / 2
        distribution[:unit] /= 2
    observed = int(units[nonzero > 0].sum())
    greater = float(distribution[observed:].sum())
    less = float(distribution[: observed + 1].sum())
    if alternative == "greater":
        return min(greater, 1.0)
    if alternative == "less":
        return min(less, 1.0)
    return min(2 * min(greater, less), 1.0)


def wilcoxon_signed_rank(
    system: Sequence[float], baseline: Sequence[float], *, alternative: Alternative = "greater"
) -> PairedTest:
    """Paired Wilcoxon signed-rank test; `alternative="greater"`: system scores higher.

    `statistic` is SciPy's: R+ (sum of ranks of positive differences) for one-sided tests.
    """
    x, y = _paired_arrays(system, baseline)
    d = _differences(x, y)
    n_nonzero = int(np.count_nonzero(d))
    if n_nonzero == 0:
        # SciPy returns nan here; no differing pair is no evidence of a difference.
        statistic, p_value, method = 0.0, 1.0, "none (all differences zero)"
    else:
        nonzero = d[d != 0]
        if n_nonzero <= EXACT_MAX_NONZERO:
            ranks = stats.rankdata(np.abs(nonzero))
            r_plus, r_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
            # SciPy's statistic: R+ one-sided, min(R+, R-) two-sided.
            statistic = float(r_plus if alternative != "two-sided" else min(r_plus, r_minus))
            p_value = _exact_signed_rank_p(nonzero, alternative)
            method = f"exact (all 2^{n_nonzero} sign flips of the non-zero differences)"
        else:
            result = stats.wilcoxon(
                nonzero, zero_method=ZERO_METHOD, alternative=alternative, method="asymptotic"
            )
            statistic, p_value = float(result.statistic), float(result.pvalue)
            method = "asymptotic (normal, tie-corrected variance)"
    return PairedTest(
        test="wilcoxon",
        alternative=alternative,
        statistic=statistic,
        p_value=p_value,
        effect_size=rank_biserial(x, y),
        n=int(d.size),
        n_nonzero=n_nonzero,
        method=method,
        mean_system=float(x.mean()) if x.size else float("nan"),
        mean_baseline=float(y.mean()) if y.size else float("nan"),
    )


def mcnemar_exact(
    system_correct: Sequence[bool | int],
    baseline_correct: Sequence[bool | int],
    *,
    alternative: Alternative = "greater",
) -> PairedTest:
    """Exact McNemar test: binomial test of b (system right, baseline wrong) among b + c.

    `statistic` is b; `alternative="greater"` asks whether the system wins more discordant
    pairs than it loses.
    """
    x, y = _paired_arrays(system_correct, baseline_correct)
    if not np.isin(x, (0.0, 1.0)).all() or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("McNemar's test needs 0/1 (correct/incorrect) scores")
    b = int(((x == 1) & (y == 0)).sum())
    c = int(((x == 0) & (y == 1)).sum())
    if b + c == 0:
        p_value = 1.0
    else:
        p_value = float(stats.binomtest(b, b + c, 0.5, alternative=alternative).pvalue)
    return PairedTest(
        test="mcnemar_exact",
        alternative=alternative,
        statistic=float(b),
        p_value=p_value,
        effect_size=rank_biserial(x, y),
        n=int(x.size),
        n_nonzero=b + c,
        method=f"exact binomial on discordant pairs (b={b}, c={c})",
        mean_system=float(x.mean()) if x.size else float("nan"),
        mean_baseline=float(y.mean()) if y.size else float("nan"),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(adjusted_sorted, 1.0)
    return adjusted.tolist()


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    statistic: Callable[[np.ndarray], float] | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `statistic` (default: the mean) over cases.

    `statistic` receives an index array into the cases, so metrics that are not means
    (macro F1) resample the same way. Returns None for fewer than two cases.
    """
    n = len(values)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    data = np.asarray(values, dtype=float) if statistic is None else None
    estimates: list[float] = []
    # Chunks keep memory flat for large test sets (2000 x 10^5 indices would be 1.6 GB).
    for start in range(0, n_resamples, 256):
        samples = rng.integers(0, n, size=(min(256, n_resamples - start), n))
        if data is not None:
            estimates.extend(data[samples].mean(axis=1).tolist())
        else:
            estimates.extend(statistic(index) for index in samples)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return float(low), float(high)
