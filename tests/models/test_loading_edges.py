"""What users pass to `--model` beyond the happy path: hub ids with no internet (cached or not),
model folders missing a piece, GGUF files, `~` and trailing slashes, runs whose base moved or
whose adapter belongs to another base. Each fails with one line naming the path and the fix, or
loads the model asked for, never another."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from radonc_llm.errors import RadoncInputError
from radonc_llm.models import registry
from radonc_llm.models.lora import add_lora
from radonc_llm.models.registry import (
    LLAMA_LORA_TARGETS,
    ensure_gguf_cache,
    ensure_smollm2_cache,
    load_model,
    resolve_model,
    smollm2_gguf_path,
)

WEIGHT = "model.layers.0.self_attn.q_proj.weight"
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def tiny(tiny_model_folder):
    return tiny_model_folder


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "sharded"
    model, tokenizer = load_model("tiny-llama")
    model.save_pretrained(folder, max_shard_size="300KB")
    tokenizer.save_pretrained(folder)
    assert len(list(folder.glob("model-*.safetensors"))) >= 2
    return folder


def copy_of(folder: Path, tmp_path: Path, name: str | None = None) -> Path:
    copy = tmp_path / (name or folder.name)
    shutil.copytree(folder, copy)
    return copy


def one_line(exc: RadoncInputError) -> str:
    assert "\n" not in exc.message and "Traceback" not in exc.message
    return exc.message


# -- the hub, without internet -----------------------------------------------------------------


@pytest.fixture
def no_internet(monkeypatch, tmp_path):
    """An empty Hugging Face cache and a hub that refuses connections; downloads would fail."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download (transformers retries for a minute per file)")

    monkeypatch.setattr(registry, "_load_pretrained", no_download)
    return cache


def put_in_cache(cache: Path, hub_id: str, folder: Path) -> Path:
    """The layout `hf download` leaves: refs/main naming a snapshot folder of the files."""
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    snapshot = repo / "snapshots" / SNAPSHOT
    shutil.copytree(folder, snapshot)
    return snapshot


def test_an_uncached_hub_id_offline_fails_at_once_saying_what_to_do(no_internet):
    with pytest.raises(RadoncInputError) as info:
        load_model("radonc-test/not-cached")
    message = one_line(info.value)
    assert "not in the local Hugging Face cache" in message
    assert "cannot be reached" in message and "offline" in message
    assert "--model /path/to/folder" in message  # the fix: a local folder
    assert str(no_internet) in message  # where a copied cache must go


def test_a_registry_hub_model_offline_names_its_hub_id(no_internet):
    with pytest.raises(RadoncInputError, match="'meta-llama/Llama-2-7b-chat-hf'.*offline"):
        load_model("llama2-7b")


def test_a_hub_id_in_the_local_cache_loads_without_the_network(no_internet, tiny):
    put_in_cache(no_internet, "radonc-test/tiny", tiny)
    model, tokenizer = load_model("radonc-test/tiny")
    expected, _ = load_model("tiny-llama")
    assert torch.equal(model.state_dict()[WEIGHT], expected.state_dict()[WEIGHT])
    assert tokenizer.chat_template


def test_a_hub_model_only_partly_cached_offline_says_what_is_missing(no_internet, tiny, tmp_path):
    partial = copy_of(tiny, tmp_path)
    (partial / "model.safetensors").unlink()  # an interrupted download
    put_in_cache(no_internet, "radonc-test/partial", partial)
    with pytest.raises(RadoncInputError) as info:
        load_model("radonc-test/partial")
    message = one_line(info.value)
    assert "copy in the local Hugging Face cache is not whole" in message
    assert "no weights" in message and "offline" in message


