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
    # A local model answers both tasks of a case together, and the table says so.
    assert "modality, icd10 answered together" in " ".join(result.output.split())


def test_without_decoding_a_local_model_is_constrained_and_a_resumed_file_keeps_its_own(tmp_path):
    options = ("--model", "tiny-llama", "--tasks", "modality", "--batch-size", "2")
    result, out = _predict(tmp_path, SAMPLE_CASES, *options, "--limit", "2")
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["decoding"] for line in out.read_text().splitlines()} == {
        "constrained"
    }
    free = tmp_path / "free"
    free.mkdir()
    result, out = _predict(free, SAMPLE_CASES, *options, "--limit", "1", "--decoding", "free")
    assert result.exit_code == 0, result.output
    result, out = _predict(free, SAMPLE_CASES, *options, "--limit", "2")  # resumed, no --decoding
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and {row["decoding"] for row in rows} == {"free"}


def test_notes_without_answers_are_predicted(tmp_path):
    # New patients have no answers yet: case_id and the note are all prediction needs. A
    # reference answer a line carries is for scoring only, so a bad one does not stop it.
    notes = [{"case_id": c["case_id"], "diagnosis_text": c["diagnosis_text"]} for c in SAMPLE_CASES]
    notes[1]["modality"] = "neutron"
    result, out = _predict(
        tmp_path, notes[:3], "--model", "tiny-llama", "--tasks", "modality", "--batch-size", "2"
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["case_id"] for r in rows) == ["c01", "c02", "c03"]
    assert "patient_id" not in result.output  # no warning about patients: none is needed here


def test_predict_reports_bad_input_without_traceback(tmp_path):
    bad = dict(SAMPLE_CASES[0], diagnosis_text=["not", "text"])
    result, _ = _predict(tmp_path, [SAMPLE_CASES[1], bad], "--model", "tiny-llama")
    assert result.exit_code == 2
    assert "row 2" in result.output and "diagnosis_text" in result.output
    assert "Traceback" not in result.output
    no_note = {"case_id": "n1", "note": "62M, prostate adenocarcinoma"}
    result, _ = _predict(tmp_path, [no_note], "--model", "tiny-llama")
    assert result.exit_code == 2
    assert "row 1" in result.output and "diagnosis_text" in result.output
    result, _ = _predict(tmp_path)
    assert result.exit_code == 2 and "--model" in result.output
    result, _ = _predict(tmp_path, SAMPLE_CASES, "--model", "tiny-llama", "--tasks", "staging")
    assert result.exit_code == 2 and "unknown task staging" in result.output
    result, _ = _predict(tmp_path, SAMPLE_CASES, "--model", "tiny-llama", "--dtype", "int8")
    assert result.exit_code == 2 and "unknown dtype" in result.output


def test_prompts_longer_than_the_context_are_named(tiny, cases):
    from radonc_llm.infer.backends import TransformersBackend
    from radonc_llm.infer.predict import _over_context_message, default_messages, over_context

    model, tokenizer = tiny
    backend = TransformersBackend(model, tokenizer, model_name="tiny-llama")
    long_case = cases[0].model_copy(update={"diagnosis_text": "pT2 N1 µ × é 前列腺 " * 800})
    context, too_long = over_context(backend, [long_case, *cases[1:]], "icd10", default_messages)
    assert context == model.config.max_position_embeddings
    assert [case_id for case_id, _ in too_long] == [long_case.case_id]
    assert too_long[0][1] > context
    message = _over_context_message("icd10", context, too_long)
    assert long_case.case_id in message and "not truncated" in message
    assert over_context(object(), cases, "icd10", default_messages) == (None, [])


def test_empty_case_file_fails_before_the_model_loads(tmp_path):
    result, out = _predict(tmp_path, [], "--model", "tiny-llama")
    assert result.exit_code == 2 and "holds no cases" in result.output
    assert not out.exists()


def test_cases_per_second_of_a_finished_task_is_its_whole_average():
    from rich.progress import Progress

    from radonc_llm.infer.predict import CasesPerSecondColumn

    now = [0.0]
    progress = Progress(CasesPerSecondColumn(), get_time=lambda: now[0], disable=True)
    bar = progress.add_task("icd10", total=30, start=False)
    now[0] = 10.0  # the task starts after an earlier one took 10 s
    progress.start_task(bar)
    now[0] = 40.0
    progress.advance(bar, 30)  # 30 cases in 30 s
    (task,) = progress.tasks
    assert task.finished
    assert CasesPerSecondColumn().render(task).plain == "1.0 cases/s"


def test_prompts_longer_than_the_tuned_examples_are_named(tiny, cases, tmp_path):
    from radonc_llm.infer.backends import TransformersBackend
    from radonc_llm.infer.predict import default_messages, long_prompt_messages

    model, tokenizer = tiny
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"config": {"max_length": 160}}))
    backend = TransformersBackend(model, tokenizer, model_name=str(run))
    longer = cases[0].model_copy(update={"diagnosis_text": "pT2 N1 prostate " * 60})
    (message,) = long_prompt_messages(backend, [longer, *cases[1:]], "icd10", default_messages)
    assert "1 prompt(s) are longer than any example the model was tuned on" in message
    assert "max_length 160 tokens" in message and longer.case_id in message
    assert long_prompt_messages(backend, cases[1:], "icd10", default_messages) == []
    registry_model = TransformersBackend(model, tokenizer, model_name="tiny-llama")
    assert long_prompt_messages(registry_model, [longer], "icd10", default_messages) == []


def test_openai_options_reach_the_backend(tmp_path, monkeypatch):
    from radonc_llm.errors import RadoncInputError
    from radonc_llm.infer import backends

    seen = {}

    def opened(base_url, model_name, **options):
        seen.update(options, base_url=base_url, model_name=model_name)
        raise RadoncInputError("stop here")

    monkeypatch.setattr(backends, "OpenAIBackend", opened)
    options = ("--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model-name", "m")
    result, _ = _predict(
        tmp_path, SAMPLE_CASES, *options, "--concurrency", "2", "--timeout", "30",
        "--max-retries", "0",
    )  # fmt: skip
    assert result.exit_code == 2 and "stop here" in result.output
    assert seen == {
        "base_url": "http://127.0.0.1:9/v1", "model_name": "m", "concurrency": 2,
        "timeout_s": 30.0, "max_retries": 0,
    }  # fmt: skip
    refused, _ = _predict(tmp_path, SAMPLE_CASES, *options, "--concurrency", "0")
    assert refused.exit_code == 2 and "--concurrency" in refused.output
