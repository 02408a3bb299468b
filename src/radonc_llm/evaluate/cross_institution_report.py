"""The cross-institution report: `runs/<name>/report/report.html` and `report.md` of a
`kind: cross_institution` run, built from the same blocks and style as the study report.

Read top to bottom: summary, cohorts and their roles, each institution's fractionation
schemes, fine-tuning, one results table per test cohort (metrics with 95% CIs and paired
one-sided tests against the original model), each system at the other institutions against the
training institution's held-out patients (unpaired tests), whose habit each model proposes on
each cohort, every paired test, and the run manifest. A section whose artefact is absent says so in one
line, as in the study report.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.table import Table as RichTable

from radonc_llm.errors import RadoncInputError
from radonc_llm.evaluate import figures
from radonc_llm.evaluate.cross_institution import ALL_METRICS, TRANSFER_METRICS
from radonc_llm.evaluate.report import (
    SYSTEM_LABELS,
    RunArtefacts,
    _manifest_section,
    _training_section,
    guarded_section,
)
from radonc_llm.evaluate.report_document import (
    DASH,
    Cell,
    Report,
    ReportBuilder,
    Section,
    as_number,
    ci_of,
    fmt_count,
    fmt_p,
    fmt_score,
    fmt_share,
    sentence_case,
    write_report_files,
)

COHORT_NAMES = {"radcure": "RADCURE", "hnscc-mdacc": "HNSCC (MD Anderson)", "hn1": "HN1 (MAASTRO)"}
REFERENCE_SYSTEM = "base"
PRESCRIBED = "prescribed"
METRIC_TESTS = {
    "mcnemar_exact": "McNemar (exact)",
    "wilcoxon": "Wilcoxon",
    "fisher_exact": "Fisher's exact",
    "mann_whitney_u": "Mann-Whitney U",
}


def cohort_label(cohort: str) -> str:
    return COHORT_NAMES.get(cohort, cohort)


def system_label(system: str) -> str:
    if system == REFERENCE_SYSTEM:
        return "Original model"
    if system == "tuned-synthetic":
        return "Tuned on the synthetic cohort"
    if system.startswith("tuned-"):
        return f"Tuned on {cohort_label(system.removeprefix('tuned-'))}"
    if system == PRESCRIBED:
        return "Prescribed (reference)"
    if system == "majority":
        return "Majority answer"
    return SYSTEM_LABELS.get(system, system)


def short_system_label(system: str) -> str:
    """A figure legend's label: "RADCURE-tuned", "Original", "Prescribed"."""
    if system.startswith("tuned-"):
        name = system.removeprefix("tuned-")
        return f"{'Synthetic' if name == 'synthetic' else COHORT_NAMES.get(name, name).split()[0]}-tuned"
    short = {REFERENCE_SYSTEM: "Original", PRESCRIBED: "Prescribed", "majority": "Majority"}
    return short.get(system, system_label(system))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


class CrossRun:
    """The files of a cross-institution run, read through the study report's reader."""

    def __init__(self, run_dir: Path) -> None:
        self.art = RunArtefacts(run_dir)

    @property
    def split(self) -> dict | None:
        return self.art.json("split/split.json")

    @property
    def schemes(self) -> dict | None:
        return self.art.json("schemes/schemes.json")

    def cohorts(self) -> list[str]:
        """Test cohorts in split order (internal first), else those with an evaluation."""
        split = self.split
        if split and isinstance(split.get("tests"), Mapping):
            return list(split["tests"])
        folder = self.art.path("evaluate")
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def imported(self, cohort: str) -> dict | None:
        return self.art.json(f"cohorts/{cohort}.import.json")

    def transfer(self, cohort: str) -> dict | None:
        return self.art.json(f"evaluate/{cohort}/transfer.json")

    @property
    def institutions(self) -> dict | None:
        return self.art.json("institutions/institutions.json")

    @property
    def train_cohort(self) -> str | None:
        return (self.split or {}).get("train_cohort")


def _systems(transfer: Mapping) -> list[str]:
    return list(transfer.get("systems") or {})


