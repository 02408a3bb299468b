import pytest
import torch

from radonc_llm.errors import RadoncInputError
from radonc_llm.models.registry import MODEL_REGISTRY, load_model, resolve_model


def test_registry_names_resolve_to_their_specs():
    assert resolve_model("smollm2-135m").source == "gguf"
    assert resolve_model("llama2-7b").hub_id == "meta-llama/Llama-2-7b-chat-hf"
    assert resolve_model("mistral-7b").architecture == "mistral"
    for name in ("llama2-7b", "mistral-7b"):
        assert "down_proj" in MODEL_REGISTRY[name].lora.target_modules


def test_unknown_name_fails_clearly():
    with pytest.raises(RadoncInputError, match="unknown model 'gpt-17'"):
        resolve_model("gpt-17")


def test_folder_that_is_not_a_model_fails_naming_it(tmp_path):
    with pytest.raises(RadoncInputError, match="not a model") as info:
        resolve_model(str(tmp_path))
    assert info.value.file == str(tmp_path)


@pytest.mark.parametrize(
    "name,cls", [("tiny-llama", "LlamaForCausalLM"), ("tiny-mistral", "MistralForCausalLM")]
)
def test_tiny_models_are_small_deterministic_and_chat_ready(name, cls):
    model_a, tokenizer = load_model(name)
    model_b, _ = load_model(name)
    assert type(model_a).__name__ == cls
    assert model_a.config.num_hidden_layers == 2 and model_a.config.hidden_size == 64
    for (key, a), (_, b) in zip(
        model_a.state_dict().items(), model_b.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), key
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    prompt = tokenizer.apply_chat_template(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert prompt.endswith("<|im_start|>assistant\n")


def test_tiny_model_does_not_move_the_callers_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model("tiny-llama")
    assert torch.equal(torch.rand(3), expected)


def test_saved_folder_loads_back_with_same_weights(tmp_path):
    model, tokenizer = load_model("tiny-llama")
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    assert resolve_model(str(tmp_path / "m")).source == "local"
    loaded, _ = load_model(str(tmp_path / "m"))
    weight = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(loaded.state_dict()[weight], model.state_dict()[weight])


def test_absent_hub_model_fails_offline_without_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RadoncInputError, match="HF_HUB_OFFLINE"):
        load_model("radonc-llm-test/does-not-exist")


@pytest.mark.slow
def test_embedded_smollm2_loads_as_plain_trainable_model():
    model, tokenizer = load_model("smollm2-135m")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert getattr(model, "hf_quantizer", None) is None
    assert getattr(model.config, "quantization_config", None) is None
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert tokenizer.eos_token == "<|im_end|>"


def test_lora_on_a_module_the_model_lacks_names_the_field():
    from radonc_llm.models.lora import add_lora

    model, _ = load_model("tiny-llama")
    with pytest.raises(RadoncInputError, match="lora_target_modules.*no module named"):
        add_lora(model, rank=4, alpha=8, dropout=0.0, target_modules=["q_prj"])
