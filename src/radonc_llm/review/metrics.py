"""Statistics of a review: acceptability per source, the paired test, inter-rater agreement.

Ratings are ordinal: acceptable as is (2) > acceptable with minor edits (1) > unacceptable
(0). "Acceptable" means either of the first two, as in the study this project reproduces
(clinically acceptable regimens). Degenerate inputs (nothing rated, one category only, no
item rated twice) give `None` and a `note`, never NaN or an exception.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from radonc_llm.review.models import ACCEPTABLE_RATINGS, RATING_SCORES, RATINGS

CATEGORIES = sorted(RATING_SCORES.values())


@dataclass(frozen=True)
class RatingRecord:
    item_id: str
    case_id: str
    source: str
    reviewer: str
    rating: str

    @property
    def score(self) -> int:
        return RATING_SCORES[self.rating]


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def wilson_interval(successes: float, n: float, *, confidence: float = 0.95) -> list[float] | None:
    """Wilson score interval of a proportion; None when n is 0. Counts may be effective
    (non-integer) ones."""
    if n == 0:
        return None
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return [float(low), float(high)]


def effective_ratings(successes: Sequence[int], ratings: Sequence[int]) -> float:
    """How many independent ratings the ratings of `len(ratings)` items are worth, when item i
    got `ratings[i]` ratings of which `successes[i]` were a success (review overlap).

    Two reviewers' ratings of one regimen agree more often than two regimens' do, so counting
    every rating as a unit makes an interval too narrow. The share's variance over items (the
    ratio estimator's: the spread of successes[i] - p * ratings[i] between items) against the
    binomial variance over ratings is the design effect; the effective n is n over it, never
    above n. Every item rated once: n. A share of 0 or 1 shows no spread to measure: one
    unit per item.
    """
    n, k = sum(ratings), len(ratings)
    if max(ratings, default=0) <= 1:
        return float(n)
    share = sum(successes) / n
    if k < 2 or share in (0, 1):
        return float(k)
    spread = sum((a - share * m) ** 2 for a, m in zip(successes, ratings, strict=True))
    variance = spread / (k * (k - 1) * (n / k) ** 2)
    return float(n) if variance == 0 else min(float(n), share * (1 - share) / variance)


def acceptability_by_source(records: Sequence[RatingRecord]) -> dict[str, dict[str, Any]]:
    """Per source: rating counts, acceptable rate and as-is rate with Wilson 95% CIs.

    The rates count ratings: with overlap an item rated by two reviewers counts twice. Their
    intervals do not count such ratings as independent: Wilson's interval is taken at the
    effective number of ratings (`effective_ratings`, reported as `n_effective`), the rate
    kept. With every item rated once that is n, and the interval Wilson's over ratings.
    """
    by_source: dict[str, list[RatingRecord]] = defaultdict(list)
    for record in records:
        by_source[record.source].append(record)
    result = {}
    for source in sorted(by_source):
        ratings = [record.rating for record in by_source[source]]
        n = len(ratings)
        by_item: dict[str, list[str]] = defaultdict(list)
        for record in by_source[source]:
            by_item[record.item_id].append(record.rating)
        counts = [len(item) for item in by_item.values()]
        acceptable = [sum(r in ACCEPTABLE_RATINGS for r in item) for item in by_item.values()]
        as_is = [item.count("acceptable") for item in by_item.values()]
        n_acceptable, n_as_is = sum(acceptable), sum(as_is)
        acceptable_n = effective_ratings(acceptable, counts)
        as_is_n = effective_ratings(as_is, counts)
        result[source] = {
            "n": n,
            "n_items": len(by_item),
            "counts": {key: ratings.count(key) for key in RATINGS},
            "acceptable_rate": n_acceptable / n,
            "acceptable_ci95": wilson_interval(n_acceptable / n * acceptable_n, acceptable_n),
            "acceptable_n_effective": acceptable_n,
            "as_is_rate": n_as_is / n,
            "as_is_ci95": wilson_interval(n_as_is / n * as_is_n, as_is_n),
            "as_is_n_effective": as_is_n,
        }
    return result


def case_scores(records: Sequence[RatingRecord]) -> dict[tuple[str, str], float]:
    """Mean ordinal score per (case_id, source) over the reviewers who rated it."""
    scores: dict[tuple[str, str], list[int]] = defaultdict(list)
    for record in records:
        scores[(record.case_id, record.source)].append(record.score)
    return {key: float(np.mean(values)) for key, values in scores.items()}


def paired_comparison(
    records: Sequence[RatingRecord], *, treatment: str, control: str
) -> dict[str, Any]:
    """One-sided Wilcoxon signed-rank: are `treatment`'s per-case ratings higher?

    Cases rated under both sources are paired on their mean score, and tested as `evaluate`
    tests per-case scores (`wilcoxon_signed_rank`): zero differences dropped before ranking,
    p exact over all sign flips up to 50 non-zero differences; `n_nonzero` says how many pairs
    remained.
    """
    from radonc_llm.evaluate.statistics import ZERO_METHOD_NOTE, wilcoxon_signed_rank

    scores = case_scores(records)
    cases = sorted(
        {case for case, source in scores if source == treatment}
        & {case for case, source in scores if source == control}
    )
    treated = np.array([scores[(case, treatment)] for case in cases])
    controls = np.array([scores[(case, control)] for case in cases])
    differences = treated - controls
    result: dict[str, Any] = {
        "test": "wilcoxon_signed_rank",
        "treatment": treatment,
        "control": control,
        "alternative": "greater",
        "zero_method": "wilcox",
        "unit": "case (mean ordinal rating over its reviewers)",
        "n_cases": len(cases),
        "n_nonzero": int(np.count_nonzero(differences)),
        "mean_treatment": float(treated.mean()) if cases else None,
        "mean_control": float(controls.mean()) if cases else None,
        "median_difference": float(np.median(differences)) if cases else None,
        "statistic": None,
        "p_value": None,
        "note": None,
    }
    if not cases:
        result["note"] = f"no case was rated under both '{treatment}' and '{control}'"
    elif result["n_nonzero"] == 0:
        result["note"] = "every paired difference is zero; the test is undefined"
    else:
        test = wilcoxon_signed_rank(treated, controls, alternative="greater")
        result["statistic"] = _finite(test.statistic)
        result["p_value"] = _finite(test.p_value)
        result["method"] = test.method
        result["zero_method_note"] = ZERO_METHOD_NOTE
    return result


def _item_ratings(records: Sequence[RatingRecord]) -> dict[str, dict[str, int]]:
    items: dict[str, dict[str, int]] = defaultdict(dict)
    for record in records:
        items[record.item_id][record.reviewer] = record.score
    return items


def cohen_kappas(records: Sequence[RatingRecord]) -> list[dict[str, Any]]:
    """Cohen's kappa (unweighted and linear-weighted) for every pair of reviewers."""
    from sklearn.metrics import cohen_kappa_score

    items = _item_ratings(records)
    reviewers = sorted({record.reviewer for record in records})
    pairs = []
    for first, second in itertools.combinations(reviewers, 2):
        shared = sorted(i for i, by in items.items() if first in by and second in by)
        entry: dict[str, Any] = {"reviewers": [first, second], "n": len(shared)}
        if len(shared) < 2:
            entry.update(kappa=None, kappa_linear=None, note="fewer than 2 shared items")
        else:
            a = [items[i][first] for i in shared]
            b = [items[i][second] for i in shared]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kappa = cohen_kappa_score(a, b, labels=CATEGORIES, replace_undefined_by=np.nan)
                linear = cohen_kappa_score(
                    a, b, labels=CATEGORIES, weights="linear", replace_undefined_by=np.nan
                )
            entry.update(kappa=_finite(kappa), kappa_linear=_finite(linear), note=None)
            if entry["kappa"] is None:
                entry["note"] = "undefined: both reviewers used a single category"
        pairs.append(entry)
    return pairs