def _comparison(transfer: Mapping, system: str, metric: str) -> dict | None:
    return next(
        (
            c
            for c in transfer.get("comparisons") or []
            if c.get("system") == system and c.get("metric") == metric
        ),
        None,
    )


def _metric_cell(transfer: Mapping, system: str, metric) -> Cell:
    block = ((transfer.get("systems") or {}).get(system) or {}).get(metric.key)
    if not block:
        return Cell(DASH)
    ci = ci_of(block.get("ci95"))
    if metric.kind == "share":
        text = fmt_share(block.get("value"), ci)
    elif metric.kind == "error":
        text = fmt_score(block.get("value"), ci, digits=2)
    else:
        text = fmt_score(block.get("value"), ci)
    if system == REFERENCE_SYSTEM:
        return Cell(text, "reference")
    comparison = _comparison(transfer, system, metric.key)
    if not comparison or comparison.get("p_value") is None:
        return Cell(text, f"n {fmt_count(block.get('n'))}")
    return Cell(text, f"p {fmt_p(comparison['p_value'])} · Holm {fmt_p(comparison.get('p_holm'))}")


# --- sections ------------------------------------------------------------------------------


def _share_phrase(block: Mapping | None) -> str:
    if not block:
        return DASH
    ci = ci_of(block.get("ci95"))
    text = fmt_share(block.get("value"))
    return f"{text} (95% CI {fmt_share(ci[0])}–{fmt_share(ci[1])})" if ci else text


def _summary_section(run: CrossRun, rb: ReportBuilder) -> Section:
    section = Section("summary", "Summary")
    train = run.train_cohort
    split = run.split
    if not split or not train:
        section.missing("Nothing to summarise yet: the run has no split (split/split.json).")
        return section
    tuned = f"tuned-{train}"
    section.text(
        f"A model was tuned on {fmt_count(split['train']['cases'])} {cohort_label(train)} "
        f"training patients ({fmt_count(split['val']['cases'])} more for validation) and tested "
        "on held-out patients of the same institution and on patients of other institutions, "
        "next to the original model, a model tuned on synthetic notes only and simple baselines "
        "fitted on the same training patients." + _synthetic_source(run)
    )
    for cohort in run.cohorts():
        transfer = run.transfer(cohort)
        if not transfer:
            section.text(
                f"{cohort_label(cohort)}: not evaluated "
                f"({run.art.rel(f'evaluate/{cohort}/transfer.json')} is absent); no result for "
                "this cohort below."
            )
            continue
        systems = transfer.get("systems") or {}
        dose = {s: (block or {}).get("dose_agreement") for s, block in systems.items()}
        comparison = _comparison(transfer, tuned, "dose_agreement") or {}
        where = "held-out" if transfer.get("role") == "internal" else "external"
        head = f"{cohort_label(cohort)} ({where}, {fmt_count(transfer.get('n_cases'))} patients): "
        absent = [system_label(s) for s in (tuned, REFERENCE_SYSTEM) if not (systems.get(s) or {})]
        if absent:
            section.text(
                f"{head}no predictions of {' or '.join(map(_lower_first, absent))} were "
                "evaluated; no comparison."
            )
            continue
        sentences = [
            f"{head}the {cohort_label(train)}-tuned model gave the prescribed total dose for "
            f"{_share_phrase(dose.get(tuned))} of patients, the original model for "
            f"{_share_phrase(dose.get(REFERENCE_SYSTEM))} (one-sided exact McNemar test, paired "
            f"on the same patients, p {fmt_p(comparison.get('p_value'))})."
        ]
        gap = _gap(run, tuned, cohort, "dose_agreement")
        if gap and gap.get("p_value") is not None:
            sentences.append(
                f"Against the same model on {cohort_label(train)}'s held-out patients, the "
                f"difference is {_signed_share(gap.get('difference'))} (95% CI "
                f"{_ci_text(gap.get('difference_ci95'))}; two-sided Fisher's exact test, "
                f"unpaired, p {fmt_p(gap['p_value'])})."
            )
        habits = transfer.get("habits") or {}
        entry = (habits.get("systems") or {}).get(tuned) or {}
        local = entry.get("local_habit_patients")
        if not habits.get("same_habit") and local:
            sentences.append(
                f"Of the {fmt_count(local['n'])} patients prescribed the local habit "
                f"{habits['local_habit']}, it proposed {cohort_label(train)}'s habit "
                f"{habits['training_habit']} to {_share_phrase(local['training_habit'])} and the "
                f"local one to {_share_phrase(local['local_habit'])}."
            )
        section.text(" ".join(sentences))
    section.text(
        "Reference labels: the regimen is the course each table records; the ICD-10-CM code is "
        "derived from site and subsite (not a coded label); modality is photon for every patient "
        "of these cohorts and is not evaluated unless the recipe asks for it."
    )
    return section