def test_hf_hub_offline_refuses_before_asking_the_hub(no_internet, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(
        registry, "_hub_unreachable", lambda endpoint: pytest.fail("asked the hub while offline")
    )
    with pytest.raises(RadoncInputError, match="HF_HUB_OFFLINE forbids downloads"):
        load_model("radonc-test/not-cached")


# -- model folders missing a piece -----------------------------------------------------------


def test_a_sharded_folder_loads_and_a_missing_shard_is_named(sharded, tmp_path):
    expected, _ = load_model("tiny-llama")
    assert torch.equal(
        load_model(str(sharded))[0].state_dict()[WEIGHT], expected.state_dict()[WEIGHT]
    )
    folder = copy_of(sharded, tmp_path)
    shard = sorted(folder.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(
        RadoncInputError, match="missing: a shard that model.safetensors.index.json"
    ):
        load_model(str(folder))


def test_a_cut_shard_is_named(sharded, tmp_path):
    folder = copy_of(sharded, tmp_path)
    shard = sorted(folder.glob("model-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:-1000])
    with pytest.raises(RadoncInputError, match="cut short or damaged") as info:
        load_model(str(folder))
    assert info.value.file == str(shard)


def test_a_folder_without_weights_lists_what_it_looked_for(tiny, tmp_path):
    folder = copy_of(tiny, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(RadoncInputError, match="no weights in the model folder") as info:
        load_model(str(folder))
    assert info.value.file == str(folder)
    assert "model.safetensors" in info.value.reason and "pytorch_model.bin" in info.value.reason


def test_a_pytorch_bin_folder_loads_and_a_cut_one_is_named(tiny, tmp_path):
    from safetensors.torch import load_file

    folder = copy_of(tiny, tmp_path)
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")
    assert torch.equal(load_model(str(folder))[0].state_dict()[WEIGHT], weights[WEIGHT])
    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(RadoncInputError, match="cannot load the model") as info:
        load_model(str(folder))
    assert info.value.file == str(folder)
    one_line(info.value)


def test_a_tokenizer_without_a_chat_template_is_refused_naming_the_fix(tiny, tmp_path):
    folder = copy_of(tiny, tmp_path)
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(RadoncInputError, match="no chat template") as info:
        load_model(str(folder))
    assert info.value.file == str(folder)
    assert "copy chat_template.jinja" in info.value.reason


def test_a_mistyped_architecture_is_named_with_the_close_one(tiny, tmp_path):
    folder = copy_of(tiny, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llamma"}))
    with pytest.raises(RadoncInputError, match="did you mean 'llama'") as info:
        load_model(str(folder))
    assert info.value.file == str(folder / "config.json")
    assert info.value.field == "model_type"


def test_the_partial_folder_of_a_killed_export_says_so(tiny, tmp_path):
    partial = copy_of(tiny, tmp_path, ".merged.a1b2c3d4.tmp")
    with pytest.raises(RadoncInputError, match="partial folder .* killed") as info:
        load_model(str(partial))
    assert "export" in info.value.reason


# -- paths as users type them ----------------------------------------------------------------


def test_a_home_relative_path_and_a_trailing_slash_load_the_folder(tiny, monkeypatch):
    monkeypatch.setenv("HOME", str(tiny.parent))
    for typed in (f"~/{tiny.name}", f"~/{tiny.name}/", f"{tiny}/"):
        spec = resolve_model(typed)
        assert (spec.source, spec.path) == ("local", tiny), typed
    model, _ = load_model(f"~/{tiny.name}/")
    assert model.config.hidden_size == 64


def test_a_file_inside_a_model_folder_points_to_the_folder(tiny):
    with pytest.raises(RadoncInputError, match=f"pass the folder {tiny}$"):
        resolve_model(str(tiny / "model.safetensors"))


def test_a_gguf_file_is_a_model_and_a_broken_one_is_named(tmp_path):
    embedded = smollm2_gguf_path()
    assert resolve_model(str(embedded)).source == "gguf"
    # The embedded GGUF given by path shares the registry name's converted copy.
    assert ensure_gguf_cache(embedded) == ensure_smollm2_cache()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(embedded.read_bytes()[:100_000])
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a gguf")
    for broken in (cut, fake):
        with pytest.raises(RadoncInputError, match="cannot read this GGUF file") as info:
            load_model(str(broken))
        assert info.value.file == str(broken)
        one_line(info.value)


# -- training runs ---------------------------------------------------------------------------


def make_run(run: Path, base: str, model) -> Path:
    peft_model = add_lora(model, rank=4, alpha=8, dropout=0.0, target_modules=LLAMA_LORA_TARGETS)
    peft_model.save_pretrained(run / "adapter")
    manifest = {"kind": "train", "status": "finished", "config": {"model": base}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_a_run_whose_base_folder_moved_names_the_manifest_and_the_fix(tiny, tmp_path):
    base = copy_of(tiny, tmp_path, "base")
    run = make_run(tmp_path / "run", str(base), load_model(str(base))[0])
    base.rename(tmp_path / "base-moved")
    with pytest.raises(RadoncInputError, match="is not there any more") as info:
        load_model(str(run))
    assert info.value.file == str(run / "manifest.json")
    assert info.value.field == "config.model"
    assert "put it back, or write its new place" in info.value.reason


def test_a_run_whose_hub_base_is_not_cached_offline_names_the_run(tiny, tmp_path, no_internet):
    run = make_run(tmp_path / "run", "radonc-test/base", load_model("tiny-llama")[0])
    with pytest.raises(RadoncInputError, match="cannot load the run's base model.*offline") as info:
        load_model(str(run))
    assert info.value.file == str(run / "manifest.json")


def test_an_adapter_of_another_base_names_both_and_the_shapes(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    narrower = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    run = make_run(tmp_path / "run", "tiny-llama", narrower)
    config_file = run / "adapter" / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "base_model_name_or_path": "other/base"}))
    with pytest.raises(RadoncInputError, match="size mismatch") as info:
        load_model(str(run))
    message = one_line(info.value)
    assert "trained on 'other/base'" in message and "base model 'tiny-llama'" in message
    assert "[4, 32]" in message and "[4, 64]" in message
    assert info.value.file == str(run / "adapter")


def test_a_run_killed_before_its_first_checkpoint_says_start_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    manifest = {"kind": "train", "status": "running", "config": {"model": "tiny-llama"}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RadoncInputError, match="before its first checkpoint; start it again"):
        load_model(str(run))
    (run / "manifest.json").write_text(json.dumps({"kind": "predict"}))  # not a training run
    with pytest.raises(RadoncInputError, match="not a model: expected"):
        load_model(str(run))


def test_a_hub_id_copied_with_a_trailing_slash_is_the_same_id():
    spec = resolve_model("meta-llama/Llama-2-7b-chat-hf/")
    assert (spec.source, spec.hub_id) == ("hub", "meta-llama/Llama-2-7b-chat-hf")
