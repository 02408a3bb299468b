"""A reference answer that is a placeholder ("None Gy in nan fractions", written where an export
had no value) is neither scored against nor predicted by a baseline; both say so."""

from __future__ import annotations

import json

import pytest

from radonc_llm.data.cases import TASKS
from radonc_llm.errors import RadoncInputError
from radonc_llm.evaluate.baselines import run_baseline
from radonc_llm.evaluate.run import evaluate_predictions
from radonc_llm.tasks.build import task_answer
from tests.infer.sample_cases import sample_cases

PLACEHOLDER = "None Gy in nan fractions"


def _with_placeholder(cases):
    return [cases[0].model_copy(update={"regimen": PLACEHOLDER}), *cases[1:]]


def _perfect_rows(cases) -> list[dict]:
    """Every task of every case answered with its reference."""
    return [
        {"case_id": c.case_id, "task": t, "prediction": task_answer(c, t), "raw": task_answer(c, t)}
        for c in cases
        for t in TASKS
    ]


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_placeholder_reference_leaves_its_task_for_every_system(tmp_path):
    cases = _with_placeholder(sample_cases())
    perfect = _perfect_rows(cases)
    files = {name: _write(tmp_path / f"{name}.jsonl", perfect) for name in ("base", "tuned")}
    result = evaluate_predictions(cases, files, tmp_path / "out", n_resamples=50)
    regimen = result.metrics["systems"]["tuned"]["regimen"]
    assert regimen["n"] == len(cases) - 1
    assert regimen["rouge1_f"] == pytest.approx(1.0)
    assert result.metrics["systems"]["tuned"]["modality"]["n"] == len(cases)
    (message,) = [m for m in result.messages if "no usable regimen reference" in m]
    assert message.startswith(f"1 case(s) have no usable regimen reference ({cases[0].case_id}")
    per_case = [json.loads(line) for line in (tmp_path / "out" / "per_case.jsonl").open()]
    scored = {(r["case_id"], r["task"]) for r in per_case}
    assert (cases[0].case_id, "regimen") not in scored
    assert (cases[0].case_id, "modality") in scored


def test_baselines_never_predict_a_placeholder_answer(tmp_path):
    # Three placeholders make it the most frequent regimen: a majority baseline would pick it.
    train = sample_cases()
    train = [c.model_copy(update={"regimen": PLACEHOLDER}) for c in train[:3]] + train[3:]
    summary = run_baseline("majority", train, sample_cases(), tmp_path / "pred.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "pred.jsonl").open()]
    assert PLACEHOLDER not in {row["raw"] for row in rows if row["task"] == "regimen"}
    assert any("3 training case(s) have no usable regimen answer" in m for m in summary.messages)


def test_a_baseline_with_no_usable_training_answer_is_refused(tmp_path):
    train = [c.model_copy(update={"regimen": PLACEHOLDER}) for c in sample_cases()]
    with pytest.raises(RadoncInputError, match="no training case has a usable regimen answer"):
        run_baseline(
            "nearest-regimen", train, sample_cases(), tmp_path / "pred.jsonl", tasks=["regimen"]
        )


def test_few_shot_never_shows_a_placeholder_regimen_as_an_example(tmp_path, monkeypatch):
    from radonc_llm.evaluate import baselines
    from radonc_llm.infer.backends import TransformersBackend
    from radonc_llm.models.registry import load_model

    shown: list[tuple[str, str]] = []
    build = baselines.few_shot_messages

    def recording(case, task, examples):
        shown.extend((task, example.regimen) for example in examples)
        return build(case, task, examples)

    monkeypatch.setattr(baselines, "few_shot_messages", recording)
    # Only the last three training regimens are usable: the nearest three would mostly be
    # placeholders, were they not left out.
    train = sample_cases()
    train = [c.model_copy(update={"regimen": PLACEHOLDER}) for c in train[:-3]] + train[-3:]
    model, tokenizer = load_model("tiny-llama")
    backend = TransformersBackend(model, tokenizer, model_name="tiny-llama")
    run_baseline(
        "few-shot", train, sample_cases()[:2], tmp_path / "few.jsonl", backend=backend,
        tasks=["regimen", "modality"], k=3, show_progress=False,
    )  # fmt: skip
    assert {task for task, _ in shown} == {"regimen", "modality"}
    assert {regimen for task, regimen in shown if task == "regimen"} == {
        case.regimen for case in train[-3:]
    }
    # Modality examples come from every training case, placeholders' included.
    assert PLACEHOLDER in {regimen for task, regimen in shown if task == "modality"}


def test_the_console_table_gives_the_task_its_own_n(tmp_path):
    from radonc_llm.evaluate.run import summary_tables

    cases = _with_placeholder(sample_cases())
    rows = _perfect_rows(cases)
    result = evaluate_predictions(
        cases, {"base": _write(tmp_path / "base.jsonl", rows)}, tmp_path / "out", n_resamples=20
    )
    titles = {
        str(table.title).split(" ")[0]: str(table.title) for table in summary_tables(result.metrics)
    }
    assert f"(n = {len(cases) - 1};" in titles["regimen"]
    assert f"(n = {len(cases)};" in titles["modality"]