def _gap(run: CrossRun, system: str, cohort: str, metric: str) -> dict | None:
    return next(
        (
            row
            for row in (run.institutions or {}).get("comparisons") or []
            if (row.get("system"), row.get("cohort"), row.get("metric")) == (system, cohort, metric)
        ),
        None,
    )


def _signed_share(value: Any) -> str:
    number = as_number(value)
    return DASH if number is None else f"{100 * number:+.1f} points"


def _ci_text(ci: Any) -> str:
    bounds = ci_of(ci)
    if not bounds:
        return DASH
    return f"{100 * bounds[0]:+.1f} to {100 * bounds[1]:+.1f}"


def _synthetic_source(run: CrossRun) -> str:
    """Which training run served as the model tuned on synthetic notes."""
    for cohort in run.cohorts():
        model = ((run.transfer(cohort) or {}).get("models") or {}).get("tuned-synthetic")
        if model:
            return f" The model tuned on synthetic notes is the training run {model}."
    return ""


def _cohorts_section(run: CrossRun, rb: ReportBuilder) -> Section:
    section = Section("cohorts", "Cohorts and their roles")
    split = run.split
    if not split:
        section.missing(f"No split yet ({run.art.rel('split/split.json')} is absent).")
        return section
    rows = []
    for cohort in run.cohorts():
        imported = run.imported(cohort) or {}
        test = split["tests"][cohort]
        reasons = imported.get("reasons") or {}
        top = ", ".join(f"{sentence_case(r)} {n}" for r, n in list(reasons.items())[:3])
        rows.append(
            [
                Cell(cohort_label(cohort), imported.get("institution")),
                fmt_count(sum((imported.get("input_rows") or {}).values()) or None),
                fmt_count(imported.get("kept")),
                Cell(fmt_count(imported.get("excluded")), top or None),
                "internal test" if test["role"] == "internal" else "external test",
                fmt_count(test.get("cases")),
                fmt_count(test.get("evaluated")),
            ]
        )
    train = split["train_cohort"]
    section.text(
        f"{cohort_label(train)} patients in its source's training split were tuned on, less a "
        f"seeded {split['validation_share']:.0%} patient-level validation share "
        f"({fmt_count(split['train']['cases'])} training, {fmt_count(split['val']['cases'])} "
        f"validation cases); its held-out test patients are the internal test. "
        f"{fmt_count(split['unused']['cases'])} {cohort_label(train)} patients "
        f"{split['unused']['why']} were not used. Every kept patient of the other cohorts is an "
        "external test; a seeded sample of each test cohort was evaluated."
    )
    section.blocks.append(
        rb.table(
            "cohorts",
            "Cohorts: rows imported, kept and excluded (top reasons), role, test patients "
            "available and evaluated.",
            ["Cohort", "Rows", "Kept", "Excluded", "Role", "Test patients", "Evaluated"],
            rows,
            note="Every row of every table is kept or in the cohort's exclusion ledger "
            "(cohorts/<cohort>.excluded.jsonl) with its reason.",
        )
    )
    return section


