"""`radonc-llm evaluate`: exact keys, messy prediction files counted, paired comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.data.cases import TASKS
from radonc_llm.errors import RadoncInputError
from radonc_llm.evaluate.run import (
    evaluate_predictions,
    parse_compare_args,
    parse_prediction_args,
    read_prediction_file,
)
from radonc_llm.tasks.build import task_answer
from radonc_llm.tasks.prompts import PROMPT_VERSION
from tests.infer.sample_cases import SAMPLE_CASES, sample_cases

COMPARISON_KEYS = {
    "task",
    "metric",
    "system",
    "baseline",
    "test",
    "alternative",
    "statistic",
    "p_value",
    "p_holm",
    "effect_size",
    "n",
}
BLOCK_KEYS = {
    "modality": {
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "per_class",
        "confusion",
        "malformed_rate",
        "n",
        "rouge1_f",
    },
    "icd10": {
        "exact_accuracy",
        "category_accuracy",
        "chapter_accuracy",
        "macro_f1",
        "malformed_rate",
        "n",
        "accuracy",
        "rouge1_f",
    },
    "regimen": {
        "rouge1_f",
        "rougeL_f",
        "exact_match",
        "dose_match",
        "fractions_match",
        "concurrent_match",
        "eqd2_abs_error",
        "n",
        "accuracy",
    },
}


def _row(case_id, task, prediction, **extra):
    return {
        "case_id": case_id,
        "task": task,
        "prediction": prediction,
        "raw": prediction or "",
        "malformed": prediction is None,
        "model": "m",
        "decoding": "free",
        "prompt_version": PROMPT_VERSION,
        **extra,
    }


def _write(path, rows):
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def files(tmp_path):
    cases = sample_cases()
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in SAMPLE_CASES))
    base = [
        _row(c.case_id, t, task_answer(c, t) if i % 2 else None)
        for i, c in enumerate(cases)
        for t in TASKS
    ]
    perfect = [_row(c.case_id, t, task_answer(c, t)) for c in cases for t in TASKS]
    messy = [r for r in perfect if not (r["task"] == "modality" and r["case_id"] in ("c01", "c02"))]
    messy += [
        perfect[3],  # identical duplicate of c02/regimen: counted once
        _row("c03", "icd10", "C34.11"),  # conflicts with the first c03/icd10 row
        "{this is not json\n",
        json.dumps(["a", "list"]) + "\n",
        json.dumps(_row("c04", "staging", "T2")) + "\n",
        json.dumps({"prediction": "photon"}) + "\n",
        _row("zz99", "modality", "photon"),  # not in the case file
        "\n",  # blank lines are not rows
    ]
    return {
        "cases": tmp_path / "cases.jsonl",
        "base": _write(tmp_path / "base.jsonl", base),
        "ft": _write(tmp_path / "ft.jsonl", messy),
        "out": tmp_path / "eval",
        "n": len(cases),
    }


def test_messy_prediction_file_is_counted_not_trusted(files):
    read = read_prediction_file("ft", files["ft"], {c["case_id"] for c in SAMPLE_CASES})
    summary = read.summary()
    assert summary["rows"] == 3 * files["n"] - 2 + 7
    assert summary["unreadable"] == 4
    assert [line for line, _ in read.unreadable] == [25, 26, 27, 28]
    assert summary["duplicates"] == 2
    assert summary["conflicting"] == 1
    assert summary["unknown_case"] == 1
    assert summary["missing"] == {"regimen": 0, "modality": 2, "icd10": 0}


def test_evaluate_writes_exact_keys_and_scores_missing_as_malformed(files):
    result = evaluate_predictions(
        sample_cases(),
        {"base": files["base"], "ft": files["ft"]},
        files["out"],
        n_resamples=200,
        cases_file=files["cases"],
    )
    metrics = json.loads((files["out"] / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics, default=str))
    assert set(metrics["systems"]) == {"base", "ft"}
    for system in metrics["systems"].values():
        for task, keys in BLOCK_KEYS.items():
            assert keys <= set(system[task])
            assert system[task]["n"] == files["n"]
    ft = metrics["systems"]["ft"]
    # Two missing modality answers and one conflicting ICD-10 pair are malformed, not skipped.
    assert ft["modality"]["malformed_rate"] == pytest.approx(2 / 8)
    assert ft["modality"]["accuracy"] == pytest.approx(6 / 8)
    assert ft["icd10"]["malformed_rate"] == pytest.approx(1 / 8)
    assert ft["regimen"]["exact_match"] == 1.0
    assert metrics["systems"]["base"]["modality"]["accuracy"] == pytest.approx(4 / 8)
    assert metrics["inputs"]["ft"]["unreadable"] == 4

    comparisons = metrics["comparisons"]
    assert {(c["task"], c["test"]) for c in comparisons} == {
        ("modality", "wilcoxon"),
        ("modality", "mcnemar_exact"),
        ("icd10", "wilcoxon"),
        ("icd10", "mcnemar_exact"),
        ("regimen", "wilcoxon"),
    }
    for row in comparisons:
        assert COMPARISON_KEYS <= set(row)
        assert (row["system"], row["baseline"], row["alternative"]) == ("ft", "base", "greater")
        assert row["p_value"] <= row["p_holm"] <= 1.0 and row["n"] == files["n"]
    modality = next(
        c for c in comparisons if c["task"] == "modality" and c["test"] == "mcnemar_exact"
    )
    # ft right where base wrong: c03 c05 c07 (c01 missing); base right where ft wrong: c02.
    assert modality["statistic"] == 3 and modality["n_nonzero"] == 4
    assert metrics["settings"]["tests"]["wilcoxon_zero_method"] == "wilcox"

    text = "\n".join(result.messages)
    assert "4 unreadable row(s)" in text and "line 25: not valid JSON" in text
    assert "2 of 8 case(s) have no modality prediction" in text
    assert "conflicting" in text and "'zz99'" in text
    per_case = (files["out"] / "per_case.jsonl").read_text().splitlines()
    assert len(per_case) == 2 * 3 * files["n"]
    assert (files["out"] / "manifest.json").exists()


def test_tasks_without_predictions_are_not_evaluated(files, tmp_path):
    only_modality = _write(tmp_path / "mod.jsonl", [_row("c01", "modality", "photon")])
    result = evaluate_predictions(
        sample_cases(), {"base": files["base"], "x": only_modality}, files["out"], n_resamples=50
    )
    assert set(result.metrics["systems"]["x"]) == {"modality"}
    assert result.metrics["systems"]["x"]["modality"]["malformed_rate"] == pytest.approx(7 / 8)
    assert {c["task"] for c in result.metrics["comparisons"]} == {"modality"}
    assert any("no regimen predictions" in m for m in result.messages)


def test_argument_parsing():
    assert parse_prediction_args(["a=x.jsonl", "b = y.jsonl"]) == {
        "a": Path("x.jsonl"),
        "b": Path("y.jsonl"),
    }
    with pytest.raises(RadoncInputError, match="NAME=PATH"):
        parse_prediction_args(["x.jsonl"])
    with pytest.raises(RadoncInputError, match="twice"):
        parse_prediction_args(["a=x", "a=y"])
    assert parse_compare_args(None, ["base", "ft", "few"]) == [("ft", "base"), ("few", "base")]
    assert parse_compare_args(None, ["a", "b"]) == []
    assert parse_compare_args(["ft:few"], ["base", "ft", "few"]) == [("ft", "few")]
    with pytest.raises(RadoncInputError, match="SYSTEM:BASELINE"):
        parse_compare_args(["ft:nope"], ["base", "ft"])


def test_evaluate_cli(files):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--cases",
            str(files["cases"]),
            "--predictions",
            f"base={files['base']}",
            "--predictions",
            f"ft={files['ft']}",
            "--out",
            str(files["out"]),
            "--bootstrap",
            "100",
            "--compare",
            "ft:base",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.output and "Paired comparisons" in result.output
    assert "modality" in result.output and (files["out"] / "metrics.json").exists()
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--cases",
            str(files["cases"]),
            "--predictions",
            "base=/nonexistent.jsonl",
            "--out",
            str(files["out"]),
        ],
    )
    assert result.exit_code == 2 and "prediction file not found" in result.output


def test_bom_counts_and_wrongly_typed_predictions_are_unreadable(tmp_path):
    cases = sample_cases()
    rows = [_row(c.case_id, "modality", c.modality) for c in cases]
    rows[1] = _row(cases[1].case_id, "modality", 5)
    rows[2] = {**rows[2], "prediction": [cases[2].modality], "raw": None}
    path = _write(tmp_path / "p.jsonl", rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    read = read_prediction_file("x", path, {c.case_id for c in cases})
    assert (cases[0].case_id, "modality") in read.answers  # the BOM row is read
    assert read.unreadable == [
        (2, "'prediction' is int, expected text or null"),
        (3, "'prediction' is list, expected text or null"),
    ]
    assert read.missing == {"modality": 2}  # scored as malformed, never as correct


def test_a_task_only_one_side_predicts_is_reported_not_compared(files, tmp_path):
    only_modality = _write(tmp_path / "mod.jsonl", [_row("c01", "modality", "photon")])
    result = evaluate_predictions(
        sample_cases(), {"base": files["base"], "x": only_modality}, files["out"], n_resamples=20
    )
    assert "x vs base: regimen not compared (x has no regimen predictions)" in result.messages
    assert "x vs base: icd10 not compared (x has no icd10 predictions)" in result.messages


def test_out_that_is_a_file_and_no_resamples_are_refused(files, tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(RadoncInputError, match="taken: is a file, not a folder"):
        evaluate_predictions(sample_cases(), {"base": files["base"]}, tmp_path / "taken")
    with pytest.raises(RadoncInputError, match="at least 1 bootstrap"):
        evaluate_predictions(sample_cases(), {"base": files["base"]}, files["out"], n_resamples=0)


def test_a_reference_code_that_is_not_billable_is_reported(files):
    cases = sample_cases()
    first = evaluate_predictions(cases, {"base": files["base"]}, files["out"], n_resamples=20)
    assert not any("not billable" in message for message in first.messages)
    i = next(i for i, case in enumerate(cases) if "." in case.icd10)  # "C50.912" -> "C50"
    cases[i] = cases[i].model_copy(update={"icd10": cases[i].icd10.split(".")[0]})
    result = evaluate_predictions(
        cases, {"base": files["base"]}, files["out"] / "b", n_resamples=20
    )
    expected = f"1 reference ICD-10 code(s) are not billable codes ({cases[i].case_id})"
    assert any(message.startswith(expected) for message in result.messages)
