"""Tasks answered together: each note runs once for all tasks, and the answers are those of
the tasks answered one by one."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from radonc_llm.infer.backends import TransformersBackend
from radonc_llm.infer.generate import (
    chat_prompt_ids,
    common_prefix_length,
    run_prompt_branches,
    run_prompts,
)
from radonc_llm.infer.predict import plan_work, predict_cases
from radonc_llm.tasks.prompts import prompt_messages
from tests.infer.conftest import prediction_rows

TASKS = ("regimen", "modality", "icd10")


def _conversations(cases, tasks=TASKS):
    return {task: [prompt_messages(task, case.diagnosis_text) for case in cases] for task in tasks}


@pytest.mark.parametrize("attention", ["eager", "sdpa"])  # sdpa: what a GPU runs
def test_each_branch_gets_the_state_its_prompts_get_alone(tiny, cases, attention):
    model, tokenizer = tiny
    model = copy.deepcopy(model)
    model.set_attn_implementation(attention)
    branches = [
        [chat_prompt_ids(tokenizer, messages) for messages in rows]
        for rows in _conversations(cases).values()
    ]
    # The three prompts of a case share their note: most of each prompt runs once.
    shared = [common_prefix_length([b[row] for b in branches]) for row in range(len(cases))]
    assert all(n > len(branches[0][row]) // 2 for row, n in enumerate(shared))
    together = list(run_prompt_branches(model, branches, pad_id=tokenizer.pad_token_id))
    assert len(together) == len(branches)
    for branch, state in zip(branches, together, strict=True):
        alone = run_prompts(model, branch, pad_id=tokenizer.pad_token_id)
        torch.testing.assert_close(state.logits, alone.logits, rtol=0, atol=1e-9)
        assert torch.equal(state.next_position, alone.next_position)


def test_answers_together_equal_answers_task_by_task(tiny, cases):
    model, tokenizer = tiny
    backend = TransformersBackend(model, tokenizer, model_name="tiny")
    for decoding in ("constrained", "free"):
        together = backend.answer_tasks(_conversations(cases), decoding=decoding)
        assert list(together) == list(TASKS)
        for task in TASKS:
            alone = backend.answer(task, _conversations(cases)[task], decoding=decoding)
            assert [a.raw for a in together[task]] == [a.raw for a in alone], (task, decoding)
            assert [a.logprob for a in together[task]] == pytest.approx(
                [a.logprob for a in alone], abs=1e-9
            )
    # The comparison means something: the answers differ from case to case.
    assert len({a.raw for a in together["regimen"]}) > 3
    assert len({a.raw for a in together["modality"]}) > 1


def test_a_local_model_answers_tasks_together_into_the_same_rows(tmp_path, tiny, cases):
    model, tokenizer = tiny
    backend = TransformersBackend(model, tokenizer, model_name="tiny")
    together, one_by_one = tmp_path / "together.jsonl", tmp_path / "one_by_one.jsonl"
    summary = predict_cases(
        backend, cases, together, decoding="constrained", batch_size=3, show_progress=False
    )
    assert summary.answered_together == [list(TASKS)]
    for task in TASKS:
        predict_cases(
            backend, cases, one_by_one, tasks=[task], decoding="constrained", batch_size=3,
            show_progress=False,
        )  # fmt: skip
    key = lambda row: (row["case_id"], row["task"])  # noqa: E731
    expected = {key(row): row for row in prediction_rows(one_by_one)}
    got = {key(row): row for row in prediction_rows(together)}
    assert got.keys() == expected.keys() and len(got) == 3 * len(cases)
    for pair, row in expected.items():
        assert (got[pair]["prediction"], got[pair]["raw"]) == (row["prediction"], row["raw"])
    manifest = json.loads((tmp_path / "together.manifest.json").read_text())
    assert manifest["answered_together"] == [list(TASKS)]
    assert all(manifest["per_task"][task]["predicted"] == len(cases) for task in TASKS)


def test_work_is_grouped_by_the_tasks_each_case_still_lacks(cases):
    done = {(cases[0].case_id, "modality"), (cases[1].case_id, "modality")}
    done |= {(cases[2].case_id, task) for task in TASKS}
    options = {"decoding": "constrained", "batch_size": 2, "messages_for": _messages_for}
    units = plan_work(cases, TASKS, done, together=True, **options)
    assert [unit.tasks for unit in units] == [TASKS, ("regimen", "icd10")]
    ids = [[case.case_id for batch in unit.batches for case in batch] for unit in units]
    assert sorted(ids[0]) == sorted(c.case_id for c in cases[3:])
    assert sorted(ids[1]) == sorted(c.case_id for c in cases[:2])
    assert all(len(batch) <= 2 for unit in units for batch in unit.batches)
    # A backend that answers one task at a time: a unit per task, task after task.
    units = plan_work(cases, TASKS, done, together=False, **options)
    assert [unit.tasks for unit in units] == [(task,) for task in TASKS]
    assert [sum(map(len, unit.batches)) for unit in units] == [
        len(cases) - 1,
        len(cases) - 3,
        len(cases) - 1,
    ]


def _messages_for(case, task):
    return prompt_messages(task, case.diagnosis_text)


def test_prompts_that_part_early_still_get_their_own_answers(tmp_path, tiny, cases):
    """Prompts of a case that differ from the system prompt on (as few-shot prompts may):
    little is shared, and each task's long, uneven rest is left-padded after it."""
    model, tokenizer = tiny
    backend = TransformersBackend(model, tokenizer, model_name="tiny")

    def messages_for(case, task):
        system = f"Task {task}: " + "answer briefly. " * (1 + len(task) % 3)
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": case.diagnosis_text},
        ]

    conversations = {t: [messages_for(c, t) for c in cases] for t in TASKS}
    branches = [[chat_prompt_ids(tokenizer, m) for m in rows] for rows in conversations.values()]
    shared = [common_prefix_length([b[row] for b in branches]) for row in range(len(cases))]
    assert max(shared) < 8  # the system prompts differ early
    together = backend.answer_tasks(conversations, decoding="constrained")
    for task in TASKS:
        alone = backend.answer(task, conversations[task], decoding="constrained")
        assert [a.raw for a in together[task]] == [a.raw for a in alone], task
