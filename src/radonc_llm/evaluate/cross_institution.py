"""What a clinic reads when it adopts a model tuned elsewhere: per test cohort, the regimen and
code metrics with 95% CIs and paired one-sided tests against the original model; per external
cohort, unpaired tests of each system there against the same system on the training
institution's held-out patients; and the institutions' fractionation habits (which schemes each
institution uses, and whether a model proposes the training institution's habit to another
institution's patients).

Inputs are the evaluation's per-case scores (`evaluate/run.py`, per_case.jsonl) and the cases;
nothing here runs a model.

- Concurrent therapy is scored as given or not: the public tables name drug classes
  ("chemotherapy", "EGFR inhibitor") at one institution and drugs (cisplatin, cetuximab) at
  another, so a drug-list match would compare naming habits, not treatment. A regimen whose
  dose cannot be read proposes no concurrent therapy decision and scores 0, as in metrics.py.
- A scheme is total dose and number of fractions ("70 Gy/35"); an institution's habit is its
  most frequent scheme in the data.
- Paired tests: 0/1 agreements by exact McNemar, ROUGE-1 by Wilcoxon (both one-sided, the
  system scores higher); dose-per-fraction and EQD2 errors by Wilcoxon, one-sided the other
  way (the system errs less), on the cases where both answers state dose and fractions.
  Holm's correction runs across the metrics of each (system, original model) pair.
- Unpaired tests: two cohorts hold different patients, so nothing pairs them; 0/1 agreements
  by Fisher's exact test with Newcombe's hybrid score interval of the difference, ROUGE-1 and
  errors by the Mann-Whitney U test with the difference of means; both two-sided (a model may
  do better or worse elsewhere), Holm across the metrics of each (system, cohort).
- 95% CIs: Wilson score intervals for shares (a percentile bootstrap of 2 agreements out of 2
  is [100%, 100%]: no interval at all), percentile bootstrap for ROUGE-1 and the errors.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from radonc_llm.data.cases import Case
from radonc_llm.evaluate import statistics
from radonc_llm.evaluate.metrics import EQD2_ALPHA_BETA

MetricKind = Literal["share", "score", "error"]


@dataclass(frozen=True)
class TransferMetric:
    """A metric of the per-cohort table: where its per-case score comes from and which way
    is better (`share` and `score`: higher; `error`: lower)."""

    key: str
    label: str
    task: str
    kind: MetricKind
    field: str
    short: str  # column heading in the terminal


TRANSFER_METRICS: tuple[TransferMetric, ...] = (
    TransferMetric("dose_agreement", "Total dose", "regimen", "share", "dose_match", "Dose"),
    TransferMetric("fractions_agreement", "Fractions", "regimen", "share", "fractions_match", "Fx"),
    TransferMetric(
        "concurrent_agreement",
        "Concurrent therapy",
        "regimen",
        "share",
        "concurrent_given_match",
        "Concurrent",
    ),
    TransferMetric(
        "dose_per_fraction_error",
        "Dose/fraction error (Gy)",
        "regimen",
        "error",
        "dose_per_fraction_abs_error",
        "Gy/fx err",
    ),
    TransferMetric(
        "eqd2_error",
        f"EQD2 error (Gy, α/β {EQD2_ALPHA_BETA:g})",
        "regimen",
        "error",
        "eqd2_abs_error",
        "EQD2 err",
    ),
    TransferMetric("rouge1", "ROUGE-1 F", "regimen", "score", "rouge1_f", "ROUGE-1"),
    TransferMetric(
        "icd10_category", "ICD-10 category", "icd10", "share", "category_correct", "ICD cat."
    ),
)
READABLE_FIELD = "parsed"  # regimen per-case flag: the answer states a dose
# A recipe may ask for the modality task (every patient of the public cohorts had photons).
MODALITY_METRIC = TransferMetric(
    "modality_accuracy", "Modality", "modality", "share", "correct", "Modality"
)
ALL_METRICS: tuple[TransferMetric, ...] = (*TRANSFER_METRICS, MODALITY_METRIC)
SHARE_CI_METHOD = "wilson"
SCORE_CI_METHOD = "percentile bootstrap"

# Class words a regimen may name instead of a drug ("with concurrent chemotherapy"); the
# regimen parser reads drug names only. "chemoradiotherapy" says the same.
_CONCURRENT_CLASS = re.compile(
    r"\b(?:concurrent|concomitant)\s+(?:(?:weekly|daily|platinum[- ]based)\s+)?"
    r"(?:chemo\w*|systemic therapy|EGFR[- ]inhibitors?|immunotherapy)\b"
    r"|\bchemo-?radi\w*",
    re.IGNORECASE,
)


# --- regimens as schemes ---------------------------------------------------------------------


def scheme_label(dose_gy: float, fractions: int) -> str:
    """70.0, 35 -> "70 Gy/35"."""
    from radonc_llm.data.regimen import format_dose

    return f"{format_dose(dose_gy)} Gy/{fractions}"


def _parsed(text: str | None):
    if not text or not text.strip():
        return None
    from radonc_llm.data.regimen import parse_regimen

    try:
        return parse_regimen(text)
    except ValueError:
        return None


def scheme_of(text: str | None) -> str | None:
    """The dose/fraction scheme a regimen text states (None when it states no dose or no
    fraction count)."""
    parsed = _parsed(text)
    if parsed is None or parsed.dose_gy is None or not parsed.fractions:
        return None
    return scheme_label(parsed.dose_gy, parsed.fractions)


def case_scheme(case: Case) -> str | None:
    """The scheme a case was prescribed: its structured regimen, else its regimen text."""
    structured = case.regimen_structured
    if structured is not None and structured.dose_gy is not None and structured.fractions:
        return scheme_label(structured.dose_gy, structured.fractions)
    return scheme_of(case.regimen)


def concurrent_given(text: str | None) -> bool | None:
    """Whether a regimen gives concurrent systemic therapy; None when it states no dose."""
    parsed = _parsed(text)
    if parsed is None or parsed.dose_gy is None:
        return None
    return bool(parsed.concurrent) or bool(_CONCURRENT_CLASS.search(text or ""))


def concurrent_given_match(reference: str, prediction: str | None) -> int:
    """1 when the prediction states a dose and agrees on whether concurrent therapy is given."""
    given = concurrent_given(prediction)
    return int(given is not None and given == bool(concurrent_given(reference)))


def institution_schemes(cases: Sequence[Case], *, top: int = 5) -> dict:
    """An institution's most frequent schemes (count, share, dose per fraction, EQD2) and its
    habit, the most frequent one (ties: the first seen)."""
    from radonc_llm.data.regimen import eqd2, parse_regimen

    counts = Counter(scheme for scheme in map(case_scheme, cases) if scheme is not None)
    n = len(cases)
    schemes = []
    for scheme, count in counts.most_common(top):
        parsed = parse_regimen(scheme)
        schemes.append(
            {
                "scheme": scheme,
                "count": count,
                "share": count / n if n else None,
                "dose_gy": parsed.dose_gy,
                "fractions": parsed.fractions,
                "dose_per_fraction": parsed.dose_gy / parsed.fractions,
                "eqd2": eqd2(parsed.dose_gy, parsed.fractions, alpha_beta=EQD2_ALPHA_BETA),
            }
        )
    return {
        "n": n,
        "n_schemes": len(counts),
        "schemes": schemes,
        "habit": schemes[0]["scheme"] if schemes else None,
    }


# --- metrics and paired tests ----------------------------------------------------------------


def _share(values: Sequence[int | bool]) -> dict:
    """A share of 0/1 values with its Wilson score 95% CI (defined from one case on)."""
    from statsmodels.stats.proportion import proportion_confint

    n = len(values)
    if not n:
        return {"value": None, "ci95": None, "n": 0, "ci_method": SHARE_CI_METHOD}
    k = int(sum(values))
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return {
        "value": k / n,
        "ci95": [float(low), float(high)],
        "n": n,
        "k": k,
        "ci_method": SHARE_CI_METHOD,
    }


def _mean_with_ci(values: Sequence[float], *, n_resamples: int, seed: int) -> dict:
    ci = statistics.bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
    return {
        "value": sum(values) / len(values) if values else None,
        "ci95": list(ci) if ci else None,
        "n": len(values),
        "ci_method": SCORE_CI_METHOD,
    }


def _summary(metric: TransferMetric, values: Sequence[float], *, n_resamples: int, seed: int):
    if metric.kind == "share":
        return _share([int(v) for v in values])
    return _mean_with_ci(values, n_resamples=n_resamples, seed=seed)


def metric_values(
    scores: Mapping[str, Mapping], system: str, metric: TransferMetric, case_ids: Sequence[str]
) -> list[float] | None:
    """A system's defined per-case values of a metric, in case order (None: task not
    answered)."""
    rows = scores.get(system, {}).get(metric.task)
    if not rows:
        return None
    column = [rows[c].get(metric.field) for c in case_ids if c in rows]
    return [v for v in column if v is not None]


def _scores_by_case(rows: Sequence[Mapping], cases: Sequence[Case]) -> dict[str, dict]:
    """system -> task -> case_id -> per-case row, with the concurrent-therapy score added."""
    regimen_of = {case.case_id: case.regimen for case in cases}
    out: dict[str, dict] = {}
    for row in rows:
        case_id = str(row["case_id"])
        if case_id not in regimen_of:
            continue
        scored = dict(row)
        if row["task"] == "regimen":
            scored["concurrent_given_match"] = concurrent_given_match(
                regimen_of[case_id], row.get("prediction")
            )
        out.setdefault(row["system"], {}).setdefault(row["task"], {})[case_id] = scored
    return out


def _paired_test(metric: TransferMetric, system: list[float], reference: list[float]):
    if metric.kind == "share":
        return statistics.mcnemar_exact(system, reference, alternative="greater")
    alternative = "less" if metric.kind == "error" else "greater"
    return statistics.wilcoxon_signed_rank(system, reference, alternative=alternative)


def transfer_metrics(
    cases: Sequence[Case],
    per_case: Sequence[Mapping],
    *,
    systems: Sequence[str],
    reference: str = "base",
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """Per system: each TRANSFER_METRICS value with its bootstrap 95% CI and n; and the paired
    one-sided tests of every other system against `reference`, Holm across metrics."""
    scores = _scores_by_case(per_case, cases)
    case_ids = [case.case_id for case in cases]
    values: dict[str, dict] = {}
    for system in systems:
        block: dict[str, dict] = {}
        for metric in ALL_METRICS:
            defined = metric_values(scores, system, metric, case_ids)
            if defined is None:
                continue
            block[metric.key] = _summary(metric, defined, n_resamples=n_resamples, seed=seed)
        regimen = scores.get(system, {}).get("regimen")
        if regimen:
            readable = [int(bool(regimen[c].get(READABLE_FIELD))) for c in case_ids if c in regimen]
            block["readable_regimen"] = _share(readable)
        values[system] = block

    comparisons: list[dict] = []
    for system in systems:
        if system == reference:
            continue
        family = []
        for metric in ALL_METRICS:
            ours = scores.get(system, {}).get(metric.task)
            theirs = scores.get(reference, {}).get(metric.task)
            if not ours or not theirs:
                continue
            pairs = [
                (ours[c].get(metric.field), theirs[c].get(metric.field))
                for c in case_ids
                if c in ours and c in theirs
            ]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            if not pairs:
                family.append(
                    {"system": system, "baseline": reference, "metric": metric.key, "n": 0,
                     "test": None, "p_value": None, "note": "no case where both answers "
                     "state dose and fractions"}
                )  # fmt: skip
                continue
            result = _paired_test(metric, [a for a, _ in pairs], [b for _, b in pairs])
            family.append({"system": system, "baseline": reference, "metric": metric.key,
                           **result.as_dict()})  # fmt: skip
        _holm_within(family)
        comparisons.extend(family)
    return {
        "systems": values,
        "comparisons": comparisons,
        "ci_methods": {"share": SHARE_CI_METHOD, "score": SCORE_CI_METHOD},
    }


def _holm_within(family: list[dict]) -> None:
    """Holm-adjust the tested rows of one family in place, recording its size."""
    tested = [row for row in family if row["p_value"] is not None]
    for row, adjusted in zip(
        tested, statistics.holm([row["p_value"] for row in tested]), strict=True
    ):
        row["p_holm"] = adjusted
        row["holm_family_size"] = len(tested)


# --- one system at two institutions (unpaired) -----------------------------------------------


def _unpaired_test(metric: TransferMetric, external: list[float], internal: list[float]) -> dict:
    """Two-sided unpaired test of a system's per-case values on an external cohort against its
    values on the internal test cohort (different patients: nothing pairs them)."""
    from scipy import stats

    if metric.kind == "share":
        from statsmodels.stats.proportion import confint_proportions_2indep

        k_ext, n_ext = int(sum(external)), len(external)
        k_int, n_int = int(sum(internal)), len(internal)
        _, p_value = stats.fisher_exact(
            [[k_ext, n_ext - k_ext], [k_int, n_int - k_int]], alternative="two-sided"
        )
        low, high = confint_proportions_2indep(
            k_ext, n_ext, k_int, n_int, method="newcomb", compare="diff"
        )
        return {
            "test": "fisher_exact",
            "difference": k_ext / n_ext - k_int / n_int,
            "difference_ci95": [float(low), float(high)],
            "difference_ci_method": "newcombe hybrid score",
            "p_value": float(p_value),
            "effect_size": None,
        }
    if len(set(external) | set(internal)) == 1:
        p_value, u = 1.0, len(external) * len(internal) / 2  # all values tie: no evidence
    else:
        result = stats.mannwhitneyu(external, internal, alternative="two-sided")
        p_value, u = float(result.pvalue), float(result.statistic)
    return {
        "test": "mann_whitney_u",
        "difference": sum(external) / len(external) - sum(internal) / len(internal),
        "difference_ci95": None,
        "difference_ci_method": None,
        "p_value": p_value,
        # Rank-biserial correlation 2U/(n1 n2) - 1: positive when external values run higher.
        "effect_size": 2 * u / (len(external) * len(internal)) - 1,
    }


def institution_gaps(
    internal: tuple[Sequence[Case], Sequence[Mapping]],
    external: Mapping[str, tuple[Sequence[Case], Sequence[Mapping]]],
    *,
    systems: Sequence[str],
) -> list[dict]:
    """Each system on each external cohort against the same system on the internal test
    cohort: per metric, both values and n, the difference (external - internal) and a
    two-sided unpaired test (Fisher's exact for shares, Mann-Whitney U for ROUGE-1 and
    errors), Holm across the metrics of each (system, cohort). `internal` and each `external`
    entry are (cases, per-case rows of the evaluation)."""
    internal_cases, internal_rows = internal
    internal_scores = _scores_by_case(internal_rows, internal_cases)
    internal_ids = [case.case_id for case in internal_cases]
    rows: list[dict] = []
    for cohort, (cases, per_case) in external.items():
        scores = _scores_by_case(per_case, cases)
        case_ids = [case.case_id for case in cases]
        for system in systems:
            family = []
            for metric in ALL_METRICS:
                ext = metric_values(scores, system, metric, case_ids)
                own = metric_values(internal_scores, system, metric, internal_ids)
                if ext is None or own is None:
                    continue
                row = {"system": system, "cohort": cohort, "metric": metric.key,
                       "n_external": len(ext), "n_internal": len(own),
                       "external": sum(ext) / len(ext) if ext else None,
                       "internal": sum(own) / len(own) if own else None}  # fmt: skip
                if not ext or not own:
                    where = "the external cohort" if not ext else "the internal test cohort"
                    row.update(test=None, p_value=None, note=f"no defined value on {where}")
                else:
                    row.update(_unpaired_test(metric, ext, own))
                family.append(row)
            _holm_within(family)
            rows.extend(family)
    return rows


# --- habits ----------------------------------------------------------------------------------


def habit_shares(
    cases: Sequence[Case],
    predictions: Mapping[str, Mapping[str, str | None]],
    *,
    training_habit: str | None,
    local_habit: str | None,
    top: int = 3,
) -> dict:
    """How often each system's proposed scheme is the training institution's habit, the local
    habit, another scheme or unreadable; how often it is the patient's own scheme; and, on the
    patients who were prescribed the local habit (when it differs from the training habit),
    how often the system proposed the training habit instead.

    `predictions` maps system -> case_id -> regimen text; the "prescribed" entry describes the
    cases' own schemes the same way.
    """
    prescribed = {case.case_id: case_scheme(case) for case in cases}
    # No readable scheme at either institution is no habit, not the same habit.
    same_habit = training_habit is not None and training_habit == local_habit
    local_patients = [c for c, s in prescribed.items() if s is not None and s == local_habit]
    sources: dict[str, dict[str, str | None]] = {"prescribed": prescribed}
    for system, texts in predictions.items():
        sources[system] = {c: scheme_of(texts.get(c)) for c in prescribed}

    result: dict[str, dict] = {}
    for source, schemes in sources.items():
        proposed = [schemes.get(c) for c in prescribed]

        def share(hit, proposed=proposed) -> dict:
            return _share([int(hit(s)) for s in proposed])

        entry = {
            "training_habit": share(lambda s: s is not None and s == training_habit),
            "local_habit": share(lambda s: s is not None and s == local_habit),
            "other": share(lambda s: s is not None and s not in (training_habit, local_habit)),
            "unreadable": share(lambda s: s is None),
            "top_schemes": [
                [scheme, count]
                for scheme, count in Counter(s for s in proposed if s is not None).most_common(top)
            ],
        }
        if source != "prescribed":
            own = [
                int(schemes.get(c) is not None and schemes.get(c) == s)
                for c, s in prescribed.items()
            ]
            entry["prescribed_scheme"] = _share(own)
        if not same_habit and local_patients:
            on_local = [schemes.get(c) for c in local_patients]
            entry["local_habit_patients"] = {
                "n": len(on_local),
                "training_habit": _share(
                    [int(s is not None and s == training_habit) for s in on_local]
                ),
                "local_habit": _share([int(s == local_habit) for s in on_local]),
            }
        result[source] = entry
    return {
        "training_habit": training_habit,
        "local_habit": local_habit,
        "same_habit": same_habit,
        "n": len(prescribed),
        "systems": result,
    }