def _schemes_section(run: CrossRun, rb: ReportBuilder) -> Section:
    section = Section("schemes", "Institutional fractionation schemes")
    schemes = run.schemes
    if not schemes:
        section.missing(f"No scheme summary yet ({run.art.rel('schemes/schemes.json')}).")
        return section
    tested = [c for c in run.cohorts() if c in schemes]
    cohorts = tested + [c for c in schemes if c not in tested]
    by_scheme: dict[str, dict] = {}
    for cohort in cohorts:
        for entry in schemes[cohort]["schemes"]:
            by_scheme.setdefault(entry["scheme"], {"entry": entry, "counts": {}})
            by_scheme[entry["scheme"]]["counts"][cohort] = entry
    order = sorted(
        by_scheme, key=lambda s: -max(e["share"] or 0 for e in by_scheme[s]["counts"].values())
    )
    rows = []
    for scheme in order:
        entry = by_scheme[scheme]["entry"]
        cells = []
        for cohort in cohorts:
            hit = by_scheme[scheme]["counts"].get(cohort)
            habit = schemes[cohort].get("habit") == scheme
            cells.append(
                Cell(
                    f"{fmt_count(hit['count'])} ({fmt_share(hit['share'])})" if hit else DASH,
                    "habit" if habit else None,
                )
            )
        rows.append([scheme, f"{entry['dose_per_fraction']:.2f}", f"{entry['eqd2']:.1f}", *cells])
    habits = [
        f"{cohort_label(c)} {schemes[c]['habit']}" for c in cohorts if schemes[c].get("habit")
    ]
    section.text(
        "Each institution has a habit, its most frequent dose/fraction scheme in the data: "
        + "; ".join(habits)
        + ". The same total dose can be given in different fraction numbers (different dose per "
        "fraction and EQD2), so a model that copies one institution's habit gives another "
        "institution's patients a scheme their clinic does not use."
    )
    section.blocks.append(
        rb.table(
            "schemes",
            "The most frequent schemes of each institution (top five each), n (% of the "
            "institution's kept patients).",
            ["Scheme", "Gy per fraction", "EQD2 (Gy, α/β 10)", *map(cohort_label, cohorts)],
            rows,
            note="A dash: not among that institution's five most frequent schemes. "
            "Boost and concomitant-boost details are not part of a scheme.",
        )
    )
    return section


def _results_section(run: CrossRun, rb: ReportBuilder, cohort: str) -> Section:
    section = Section(f"results-{cohort}", f"Results: {cohort_label(cohort)}")
    transfer = run.transfer(cohort)
    if not transfer:
        section.missing(f"No evaluation yet ({run.art.rel(f'evaluate/{cohort}/transfer.json')}).")
        return section
    role = "held-out patients of the training institution" if transfer.get("role") == "internal" else (
        "patients of another institution"
    )  # fmt: skip
    section.text(
        f"{fmt_count(transfer.get('n_cases'))} {role}. Agreement with the prescribed course and "
        "the derived ICD-10-CM category, with 95% CIs (Wilson score intervals for agreements, "
        "percentile bootstrap for ROUGE-1 and the errors); below each value, the one-sided "
        "paired test against the original model on the same patients and its Holm-adjusted p."
    )
    answered = {key for block in (transfer.get("systems") or {}).values() for key in block or {}}
    metrics = [m for m in ALL_METRICS if m in TRANSFER_METRICS or m.key in answered]
    rows = []
    for system in _systems(transfer):
        block = (transfer["systems"].get(system) or {}).get("readable_regimen") or {}
        rows.append(
            [
                system_label(system),
                *(_metric_cell(transfer, system, m) for m in metrics),
                fmt_share(block.get("value")),
            ]
        )
    section.blocks.append(
        rb.table(
            f"results-{cohort}",
            f"{cohort_label(cohort)}: regimen and code agreement per system.",
            ["System", *(m.label for m in metrics), "Readable regimen"],
            rows,
            css="headline",
            note="Total dose, fractions: exact agreement (dose within 0.01 Gy); concurrent "
            "therapy: given or not, as prescribed; an answer without a readable dose scores 0 on "
            "these. Dose/fraction and EQD2 errors: mean absolute error over the answers that "
            "state dose and fractions (tested on the cases where both systems do). ICD-10 "
            "category: first three characters of the derived code. Tests, paired on the same "
            "patients: McNemar (exact) for agreements, Wilcoxon signed-rank for ROUGE-1 (system "
            "higher) and errors (system lower); Holm across the metrics tested for each system "
            "(a metric it does not answer, or with no pair to test, leaves the family).",
        )
    )
    return section