def fleiss(records: Sequence[RatingRecord]) -> dict[str, Any]:
    """Fleiss' kappa over items rated at least twice.

    Fleiss' kappa needs the same number of ratings per item: with k the smallest count among
    those items, each item contributes the ratings of its first k reviewers (by name).
    """
    from statsmodels.stats.inter_rater import fleiss_kappa

    items = _item_ratings(records)
    multi = {item: by for item, by in items.items() if len(by) >= 2}
    if not multi:
        return {"value": None, "n_items": 0, "raters_per_item": None, "note": "no item rated twice"}
    k = min(len(by) for by in multi.values())
    table = np.zeros((len(multi), len(CATEGORIES)), dtype=int)
    for row, item in enumerate(sorted(multi)):
        for reviewer in sorted(multi[item])[:k]:
            table[row, CATEGORIES.index(multi[item][reviewer])] += 1
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = _finite(fleiss_kappa(table, method="fleiss"))
    return {
        "value": value,
        "n_items": len(multi),
        "raters_per_item": k,
        "note": None if value is not None else "undefined: a single category was used",
    }


def krippendorff_ordinal(records: Sequence[RatingRecord]) -> dict[str, Any]:
    """Krippendorff's alpha (ordinal) over all ratings; missing ratings are allowed."""
    import krippendorff

    items = _item_ratings(records)
    n_pairable = sum(len(by) >= 2 for by in items.values())
    if n_pairable == 0:
        return {"value": None, "level": "ordinal", "n_items": 0, "note": "no item rated twice"}
    reviewers = sorted({record.reviewer for record in records})
    keys = sorted(items)
    data = np.full((len(reviewers), len(keys)), np.nan)
    for column, item in enumerate(keys):
        for reviewer, score in items[item].items():
            data[reviewers.index(reviewer), column] = score
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = _finite(
            krippendorff.alpha(
                reliability_data=data, level_of_measurement="ordinal", value_domain=CATEGORIES
            )
        )
    return {
        "value": value,
        "level": "ordinal",
        "n_items": n_pairable,
        "note": None if value is not None else "undefined: a single category was used",
    }


