"""Per-case scores and per-task metrics of the three tasks, with bootstrap 95% intervals.

Conventions, the same for every task:
- A malformed or missing answer (`prediction is None`) is a wrong answer, never a skipped case:
  it scores 0 and counts in `n` and `malformed_rate`.
- `accuracy` and `rouge1_f` appear in every task block, as the study reported both for every
  task. `rouge1_f` compares the answer text with the reference answer (rouge-score, no
  stemming): for modality and ICD-10 the model's raw text, read or malformed ("photon or
  proton" shares a word with "photon"), for the regimen the extracted regimen (a malformed one
  scores 0); for the regimen task `accuracy` is `exact_match`.
- Macro F1 averages over the labels that occur as reference or prediction (scikit-learn's
  default label set, malformed answers excluded), so a class absent from both does not count
  as F1 = 0; weighted F1 weights each label by its reference support. Per-class precision
  of a class never predicted, and recall of a class absent from the reference, are null.
- Regimen structure is read by the foundation's regimen parser on both sides; dose and
  fraction agreement are scored only where the reference states them (`dose_n`,
  `fractions_n`), and EQD2 error (alpha/beta 10 Gy) only where both sides state dose and
  fractions (`eqd2_n`), as is dose-per-fraction error (`dose_per_fraction_n`). The EQD2 error
  reads the main course alone; `total_eqd2_abs_error` adds a boost's EQD2 where the boost
  states its own dose and fractions (`total_eqd2_n`: both sides' totals readable). A prediction
  without a readable dose matches no concurrent-drug list, not even an empty one; likewise a
  reference without a readable dose ("Observation only", "see plan") is no regimen whose drug
  list can be matched: its concurrent agreement is None, out of `concurrent_n` (as
  `cross_institution.concurrent_given`).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from radonc_llm.data.cases import MODALITIES
from radonc_llm.evaluate.statistics import bootstrap_ci

MALFORMED_LABEL = "(malformed)"
DOSE_TOLERANCE_GY = 0.01
EQD2_ALPHA_BETA = 10.0


@functools.cache
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False)


def rouge_f(reference: str, text: str | None) -> tuple[float, float]:
    """ROUGE-1 and ROUGE-L F-measure of `text` against `reference` (0.0 for no text)."""
    if not text or not text.strip():
        return 0.0, 0.0
    scores = _rouge_scorer().score(reference, text)
    return float(scores["rouge1"].fmeasure), float(scores["rougeL"].fmeasure)


def normalize_regimen_text(text: str) -> str:
    """Case, whitespace and a final full stop do not make two regimens different."""
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip().casefold()


# --- classification ---------------------------------------------------------------------


def _f1_from_indices(
    true_idx: np.ndarray, pred_idx: np.ndarray, n_labels: int
) -> tuple[float, float]:
    """Macro and weighted F1 from label indices (pred -1 = malformed), as scikit-learn does."""
    true_count = np.bincount(true_idx, minlength=n_labels)
    valid = pred_idx >= 0
    pred_count = np.bincount(pred_idx[valid], minlength=n_labels)
    tp = np.bincount(true_idx[valid & (true_idx == pred_idx)], minlength=n_labels)
    denominator = true_count + pred_count  # = 2tp + fp + fn
    present = denominator > 0
    if not present.any():
        return 0.0, 0.0
    f1 = np.divide(2.0 * tp, denominator, out=np.zeros(n_labels), where=present)
    macro = float(f1[present].mean())
    weighted = float((f1 * true_count).sum() / true_count.sum()) if true_count.sum() else 0.0
    return macro, weighted


def _label_indices(
    y_true: Sequence[str], y_pred: Sequence[str | None]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    labels = sorted(set(y_true) | {p for p in y_pred if p is not None})
    position = {label: i for i, label in enumerate(labels)}
    true_idx = np.array([position[t] for t in y_true], dtype=np.int64)
    pred_idx = np.array([position[p] if p is not None else -1 for p in y_pred], dtype=np.int64)
    return labels, true_idx, pred_idx


def classification_f1(y_true: Sequence[str], y_pred: Sequence[str | None]) -> tuple[float, float]:
    """(macro F1, weighted F1) with scikit-learn; malformed (None) answers are false negatives."""
    labels = sorted(set(y_true) | {p for p in y_pred if p is not None})
    if not y_true:
        return 0.0, 0.0
    pred = [p if p is not None else MALFORMED_LABEL for p in y_pred]
    macro = f1_score(y_true, pred, labels=labels, average="macro", zero_division=0)
    weighted = f1_score(y_true, pred, labels=labels, average="weighted", zero_division=0)
    return float(macro), float(weighted)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _ci(values: Sequence[float], *, n_resamples: int, seed: int) -> list[float] | None:
    interval = bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
    return list(interval) if interval is not None else None


def _f1_cis(
    y_true: Sequence[str], y_pred: Sequence[str | None], *, n_resamples: int, seed: int
) -> tuple[list[float] | None, list[float] | None]:
    labels, true_idx, pred_idx = _label_indices(y_true, y_pred)

    def macro(index: np.ndarray) -> float:
        return _f1_from_indices(true_idx[index], pred_idx[index], len(labels))[0]

    def weighted(index: np.ndarray) -> float:
        return _f1_from_indices(true_idx[index], pred_idx[index], len(labels))[1]

    out = []
    for statistic in (macro, weighted):
        interval = bootstrap_ci(true_idx, statistic=statistic, n_resamples=n_resamples, seed=seed)
        out.append(list(interval) if interval is not None else None)
    return out[0], out[1]


def modality_metrics(
    references: Sequence[str],
    predictions: Sequence[str | None],
    raws: Sequence[str],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[dict, list[dict]]:
    """Modality block of metrics.json and one score row per case."""
    n = len(references)
    correct = [int(p is not None and p == t) for t, p in zip(references, predictions, strict=True)]
    rouge1 = [rouge_f(t, r)[0] for t, r in zip(references, raws, strict=True)]
    malformed = [int(p is None) for p in predictions]
    macro, weighted = classification_f1(references, predictions)
    pred_labels = [p if p is not None else MALFORMED_LABEL for p in predictions]
    precision, recall, f1, support = precision_recall_fscore_support(
        references, pred_labels, labels=list(MODALITIES), zero_division=0
    )
    predicted = [sum(1 for p in predictions if p == label) for label in MODALITIES]
    # A class never predicted has no precision, one absent from the reference no recall, one
    # absent from both no F1: null, not scikit-learn's zero_division 0, which reads as failure.
    per_class = {
        label: {
            "precision": float(precision[i]) if predicted[i] else None,
            "recall": float(recall[i]) if support[i] else None,
            "f1": float(f1[i]) if predicted[i] or support[i] else None,
            "support": int(support[i]),
            "predicted": predicted[i],
        }
        for i, label in enumerate(MODALITIES)
    }
    confusion_labels = [*MODALITIES, MALFORMED_LABEL]
    matrix = confusion_matrix(references, pred_labels, labels=confusion_labels) if n else []
    macro_ci, weighted_ci = _f1_cis(references, predictions, n_resamples=n_resamples, seed=seed)
    block = {
        "accuracy": _mean(correct),
        "macro_f1": macro,
        "weighted_f1": weighted,
        "per_class": per_class,
        "confusion": {
            "rows": "reference",
            "columns": "prediction",
            "labels": confusion_labels,
            "matrix": np.asarray(matrix).tolist(),
        },
        "malformed_rate": _mean(malformed),
        "rouge1_f": _mean(rouge1),
        "n": n,
        "ci95": {
            "accuracy": _ci(correct, n_resamples=n_resamples, seed=seed),
            "macro_f1": macro_ci,
            "weighted_f1": weighted_ci,
            "rouge1_f": _ci(rouge1, n_resamples=n_resamples, seed=seed),
        },
    }
    rows = [
        {"correct": c, "rouge1_f": r, "malformed": bool(m)}
        for c, r, m in zip(correct, rouge1, malformed, strict=True)
    ]
    return block, rows


def icd10_metrics(
    references: Sequence[str],
    predictions: Sequence[str | None],
    raws: Sequence[str],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[dict, list[dict]]:
    """ICD-10 block: exact code, category (3 characters) and chapter agreement, macro F1."""
    from radonc_llm.data import icd10

    n = len(references)
    exact, category, chapter = [], [], []
    for truth, pred in zip(references, predictions, strict=True):
        if pred is None:
            exact.append(0)
            category.append(0)
            chapter.append(0)
            continue
        exact.append(int(icd10.to_dotted(pred) == icd10.to_dotted(truth)))
        category.append(int(icd10.category(pred) == icd10.category(truth)))
        chapter.append(int(icd10.chapter(pred) == icd10.chapter(truth)))
    rouge1 = [rouge_f(t, r)[0] for t, r in zip(references, raws, strict=True)]
    malformed = [int(p is None) for p in predictions]
    macro, _ = classification_f1(references, predictions)
    macro_ci, _ = _f1_cis(references, predictions, n_resamples=n_resamples, seed=seed)
    exact_accuracy = _mean(exact)
    block = {
        "exact_accuracy": exact_accuracy,
        "category_accuracy": _mean(category),
        "chapter_accuracy": _mean(chapter),
        "macro_f1": macro,
        "malformed_rate": _mean(malformed),
        "accuracy": exact_accuracy,
        "rouge1_f": _mean(rouge1),
        "n": n,
        "ci95": {
            "exact_accuracy": _ci(exact, n_resamples=n_resamples, seed=seed),
            "category_accuracy": _ci(category, n_resamples=n_resamples, seed=seed),
            "chapter_accuracy": _ci(chapter, n_resamples=n_resamples, seed=seed),
            "macro_f1": macro_ci,
            "rouge1_f": _ci(rouge1, n_resamples=n_resamples, seed=seed),
        },
    }
    rows = [
        {
            "correct": e,
            "category_correct": c,
            "chapter_correct": h,
            "rouge1_f": r,
            "malformed": bool(m),
        }
        for e, c, h, r, m in zip(exact, category, chapter, rouge1, malformed, strict=True)
    ]
    return block, rows


# --- regimen ----------------------------------------------------------------------------


def _parse(text: str | None):
    if not text:
        return None
    from radonc_llm.data.regimen import parse_regimen

    try:
        return parse_regimen(text)
    except ValueError:
        return None


def _drugs(structured) -> set[str]:
    return {re.sub(r"\s+", " ", drug).strip().casefold() for drug in structured.concurrent or []}


def regimen_case_scores(reference: str, prediction: str | None) -> dict:
    """Structure agreement of one regimen: None where the reference gives no answer to compare."""
    from radonc_llm.data.regimen import eqd2, total_eqd2

    ref = _parse(reference)
    pred = _parse(prediction)
    scores: dict[str, float | int | bool | None] = {
        "parsed": pred is not None and pred.dose_gy is not None,
        "dose_match": None,
        "fractions_match": None,
        "concurrent_match": None,
        "eqd2_abs_error": None,
        "total_eqd2_abs_error": None,
        "dose_per_fraction_abs_error": None,
    }
    if ref is None:
        return scores
    if ref.dose_gy is not None:
        scores["dose_match"] = int(
            pred is not None
            and pred.dose_gy is not None
            and abs(pred.dose_gy - ref.dose_gy) <= DOSE_TOLERANCE_GY
        )
    if ref.fractions is not None:
        scores["fractions_match"] = int(pred is not None and pred.fractions == ref.fractions)
    # A text without a readable dose is not a regimen: it matches no drug list, not even "none".
    # The same rule for the reference: without a dose ("Observation only") its empty drug
    # list does not mean "radiotherapy alone", so there is nothing to agree with.
    if ref.dose_gy is not None:
        readable = pred is not None and pred.dose_gy is not None
        scores["concurrent_match"] = int(readable and _drugs(pred) == _drugs(ref))
    if (
        pred is not None
        and None not in (ref.dose_gy, ref.fractions, pred.dose_gy, pred.fractions)
        and ref.fractions > 0
        and pred.fractions > 0
    ):
        error = abs(
            eqd2(pred.dose_gy, pred.fractions, alpha_beta=EQD2_ALPHA_BETA)
            - eqd2(ref.dose_gy, ref.fractions, alpha_beta=EQD2_ALPHA_BETA)
        )
        scores["eqd2_abs_error"] = float(error) if math.isfinite(error) else None
        per_fraction = abs(pred.dose_gy / pred.fractions - ref.dose_gy / ref.fractions)
        scores["dose_per_fraction_abs_error"] = float(per_fraction)
    totals = [
        total_eqd2(side, alpha_beta=EQD2_ALPHA_BETA) for side in (ref, pred) if side is not None
    ]
    if None not in totals and len(totals) == 2:
        error = abs(totals[1] - totals[0])
        scores["total_eqd2_abs_error"] = float(error) if math.isfinite(error) else None
    return scores


def regimen_metrics(
    references: Sequence[str],
    predictions: Sequence[str | None],
    raws: Sequence[str],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[dict, list[dict]]:
    """Regimen block: ROUGE-1/L F, exact match and agreement of dose, fractions, drugs, EQD2."""
    n = len(references)
    if len(raws) != n:
        raise ValueError("references and raw answers differ in length")
    rows: list[dict] = []
    # The regimen prediction is the raw answer with whitespace normalised: ROUGE reads it.
    for truth, pred in zip(references, predictions, strict=True):
        r1, rl = rouge_f(truth, pred)
        exact = int(
            pred is not None and normalize_regimen_text(pred) == normalize_regimen_text(truth)
        )
        rows.append(
            {
                "correct": exact,
                "rouge1_f": r1,
                "rougeL_f": rl,
                "malformed": pred is None,
                **regimen_case_scores(truth, pred),
            }
        )

    def column(name: str) -> list[float]:
        return [row[name] for row in rows if row[name] is not None]

    block: dict = {
        "rouge1_f": _mean(column("rouge1_f")),
        "rougeL_f": _mean(column("rougeL_f")),
        "exact_match": _mean(column("correct")),
        "dose_match": _mean(column("dose_match")),
        "fractions_match": _mean(column("fractions_match")),
        "concurrent_match": _mean(column("concurrent_match")),
        "eqd2_abs_error": _mean(column("eqd2_abs_error")),
        "total_eqd2_abs_error": _mean(column("total_eqd2_abs_error")),
        "dose_per_fraction_abs_error": _mean(column("dose_per_fraction_abs_error")),
        "n": n,
        "accuracy": _mean(column("correct")),
        "malformed_rate": _mean([int(row["malformed"]) for row in rows]),
        "structure_parse_rate": _mean([int(bool(row["parsed"])) for row in rows]),
        "dose_n": len(column("dose_match")),
        "fractions_n": len(column("fractions_match")),
        "concurrent_n": len(column("concurrent_match")),
        "eqd2_n": len(column("eqd2_abs_error")),
        "total_eqd2_n": len(column("total_eqd2_abs_error")),
        "dose_per_fraction_n": len(column("dose_per_fraction_abs_error")),
        "eqd2_alpha_beta": EQD2_ALPHA_BETA,
    }
    block["ci95"] = {
        name: _ci(column(source), n_resamples=n_resamples, seed=seed)
        for name, source in (
            ("rouge1_f", "rouge1_f"),
            ("rougeL_f", "rougeL_f"),
            ("exact_match", "correct"),
            ("dose_match", "dose_match"),
            ("fractions_match", "fractions_match"),
            ("concurrent_match", "concurrent_match"),
            ("eqd2_abs_error", "eqd2_abs_error"),
            ("total_eqd2_abs_error", "total_eqd2_abs_error"),
            ("dose_per_fraction_abs_error", "dose_per_fraction_abs_error"),
        )
    }
    return block, rows


TASK_METRICS = {
    "modality": modality_metrics,
    "icd10": icd10_metrics,
    "regimen": regimen_metrics,
}

# Per-case score each task's paired tests use: (metric name in metrics.json, per-case field,
# whether McNemar's test applies because the score is 0/1).
TASK_TEST_SCORES: dict[str, tuple[str, str, bool]] = {
    "modality": ("accuracy", "correct", True),
    "icd10": ("exact_accuracy", "correct", True),
    "regimen": ("rouge1_f", "rouge1_f", False),
}
