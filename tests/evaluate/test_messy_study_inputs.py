"""`evaluate`, `report` and the figures on what a real study hands them: gzip'd prediction
files, duplicated case ids built in code, system names that look like markup, a task no case
can be scored on, ten systems in one figure, figures of nothing; and every reported test
statistic recomputed independently (SciPy directly, or by hand).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from scipy import stats

from radonc_llm.data.cases import TASKS
from radonc_llm.errors import RadoncInputError
from radonc_llm.evaluate import figures
from radonc_llm.evaluate.report import build_report, headline_table
from radonc_llm.evaluate.report_document import render_html
from radonc_llm.evaluate.run import evaluate_predictions, read_prediction_file, summary_tables
from radonc_llm.tasks.build import task_answer
from tests.infer.sample_cases import sample_cases

CASES = sample_cases()
CASE_IDS = {case.case_id for case in CASES}
N = len(CASES)
PNG = b"\x89PNG\r\n\x1a\n"


def _rows(answer) -> list[dict]:
    """One row per case and task; `answer(case, task)` gives the prediction (None: malformed)."""
    return [
        {"case_id": c.case_id, "task": t, "prediction": answer(c, t), "raw": answer(c, t) or ""}
        for c in CASES
        for t in TASKS
    ]


def _perfect() -> list[dict]:
    return _rows(task_answer)


def _text(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def _evaluate(tmp_path: Path, systems: dict[str, list[dict]], cases=CASES, **kwargs):
    paths = {}
    for index, (name, rows) in enumerate(systems.items()):
        paths[name] = tmp_path / f"system{index}.jsonl"
        paths[name].write_text(_text(rows), encoding="utf-8")
    return evaluate_predictions(cases, paths, tmp_path / "eval", n_resamples=50, **kwargs)


def _rendered(renderable) -> str:
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


# --- prediction files --------------------------------------------------------------------


def test_a_gzipped_prediction_file_is_read_like_the_plain_one(tmp_path):
    plain = tmp_path / "ft.jsonl"
    plain.write_text(_text(_perfect()), encoding="utf-8")
    packed = tmp_path / "ft.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    read_plain = read_prediction_file("ft", plain, CASE_IDS)
    read_packed = read_prediction_file("ft", packed, CASE_IDS)
    assert read_packed.answers == read_plain.answers and len(read_packed.answers) == 3 * N
    assert read_packed.rows == 3 * N and not read_packed.unreadable
    # The manifest records the file as stored, as sha256sum gives it.
    assert read_packed.sha256 == hashlib.sha256(packed.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "damage", [lambda data: data[: len(data) // 2], lambda data: data[:10] + b"\x00" * 40]
)
def test_a_damaged_gzip_file_is_named_not_a_traceback(tmp_path, damage):
    packed = tmp_path / "ft.jsonl.gz"
    packed.write_bytes(damage(gzip.compress(_text(_perfect()).encode())))
    with pytest.raises(RadoncInputError) as caught:
        read_prediction_file("ft", packed, CASE_IDS)
    assert caught.value.file == str(packed) and caught.value.field == "ft"
    assert caught.value.reason.startswith("damaged gzip file (")


def test_cases_with_a_repeated_id_are_refused_not_scored_twice(tmp_path):
    doubled = [*CASES, CASES[0], CASES[2], CASES[2]]
    with pytest.raises(RadoncInputError) as caught:
        _evaluate(tmp_path, {"ft": _perfect()}, cases=doubled, cases_file=tmp_path / "c.jsonl")
    assert caught.value.field == "case_id"
    assert caught.value.reason.startswith("2 duplicate case_id(s) ('c01', 'c03')")
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_rows_for_unknown_cases_and_wrongly_typed_answers_are_counted(tmp_path):
    rows = _perfect()
    rows[0]["prediction"] = 70  # regimen as a number
    rows[1]["prediction"] = ["photon"]  # modality as a list
    rows.append({"case_id": "c99", "task": "modality", "prediction": "photon"})
    result = _evaluate(tmp_path, {"base": _rows(lambda c, t: None), "ft": rows})
    inputs = result.metrics["inputs"]["ft"]
    assert (inputs["rows"], inputs["scored"], inputs["unreadable"], inputs["unknown_case"]) == (
        3 * N + 1,
        3 * N - 2,
        2,
        1,
    )
    text = "\n".join(result.messages)
    assert "line 1: 'prediction' is int, expected text or null" in text
    assert "line 2: 'prediction' is list, expected text or null" in text
    assert "1 row(s) for cases not in the case file ignored: line 25: 'c99'" in text
    # The two unreadable answers are scored as malformed, not dropped from n.
    ft = result.metrics["systems"]["ft"]
    assert ft["modality"]["n"] == N and ft["modality"]["malformed_rate"] == pytest.approx(1 / N)


# --- names that look like markup ---------------------------------------------------------


@pytest.mark.parametrize("name", ["[/]", "[red]ft", '<b>&"', "my system"])
def test_console_tables_print_system_names_as_written(tmp_path, name):
    result = _evaluate(tmp_path, {"base": _rows(lambda c, t: None), name: _perfect()})
    text = "".join(_rendered(table) for table in summary_tables(result.metrics))
    assert text.count(name) == 3 + 5  # one row per task table, one per comparison
    result.metrics["systems"]["finetuned"] = result.metrics["systems"].pop(name)
    assert "Original model" in _rendered(headline_table(result.metrics))
    result.metrics["systems"][name] = result.metrics["systems"].pop("finetuned")
    assert _rendered(headline_table(result.metrics)).count(name) == 3


# --- statistics, recomputed independently ------------------------------------------------


def _scipy_exact_wilcoxon(x, y) -> float:
    """One-sided (greater) exact p over every sign flip of the non-zero differences."""
    d = np.asarray(x, float) - np.asarray(y, float)
    d = d[d != 0]
    if d.size == 1:
        return 0.5 if d[0] > 0 else 1.0
    method = stats.PermutationMethod(n_resamples=np.inf)
    return float(stats.wilcoxon(d, alternative="greater", method=method).pvalue)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_every_reported_statistic_matches_scipy_at_tiny_n(tmp_path, n):
    cases = CASES[:n]
    rng = np.random.default_rng(n)
    modalities = ("photon", "proton", "electron", "brachytherapy")

    def noisy(case, task):
        if rng.random() < 0.5:
            return task_answer(case, task)
        return {"modality": modalities[rng.integers(4)], "icd10": "C80.1"}.get(
            task, "30 Gy in 10 fractions"
        )

    systems = {"base": [r for r in _rows(noisy) if r["case_id"] in {c.case_id for c in cases}]}
    systems["ft"] = [r for r in _rows(noisy) if r["case_id"] in {c.case_id for c in cases}]
    result = _evaluate(tmp_path, systems, cases=cases)
    per_case = {
        (row["system"], row["task"], row["case_id"]): row
        for row in map(json.loads, (result.out / "per_case.jsonl").read_text().splitlines())
    }
    comparisons = result.metrics["comparisons"]
    assert {c["holm_family_size"] for c in comparisons if c["test"] == "wilcoxon"} == {3}
    for row in comparisons:
        field = "rouge1_f" if row["task"] == "regimen" else "correct"
        x = [per_case["ft", row["task"], c.case_id][field] for c in cases]
        y = [per_case["base", row["task"], c.case_id][field] for c in cases]
        d = np.round(np.subtract(x, y), 12)
        nonzero = d[d != 0]
        ranks = stats.rankdata(np.abs(nonzero))
        r_plus, r_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
        assert row["n"] == n and row["n_nonzero"] == nonzero.size
        effect = (r_plus - r_minus) / (r_plus + r_minus) if nonzero.size else 0.0
        assert row["effect_size"] == pytest.approx(effect)
        if row["test"] == "wilcoxon":
            expected = _scipy_exact_wilcoxon(x, y) if nonzero.size else 1.0
            assert row["statistic"] == pytest.approx(r_plus)
        else:
            b, c = int((nonzero > 0).sum()), int((nonzero < 0).sum())
            expected = stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue if b + c else 1
            assert row["statistic"] == b
        assert row["p_value"] == pytest.approx(expected, abs=1e-12), row
    # Holm by hand within each family: sorted p times (m - rank), running maximum, cap 1.
    for test in ("wilcoxon", "mcnemar_exact"):
        family = [c for c in comparisons if c["test"] == test]
        running, m = 0.0, len(family)
        for rank, c in enumerate(sorted(family, key=lambda c: c["p_value"])):
            running = max(running, min(1.0, (m - rank) * c["p_value"]))
            assert c["p_holm"] == pytest.approx(running)


def test_one_perfect_system_against_an_identical_copy_and_a_constant_one(tmp_path):
    result = _evaluate(
        tmp_path,
        {"base": _rows(lambda c, t: "photon" if t == "modality" else None), "ft": _perfect()},
    )
    ft, base = result.metrics["systems"]["ft"], result.metrics["systems"]["base"]
    # Every score equal: the bootstrap interval is the point itself, not an error or NaN.
    for block in (ft["modality"], ft["icd10"], base["icd10"]):
        assert block["ci95"]["accuracy" if "accuracy" in block["ci95"] else "exact_accuracy"] in (
            [1.0, 1.0],
            [0.0, 0.0],
        )
    modality = {c["test"]: c for c in result.metrics["comparisons"] if c["task"] == "modality"}
    photon_cases = sum(case.modality == "photon" for case in CASES)
    wins = N - photon_cases
    # base right on every photon case, ft right everywhere: d = 1 on the others, 0 on photon.
    assert modality["mcnemar_exact"]["statistic"] == wins
    assert modality["mcnemar_exact"]["p_value"] == pytest.approx(0.5**wins)
    assert modality["wilcoxon"]["statistic"] == wins * (wins + 1) / 2
    assert modality["wilcoxon"]["p_value"] == pytest.approx(0.5**wins)


def test_mcnemar_without_discordant_pairs_but_wilcoxon_ties_only(tmp_path):
    # Both wrong on every modality, differently: no discordant pair, every difference zero.
    result = _evaluate(
        tmp_path,
        {
            "base": _rows(lambda c, t: "proton" if t == "modality" else task_answer(c, t)),
            "ft": _rows(lambda c, t: "electron" if t == "modality" else task_answer(c, t)),
        },
        cases=[c for c in CASES if c.modality == "photon"],
    )
    for row in result.metrics["comparisons"]:
        assert (row["statistic"], row["p_value"], row["effect_size"]) == (0.0, 1.0, 0.0)
        assert row["n_nonzero"] == 0 and row["p_holm"] == 1.0
    (mcnemar,) = [
        c
        for c in result.metrics["comparisons"]
        if c["task"] == "modality" and c["test"] == "mcnemar_exact"
    ]
    assert mcnemar["method"] == "exact binomial on discordant pairs (b=0, c=0)"
    tests = result.metrics["settings"]["tests"]
    assert tests["wilcoxon_zero_method"] == "wilcox"
    assert "zero differences dropped" in tests["wilcoxon_zero_differences"]
    assert "p = 1 when every difference is zero" in tests["wilcoxon_zero_differences"]


def test_a_task_no_case_can_be_scored_on_leaves_holm_and_says_so(tmp_path):
    placeholders = [c.model_copy(update={"regimen": "None Gy in nan fractions"}) for c in CASES]
    result = _evaluate(
        tmp_path, {"base": _rows(lambda c, t: None), "ft": _perfect()}, cases=placeholders
    )
    assert "regimen" not in result.metrics["systems"]["ft"]
    comparisons = result.metrics["comparisons"]
    assert {c["task"] for c in comparisons} == {"modality", "icd10"}
    for row in comparisons:
        # Two tests per family, p = 2^-8 each: Holm multiplies the smallest by 2.
        assert row["holm_family_size"] == 2
        assert row["p_holm"] == pytest.approx(2 * 0.5**N)
    (said,) = [m for m in result.messages if "no usable regimen reference" in m]
    assert said.endswith(
        "regimen is not scored nor compared for any system, and leaves the Holm correction's "
        "families"
    )


# --- figures and the report --------------------------------------------------------------


@pytest.mark.parametrize(
    "draw",
    [
        lambda: figures.funnel_flow_png([], {}),
        lambda: figures.training_curves_png({}, xlabel="step"),
        lambda: figures.training_curves_png({"train": ([], [])}, xlabel="step"),
        lambda: figures.confusion_png([]),
        lambda: figures.confusion_png([("Fine-tuned", ["photon"], [])]),
        lambda: figures.level_bars_png([], ["Exact code"], order=[]),
        lambda: figures.rouge_distribution_png({}, order=[]),
        lambda: figures.rouge_distribution_png({"ft": ("Fine-tuned", [])}, order=["ft"]),
        lambda: figures.agreement_png([], order=[], n_cases=0, tolerance=0.01),
    ],
)
def test_a_figure_of_nothing_is_a_figure_that_says_so(draw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice", no empty-legend warning
        assert draw().startswith(PNG)


def test_ten_systems_get_ten_colours_and_a_legend_that_fits():
    order = ["base", "finetuned", *(f"system {i}" for i in range(9))]
    colours = [figures.system_colour(name, order) for name in order]
    assert len(set(colours)) == len(order)
    many = {name: (name, [0.1, 0.5]) for name in order}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "constrained_layout not applied": legend too wide
        assert figures.rouge_distribution_png(many, order=order).startswith(PNG)
    curves = {f"run {i}": ([1, 2, 3], [3.0, 2.0, 1.0]) for i in range(len(figures.OTHER_COLOURS))}
    assert figures.training_curves_png(curves, xlabel="step").startswith(PNG)


def test_report_of_ten_systems_with_markup_names_stays_escaped(tmp_path):
    names = ["base", "finetuned", '<b>&"', "</script><img src=x onerror=alert(1)>"]
    names += [f"sys{i}" for i in range(6)]
    rng = np.random.default_rng(0)
    systems = {
        name: _rows(lambda c, t: task_answer(c, t) if rng.random() < 0.6 else None)
        for name in names
    }
    result = _evaluate(tmp_path, systems)
    run = tmp_path / "run"
    (run / "evaluate").mkdir(parents=True)
    for name in ("metrics.json", "per_case.jsonl"):
        (run / "evaluate" / name).write_bytes((result.out / name).read_bytes())
    html = render_html(build_report(run))
    assert "<b>&" not in html and "<img src=x" not in html
    assert html.count('<td class="l">&lt;b&gt;&amp;&#34;</td>') >= 3  # a row per task table
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