def cohen_kappa_note(
    records: Sequence[RatingRecord],
    pairs: Sequence[dict[str, Any]],
    *,
    reviewers: Sequence[str] | None = None,
) -> str | None:
    """Why no pair of reviewers has a Cohen's kappa, naming who rated; None when one has.

    `reviewers`, the study's reviewers, adds how many the study has.
    """
    if any(pair["n"] >= 2 for pair in pairs):
        return None
    raters = sorted({record.reviewer for record in records})
    need = "Cohen's kappa needs at least two reviewers who rated shared items (2 or more)"
    if not raters:
        found = "no reviewer has rated an item yet"
    elif len(raters) == 1:
        found = f"the ratings come from 1 reviewer ({raters[0]})"
    else:
        found = (
            f"the {len(raters)} reviewers who rated ({', '.join(raters)}) share fewer than 2 "
            "items in every pair"
        )
    study = ""
    if reviewers is not None:
        study = f"; the study has {len(reviewers)} reviewer{'s' if len(reviewers) != 1 else ''}"
        if len(reviewers) < 2:
            study += ": add a second reviewer with overlap 2 to measure agreement"
    return f"{need}; {found}{study}"


def agreement(
    records: Sequence[RatingRecord], *, reviewers: Sequence[str] | None = None
) -> dict[str, Any]:
    """Cohen's kappa per pair, Fleiss' kappa and Krippendorff's alpha.

    `n_reviewers` counts the reviewers with a rating; `cohen_kappa_note` says why the list of
    pairs has no value (one reviewer, none sharing items), so an empty list is never silent.
    """
    pairs = cohen_kappas(records)
    return {
        "n_reviewers": len({record.reviewer for record in records}),
        "cohen_kappa": pairs,
        "cohen_kappa_note": cohen_kappa_note(records, pairs, reviewers=reviewers),
        "fleiss_kappa": fleiss(records),
        "krippendorff_alpha": krippendorff_ordinal(records),
    }


def review_metrics(
    records: Sequence[RatingRecord],
    *,
    treatment: str,
    control: str,
    sources: Sequence[str],
    reviewers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The statistics block of `review_metrics.json`; `reviewers` are the study's."""
    absent = [name for name in (treatment, control) if name not in sources]
    if not absent:
        comparison = paired_comparison(records, treatment=treatment, control=control)
    else:
        comparison = {
            "test": "wilcoxon_signed_rank",
            "treatment": treatment,
            "control": control,
            "p_value": None,
            "note": f"the study has no source {' or '.join(repr(name) for name in absent)} "
            f"to compare (sources: {', '.join(sources)})",
        }
    acceptability = acceptability_by_source(records)
    return {
        "scale": RATING_SCORES,
        "acceptable_ratings": sorted(ACCEPTABLE_RATINGS),
        "n_ratings": len(records),
        "rating_counts": dict(Counter(record.rating for record in records)),
        "acceptability": acceptability,
        # Sources nobody has rated yet have no row above; they are named here, not dropped.
        "unrated_sources": [source for source in sources if source not in acceptability],
        "comparison": comparison,
        "agreement": agreement(records, reviewers=reviewers),
    }
