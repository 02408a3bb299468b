"""Batched greedy generation: equals one-at-a-time and transformers' own greedy search."""

from __future__ import annotations

import torch

from radonc_llm.infer.generate import (
    PrefixCache,
    chat_prompt_ids,
    end_of_turn_ids,
    greedy_generate,
)
from radonc_llm.tasks.prompts import prompt_messages


def _prompts(tokenizer, cases, task="modality"):
    return [chat_prompt_ids(tokenizer, prompt_messages(task, c.diagnosis_text)) for c in cases]


def test_batched_equals_one_at_a_time(tiny, cases):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer, cases)
    assert len({len(p) for p in prompts}) > 3  # different lengths: padding is exercised
    batched = greedy_generate(model, tokenizer, prompts, max_new_tokens=20)
    single = [greedy_generate(model, tokenizer, [p], max_new_tokens=20)[0] for p in prompts]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert [g.stopped for g in batched] == [g.stopped for g in single]
    # The comparison means something: answers differ, some rows stop early, some run out.
    assert len({g.token_ids for g in batched}) > 3
    assert any(g.stopped for g in batched) and not all(g.stopped for g in batched)
    assert len({len(g.token_ids) for g in batched}) > 2


def test_batch_order_does_not_change_answers(tiny, cases):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer, cases)
    forward = greedy_generate(model, tokenizer, prompts, max_new_tokens=12)
    backward = greedy_generate(model, tokenizer, prompts[::-1], max_new_tokens=12)
    assert [g.token_ids for g in forward] == [g.token_ids for g in backward[::-1]]


def test_matches_transformers_greedy_generate(tiny, cases):
    model, tokenizer = tiny
    stop = list(end_of_turn_ids(tokenizer))
    for prompt in _prompts(tokenizer, cases[:3]):
        ours = greedy_generate(model, tokenizer, [prompt], max_new_tokens=15)[0]
        ids = torch.tensor([prompt])
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=15,
            do_sample=False,
            eos_token_id=stop,
            pad_token_id=stop[0],
        )
        theirs = [t for t in out[0, len(prompt) :].tolist() if t not in stop]
        assert list(ours.token_ids) == theirs


def test_stops_at_end_of_turn_and_respects_token_limit(tiny, cases):
    model, tokenizer = tiny
    generations = greedy_generate(model, tokenizer, _prompts(tokenizer, cases), max_new_tokens=5)
    stop = set(end_of_turn_ids(tokenizer))
    for g in generations:
        assert len(g.token_ids) <= 5
        assert not stop & set(g.token_ids)
        assert g.stopped or len(g.token_ids) == 5


def test_shared_prefix_is_reused_across_batches(tiny, cases):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer, cases)
    cache = PrefixCache()
    first = greedy_generate(model, tokenizer, prompts[:4], max_new_tokens=8, prefix_cache=cache)
    shared = cache.prefix
    assert len(shared) > 20  # system prompt + instruction
    second = greedy_generate(model, tokenizer, prompts[4:], max_new_tokens=8, prefix_cache=cache)
    assert cache.prefix == shared  # reused, not recomputed for a longer common prefix
    fresh = greedy_generate(model, tokenizer, prompts, max_new_tokens=8)
    assert [g.token_ids for g in first + second] == [g.token_ids for g in fresh]


def test_head_sees_contiguous_rows_when_weights_are_frozen(tiny, cases):
    # A frozen head weight with a strided (batch, 1, hidden) input makes `torch.matmul` copy
    # the whole head per row (a batched bmm); the last-position index must hand it a copy.
    from radonc_llm.infer.generate import run_prompts

    model, tokenizer = tiny
    seen = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda module, inputs, output: seen.append(inputs[0])
    )
    frozen = [p for p in model.parameters() if p.requires_grad]
    try:
        for parameter in frozen:
            parameter.requires_grad_(False)
        state = run_prompts(model, _prompts(tokenizer, cases[:4]), pad_id=0)
    finally:
        hook.remove()
        for parameter in frozen:
            parameter.requires_grad_(True)
    assert state.logits.shape[0] == 4
    assert [tuple(h.shape[:2]) for h in seen] == [(1, 1), (4, 1)]  # prefix, then the batch
    assert all(h.is_contiguous() for h in seen)
