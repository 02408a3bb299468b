"""Grouped attention (eager and fused) computes what transformers' eager attention computes."""

from __future__ import annotations

import pytest
import torch

from radonc_llm.infer.generate import PrefixCache, chat_prompt_ids, greedy_generate
from radonc_llm.models.attention import (
    FUSED_NAME,
    NAME,
    fused_grouped_attention_forward,
    grouped_attention_forward,
    use_grouped_attention,
)
from radonc_llm.models.registry import load_model
from radonc_llm.tasks.prompts import prompt_messages


class _Module(torch.nn.Module):
    pass


def _eager(query, key, value, mask, scaling):
    from transformers.models.llama.modeling_llama import eager_attention_forward

    module = _Module()
    module.num_key_value_groups = query.shape[1] // key.shape[1]
    return eager_attention_forward(module, query, key, value, mask, scaling)


@pytest.mark.parametrize("mask_heads", [None, 1, 6])
def test_matches_eager_with_and_without_a_mask(mask_heads):
    generator = torch.Generator().manual_seed(0)
    batch, heads, kv_heads, q_len, kv_len, dim = 3, 6, 2, 5, 9, 8
    query = torch.randn(batch, heads, q_len, dim, generator=generator, dtype=torch.float64)
    key = torch.randn(batch, kv_heads, kv_len, dim, generator=generator, dtype=torch.float64)
    value = torch.randn(batch, kv_heads, kv_len, dim, generator=generator, dtype=torch.float64)
    mask = None
    if mask_heads is not None:
        hidden = torch.rand(batch, mask_heads, q_len, kv_len, generator=generator) < 0.3
        hidden[..., 0] = False  # every query sees something
        mask = torch.zeros(hidden.shape, dtype=torch.float64).masked_fill(hidden, -1e9)
    expected, expected_weights = _eager(query, key, value, mask, 0.35)
    output, weights = grouped_attention_forward(_Module(), query, key, value, mask, 0.35)
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(weights, expected_weights)
    fused, no_weights = fused_grouped_attention_forward(_Module(), query, key, value, mask, 0.35)
    torch.testing.assert_close(fused, expected)
    assert no_weights is None


def test_fused_rows_that_see_nothing_match_eager():
    """Left padding: a pad position's query sees no key at all; eager's additive mask gives
    it uniform weights, and the fused kernel must give the same (not NaN)."""
    generator = torch.Generator().manual_seed(3)
    query = torch.randn(2, 4, 6, 8, generator=generator)
    key, value = (torch.randn(2, 2, 6, 8, generator=generator) for _ in range(2))
    hidden = torch.ones(6, 6, dtype=torch.bool).triu(1).expand(2, 1, 6, 6).clone()
    hidden[1, :, :, :3] = True  # row 1 is left-padded by three tokens
    mask = torch.zeros(hidden.shape).masked_fill(hidden, torch.finfo(torch.float32).min)
    expected, _ = _eager(query, key, value, mask, 0.3)
    fused, _ = fused_grouped_attention_forward(_Module(), query, key, value, mask, 0.3)
    assert not fused.isnan().any()
    torch.testing.assert_close(fused, expected)


def test_gradients_match_eager():
    generator = torch.Generator().manual_seed(1)
    shapes = [(2, 4, 3, 4), (2, 2, 7, 4), (2, 2, 7, 4)]
    tensors = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    grads = []
    for attend in (lambda q, k, v: _eager(q, k, v, None, 0.5)[0], _grouped):
        leaves = [t.clone().requires_grad_() for t in tensors]
        (attend(*leaves) ** 2).sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    for ours, theirs in zip(*grads, strict=True):
        torch.testing.assert_close(ours, theirs)


def _grouped(query, key, value):
    return grouped_attention_forward(_Module(), query, key, value, None, 0.5)[0]


def test_a_model_generates_the_same_tokens_as_with_eager(tiny, cases):
    model, tokenizer = tiny
    prompts = [
        chat_prompt_ids(tokenizer, prompt_messages("regimen", c.diagnosis_text)) for c in cases
    ]
    model.set_attn_implementation("eager")
    eager = greedy_generate(
        model, tokenizer, prompts, max_new_tokens=12, prefix_cache=PrefixCache()
    )
    for fused, name in ((False, NAME), (True, FUSED_NAME)):
        use_grouped_attention(model, fused=fused)
        try:
            assert model.config._attn_implementation == name
            grouped = greedy_generate(
                model, tokenizer, prompts, max_new_tokens=12, prefix_cache=PrefixCache()
            )
        finally:
            model.set_attn_implementation("eager")
        assert [g.token_ids for g in grouped] == [g.token_ids for g in eager]


def test_training_loss_matches_eager():
    model, _ = load_model("tiny-mistral", dtype=torch.float64)
    ids = torch.randint(
        0, model.config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(2)
    )
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # right padding, as in training batches
    losses = []
    for switch in (lambda m: m.set_attn_implementation("eager"), use_grouped_attention):
        switch(model)
        losses.append(model(input_ids=ids, attention_mask=mask, labels=ids).loss)
    torch.testing.assert_close(losses[0], losses[1])
