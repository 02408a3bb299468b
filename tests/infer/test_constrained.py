"""Constrained decoding: answers always valid, scores are true log-probabilities."""

from __future__ import annotations

import pytest
import torch

from radonc_llm.data import icd10
from radonc_llm.data.cases import MODALITIES
from radonc_llm.infer.constrained import (
    TokenTrie,
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


def _decided_prefix(sequences, answer_ids):
    """The shortest prefix of `answer_ids` that only one of `sequences` starts with."""
    for length in range(1, len(answer_ids) + 1):
        if sum(seq[:length] == answer_ids[:length] for seq in sequences) == 1:
            return answer_ids[:length]
    raise AssertionError("answer is not unique in the trie")


def test_icd10_walk_logprob_and_restricted_code_list(tiny, cases):
    model, tokenizer = tiny
    codes = icd10.billable_codes(prefixes=["C50", "C61", "C71"])
    trie = icd10_trie(tokenizer, codes)
    sequences = [_label_token_ids(tokenizer, icd10.answer_text(code)) for code in codes]
    prompts = _prompts(tokenizer, cases[:4], "icd10")
    results = constrained_icd10(model, tokenizer, prompts, trie=trie)
    for prompt, result in zip(prompts, results, strict=True):
        assert result.answer in codes
        answer_ids = _label_token_ids(tokenizer, icd10.answer_text(result.answer))
        decided = _decided_prefix(sequences, answer_ids)
        # The walk stops once the code is decided: before the forced "(C50.412)" at least.
        assert len(decided) < len(answer_ids) - 3
        expected = _sequence_logprob(model, prompt, decided)
        assert result.logprob == pytest.approx(expected, abs=1e-4)


def test_trie_children_are_the_next_tokens_of_the_sequences_below():
    sequences = [[5, 1, 9], [5, 2, 9], [5, 2, 8, 9], [7, 9]]
    trie = TokenTrie(sequences, ["a", "b", "c", "d"])
    tokens, nodes = trie.children(trie.root)
    assert tokens.tolist() == [5, 7]
    assert trie.value(trie.root) is None
    assert trie.value(nodes[1]) == "d"  # only [7, 9] starts with 7
    tokens, below_5 = trie.children(nodes[0])
    assert tokens.tolist() == [1, 2]
    assert trie.value(below_5[0]) == "a"
    tokens, below_52 = trie.children(below_5[1])
    assert tokens.tolist() == [8, 9]
    assert [trie.value(node) for node in below_52] == ["c", "b"]
    assert len(trie) == 4
    with pytest.raises(ValueError, match="one value per sequence"):
        TokenTrie([], [])
    with pytest.raises(ValueError, match="start of another"):
        TokenTrie([[5, 2], [5, 2, 9]], ["a", "b"])
    with pytest.raises(ValueError, match="start of another"):
        TokenTrie([[5, 2], [5, 2]], ["a", "b"])


def test_one_code_trie_answers_without_the_model(tiny, cases):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer, cases[:2], "icd10")
    results = constrained_icd10(model, tokenizer, prompts, trie=icd10_trie(tokenizer, ["C61"]))
    assert [(r.answer, r.logprob) for r in results] == [("C61", 0.0), ("C61", 0.0)]


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


def test_icd10_beam_search_finds_the_most_probable_code(tiny, cases):
    # With as many beams as codes and no margin the search is exhaustive: it must return the
    # code whose decided answer prefix is most probable, and never score below the greedy walk.
    model, tokenizer = tiny
    codes = icd10.billable_codes(prefixes=["C61", "C71"])
    trie = icd10_trie(tokenizer, codes)
    sequences = [_label_token_ids(tokenizer, icd10.answer_text(code)) for code in codes]
    prompts = _prompts(tokenizer, cases[:4], "icd10")
    greedy = constrained_icd10(model, tokenizer, prompts, trie=trie)
    searched = constrained_icd10(model, tokenizer, prompts, trie=trie, beams=len(codes))
    for prompt, walk, result in zip(prompts, greedy, searched, strict=True):
        scores = {
            code: _sequence_logprob(model, prompt, _decided_prefix(sequences, seq))
            for code, seq in zip(codes, sequences, strict=True)
        }
        best = max(scores, key=scores.get)
        assert result.answer == best
        assert result.logprob == pytest.approx(scores[best], abs=1e-4)
        assert result.logprob >= walk.logprob - 1e-9
    # A margin of 0 keeps only the best path at each step: the greedy walk again.
    narrow = constrained_icd10(model, tokenizer, prompts, trie=trie, beams=len(codes), margin=0.0)
    assert [r.answer for r in narrow] == [r.answer for r in greedy]
