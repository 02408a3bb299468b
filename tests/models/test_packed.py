"""Linear layers packed once for oneDNN: the same answers as `nn.Linear`, in place."""

from __future__ import annotations

import pytest
import torch

from radonc_llm.infer.backends import TransformersBackend
from radonc_llm.models.packed import PackedLinear, pack_linears
from radonc_llm.models.registry import load_model


def _linear(dtype: torch.dtype, *, bias: bool) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(96, 160, bias=bias).to(dtype)


@pytest.mark.parametrize("bias", [True, False])
def test_a_packed_bf16_layer_gives_exactly_what_nn_linear_gives(bias):
    linear = _linear(torch.bfloat16, bias=bias)
    packed = PackedLinear(linear)
    for shape in [(1, 96), (7, 96), (3, 5, 96)]:
        x = torch.randn(shape).bfloat16()
        assert torch.equal(packed(x), linear(x)), shape
    # A strided view, as the LM head gets it for the last position of each row: `nn.Linear`
    # then adds a bias after rounding the product, the packed layer before.
    last = torch.randn(4, 6, 96).bfloat16()[:, -1:]
    if bias:
        torch.testing.assert_close(packed(last), linear(last), rtol=2e-2, atol=2e-2)
    else:
        assert torch.equal(packed(last), linear(last))


def test_a_packed_fp32_layer_is_close_and_a_row_does_not_depend_on_its_batch():
    linear = _linear(torch.float32, bias=True)
    packed = PackedLinear(linear)
    x = torch.randn(40, 96)
    whole = packed(x)
    torch.testing.assert_close(whole, linear(x), rtol=1e-5, atol=1e-5)
    for start, stop in [(0, 1), (3, 4), (5, 21), (39, 40)]:
        assert torch.equal(packed(x[start:stop]), whole[start:stop])


def test_pack_linears_replaces_every_linear_and_keeps_the_model_s_answers():
    model, _ = load_model("tiny-llama", dtype=torch.bfloat16)
    reference, _ = load_model("tiny-llama", dtype=torch.bfloat16)
    reference.load_state_dict(model.state_dict())
    linears = sum(type(m) is torch.nn.Linear for m in model.modules())

    assert pack_linears(model) == linears > 0
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    ids = torch.randint(0, model.config.vocab_size, (3, 11))
    with torch.inference_mode():
        assert torch.equal(model(input_ids=ids).logits, reference(input_ids=ids).logits)
    # The tied input embedding keeps its weight; the packed head is a copy of it.
    assert model.get_input_embeddings().weight.shape[0] == model.config.vocab_size


def test_a_model_in_another_dtype_is_left_as_it_is():
    model, _ = load_model("tiny-llama", dtype=torch.float64)
    assert pack_linears(model) == 0
    assert any(type(m) is torch.nn.Linear for m in model.modules())


def test_the_backend_packs_unless_told_not_to():
    model, tokenizer = load_model("tiny-llama", dtype=torch.bfloat16)
    plain = TransformersBackend(model, tokenizer, model_name="tiny", pack_weights=False)
    assert any(type(m) is torch.nn.Linear for m in plain.model.modules())
    packed = TransformersBackend(model, tokenizer, model_name="tiny")
    assert not any(type(m) is torch.nn.Linear for m in packed.model.modules())
    assert any(isinstance(m, PackedLinear) for m in packed.model.modules())
