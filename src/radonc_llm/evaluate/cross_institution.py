"""What a clinic reads when it adopts a model tuned elsewhere: per test cohort, the regimen and
code metrics with 95% CIs and paired one-sided tests against the original model, and the
institutions' fractionation habits (which schemes each institution uses, and whether a model
proposes the training institution's habit to another institution's patients).

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


def _share(values: Sequence[int], *, n_resamples: int, seed: int) -> dict:
    ci = statistics.bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
    return {
        "value": sum(values) / len(values) if values else None,
        "ci95": list(ci) if ci else None,
        "n": len(values),
    }


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
        for metric in TRANSFER_METRICS:
            rows = scores.get(system, {}).get(metric.task)
            if not rows:
                continue
            column = [rows[c].get(metric.field) for c in case_ids if c in rows]
            defined = [v for v in column if v is not None]
            ci = statistics.bootstrap_ci(defined, n_resamples=n_resamples, seed=seed)
            block[metric.key] = {
                "value": sum(defined) / len(defined) if defined else None,
                "ci95": list(ci) if ci else None,
                "n": len(defined),
            }
        regimen = scores.get(system, {}).get("regimen")
        if regimen:
            readable = [int(bool(regimen[c].get(READABLE_FIELD))) for c in case_ids if c in regimen]
            block["readable_regimen"] = _share(readable, n_resamples=n_resamples, seed=seed)
        values[system] = block

    comparisons: list[dict] = []
    for system in systems:
        if system == reference:
            continue
        family = []
        for metric in TRANSFER_METRICS:
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
        tested = [row for row in family if row["p_value"] is not None]
        for row, adjusted in zip(
            tested, statistics.holm([row["p_value"] for row in tested]), strict=True
        ):
            row["p_holm"] = adjusted
        comparisons.extend(family)
    return {"systems": values, "comparisons": comparisons}


# --- habits ----------------------------------------------------------------------------------


def habit_shares(
    cases: Sequence[Case],
    predictions: Mapping[str, Mapping[str, str | None]],
    *,
    training_habit: str | None,
    local_habit: str | None,
    n_resamples: int = 2000,
    seed: int = 0,
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
    same_habit = training_habit == local_habit
    local_patients = [c for c, s in prescribed.items() if s is not None and s == local_habit]
    sources: dict[str, dict[str, str | None]] = {"prescribed": prescribed}
    for system, texts in predictions.items():
        sources[system] = {c: scheme_of(texts.get(c)) for c in prescribed}

    result: dict[str, dict] = {}
    for source, schemes in sources.items():
        proposed = [schemes.get(c) for c in prescribed]

        def share(hit, proposed=proposed) -> dict:
            return _share([int(hit(s)) for s in proposed], n_resamples=n_resamples, seed=seed)

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
            entry["prescribed_scheme"] = _share(own, n_resamples=n_resamples, seed=seed)
        if not same_habit and local_patients:
            on_local = [schemes.get(c) for c in local_patients]
            entry["local_habit_patients"] = {
                "n": len(on_local),
                "training_habit": _share(
                    [int(s == training_habit) for s in on_local], n_resamples=n_resamples, seed=seed
                ),
                "local_habit": _share(
                    [int(s == local_habit) for s in on_local], n_resamples=n_resamples, seed=seed
                ),
            }
        result[source] = entry
    return {
        "training_habit": training_habit,
        "local_habit": local_habit,
        "same_habit": same_habit,
        "n": len(prescribed),
        "systems": result,
    }
