"""The cross-institution report on a run folder written by hand: one cohort evaluated, one
without its evaluation, and the unpaired comparison between institutions."""

from __future__ import annotations

import json
from pathlib import Path

from radonc_llm.data.cases import Case
from radonc_llm.evaluate.cross_institution import (
    habit_shares,
    institution_gaps,
    transfer_metrics,
)
from radonc_llm.evaluate.cross_institution_report import write_cross_institution_report
from radonc_llm.evaluate.metrics import regimen_case_scores
from tests.evaluate.test_cross_institution import oropharynx_case


def _rows(system: str, cases: list[Case], answers: list[str]) -> list[dict]:
    return [
        {"system": system, "case_id": case.case_id, "task": "regimen", "prediction": answer,
         "rouge1_f": 0.5, **regimen_case_scores(case.regimen, answer)}
        for case, answer in zip(cases, answers, strict=True)
    ]  # fmt: skip


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_a_cohort_without_its_evaluation_is_named_and_institutions_are_compared_unpaired(
    tmp_path,
):
    run = tmp_path / "runs" / "x"
    internal = [oropharynx_case(f"i{i}", "70 Gy in 35 fractions") for i in range(6)]
    external = [oropharynx_case(f"e{i}", "68 Gy in 34 fractions") for i in range(4)]
    per_case = {
        "radcure": _rows("tuned-radcure", internal, ["70 Gy/35"] * 6)
        + _rows("base", internal, ["unclear"] * 6),
        "hnscc-mdacc": _rows("tuned-radcure", external, ["70 Gy/35"] * 3 + ["68 Gy/34"])
        + _rows("base", external, ["unclear"] * 4),
    }
    tests = {"radcure": "internal", "hnscc-mdacc": "external", "hn1": "external"}
    _write(run / "split" / "split.json", {
        "train_cohort": "radcure", "validation_share": 0.1,
        "train": {"cases": 20}, "val": {"cases": 2}, "unused": {"cases": 0, "why": "-"},
        "tests": {c: {"role": role, "cases": 6, "evaluated": 6} for c, role in tests.items()},
    })  # fmt: skip
    for cohort, cases in (("radcure", internal), ("hnscc-mdacc", external)):
        _write(run / "evaluate" / cohort / "transfer.json", {
            "cohort": cohort, "role": tests[cohort], "n_cases": len(cases),
            **transfer_metrics(cases, per_case[cohort], systems=["base", "tuned-radcure"],
                               n_resamples=50),
            "habits": habit_shares(cases, {}, training_habit="70 Gy/35",
                                   local_habit="70 Gy/35" if cohort == "radcure" else "68 Gy/34"),
        })  # fmt: skip
    _write(run / "institutions" / "institutions.json", {
        "internal_cohort": "radcure", "external_cohorts": ["hnscc-mdacc"],
        "comparisons": institution_gaps(
            (internal, per_case["radcure"]), {"hnscc-mdacc": (external, per_case["hnscc-mdacc"])},
            systems=["base", "tuned-radcure"]),
    })  # fmt: skip

    _, markdown_path = write_cross_institution_report(run)
    markdown = markdown_path.read_text()
    summary = markdown.split("## 2.")[0]
    # The cohort with no evaluation is named in the summary, not left out in silence.
    assert "HN1 (MAASTRO): not evaluated (x/evaluate/hn1/transfer.json is absent)" in summary
    # The within-cohort test says it is paired; the across-institution one that it is not.
    assert "one-sided exact McNemar test, paired on the same patients" in summary
    assert "two-sided Fisher's exact test, unpaired" in summary
    # 6/6 at home, 1/4 elsewhere: -75.0 points.
    assert "the difference is -75.0 points" in summary
    section = markdown.split("Each system at the other institutions (unpaired tests)")[1]
    assert "Fisher's exact" in section and "Mann-Whitney U" in section
    assert "McNemar" not in section.split("## ")[0]
    # Shares carry Wilson intervals, stated as such: 6 of 6 is not [100%, 100%].
    assert "Wilson score intervals for agreements" in markdown
    assert "100.0% (100.0–100.0)" not in markdown
