"""Baselines write the prediction format and behave as their names say."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.data.cases import Case
from radonc_llm.errors import RadoncInputError
from radonc_llm.evaluate.baselines import (
    NearestCases,
    few_shot_messages,
    majority_answers,
    run_baseline,
)
from radonc_llm.evaluate.run import evaluate_predictions
from radonc_llm.infer.backends import TransformersBackend
from radonc_llm.tasks.prompts import SYSTEM_PROMPT, user_message
from tests.infer.sample_cases import SAMPLE_CASES, sample_cases


def _train() -> list[Case]:
    """Two notes per sample case, worded differently, from other patients."""
    rows = []
    for i, row in enumerate(SAMPLE_CASES):
        for j, prefix in enumerate(("History: ", "Consult note. ")):
            rows.append(
                {
                    **row,
                    "case_id": f"t{i}{j}",
                    "patient_id": f"tp{i}{j}",
                    "diagnosis_text": prefix + row["diagnosis_text"],
                }
            )
    rows.append(
        {
            **SAMPLE_CASES[0],
            "case_id": "t99",
            "patient_id": "tp99",
            "diagnosis_text": "68M, prostate adenocarcinoma GS 3+3, PSA 6.",
        }
    )
    return [Case.model_validate(r) for r in rows]


def test_majority_takes_the_most_frequent_answer():
    cases = sample_cases()
    assert majority_answers(_train(), cases, "modality") == ["photon"] * len(cases)
    assert majority_answers(_train(), cases[:1], "icd10") == ["C61"]  # 3 of 17


def test_tfidf_and_nearest_find_the_matching_training_case(tmp_path):
    cases, train = sample_cases(), _train()
    out = tmp_path / "tfidf.jsonl"
    summary = run_baseline("tfidf-logreg", train, cases, out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["task"] for r in rows} == {"modality", "icd10"} and set(summary.tasks) == {
        "modality",
        "icd10",
    }
    truth = {(c.case_id, "modality"): c.modality for c in cases} | {
        (c.case_id, "icd10"): c.icd10 for c in cases
    }
    right = sum(r["prediction"] == truth[(r["case_id"], r["task"])] for r in rows)
    assert right >= 0.75 * len(rows)
    assert {r["model"] for r in rows} == {"baseline:tfidf-logreg"}

    out = tmp_path / "nearest.jsonl"
    run_baseline("nearest-regimen", train, cases, out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prediction"] for r in rows] == [c.regimen for c in cases]
    result = evaluate_predictions(cases, {"nearest": out}, tmp_path / "eval", n_resamples=20)
    assert result.metrics["systems"]["nearest"]["regimen"]["exact_match"] == 1.0


def test_nearest_never_returns_the_same_patient():
    cases = sample_cases()
    index = NearestCases(cases)
    for case in cases:
        assert all(n.patient_id != case.patient_id for n in index.nearest(case, 3))


def test_few_shot_messages_put_the_most_similar_example_last():
    cases = sample_cases()
    messages = few_shot_messages(cases[0], "modality", [cases[1], cases[2]])
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[3]["content"] == user_message("modality", cases[1].diagnosis_text)
    assert messages[4]["content"] == cases[1].modality
    assert messages[-1]["content"] == user_message("modality", cases[0].diagnosis_text)


def test_few_shot_runs_through_the_prediction_loop(tmp_path):
    from radonc_llm.models.registry import load_model

    model, tokenizer = load_model("tiny-llama")
    backend = TransformersBackend(model, tokenizer, model_name="tiny-llama")
    out = tmp_path / "few.jsonl"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model gains nothing from a second, shared core
    try:
        summary = run_baseline(
            "few-shot",
            _train(),
            sample_cases()[:3],
            out,
            backend=backend,
            tasks=["modality", "icd10"],
            decoding="constrained",
            k=2,
            show_progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and not any(r["malformed"] for r in rows)
    assert {r["model"] for r in rows} == {"few-shot(k=2):tiny-llama"}
    assert summary.tasks["modality"]["cases"] == summary.tasks["modality"]["predicted"] == 3
    assert summary.tasks["modality"]["cases_per_s"] > 0  # a model runs: its rate is shown
    # The model answers a case's tasks together, and the summary says so.
    assert summary.answered_together == [["modality", "icd10"]]


def test_bad_requests_are_refused(tmp_path):
    with pytest.raises(RadoncInputError, match="unknown baseline"):
        run_baseline("oracle", _train(), sample_cases(), tmp_path / "x.jsonl")
    with pytest.raises(RadoncInputError, match="does not answer regimen"):
        run_baseline(
            "tfidf-logreg", _train(), sample_cases(), tmp_path / "x.jsonl", tasks=["regimen"]
        )
    summary = run_baseline("majority", sample_cases(), sample_cases(), tmp_path / "x.jsonl")
    assert "appear in both" in summary.messages[0]


def test_baseline_cli(tmp_path):
    train, cases = tmp_path / "train.jsonl", tmp_path / "cases.jsonl"
    train.write_text("".join(json.dumps(c.model_dump(exclude_none=True)) + "\n" for c in _train()))
    cases.write_text("".join(json.dumps(r) + "\n" for r in SAMPLE_CASES))
    out = tmp_path / "majority.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "baseline",
            "--train",
            str(train),
            "--cases",
            str(cases),
            "--out",
            str(out),
            "--kind",
            "majority",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 * len(SAMPLE_CASES)
    assert {r["prediction"] for r in rows if r["task"] == "modality"} == {"photon"}


def test_baseline_cli_predicts_notes_without_answers(tmp_path):
    train, notes = tmp_path / "train.jsonl", tmp_path / "notes.jsonl"
    train.write_text("".join(json.dumps(c.model_dump(exclude_none=True)) + "\n" for c in _train()))
    notes.write_text(
        "".join(
            json.dumps({"case_id": r["case_id"], "diagnosis_text": r["diagnosis_text"]}) + "\n"
            for r in SAMPLE_CASES
        )
    )
    out = tmp_path / "tfidf.jsonl"
    result = CliRunner().invoke(
        app,
        ["baseline", "--train", str(train), "--cases", str(notes), "--out", str(out),
         "--kind", "tfidf-logreg"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted({r["case_id"] for r in rows}) == sorted(r["case_id"] for r in SAMPLE_CASES)
    assert {r["task"] for r in rows} == {"modality", "icd10"}


def test_empty_cases_folder_out_and_no_other_patient_are_refused(tmp_path):
    with pytest.raises(RadoncInputError, match="case file holds no cases"):
        run_baseline("tfidf-logreg", _train(), [], tmp_path / "x.jsonl")
    with pytest.raises(RadoncInputError, match="is a folder"):
        run_baseline("majority", _train(), sample_cases(), tmp_path)
    one = sample_cases()[:1]
    with pytest.raises(RadoncInputError, match="no other patient's regimen"):
        run_baseline("nearest-regimen", one, one, tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("kind", ["tfidf-logreg", "nearest-regimen"])
def test_notes_without_a_word_tfidf_reads_are_a_clear_error(tmp_path, kind):
    # scikit-learn's "empty vocabulary" ValueError used to reach the user as a traceback.
    train = [
        Case.model_validate(
            {**row, "case_id": f"t{i}", "patient_id": f"tp{i}", "diagnosis_text": note}
        )
        for i, (row, note) in enumerate(zip(SAMPLE_CASES, ["a", "! ? .", "-"], strict=False))
    ]
    with pytest.raises(RadoncInputError, match="field 'train'") as caught:
        run_baseline(kind, train, sample_cases(), tmp_path / "x.jsonl")
    assert "3 training diagnosis note(s) hold no word that TF-IDF reads" in caught.value.reason
    assert not (tmp_path / "x.jsonl").exists()


def test_one_training_class_and_an_out_of_range_seed(tmp_path):
    one = [c for c in _train() if c.modality == "photon"]
    out = tmp_path / "x.jsonl"
    run_baseline("tfidf-logreg", one, sample_cases(), out, tasks=["modality"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["prediction"] for r in rows} == {"photon"} and len(rows) == len(SAMPLE_CASES)
    for seed in (-1, 2**32):
        with pytest.raises(RadoncInputError, match="field 'seed'.*between 0 and 2\\*\\*32 - 1"):
            run_baseline("tfidf-logreg", _train(), sample_cases(), tmp_path / "y.jsonl", seed=seed)