def _habits_section(run: CrossRun, rb: ReportBuilder) -> Section:
    section = Section("habits", "Whose habit does each model propose?")
    train = run.train_cohort
    cohorts = [c for c in run.cohorts() if run.transfer(c)]
    if not cohorts or not train:
        section.missing("No evaluation yet: no habit analysis.")
        return section
    section.text(
        "For each test cohort, the share of patients for whom each system proposed the training "
        f"institution's habit ({cohort_label(train)}), the local institution's habit, another "
        "scheme, or no readable scheme; how often the proposal was the patient's own prescribed "
        "scheme; and, among the patients who were prescribed the local habit, how often the "
        "system proposed the training institution's habit instead."
    )
    figure_rows: dict[str, tuple[list, list]] = {}
    for cohort in cohorts:
        habits = run.transfer(cohort)["habits"]
        same = habits.get("same_habit")
        rows = []
        for source, entry in habits["systems"].items():
            local = entry.get("local_habit_patients") or {}
            rows.append(
                [
                    system_label(source),
                    _share_cell(entry.get("training_habit")),
                    DASH if same else _share_cell(entry.get("local_habit")),
                    fmt_share((entry.get("other") or {}).get("value")),
                    fmt_share((entry.get("unreadable") or {}).get("value")),
                    _share_cell(entry.get("prescribed_scheme"))
                    if source != PRESCRIBED
                    else "100.0%",
                    _share_cell(local.get("training_habit")) if local else DASH,
                    "; ".join(
                        f"{s} ({fmt_share(n / habits['n'])})"
                        for s, n in entry.get("top_schemes") or []
                    )
                    or DASH,
                ]
            )
            values, cis = figure_rows.setdefault(
                source, ([None] * len(cohorts), [None] * len(cohorts))
            )
            block = entry.get("training_habit") or {}
            values[cohorts.index(cohort)] = as_number(block.get("value"))
            cis[cohorts.index(cohort)] = ci_of(block.get("ci95"))
        local_text = (
            f"local habit {habits['local_habit']}" if not same else "the same habit as training"
        )
        section.blocks.append(
            rb.table(
                f"habits-{cohort}",
                f"{cohort_label(cohort)} ({fmt_count(habits['n'])} patients): training habit "
                f"{habits['training_habit']}, {local_text}.",
                [
                    "System",
                    f"Training habit {habits['training_habit']}",
                    f"Local habit {habits['local_habit']}" if not same else "Local habit",
                    "Other scheme",
                    "Unreadable",
                    "Patient's own scheme",
                    "Local-habit patients given the training habit",
                    "Most frequent proposals",
                ],
                rows,
                note="Shares of the cohort's evaluated patients (95% bootstrap CI). The first row "
                "is what was prescribed.",
            )
        )
    order = list(figure_rows)
    section.blocks.append(
        rb.figure(
            "training-habit",
            f"Share of each cohort's patients for whom a system proposed {cohort_label(train)}'s "
            "habit, with 95% CIs; 'Prescribed' is how often that scheme was actually given there.",
            figures.level_bars_png(
                [(s, short_system_label(s), v, c) for s, (v, c) in figure_rows.items()],
                [cohort_label(c) for c in cohorts],
                order=order,
                ylabel=f"Proposes {run.transfer(cohorts[0])['habits']['training_habit']}",
            ),
        )
    )
    return section


def _share_cell(block: Mapping | None) -> Cell | str:
    if not block:
        return DASH
    ci = ci_of(block.get("ci95"))
    return Cell(
        fmt_share(block.get("value")),
        f"{fmt_share(ci[0])}–{fmt_share(ci[1])}" if ci else None,
    )


