"""`radonc-llm predict` with a registry model, and its clear errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from radonc_llm.cli import app
from tests.infer.sample_cases import SAMPLE_CASES


def _cases_file(tmp_path, rows=SAMPLE_CASES):
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_predict_constrained_with_a_registry_model(tmp_path):
    cases, out = _cases_file(tmp_path), tmp_path / "pred.jsonl"
    args = ["predict", "--model", "tiny-llama", "--cases", str(cases), "--out", str(out),
            "--decoding", "constrained", "--tasks", "modality,icd10", "--limit", "3",
            "--batch-size", "2"]
    result = CliRunner().invoke(app, args)
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
    cases = _cases_file(tmp_path, [SAMPLE_CASES[1], bad])
    result = CliRunner().invoke(
        app, ["predict", "--model", "tiny-llama", "--cases", str(cases), "--out",
              str(tmp_path / "p.jsonl")]
    )
    assert result.exit_code == 2
    assert "row 2" in result.output and "modality" in result.output
    assert "Traceback" not in result.output
    good = _cases_file(tmp_path)
    result = CliRunner().invoke(app, ["predict", "--cases", str(good), "--out", str(tmp_path / "p")])
    assert result.exit_code == 2 and "--model" in result.output
    result = CliRunner().invoke(
        app, ["predict", "--model", "tiny-llama", "--cases", str(good), "--out",
              str(tmp_path / "p"), "--tasks", "staging"]
    )
    assert result.exit_code == 2 and "unknown task staging" in result.output
