"""`radonc-llm predict` with a registry model, and its clear errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from radonc_llm.cli import app
from tests.infer.sample_cases import SAMPLE_CASES


def _predict(tmp_path, rows=SAMPLE_CASES, *options: str):
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "pred.jsonl"
    result = CliRunner().invoke(
        app, ["predict", "--cases", str(cases), "--out", str(out), *options]
    )
    return result, out


def test_predict_constrained_with_a_registry_model(tmp_path):
    result, out = _predict(
        tmp_path, SAMPLE_CASES, "--model", "tiny-llama", "--decoding", "constrained",
        "--tasks", "modality,icd10", "--limit", "3", "--batch-size", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["case_id"], r["task"]) for r in rows) == sorted(
        (c, t) for c in ("c01", "c02", "c03") for t in ("modality", "icd10")
    )
    assert not any(r["malformed"] for r in rows)
    assert {r["decoding"] for r in rows} == {"constrained"}
    assert "cases/s" in result.output


def test_predict_reports_bad_input_without_traceback(tmp_path):
    bad = dict(SAMPLE_CASES[0], modality="neutron")
    result, _ = _predict(tmp_path, [SAMPLE_CASES[1], bad], "--model", "tiny-llama")
    assert result.exit_code == 2
    assert "row 2" in result.output and "modality" in result.output
    assert "Traceback" not in result.output
    result, _ = _predict(tmp_path)
    assert result.exit_code == 2 and "--model" in result.output
    result, _ = _predict(tmp_path, SAMPLE_CASES, "--model", "tiny-llama", "--tasks", "staging")
    assert result.exit_code == 2 and "unknown task staging" in result.output
    result, _ = _predict(tmp_path, SAMPLE_CASES, "--model", "tiny-llama", "--dtype", "int8")
    assert result.exit_code == 2 and "unknown dtype" in result.output