def _institutions_section(run: CrossRun, rb: ReportBuilder) -> Section:
    section = Section("institutions", "Each system at the other institutions (unpaired tests)")
    result = run.institutions
    if not result:
        section.missing(
            f"No comparison across institutions yet "
            f"({run.art.rel('institutions/institutions.json')} is absent)."
        )
        return section
    internal = result.get("internal_cohort")
    rows_in = result.get("comparisons") or []
    if not rows_in:
        section.missing("No external cohort to compare with the internal test cohort.")
        return section
    metrics = {m.key: m for m in ALL_METRICS}
    rows, groups = [], {}
    for cohort in result.get("external_cohorts") or []:
        groups[len(rows)] = f"{cohort_label(cohort)} vs {cohort_label(internal)} (held-out)"
        for c in (r for r in rows_in if r.get("cohort") == cohort):
            metric = metrics.get(c.get("metric"))
            share = metric is not None and metric.kind == "share"
            shown = fmt_share if share else functools.partial(fmt_score, digits=2)
            difference = as_number(c.get("difference"))
            if difference is None:
                gap = DASH
            elif share:
                ci = _ci_text(c.get("difference_ci95"))
                gap = Cell(_signed_share(difference), f"95% CI {ci}" if ci != DASH else None)
            else:
                gap = f"{difference:+.2f}"
            rows.append(
                [
                    system_label(c["system"]),
                    metric.label if metric else str(c.get("metric")),
                    Cell(shown(c.get("internal")), f"n {fmt_count(c.get('n_internal'))}"),
                    Cell(shown(c.get("external")), f"n {fmt_count(c.get('n_external'))}"),
                    gap,
                    METRIC_TESTS.get(c.get("test"), c.get("note") or DASH),
                    fmt_p(c.get("p_value")),
                    fmt_p(c.get("p_holm")),
                ]
            )
    section.text(
        f"The same system on another institution's patients and on {cohort_label(internal)}'s "
        "held-out patients. The two cohorts hold different patients, so the tests are unpaired "
        "and two-sided: Fisher's exact test for agreements (difference with Newcombe's hybrid "
        "score 95% CI), the Mann-Whitney U test for ROUGE-1 and the errors (difference of "
        "means); Holm across the metrics of each system and cohort. The cohorts differ in more "
        "than their institution (case mix, period, how each table records a course): a "
        "difference is not the effect of the institution alone."
    )
    section.blocks.append(
        rb.table(
            "institutions",
            "Each system on each external cohort against itself on the internal test cohort.",
            [
                "System",
                "Metric",
                "Internal",
                "External",
                "Difference (ext. − int.)",
                "Test",
                "p",
                "p (Holm)",
            ],  # fmt: skip
            rows,
            groups=groups,
            note="Difference: external minus internal (percentage points for agreements); "
            "for errors, a positive difference is a larger error elsewhere.",
        )
    )
    return section


def _comparisons_section(run: CrossRun, rb: ReportBuilder) -> Section:
    section = Section("comparisons", "Paired tests against the original model")
    labels = {m.key: m.label for m in ALL_METRICS}
    rows, groups = [], {}
    for cohort in run.cohorts():
        transfer = run.transfer(cohort)
        if not transfer:
            continue
        groups[len(rows)] = cohort_label(cohort)
        for c in transfer.get("comparisons") or []:
            effect = as_number(c.get("effect_size"))
            rows.append(
                [
                    f"{system_label(c['system'])} vs {_lower_first(system_label(c['baseline']))}",
                    labels.get(c["metric"], c["metric"]),
                    METRIC_TESTS.get(c.get("test"), DASH),
                    str(c.get("alternative") or DASH),
                    fmt_count(c.get("n")),
                    fmt_count(c.get("n_nonzero")),
                    fmt_p(c.get("p_value")),
                    fmt_p(c.get("p_holm")),
                    f"{effect:+.2f}" if effect is not None else DASH,
                ]
            )
    if not rows:
        section.missing("No evaluation yet: no paired tests.")
        return section
    section.blocks.append(
        rb.table(
            "comparisons",
            "Every paired one-sided test (same patients, two systems), per test cohort.",
            [
                "Comparison",
                "Metric",
                "Test",
                "Alternative",
                "n",
                "Discordant / non-zero",
                "p",
                "p (Holm)",
                "Effect r",
            ],  # fmt: skip
            rows,
            groups=groups,
            note="greater: the system agrees more (or scores higher) than the original model; "
            "less: its error is smaller. Effect r: matched-pairs rank-biserial correlation "
            "(for errors, negative favours the system).",
        )
    )
    return section


