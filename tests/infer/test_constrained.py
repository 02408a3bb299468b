"""Constrained decoding: answers always valid, scores are true log-probabilities."""

from __future__ import annotations

import pytest
import torch

from radonc_llm.data import icd10
from radonc_llm.data.cases import MODALITIES
from radonc_llm.infer.constrained import (
    _label_token_ids,
    constrained_icd10,
    icd10_trie,
    score_labels,
)
from radonc_llm.infer.generate import chat_prompt_ids
from radonc_llm.tasks.prompts import prompt_messages


def _prompts(tokenizer, cases, task):
    return [chat_prompt_ids(tokenizer, prompt_messages(task, c.diagnosis_text)) for c in cases]


def _sequence_logprob(model, prompt, answer_ids):
    """log P(answer | prompt) from one plain forward pass over prompt + answer."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + answer_ids])).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    return sum(logprobs[len(prompt) - 1 + i, t].item() for i, t in enumerate(answer_ids))


def test_modality_scores_are_answer_logprobs_and_pick_the_best(tiny, cases):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer, cases[:3], "modality")
    results = score_labels(model, tokenizer, prompts)
    for prompt, result in zip(prompts, results, strict=True):
        assert set(result.scores) == set(MODALITIES)
        for label in MODALITIES:
            expected = _sequence_logprob(model, prompt, _label_token_ids(tokenizer, label))
            assert result.scores[label] == pytest.approx(expected, abs=1e-4)
        assert result.answer == max(result.scores, key=result.scores.get)


def test_modality_batched_equals_single_and_answers_vary(tiny, cases):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer, cases, "modality")
    batched = score_labels(model, tokenizer, prompts)
    single = [score_labels(model, tokenizer, [p])[0] for p in prompts]
    assert [r.answer for r in batched] == [r.answer for r in single]
    for b, s in zip(batched, single, strict=True):
        assert b.scores == pytest.approx(s.scores, abs=1e-5)
    assert len({r.answer for r in batched}) > 1
    assert all(r.answer in MODALITIES for r in batched)


def test_icd10_answers_are_always_billable_codes(tiny, cases):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer, cases, "icd10")
    batched = constrained_icd10(model, tokenizer, prompts)  # the full trie: every billable code
    assert all(icd10.is_billable(r.answer) for r in batched)
    assert len({r.answer for r in batched}) > 1
    single = [constrained_icd10(model, tokenizer, [p])[0] for p in prompts]
    assert [r.answer for r in batched] == [r.answer for r in single]


def test_icd10_walk_logprob_and_restricted_code_list(tiny, cases):
    model, tokenizer = tiny
    codes = icd10.billable_codes(prefixes=["C50", "C61", "C71"])
    trie = icd10_trie(tokenizer, codes)
    prompts = _prompts(tokenizer, cases[:4], "icd10")
    results = constrained_icd10(model, tokenizer, prompts, trie=trie)
    for prompt, result in zip(prompts, results, strict=True):
        assert result.answer in codes
        expected = _sequence_logprob(model, prompt, _label_token_ids(tokenizer, result.answer))
        assert result.logprob == pytest.approx(expected, abs=1e-4)


def test_trie_is_built_once_per_tokenizer_and_code_list(tiny):
    _, tokenizer = tiny
    codes = ["C61", "C50.412", "C50.411"]
    assert icd10_trie(tokenizer, codes) is icd10_trie(tokenizer, codes)
    with pytest.raises(ValueError, match="at least one code"):
        icd10_trie(tokenizer, [])


def test_label_tree_mask_works_with_eager_attention_too(tiny, cases):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer, cases[:3], "modality")
    sdpa = score_labels(model, tokenizer, prompts)
    model.set_attn_implementation("eager")
    try:
        eager = score_labels(model, tokenizer, prompts)
    finally:
        model.set_attn_implementation("sdpa")
    for a, b in zip(sdpa, eager, strict=True):
        assert a.answer == b.answer
        assert a.scores == pytest.approx(b.scores, abs=1e-4)
