"""The study report: `runs/<name>/report/report.html` and `report.md` from a run's artefacts.

Read top to bottom, the report is the results section of the study: cohort, splits, training,
the main table, then each task in detail, examples, clinical review and the run manifest.
Each section reads the artefacts of one stage (the run directory layout is fixed, see
`write_report`); a section whose artefact is absent says so in one line, and an artefact
that cannot be read is named with its reason, so a partial run still gives a report.

The HTML file is self-contained (inline CSS, figures as base64 PNG, no scripts, no external
address) and every text from the data is escaped by Jinja2's autoescape. `report.md` carries
the same tables and points to the same figures, written as files in `figures/` beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics as pystats
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table as RichTable

from radonc_llm.errors import RadoncInputError
from radonc_llm.evaluate import figures
from radonc_llm.evaluate.metrics import DOSE_TOLERANCE_GY, rouge_f
from radonc_llm.evaluate.report_document import (
    DASH,
    Cell,
    Report,
    ReportBuilder,
    Section,
    TextBlock,
    as_number,
    ci_of,
    flatten_rows,
    fmt_count,
    fmt_duration,
    fmt_p,
    fmt_score,
    fmt_share,
    generic_tables,
    metric_with_ci,
    sentence_case,
    write_report_files,
)
from radonc_llm.storage import iter_jsonl

TASK_TITLES = {"modality": "Modality", "icd10": "ICD-10-CM code", "regimen": "Regimen"}
SYSTEM_LABELS = {
    "base": "Original model",
    "finetuned": "Fine-tuned model",
    "majority": "Majority class",
    "tfidf-logreg": "TF-IDF + logistic regression",
    "nearest-regimen": "Nearest training regimen",
    "few-shot": "Few-shot prompting",
}
REFERENCE_SYSTEM = "base"
TUNED_SYSTEM = "finetuned"
# Funnel steps of data/cohort.py, as a reader of the flow diagram says them.
FUNNEL_LABELS = {
    "complete_record": "incomplete record",
    "single_diagnosis": "more than one diagnosis",
    "billable_icd10": "no billable ICD-10-CM code",
    "primary_plan": "no clear primary plan",
    "mappable_modality": "modality not mappable",
    "plausible_prescription": "implausible prescription",
}
# The evaluation's per-case scores (evaluate/run.py): one row per system, task and case.
PER_CASE_FILE = "evaluate/per_case.jsonl"
EXAMPLES_PER_KIND = 2
NOTE_EXCERPT_CHARS = 420
# A regimen is one line; a longer answer (an original model echoing the note) is cut, so the
# report never carries more of a diagnosis note than the note's own excerpt.
ANSWER_EXCERPT_CHARS = 160


METRIC_WORDS = {
    "accuracy": "correct (0/1)",
    "exact_accuracy": "exact code correct (0/1)",
    "rouge1_f": "ROUGE-1 F",
    "rougeL_f": "ROUGE-L F",
}


def _metric_words(metric: Any) -> str:
    return METRIC_WORDS.get(str(metric), str(metric).replace("_", " ")) if metric else DASH


def system_label(system: str) -> str:
    return SYSTEM_LABELS.get(system, system)


def _lower_first(label: str) -> str:
    """ "Original model" -> "original model" inside a sentence; "TF-IDF ..." stays as it is."""
    return label[:1].lower() + label[1:] if label[1:2].islower() else label


def order_systems(names: Iterable[str]) -> list[str]:
    known = list(SYSTEM_LABELS)
    return sorted(set(names), key=lambda n: (known.index(n) if n in known else len(known), n))


def _excerpt(text: str, limit: int = NOTE_EXCERPT_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


# --- reading the run --------------------------------------------------------------------


class RunArtefacts:
    """The files of one run directory, read on first use; absent files read as None."""

    def __init__(self, run_dir: Path, *, patient_text: bool | None = None) -> None:
        self.run_dir = run_dir
        self._cache: dict[str, Any] = {}
        # Whether the examples may quote diagnosis notes and case ids (None: only for a run
        # on a synthetic cohort; a real export's case ids are its patient ids).
        self.patient_text = patient_text

    def shows_patient_text(self) -> bool:
        if self.patient_text is not None:
            return self.patient_text
        manifest = _safe(lambda: self.json("manifest.json"))
        export = manifest.get("config", {}).get("export") if isinstance(manifest, dict) else None
        return isinstance(export, dict) and bool(export.get("synthetic"))

    def path(self, relative: str) -> Path:
        return self.run_dir / relative

    def rel(self, relative: str) -> str:
        return str(Path(self.run_dir.name) / relative)

    def json(self, relative: str) -> Any:
        if relative not in self._cache:
            path = self.path(relative)
            if not path.is_file():
                self._cache[relative] = None
            else:
                try:
                    self._cache[relative] = json.loads(path.read_text(encoding="utf-8"))
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise RadoncInputError(f"not valid JSON ({exc})", file=path) from None
        return self._cache[relative]

    def jsonl(self, relative: str) -> list[dict] | None:
        if relative not in self._cache:
            path = self.path(relative)
            self._cache[relative] = [obj for _, obj in iter_jsonl(path)] if path.is_file() else None
        return self._cache[relative]

    @property
    def metrics(self) -> dict | None:
        metrics = self.json("evaluate/metrics.json")
        if metrics is not None:
            _check_metrics_shape(metrics, self.path("evaluate/metrics.json"))
        return metrics

    def test_cases(self) -> dict[str, dict] | None:
        rows = self.jsonl("split/test.jsonl")
        return None if rows is None else {str(row.get("case_id")): row for row in rows}

    def predictions(self, system: str, task: str) -> dict[str, dict] | None:
        rows = self.jsonl(f"predict/{system}.jsonl")
        if rows is None:
            return None
        return {str(r.get("case_id")): r for r in rows if r.get("task", task) == task}

    def per_case(self, system: str, task: str) -> dict[str, dict] | None:
        """Per-case scores written by the evaluation, keyed by case_id (None if absent)."""
        rows = self.jsonl(PER_CASE_FILE)
        if rows is None:
            return None
        return {
            str(r.get("case_id")): r
            for r in rows
            if r.get("system") == system and r.get("task") == task
        }


def _check_metrics_shape(metrics: Any, path: Path) -> None:
    """The shape every section relies on: {systems: {name: {task: {...}}}, comparisons: [{}]};
    anything else is named here, once, rather than failing in each section."""
    if not isinstance(metrics, Mapping):
        raise RadoncInputError(
            f"expected a JSON object, found a JSON {type(metrics).__name__}", file=path
        )
    systems = metrics.get("systems")
    if not isinstance(systems, Mapping):
        raise RadoncInputError("has no 'systems' object", file=path, field="systems")
    for name, blocks in systems.items():
        if not isinstance(blocks, Mapping):
            raise RadoncInputError(
                "expected an object of task results", file=path, field=f"systems.{name}"
            )
        for task, block in blocks.items():
            if not isinstance(block, Mapping):
                raise RadoncInputError(
                    "expected an object of metrics", file=path, field=f"systems.{name}.{task}"
                )
    comparisons = metrics.get("comparisons") or []
    if not isinstance(comparisons, list) or not all(isinstance(c, Mapping) for c in comparisons):
        raise RadoncInputError("expected a list of objects", file=path, field="comparisons")
    messages = metrics.get("messages") or []
    if not isinstance(messages, list):
        raise RadoncInputError("expected a list of texts", file=path, field="messages")


# --- sections ---------------------------------------------------------------------------


def _summary_section(art: RunArtefacts, rb: ReportBuilder) -> Section:
    section = Section("summary", "Summary")
    funnel = art.json("curate/funnel.json")
    split = art.json("split/split.json")
    sentences = []
    if funnel and funnel.get("steps"):
        total = funnel["steps"][0].get("patients")
        sentences.append(
            f"Of {fmt_count(total)} patients in the export, {fmt_count(funnel.get('kept'))} "
            "met every curation criterion and gave one case each."
        )
    if split and isinstance(split.get("splits"), Mapping):
        parts = [
            f"{fmt_count(block.get('cases'))} {name}"
            for name, block in split["splits"].items()
            if isinstance(block, Mapping)
        ]
        sentences.append(f"Cases were split by patient into {', '.join(parts)} cases.")
    metrics = art.metrics
    evaluated = _evaluated_cases(art, metrics) if metrics else None
    if evaluated:
        sentences.append(f"The models were evaluated on {evaluated}.")
    summarised = len(sentences)
    if metrics:
        for task, (metric, label, share) in HEADLINE_METRIC.items():
            tuned = metrics["systems"].get(TUNED_SYSTEM, {}).get(task)
            base = metrics["systems"].get(REFERENCE_SYSTEM, {}).get(task)
            if not tuned or not base:
                continue
            fmt = fmt_share if share else fmt_score
            t_value, t_ci = metric_with_ci(tuned, *metric)
            b_value, b_ci = metric_with_ci(base, *metric)
            comparison = _main_comparison(metrics, task, TUNED_SYSTEM)
            tested = ""
            if comparison:
                tested = (
                    f" (one-sided Wilcoxon p {_p_phrase(comparison.get('p_value'))}; "
                    f"Holm-adjusted p {_p_phrase(comparison.get('p_holm'))})"
                )
            sentences.append(
                f"{TASK_TITLES[task]}: {label} {_ci_phrase(fmt, t_value, t_ci)} for the fine-tuned "
                f"model versus {_ci_phrase(fmt, b_value, b_ci)} for the original model{tested}."
            )
    if metrics and len(sentences) == summarised:  # no task compared the two models
        systems = ", ".join(order_systems(metrics["systems"])) or "none"
        sentences.append(
            f"The evaluation holds no task that both the fine-tuned model "
            f"('{TUNED_SYSTEM}') and the original model ('{REFERENCE_SYSTEM}') answered "
            f"(systems evaluated: {systems}); see the main results for each system."
        )
    if not sentences:
        section.missing(
            "Nothing to summarise yet: the run has no curation, split or evaluation output."
        )
    else:
        section.text(" ".join(sentences))
    return section


def _ci_phrase(fmt: Callable, value: float | None, ci: tuple[float, float] | None) -> str:
    text = fmt(value)
    if ci:
        low, high = (fmt(ci[0]), fmt(ci[1]))
        text += f" (95% CI {low}–{high})"
    return text


def _p_phrase(value: Any) -> str:
    text = fmt_p(value)
    if text == DASH:
        return "not recorded"
    return text.replace("<", "< ") if text.startswith("<") else f"= {text}"


def _p_cell(value: Any) -> Cell:
    """A p-value cell: below 0.001 the exact value stays readable under "<0.001", so a reader
    can check it against metrics.json."""
    number = as_number(value)
    text = fmt_p(value)
    return Cell(text, f"{number:.1e}" if number is not None and number < 0.001 else None)


def _cohort_section(art: RunArtefacts, rb: ReportBuilder) -> Section:
    section = Section("cohort", "Cohort")
    funnel = art.json("curate/funnel.json")
    if funnel is None:
        section.missing(f"No curation output yet ({art.rel('curate/funnel.json')} is absent).")
        return section
    steps = funnel.get("steps") if isinstance(funnel, Mapping) else None
    if not steps:
        section.missing(f"{art.rel('curate/funnel.json')} lists no curation steps.")
        return section
    total = steps[0]["patients"] or 1
    rows = [
        [
            "Patients in the export"
            if i == 0
            else sentence_case(FUNNEL_LABELS.get(s["step"], s["step"])),
            DASH if i == 0 else fmt_count(s["excluded"]),
            fmt_count(s["patients"]),
            f"{100 * s['patients'] / total:.1f}%",
        ]
        for i, s in enumerate(steps)
    ]
    section.text(
        "Patients were kept when their record was complete, held one diagnosis with a billable "
        "ICD-10-CM code and one clear primary treatment plan whose modality mapped to one of four "
        "classes and whose prescription was plausible. Each step excludes patients that fail it "
        f"(Table {rb.n_tables + 1}, Figure {rb.n_figures + 1}); every input row is either in a "
        "kept case or in the exclusion ledger."
    )
    section.blocks.append(
        rb.table(
            "funnel",
            "Cohort funnel: patients excluded at each curation step, in order.",
            ["Step (exclusion reason)", "Excluded", "Remaining", "% of export"],
            rows,
            note=f"{fmt_count(funnel.get('input_rows'))} input rows; "
            f"{fmt_count(funnel.get('ledger_rows'))} rows in the exclusion ledger.",
        )
    )
    section.blocks.append(
        rb.figure(
            "funnel-flow",
            "Flow of patients through curation. Boxes on the right give the patients excluded "
            "at each step.",
            figures.funnel_flow_png(steps, FUNNEL_LABELS),
        )
    )
    reasons = funnel.get("ledger_reasons") or {}
    if reasons:
        rows_total = sum(reasons.values()) or 1
        section.blocks.append(
            rb.table(
                "ledger",
                "Exclusion ledger: input rows by reason (a patient's rows share a reason).",
                ["Reason", "Rows", "% of ledger"],
                [
                    [sentence_case(r), fmt_count(n), f"{100 * n / rows_total:.1f}%"]
                    for r, n in reasons.items()
                ],
            )
        )
    return section


def _chapter_label(chapter: str) -> str:
    import simple_icd_10_cm as cm

    try:
        return f"{chapter}. {cm.get_description(str(chapter))}"
    except ValueError:  # not a chapter number: the row still shows what split.json holds
        return f"Chapter {chapter}"


def _split_section(art: RunArtefacts, rb: ReportBuilder) -> Section:
    section = Section("splits", "Data splits")
    summary = art.json("split/split.json")
    if summary is None:
        section.missing(f"No split yet ({art.rel('split/split.json')} is absent).")
        return section
    splits = summary["splits"]
    names = list(splits)
    fractions = summary.get("fractions")
    section.text(
        "Patients, not cases, were assigned to the training, validation and test splits "
        f"(seed {summary.get('seed', DASH)}"
        + (f", target shares {' / '.join(f'{f:g}' for f in fractions)}" if fractions else "")
        + "), stratified by modality and site, so no patient contributes to two splits."
    )

    def share_rows(field_name: str, label: Callable[[str], str] = str) -> list[list[str]]:
        keys: dict[str, int] = {}
        for name in names:
            for key, count in (splits[name].get(field_name) or {}).items():
                keys[key] = keys.get(key, 0) + count
        rows = []
        for key in sorted(keys, key=lambda k: (-keys[k], k)):
            row = [label(key)]
            for name in names:
                count = (splits[name].get(field_name) or {}).get(key, 0)
                cases = splits[name].get("cases") or 0
                row.append(f"{count:,} ({100 * count / cases:.1f}%)" if cases else f"{count:,}")
            rows.append(row)
        return rows

    header = ["", *(f"{n.capitalize()}" for n in names)]
    size_rows = [
        ["Patients", *(fmt_count(splits[n].get("patients")) for n in names)],
        ["Cases", *(fmt_count(splits[n].get("cases")) for n in names)],
    ]
    modality_rows = share_rows("modality")
    groups = {len(size_rows): "Modality, n (%)"}
    section.blocks.append(
        rb.table(
            "split-makeup",
            "Size and modality make-up of each split.",
            header,
            size_rows + modality_rows,
            groups=groups,
        )
    )
    section.blocks.append(
        rb.table(
            "split-chapters",
            "ICD-10-CM chapter of the diagnosis in each split, n (%).",
            ["ICD-10-CM chapter", *header[1:]],
            share_rows("icd10_chapter", _chapter_label),
        )
    )
    section.blocks.append(
        rb.table(
            "split-sites",
            "Treatment site in each split, n (%).",
            ["Site", *header[1:]],
            share_rows("site", lambda s: s.replace("_", " ")),
        )
    )
    for line in _split_caveats(summary):
        section.blocks.append(TextBlock(line, kind="note"))
    return section


def _split_caveats(summary: Mapping) -> list[str]:
    """What split.json says a reader of the metrics must know: splits left empty, patients
    written more than one way, and modalities or sites a split holds no case of."""
    lines = []
    empty = summary.get("empty_splits") or []
    if empty:
        lines.append(
            f"Split(s) {', '.join(empty)} got no patient: too few patients for the shares."
        )
    merged = summary.get("merged_patient_ids") or []
    if merged:
        examples = "; ".join(" = ".join(map(str, ids)) for ids in merged[:3])
        lines.append(
            f"{len(merged)} patient(s) had ids written more than one way ({examples}); each "
            "was kept in one split."
        )
    for name, block in (summary.get("splits") or {}).items():
        absent = block.get("absent") if isinstance(block, Mapping) else None
        if not isinstance(absent, Mapping) or name in empty:
            continue
        parts = [
            f"{kind} {', '.join(str(v).replace('_', ' ') for v in values)}"
            for kind, values in absent.items()
            if values
        ]
        if parts:
            lines.append(
                f"The {name} split holds no case of {'; '.join(parts)}: its metrics do not "
                "cover them."
            )
    return lines


def _loss_series(rows: Sequence[Mapping]) -> tuple[dict[str, tuple[list, list]], str]:
    """Loss curves from metrics.jsonl rows, whatever the trainer's key names.

    Reads rows like {"step", "split": "train"|"val", "loss"} as well as flat ones
    ({"step", "train_loss"}, {"epoch", "val_loss"}, {"loss"}, {"eval_loss"}).
    """
    x_key = next((k for k in ("step", "global_step", "epoch") if any(k in r for r in rows)), None)
    series: dict[str, dict[float, float]] = {}

    def name_of(kind: str) -> str:
        kind = kind.lower()
        if kind in {"val", "valid", "validation", "eval", "dev"}:
            return "validation loss"
        return "training loss" if kind in {"train", "training", ""} else f"{kind} loss"

    for index, row in enumerate(rows):
        x = as_number(row.get(x_key)) if x_key else float(index)
        if x is None:
            continue
        kind = next(
            (row[k] for k in ("split", "phase", "kind", "stage") if isinstance(row.get(k), str)),
            None,
        )
        for key, value in row.items():
            number = as_number(value)
            if number is None or not key.endswith("loss"):
                continue
            if key == "loss":
                name = name_of(kind or "train")
            else:
                name = name_of(key[: -len("loss")].rstrip("_"))
            series.setdefault(name, {})[x] = number
    ordered = dict(sorted(series.items(), key=lambda item: item[0] != "training loss"))
    curves = {
        name: (sorted(points), [points[x] for x in sorted(points)])
        for name, points in ordered.items()
    }
    xlabel = {"epoch": "Epoch", None: "Logged point"}.get(x_key, "Optimizer step")
    return curves, xlabel


def _training_section(art: RunArtefacts, rb: ReportBuilder) -> Section:
    section = Section("training", "Fine-tuning")
    manifest = art.json("train/manifest.json")
    rows = art.jsonl("train/metrics.jsonl")
    if manifest is None and rows is None:
        section.missing(f"No training run yet ({art.rel('train/')} holds no manifest or metrics).")
        return section
    if rows is None:
        section.missing(f"No training curves: {art.rel('train/metrics.jsonl')} is absent.")
    else:
        curves, xlabel = _loss_series(rows)
        if not curves:
            section.missing(
                f"No training curves: {art.rel('train/metrics.jsonl')} holds no loss values."
            )
        else:
            drawn = "; ".join(
                f"{name}, {len(y):,} point{'s' if len(y) != 1 else ''}"
                for name, (_, y) in curves.items()
            )
            section.blocks.append(
                rb.figure(
                    "training-curves",
                    "Loss of the fine-tuned model during training (mean cross-entropy over "
                    f"answer tokens; {drawn}).",
                    figures.training_curves_png(curves, xlabel=xlabel),
                )
            )
            summary_rows = []
            for name, (x, y) in curves.items():
                best = min(range(len(y)), key=y.__getitem__)
                summary_rows.append(
                    [
                        name.capitalize(),
                        fmt_count(len(y)),
                        fmt_score(y[0]),
                        fmt_score(y[-1]),
                        f"{fmt_score(y[best])} at {xlabel.lower()} {x[best]:g}",
                    ]
                )
            section.blocks.append(
                rb.table(
                    "training-loss",
                    "Loss at the start, the end and its minimum.",
                    ["Curve", "Points", "First", "Last", "Lowest"],
                    summary_rows,
                )
            )
    if manifest is not None:
        rows = flatten_rows(manifest, skip={"stages", "versions", "packages", "hardware"}, limit=40)
        section.blocks.append(
            rb.table(
                "training-setup",
                "Fine-tuning set-up, from the training run's manifest.",
                ["Setting", "Value"],
                rows,
                css="keyvalue",
            )
        )
    return section


HEADLINE_METRIC: dict[str, tuple[tuple[str, ...], str, bool]] = {
    # task -> (metric names in metrics.json, words for it, shown as a percentage)
    "modality": (("accuracy",), "accuracy", True),
    "icd10": (("exact_accuracy", "accuracy"), "exact-code accuracy", True),
    "regimen": (("rouge1_f",), "mean ROUGE-1 F", False),
}
# The "Accuracy" column: exact agreement, named differently per task in metrics.json.
ACCURACY_NAMES = {
    "modality": ("accuracy",),
    "icd10": ("exact_accuracy", "accuracy"),
    "regimen": ("exact_match", "accuracy"),
}
HEADLINE_HEADER = [
    "System",
    "Accuracy (95% CI)",
    "ROUGE-1 F (95% CI)",
    "Macro-F1 (95% CI)",
    "Malformed",
    "n",
    "p (Wilcoxon)",
    "p (Holm)",
    "Effect r",
]


def _n_evaluated(metrics: Mapping) -> int | None:
    """Cases evaluated: metrics.json's n_cases, else the largest n of a task block (older
    files); None when neither is recorded."""
    n = as_number(metrics.get("n_cases"))
    if n is None:
        blocks = [
            b for s in metrics["systems"].values() for b in s.values() if isinstance(b, Mapping)
        ]
        n = max((as_number(b.get("n")) or 0 for b in blocks), default=0) or None
    return int(n) if n else None


def _evaluated_cases(art: RunArtefacts, metrics: Mapping) -> str | None:
    """ "400 test cases", saying so when they are a sample of a larger test split (a study
    recipe's evaluation.test_sample): a reader compares them with the split table."""
    n = _n_evaluated(metrics)
    if n is None:
        return None
    text = f"{n:,} test cases"
    split = _safe(lambda: art.json("split/split.json"))
    test = (split or {}).get("splits", {}).get("test") if isinstance(split, Mapping) else None
    in_split = as_number(test.get("cases")) if isinstance(test, Mapping) else None
    if in_split is not None and in_split > n:
        manifest = _safe(lambda: art.json("manifest.json")) or {}
        seed = (
            _first(manifest, ("config.evaluation.seed",)) if isinstance(manifest, Mapping) else None
        )
        text += (
            f" (a random sample of the {int(in_split):,} cases of the test split"
            + (f", seed {seed}" if seed is not None else "")
            + ")"
        )
    return text


def _main_comparison(metrics: Mapping, task: str, system: str) -> dict | None:
    """The Wilcoxon test of `system` against the original model for `task`, if it was run."""
    candidates = [
        c
        for c in metrics.get("comparisons") or []
        if c.get("task") == task
        and c.get("system") == system
        and c.get("baseline") == REFERENCE_SYSTEM
        and c.get("test", "wilcoxon") == "wilcoxon"
    ]
    primary = HEADLINE_METRIC.get(task, ((),))[0]
    candidates.sort(key=lambda c: c.get("metric") not in primary)
    return candidates[0] if candidates else None


def headline_rows(metrics: Mapping) -> list[tuple[str, list[list[str]]]]:
    """The main table as text: per task, one row per system (HEADLINE_HEADER columns)."""
    systems = metrics.get("systems") or {}
    groups = []
    for task in TASK_TITLES:
        rows = []
        for system in order_systems(systems):
            block = (systems.get(system) or {}).get(task)
            if not block:
                continue
            accuracy = metric_with_ci(block, *ACCURACY_NAMES[task])
            rouge = metric_with_ci(block, "rouge1_f")
            macro = metric_with_ci(block, "macro_f1")
            if system == REFERENCE_SYSTEM:
                tests = ["reference", DASH, DASH]
            else:
                comparison = _main_comparison(metrics, task, system) or {}
                effect = as_number(comparison.get("effect_size"))
                tests = [
                    fmt_p(comparison.get("p_value")),
                    fmt_p(comparison.get("p_holm")),
                    f"{effect:+.2f}" if effect is not None else DASH,
                ]
            rows.append(
                [
                    system_label(system),
                    fmt_share(*accuracy),
                    fmt_score(*rouge),
                    fmt_score(*macro),
                    fmt_share(block.get("malformed_rate")),
                    fmt_count(block.get("n")),
                    *tests,
                ]
            )
        if rows:
            groups.append((TASK_TITLES[task], rows))
    return groups


def headline_table(metrics: Mapping) -> RichTable:
    """The main table for the console: per task, every system with 95% CIs and p-values."""
    table = RichTable(title="Main results on the test cases (95% bootstrap CIs)")
    table.add_column("Task")
    for index, name in enumerate(HEADLINE_HEADER):
        table.add_column(name, justify="left" if index == 0 else "right")
    for task, rows in headline_rows(metrics):
        for index, (system, *cells) in enumerate(rows):
            # A system's name is the user's text: "[/]" in it is not rich markup.
            table.add_row(
                task if index == 0 else "",
                escape(system),
                *cells,
                end_section=index == len(rows) - 1,
            )
    return table


def _headline_note(metrics: Mapping) -> str:
    """How the p-values were computed, in the evaluation's own words where it recorded them."""
    from radonc_llm.evaluate.statistics import ZERO_METHOD_NOTE

    tests = (metrics.get("settings") or {}).get("tests") or {}
    scored = sorted(
        {
            f"{TASK_TITLES.get(c.get('task'), c.get('task'))}: {_metric_words(c.get('metric'))}"
            for c in metrics.get("comparisons") or []
            if c.get("test", "wilcoxon") == "wilcoxon"
        }
    )
    zeros = tests.get("wilcoxon_zero_differences", ZERO_METHOD_NOTE)
    family = tests.get("multiplicity", "Holm-adjusted across the family of comparisons")
    return (
        "Accuracy is exact agreement with the reference (ICD-10-CM: the full code; regimen: the "
        "whole text after normalising case and spacing); malformed answers count as wrong. "
        "p (Wilcoxon): one-sided paired signed-rank test that the system scores higher than the "
        f"original model on per-case scores ({'; '.join(scored) or 'none run'}); {zeros}. "
        f"p (Holm): {family}. Effect r: matched-pairs "
        "rank-biserial correlation (positive favours the system)."
    )


def _results_section(art: RunArtefacts, rb: ReportBuilder) -> Section:
    section = Section("results", "Main results")
    metrics = art.metrics
    if metrics is None:
        section.missing(f"No evaluation yet ({art.rel('evaluate/metrics.json')} is absent).")
        return section
    groups = headline_rows(metrics)
    rows, starts = [], {}
    for task, task_rows in groups:
        starts[len(rows)] = task
        rows.extend(task_rows)
    evaluated = _evaluated_cases(art, metrics)
    section.text(
        f"Table {rb.n_tables + 1} gives, for each task, the original and the fine-tuned model and "
        f"the baselines on {'the same ' + evaluated if evaluated else 'the test cases'}, with "
        "percentile bootstrap 95% confidence intervals over cases."
    )
    section.blocks.append(
        rb.table(
            "headline",
            "Main results per task: original model, fine-tuned model and baselines.",
            HEADLINE_HEADER,
            rows,
            groups=starts,
            note=_headline_note(metrics),
            css="headline",
        )
    )
    for message in metrics.get("messages") or []:
        section.blocks.append(TextBlock(f"Evaluation note: {message}", kind="note"))
    comparisons = metrics.get("comparisons") or []
    systems = order_systems(metrics["systems"])
    if comparisons:
        ordered = sorted(
            comparisons,
            key=lambda c: (
                list(TASK_TITLES).index(c["task"]) if c.get("task") in TASK_TITLES else 9,
                systems.index(c["system"]) if c.get("system") in systems else 99,
                str(c.get("baseline")),
                c.get("test") != "wilcoxon",
            ),
        )
        rows, starts = [], {}
        for c in ordered:
            task = TASK_TITLES.get(c.get("task"), str(c.get("task")))
            if task not in starts.values():
                starts[len(rows)] = task
            effect = as_number(c.get("effect_size"))
            rows.append(
                [
                    f"{system_label(str(c.get('system')))} vs "
                    + _lower_first(system_label(str(c.get("baseline")))),
                    _metric_words(c.get("metric")),
                    {"wilcoxon": "Wilcoxon", "mcnemar_exact": "McNemar (exact)"}.get(
                        c.get("test"), str(c.get("test", DASH))
                    ),
                    str(c.get("alternative", DASH)),
                    fmt_score(c.get("statistic"), digits=1),
                    Cell(
                        fmt_count(c.get("n")),
                        f"{fmt_count(c.get('n_nonzero'))} non-zero"
                        if as_number(c.get("n_nonzero")) is not None
                        and c.get("n_nonzero") != c.get("n")
                        else None,
                    ),
                    _p_cell(c.get("p_value")),
                    _p_cell(c.get("p_holm")),
                    f"{effect:+.2f}" if effect is not None else DASH,
                ]
            )
        section.blocks.append(
            rb.table(
                "comparisons",
                "All paired comparisons, with Holm-adjusted p-values.",
                [
                    "Comparison",
                    "Metric",
                    "Test",
                    "Alternative",
                    "Statistic",
                    "n",
                    "p",
                    "p (Holm)",
                    "Effect r",
                ],
                rows,
                groups=starts,
                note="Wilcoxon: one-sided paired signed-rank test on per-case scores, statistic R+ "
                "(sum of ranks of positive differences). McNemar (exact): binomial test on the "
                "discordant cases, statistic the number of cases only the system got right. "
                "n: paired cases, in small type the non-zero differences (Wilcoxon) or "
                "discordant cases (McNemar) the test used; under <0.001, the exact p-value.",
            )
        )
    return section


def _two_models(metrics: Mapping, task: str) -> list[str]:
    systems = metrics["systems"]
    return [s for s in (REFERENCE_SYSTEM, TUNED_SYSTEM) if (systems.get(s) or {}).get(task)]


def _modality_section(art: RunArtefacts, rb: ReportBuilder) -> Section:
    section = Section("modality", "Modality")
    metrics = art.metrics
    if metrics is None:
        section.missing("No evaluation yet: no confusion matrices or per-class scores.")
        return section
    shown = _two_models(metrics, "modality")
    if not shown:
        section.missing(
            "metrics.json has no modality results for the original or fine-tuned model."
        )
        return section
    panels = []
    for system in shown:
        confusion = metrics["systems"][system]["modality"].get("confusion")
        if isinstance(confusion, Mapping) and confusion.get("matrix"):
            panels.append((system_label(system), confusion["labels"], confusion["matrix"]))
    if panels:
        section.blocks.append(
            rb.figure(
                "modality-confusion",
                "Confusion matrices of modality: rows are the reference modality, columns the "
                "model's answer (counts; shading is the share of the row; "
                + ", ".join(f"{label}: n = {int(np.sum(matrix)):,}" for label, _, matrix in panels)
                + ").",
                figures.confusion_png(panels),
            )
        )
    else:
        section.missing("metrics.json holds no confusion matrix for modality.")
    per_class = {s: metrics["systems"][s]["modality"].get("per_class") or {} for s in shown}
    if any(per_class.values()):
        rows, starts = [], {}
        for system in shown:
            starts[len(rows)] = system_label(system)
            for label, scores in per_class[system].items():
                rows.append(
                    [
                        label,
                        *(fmt_score(scores.get(k)) for k in ("precision", "recall", "f1")),
                        fmt_count(scores.get("support")),
                    ]
                )
            block = metrics["systems"][system]["modality"]
            for name, title in (("macro_f1", "Macro average"), ("weighted_f1", "Weighted average")):
                rows.append(
                    [
                        title,
                        DASH,
                        DASH,
                        fmt_score(*metric_with_ci(block, name)),
                        fmt_count(block.get("n")),
                    ]
                )
        section.blocks.append(
            rb.table(
                "modality-per-class",
                "Precision, recall and F1 of each modality class.",
                ["Class", "Precision", "Recall", "F1 (95% CI)", "Support"],
                rows,
                groups=starts,
                note="Support: reference cases of the class. Malformed answers count against "
                "recall. A dash is undefined: precision of a class the model never answered, "
                "recall of a class absent from the reference. The macro average weighs the "
                "classes equally, the weighted average by support; their 95% CIs are bootstrap "
                "intervals over cases.",
            )
        )
    return section


def _icd10_section(art: RunArtefacts, rb: ReportBuilder) -> Section:
    section = Section("icd10", "ICD-10-CM codes")
    metrics = art.metrics
    if metrics is None:
        section.missing("No evaluation yet: no ICD-10-CM accuracy by level.")
        return section
    systems = [
        s for s in order_systems(metrics["systems"]) if (metrics["systems"][s] or {}).get("icd10")
    ]
    if not systems:
        section.missing("metrics.json has no ICD-10-CM results.")
        return section
    levels = (
        ("exact_accuracy", "Exact code"),
        ("category_accuracy", "Category (3 characters)"),
        ("chapter_accuracy", "Chapter"),
    )
    rows, bars = [], []
    for system in systems:
        block = metrics["systems"][system]["icd10"]
        values = [metric_with_ci(block, name) for name, _ in levels]
        macro = metric_with_ci(block, "macro_f1")
        rows.append(
            [
                system_label(system),
                *(fmt_share(v, ci) for v, ci in values),
                fmt_score(*macro),
                fmt_share(block.get("malformed_rate")),
                fmt_count(block.get("n")),
            ]
        )
        bars.append(
            (system, system_label(system), [v for v, _ in values], [ci for _, ci in values])
        )
    section.text(
        "A code can be right at three levels: the exact billable code, its three-character "
        "category (e.g. C50, breast) or its chapter (e.g. neoplasms)."
    )
    section.blocks.append(
        rb.table(
            "icd10-levels",
            "ICD-10-CM accuracy by level (95% CI).",
            ["System", *(title for _, title in levels), "Macro-F1 (95% CI)", "Malformed", "n"],
            rows,
        )
    )
    section.blocks.append(
        rb.figure(
            "icd10-levels",
            "ICD-10-CM accuracy by level for every system; error bars are bootstrap 95% CIs "
            f"({_n_phrase(metrics, systems, 'icd10')}).",
            figures.level_bars_png(bars, [title for _, title in levels], order=systems),
        )
    )
    return section


@dataclass
class RegimenCase:
    case_id: str
    reference: str
    note: str
    site: str | None
    answers: dict[str, str | None]  # system -> extracted prediction (None: malformed/missing)
    rouge1: dict[str, float]


def _regimen_cases(
    art: RunArtefacts, systems: Sequence[str]
) -> tuple[list[RegimenCase], str | None]:
    """Reference and answers of each system on the evaluated cases; or why they are missing.

    The evaluation's per_case.jsonl is the source (the cases it scored, its ROUGE-1); without
    it, prediction files are joined with split/test.jsonl and ROUGE-1 is computed the same way.
    """
    cases = art.test_cases() or {}
    scored = {system: art.per_case(system, "regimen") for system in systems}
    if all(scored.values()):
        evaluated = list(dict.fromkeys(cid for rows in scored.values() for cid in rows))
    else:
        if not cases:
            return (
                [],
                f"{art.rel(PER_CASE_FILE)} and {art.rel('split/test.jsonl')} are absent",
            )
        scored = {}
        for system in systems:
            rows = art.predictions(system, "regimen")
            if rows is None:
                return [], f"{art.rel(f'predict/{system}.jsonl')} is absent"
            scored[system] = rows
        evaluated = [cid for cid in cases if any(cid in scored[s] for s in systems)]
    if not evaluated:
        return [], "no regimen answers match the evaluated cases"
    out = []
    for case_id in evaluated:
        case = cases.get(case_id, {})
        rows = {system: scored[system].get(case_id) or {} for system in systems}
        reference = next(
            (r["reference"] for r in rows.values() if isinstance(r.get("reference"), str)), None
        )
        row = RegimenCase(
            case_id=case_id,
            reference=reference or str(case.get("regimen", "")),
            note=str(case.get("diagnosis_text", "")),
            site=case.get("site"),
            answers={},
            rouge1={},
        )
        for system in systems:
            prediction = rows[system].get("prediction")
            row.answers[system] = prediction if isinstance(prediction, str) else None
            stored = as_number(rows[system].get("rouge1_f"))
            row.rouge1[system] = (
                stored if stored is not None else rouge_f(row.reference, row.answers[system])[0]
            )
        out.append(row)
    return out, None


def _regimen_section(art: RunArtefacts, rb: ReportBuilder) -> Section:
    section = Section("regimen", "Treatment regimens")
    metrics = art.metrics
    if metrics is None:
        section.missing(
            "No evaluation yet: no regimen agreement, ROUGE-1 distributions or dose plots."
        )
        return section
    systems = [
        s for s in order_systems(metrics["systems"]) if (metrics["systems"][s] or {}).get("regimen")
    ]
    if not systems:
        section.missing("metrics.json has no regimen results.")
        return section
    parts = (
        ("rouge1_f", "ROUGE-1 F", False),
        ("rougeL_f", "ROUGE-L F", False),
        ("exact_match", "Exact text", True),
        ("dose_match", "Total dose", True),
        ("fractions_match", "Fractions", True),
        ("concurrent_match", "Concurrent drugs", True),
        ("dose_per_fraction_abs_error", "Dose/fraction |error| (Gy)", False),
        ("eqd2_abs_error", "EQD2 |error| (Gy)", False),
        ("total_eqd2_abs_error", "EQD2 with boost |error| (Gy)", False),
    )
    rows = []
    for system in systems:
        block = metrics["systems"][system]["regimen"]
        cells = []
        for name, _, share in parts:
            value, ci = metric_with_ci(block, name)
            digits = 2 if name.endswith("_abs_error") else 3
            main = fmt_share(value) if share else fmt_score(value, digits=digits)
            sub = []
            if ci:
                low, high = (fmt_share(c) if share else fmt_score(c, digits=digits) for c in ci)
                sub.append(f"({low}–{high})")
            # An error is averaged over the cases whose both texts state dose and fractions:
            # an original model that parses once has an EQD2 error over n = 1, not over n.
            scored = as_number(block.get(_scored_key(name)))
            if scored is not None and scored != as_number(block.get("n")):
                sub.append(f"n = {int(scored):,}")
            cells.append(Cell(main, ", ".join(sub) or None))
        rows.append([system_label(system), *cells, fmt_count(block.get("n"))])
    alpha_beta = next(
        (as_number(metrics["systems"][s]["regimen"].get("eqd2_alpha_beta")) for s in systems),
        None,
    )
    section.blocks.append(
        rb.table(
            "regimen-agreement",
            "Agreement of the generated regimen with the prescribed one (95% CI).",
            ["System", *(title for _, title, _ in parts), "n"],
            rows,
            note="Dose, fractions and concurrent drugs are read from both texts by the regimen "
            "parser and scored where the reference states them; dose-per-fraction and EQD2 "
            f"errors (α/β = {alpha_beta if alpha_beta is not None else 10:g} Gy) where both "
            "state dose and fractions, over the cases given as n = when fewer than the system's "
            "n. EQD2 reads the main course; with boost, it adds each side's boost converted on "
            "its own, where every course states its dose and fractions.",
        )
    )

    pair = _two_models(metrics, "regimen")
    cases, why = _regimen_cases(art, pair) if pair else ([], "neither model has regimen results")
    if why:
        section.missing(f"No ROUGE-1 distributions or dose agreement plots: {why}.")
        return section
    section.blocks.append(
        rb.figure(
            "rouge1-distribution",
            "Distribution of per-case ROUGE-1 F of the generated regimens; dashed lines mark the "
            f"medians (n = {len(cases):,} cases per model).",
            figures.rouge_distribution_png(
                {s: (system_label(s), [c.rouge1[s] for c in cases]) for s in pair}, order=systems
            ),
        )
    )
    panels = _agreement_panels(cases, pair)
    if isinstance(panels, str):
        section.missing(f"No dose agreement plots: {panels}.")
    else:
        section.blocks.append(
            rb.figure(
                "dose-agreement",
                "Prescribed versus predicted total dose (top) and number of fractions (bottom) per "
                "case; the dashed line is perfect agreement. Each panel shows the answers that state "
                "the quantity (readable) and the share of those equal to the prescription (exact).",
                figures.agreement_png(
                    panels, order=systems, n_cases=len(cases), tolerance=DOSE_TOLERANCE_GY
                ),
            )
        )
    return section


def _n_phrase(metrics: Mapping, systems: Sequence[str], task: str) -> str:
    """ "n = 400 cases per system", or each system's n where they differ."""
    counts = {s: fmt_count(metrics["systems"][s][task].get("n")) for s in systems}
    if len(set(counts.values())) == 1:
        return f"n = {next(iter(counts.values()))} cases per system"
    return ", ".join(f"{system_label(s)}: n = {n}" for s, n in counts.items())


def _scored_key(metric: str) -> str:
    """metrics.json's count of the cases a regimen metric was scored on: dose_match -> dose_n,
    eqd2_abs_error -> eqd2_n."""
    stem = metric.removesuffix("_abs_error").removesuffix("_match")
    return f"{stem}_n"


def _agreement_panels(
    cases: Sequence[RegimenCase], systems: Sequence[str]
) -> list[tuple[str, str, str, list[float], list[float]]] | str:
    """(system, label, quantity, prescribed, predicted) per panel, both sides read by the
    regimen parser as the evaluation reads them; or why there is nothing to plot."""
    from radonc_llm.data.regimen import parse_regimen

    references = {case.case_id: parse_regimen(case.reference) for case in cases}
    panels = []
    for system in systems:
        doses: tuple[list[float], list[float]] = ([], [])
        fractions: tuple[list[float], list[float]] = ([], [])
        for case in cases:
            reference = references[case.case_id]
            predicted = parse_regimen(case.answers[system] or "")
            if reference.dose_gy is not None and predicted.dose_gy is not None:
                doses[0].append(reference.dose_gy)
                doses[1].append(predicted.dose_gy)
            if reference.fractions is not None and predicted.fractions is not None:
                fractions[0].append(float(reference.fractions))
                fractions[1].append(float(predicted.fractions))
        panels.append((system, system_label(system), "dose", *doses))
        panels.append((system, system_label(system), "fractions", *fractions))
    if not any(panel[3] for panel in panels):
        return "no answer states a readable dose or fraction count"
    return panels


def _examples_section(art: RunArtefacts, rb: ReportBuilder) -> Section:
    section = Section("examples", "Examples")
    metrics = art.metrics
    pair = _two_models(metrics, "regimen") if metrics else []
    if not pair:
        section.missing("No examples: the run has no evaluated regimens yet.")
        return section
    cases, why = _regimen_cases(art, pair)
    if why:
        section.missing(f"No examples: {why}.")
        return section
    pair = sorted(pair, key=lambda s: s != TUNED_SYSTEM)  # the tuned model's answer first
    ranker = pair[0]
    ranked = sorted(cases, key=lambda c: (-c.rouge1[ranker], c.case_id))
    median = pystats.median(c.rouge1[ranker] for c in ranked)
    chosen: dict[str, RegimenCase] = {}
    picks = [
        ("Best", ranked[:EXAMPLES_PER_KIND]),
        ("Typical", sorted(ranked, key=lambda c: (abs(c.rouge1[ranker] - median), c.case_id))),
        ("Worst", ranked[::-1]),
    ]
    quoted = art.shows_patient_text()
    rows, groups = [], {}
    for kind, candidates in picks:
        taken = [c for c in candidates if c.case_id not in chosen][:EXAMPLES_PER_KIND]
        if not taken:
            continue
        groups[len(rows)] = kind
        for case in taken:
            chosen[case.case_id] = case
            site = (case.site or "").replace("_", " ") or None
            rows.append(
                [
                    *(
                        [Cell(case.case_id, site), Cell(_excerpt(case.note))]
                        if quoted
                        else [Cell(f"Example {len(rows) + 1}", site)]
                    ),
                    Cell(case.reference),
                    *(
                        Cell(
                            _excerpt(case.answers[s], ANSWER_EXCERPT_CHARS)
                            if case.answers[s]
                            else "(malformed or missing answer)",
                            f"ROUGE-1 F {case.rouge1[s]:.2f}",
                        )
                        for s in pair
                    ),
                ]
            )
    section.text(
        f"Cases ranked by the {system_label(ranker).lower()}'s ROUGE-1 F: the {EXAMPLES_PER_KIND} best, "
        f"the {EXAMPLES_PER_KIND} nearest the median ({median:.2f}) and the {EXAMPLES_PER_KIND} worst "
        f"of {len(cases):,} evaluated cases."
        + (
            ""
            if quoted
            else " Case ids and diagnosis notes are left out, as the cases come from a real "
            "export (`radonc-llm report --patient-text` shows them)."
        )
    )
    section.blocks.append(
        rb.table(
            "examples",
            "Generated regimens side by side with the prescribed (reference) regimen.",
            [
                *(["Case", "Diagnosis note (excerpt)"] if quoted else ["Case"]),
                "Reference regimen",
                *(system_label(s) for s in pair),
            ],
            rows,
            groups=groups,
            css="examples",
        )
    )
    return section


def _review_files_changed(art: RunArtefacts, review: Mapping) -> list[str]:
    """The files beside review_metrics.json whose SHA-256 is not the one it records (`files`,
    written by `review export`); [] for an export that records none."""
    from radonc_llm.storage import file_sha256

    recorded = review.get("files")
    if not isinstance(recorded, Mapping):
        return []
    changed = []
    for name, entry in recorded.items():
        path = art.path(f"review/{name}")
        expected = entry.get("sha256") if isinstance(entry, Mapping) else None
        if not path.is_file() or file_sha256(path) != expected:
            changed.append(str(name))
    return changed


def _review_section(art: RunArtefacts, rb: ReportBuilder) -> Section:
    section = Section("review", "Clinical review")
    review = art.json("review/review_metrics.json")
    if review is None:
        section.missing(
            f"No clinical review yet ({art.rel('review/review_metrics.json')} is absent)."
        )
        return section
    if not isinstance(review, Mapping):
        raise RadoncInputError(
            f"expected a JSON object, found a JSON {type(review).__name__}",
            file=art.path("review/review_metrics.json"),
        )
    changed = _review_files_changed(art, review)
    if changed:
        section.blocks.append(
            TextBlock(
                f"The review export is incomplete: {', '.join(changed)} "
                f"{'is' if len(changed) == 1 else 'are'} not the file(s) that "
                "review_metrics.json was written with (an export killed during its renames, or "
                "a file edited since); rerun `radonc-llm review export`.",
                kind="note",
            )
        )
    acceptability = review.get("acceptability")
    if not isinstance(acceptability, Mapping) or not acceptability:
        # Not the shape review/export.py writes: show what is there, table by table.
        for key, caption, header, rows in generic_tables(review):
            section.blocks.append(
                rb.table(f"review-{key}", f"Clinical review: {caption}.", header, rows)
            )
        return section
    from radonc_llm.review.models import RATINGS

    progress = review.get("progress") or {}
    reviewers = len(progress.get("per_reviewer") or {})
    section.text(
        f"{fmt_count(review.get('n_ratings'))} ratings by {reviewers or DASH} reviewer(s) of "
        f"{fmt_count(progress.get('assigned'))} assigned items. Reviewers saw each regimen without "
        f"its source and rated it {', '.join(repr(v.lower()) for v in RATINGS.values())}; "
        "acceptable means as is or with minor edits."
    )
    rows = []
    for source, block in acceptability.items():
        counts = block.get("counts") or {}
        rows.append(
            [
                _source_label(source),
                fmt_count(block.get("n")),
                fmt_share(block.get("acceptable_rate"), ci_of(block.get("acceptable_ci95"))),
                fmt_share(block.get("as_is_rate"), ci_of(block.get("as_is_ci95"))),
                *(fmt_count(counts.get(key, 0)) for key in RATINGS),
            ]
        )
    section.blocks.append(
        rb.table(
            "review-acceptability",
            "Clinical acceptability of the regimens by source (95% Wilson CI).",
            ["Source", "Ratings", "Acceptable (95% CI)", "As is (95% CI)", *RATINGS.values()],
            rows,
            note="One rating is the unit of the rates: an item rated by two reviewers counts "
            "twice. The intervals do not count its two ratings as independent: Wilson's "
            "interval at the effective number of ratings (the items' design effect).",
        )
    )
    comparison = review.get("comparison")
    if isinstance(comparison, Mapping):
        treatment, control = comparison.get("treatment"), comparison.get("control")
        row = [
            f"{_source_label(str(treatment))} vs {_lower_first(_source_label(str(control)))}",
            fmt_count(comparison.get("n_cases")),
            fmt_score(comparison.get("mean_treatment"), digits=2),
            fmt_score(comparison.get("mean_control"), digits=2),
            fmt_score(comparison.get("median_difference"), digits=2),
            fmt_score(comparison.get("statistic"), digits=1),
            fmt_p(comparison.get("p_value")),
        ]
        section.blocks.append(
            rb.table(
                "review-comparison",
                "Paired comparison of the clinical ratings.",
                [
                    "Comparison",
                    "Cases",
                    "Mean score",
                    "Mean score (control)",
                    "Median difference",
                    "Statistic",
                    "p (one-sided)",
                ],
                [row],
                note="Per case, the mean ordinal rating over its reviewers (2 as is, 1 minor edits, "
                "0 unacceptable); one-sided Wilcoxon signed-rank test, zero differences dropped."
                + (f" {comparison['note']}." if comparison.get("note") else ""),
            )
        )
    agreement = review.get("agreement")
    if isinstance(agreement, Mapping):
        rows = []
        for pair in agreement.get("cohen_kappa") or []:
            names = " and ".join(str(r) for r in pair.get("reviewers") or [])
            rows.append(
                [
                    f"Cohen's kappa, {names}",
                    fmt_count(pair.get("n")),
                    fmt_score(pair.get("kappa"), digits=2),
                    f"linear-weighted {fmt_score(pair.get('kappa_linear'), digits=2)}"
                    + (f"; {pair['note']}" if pair.get("note") else ""),
                ]
            )
        if agreement.get("cohen_kappa_note"):  # no pair of reviewers to compare: say why
            rows.append(["Cohen's kappa", "–", "–", str(agreement["cohen_kappa_note"])])
        for key, title in (
            ("fleiss_kappa", "Fleiss' kappa"),
            ("krippendorff_alpha", "Krippendorff's alpha (ordinal)"),
        ):
            block = agreement.get(key)
            if isinstance(block, Mapping):
                rows.append(
                    [
                        title,
                        fmt_count(block.get("n_items")),
                        fmt_score(block.get("value"), digits=2),
                        block.get("note") or "",
                    ]
                )
        if rows:
            section.blocks.append(
                rb.table(
                    "review-agreement",
                    "Agreement between reviewers on items rated more than once.",
                    ["Statistic", "Items", "Value", "Note"],
                    rows,
                    align="lrrl",
                )
            )
    return section


def _source_label(source: str) -> str:
    return "Reference (prescribed)" if source == "reference" else system_label(source)


def _manifest_section(art: RunArtefacts, rb: ReportBuilder) -> Section:
    section = Section("manifest", "Run manifest")
    manifest = art.json("manifest.json")
    if manifest is None:
        section.missing(f"No run manifest ({art.rel('manifest.json')} is absent).")
        return section
    stages = manifest.get("stages") or {}
    if stages:
        rows = []
        for name, stage in stages.items():
            stage = stage if isinstance(stage, Mapping) else {"status": stage}
            seconds = as_number(stage.get("seconds"))
            rows.append(
                [
                    name,
                    str(stage.get("status", DASH)),
                    fmt_duration(seconds) if seconds is not None else DASH,
                    str(stage.get("input_hash") or DASH)[:16],
                ]
            )
        total = sum(
            as_number((s or {}).get("seconds")) or 0
            for s in stages.values()
            if isinstance(s, Mapping)
        )
        rows.append(["Total", "", fmt_duration(total), ""])
        section.blocks.append(
            rb.table(
                "stages",
                "Stages of the run: status, wall-clock time and input hash.",
                ["Stage", "Status", "Time", "Input hash (first 16)"],
                rows,
                align="llrl",
            )
        )
    section.blocks.append(
        rb.table(
            "manifest",
            "Run manifest: versions, commit, seeds, data hashes and hardware.",
            ["Entry", "Value"],
            flatten_rows(manifest, skip={"stages"}),
            css="keyvalue",
        )
    )
    return section


# --- assembling and writing -------------------------------------------------------------

SECTIONS: tuple[tuple[str, str, Callable[[RunArtefacts, ReportBuilder], Section]], ...] = (
    ("summary", "Summary", _summary_section),
    ("cohort", "Cohort", _cohort_section),
    ("splits", "Data splits", _split_section),
    ("training", "Fine-tuning", _training_section),
    ("results", "Main results", _results_section),
    ("modality", "Modality", _modality_section),
    ("icd10", "ICD-10-CM codes", _icd10_section),
    ("regimen", "Treatment regimens", _regimen_section),
    ("examples", "Examples", _examples_section),
    ("review", "Clinical review", _review_section),
    ("manifest", "Run manifest", _manifest_section),
)


# Files a run folder holds once its stages have run; a folder with none of them is no run.
RUN_ARTEFACTS: tuple[str, ...] = (
    "manifest.json", "curate/funnel.json", "split/split.json", "train/manifest.json",
    "evaluate/metrics.json", "review/review_metrics.json",
)  # fmt: skip


def read_run_metrics(run_dir: str | Path) -> dict | None:
    """The run's evaluate/metrics.json (None before the evaluation has run)."""
    return RunArtefacts(Path(run_dir)).metrics


def build_report(run_dir: str | Path, *, patient_text: bool | None = None) -> Report:
    """Read a run directory and build every section (nothing is written). `patient_text`:
    whether examples quote notes and case ids (None: only for a synthetic cohort)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise RadoncInputError("is a file; give a run folder, e.g. runs/demo", file=run_dir)
    if not run_dir.is_dir():
        raise RadoncInputError("run directory not found", file=run_dir)
    art = RunArtefacts(run_dir, patient_text=patient_text)
    rb = ReportBuilder()
    sections = [
        guarded_section(key, title, lambda build=build: build(art, rb), rb)
        for key, title, build in SECTIONS
    ]
    manifest = _safe(lambda: art.json("manifest.json")) or {}
    model = _first(manifest, ("model", "base_model", "config.model", "config.model.name"))
    commit = _first(manifest, ("git_commit", "commit", "git.commit"))
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    bits = [f"Run {run_dir.name}"]
    if model:
        bits.append(f"model {model}")
    if commit:
        bits.append(f"commit {str(commit)[:12]}")
    bits.append(f"generated {generated}")
    return Report(
        title="Fine-tuning a language model on radiation oncology records: results",
        run_name=run_dir.name,
        subtitle=" · ".join(bits),
        sections=sections,
    )


def guarded_section(
    key: str, title: str, build: Callable[[], Section], rb: ReportBuilder
) -> Section:
    """Build one section; an artefact that cannot be read, or has an unexpected shape, costs
    that section (which says why), never the report."""
    tables, figures_before = rb.n_tables, rb.n_figures
    try:
        return build()
    except RadoncInputError as exc:
        rb.n_tables, rb.n_figures = tables, figures_before
        section = Section(key, title)
        section.missing(f"Could not read this section's input: {exc.message}")
        return section
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        rb.n_tables, rb.n_figures = tables, figures_before
        warnings.warn(f"report section '{key}' failed: {exc!r}", stacklevel=3)
        section = Section(key, title)
        section.missing(
            f"This section could not be built from the run's files ({type(exc).__name__}: {exc})."
        )
        return section


def _safe(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except RadoncInputError:
        return None


def _first(obj: Mapping, dotted_keys: Sequence[str]) -> str | None:
    for dotted in dotted_keys:
        value: Any = obj
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    return None


def write_report(
    run_dir: str | Path, out_dir: str | Path | None = None, *, patient_text: bool | None = None
) -> tuple[Path, Path]:
    """Write report.html (self-contained) and report.md with its figures; returns both paths.

    `out_dir` defaults to `<run_dir>/report`. The run directory is read as laid out by
    `radonc-llm run`: curate/{funnel.json}, split/{split.json,test.jsonl},
    train/{manifest.json,metrics.jsonl}, predict/<system>.jsonl, evaluate/metrics.json (and
    per-case scores), review/review_metrics.json, manifest.json.
    """
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    return write_report_files(build_report(run_dir, patient_text=patient_text), out)