def build_cross_institution_report(run_dir: str | Path) -> Report:
    """Read a cross-institution run folder and build every section (nothing is written)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise RadoncInputError("is a file; give a run folder, e.g. runs/demo", file=run_dir)
    if not run_dir.is_dir():
        raise RadoncInputError("run directory not found", file=run_dir)
    run = CrossRun(run_dir)
    rb = ReportBuilder()
    plan: list[tuple[str, str, Callable[[], Section]]] = [
        ("summary", "Summary", lambda: _summary_section(run, rb)),
        ("cohorts", "Cohorts and their roles", lambda: _cohorts_section(run, rb)),
        ("schemes", "Institutional fractionation schemes", lambda: _schemes_section(run, rb)),
        ("training", "Fine-tuning", lambda: _training_section(run.art, rb)),
    ]
    for cohort in _guarded_value(run.cohorts) or []:
        plan.append(
            (
                f"results-{cohort}",
                f"Results: {cohort_label(cohort)}",
                functools.partial(_results_section, run, rb, cohort),
            )
        )
    plan += [
        ("institutions", "Each system at the other institutions (unpaired tests)",
         lambda: _institutions_section(run, rb)),
        ("habits", "Whose habit does each model propose?", lambda: _habits_section(run, rb)),
        ("comparisons", "Paired tests against the original model",
         lambda: _comparisons_section(run, rb)),
        ("manifest", "Run manifest", lambda: _manifest_section(run.art, rb)),
    ]  # fmt: skip
    # Sections are built in document order: tables and figures are numbered as they are made.
    sections = [guarded_section(key, title, build, rb) for key, title, build in plan]
    train = _guarded_value(lambda: run.train_cohort)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Report(
        title="A model tuned at one institution, tested at others"
        + (f": {cohort_label(train)} and beyond" if train else ""),
        run_name=run_dir.name,
        subtitle=f"Run {run_dir.name} · generated {generated}",
        sections=sections,
    )


def _guarded_value(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except RadoncInputError:
        return None


def write_cross_institution_report(
    run_dir: str | Path, out_dir: str | Path | None = None
) -> tuple[Path, Path]:
    """Write report.html (self-contained) and report.md with its figures; returns both paths."""
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    return write_report_files(build_cross_institution_report(run_dir), out)


def console_tables(run_dir: str | Path) -> list[RichTable]:
    """Per test cohort: each system's agreement and errors, and how often it proposes (→) the
    training institution's habit (values only; the report has the CIs and tests)."""
    run = CrossRun(Path(run_dir))
    tables = []
    for cohort in run.cohorts():
        transfer = run.transfer(cohort)
        if not transfer:
            continue
        habits = transfer["habits"]
        table = RichTable(
            title=f"{cohort_label(cohort)} ({transfer['role']} test, n = {transfer['n_cases']})"
        )
        table.add_column("System", no_wrap=True)
        for metric in TRANSFER_METRICS:
            table.add_column(metric.short, justify="right")
        table.add_column(f"→ {habits['training_habit']}", justify="right")
        for system in _systems(transfer):
            cells = []
            for metric in TRANSFER_METRICS:
                value = ((transfer["systems"][system] or {}).get(metric.key) or {}).get("value")
                share = metric.kind == "share"
                cells.append(fmt_share(value) if share else fmt_score(value, digits=2))
            habit = (habits["systems"].get(system) or {}).get("training_habit") or {}
            table.add_row(system_label(system), *cells, fmt_share(habit.get("value")))
        tables.append(table)
    return tables
