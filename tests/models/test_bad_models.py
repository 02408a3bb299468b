"""`load_model` (what `radonc-llm predict --model` and `export` use) on damaged run folders,
damaged model folders and mistyped names: a message naming the file, never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest

from radonc_llm.errors import RadoncInputError
from radonc_llm.models.lora import add_lora
from radonc_llm.models.registry import LLAMA_LORA_TARGETS, load_model, resolve_model


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A run folder as training leaves it: manifest naming the base, adapter in PEFT format."""
    run = tmp_path_factory.mktemp("runs") / "run"
    model, _ = load_model("tiny-llama")
    peft_model = add_lora(model, rank=4, alpha=8, dropout=0.0, target_modules=LLAMA_LORA_TARGETS)
    peft_model.save_pretrained(run / "adapter")
    manifest = {"kind": "train", "status": "finished", "config": {"model": "tiny-llama"}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory, tiny_model_folder):
    """A model folder as `radonc-llm export --merge` writes it."""
    folder = shutil.copytree(tiny_model_folder, tmp_path_factory.mktemp("models") / "merged")
    (folder / "training_manifest.json").write_text("{}")
    return folder


def damaged_copy(source, tmp_path, damage):
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    damage(copy)
    return copy


def cut(path, keep=2000):
    path.write_bytes(path.read_bytes()[:keep])


def test_the_undamaged_run_and_folder_load(good_run, good_folder):
    assert hasattr(load_model(str(good_run))[0], "merge_and_unload")
    assert load_model(str(good_folder))[0].config.model_type == "llama"


@pytest.mark.parametrize(
    "damage,named,reason",
    [
        (
            lambda run: cut(run / "adapter" / "adapter_model.safetensors"),
            "adapter/adapter_model.safetensors",
            "cut short or damaged",
        ),
        (
            lambda run: (run / "adapter" / "adapter_model.safetensors").unlink(),
            "adapter/adapter_model.safetensors",
            "has no weights",
        ),
        (
            lambda run: (run / "adapter" / "adapter_config.json").write_text('{"r": 4,'),
            "adapter/adapter_config.json",
            "not valid JSON",
        ),
        (
            lambda run: (run / "adapter" / "adapter_config.json").write_text(
                (run / "adapter" / "adapter_config.json").read_text().replace('"r": 4', '"r": 8')
            ),
            "adapter",
            "size mismatch",
        ),
    ],
)
def test_a_damaged_run_adapter_is_named(good_run, tmp_path, damage, named, reason):
    run = damaged_copy(good_run, tmp_path, damage)
    with pytest.raises(RadoncInputError, match=reason) as info:
        load_model(str(run))
    assert info.value.file == str(run / named)
    assert "\n" not in info.value.message  # one line, not PyTorch's list of every tensor


def test_a_run_stopped_before_its_adapter_says_so(good_run, tmp_path):
    def stopped(run):
        shutil.rmtree(run / "adapter")
        (run / "checkpoints" / "step-000002").mkdir(parents=True)
        manifest = json.loads((run / "manifest.json").read_text())
        (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))

    run = damaged_copy(good_run, tmp_path, stopped)
    with pytest.raises(RadoncInputError, match="without an adapter yet \\(status 'running'\\)"):
        load_model(str(run))


@pytest.mark.parametrize(
    "damage,named,reason",
    [
        (lambda folder: (folder / "config.json").unlink(), "", "without config.json"),
        (lambda folder: (folder / "config.json").write_text("{"), "config.json", "not valid JSON"),
        (
            lambda folder: [p.unlink() for p in folder.glob("tokenizer*")],
            "",
            "no tokenizer in the model folder",
        ),
        (
            lambda folder: cut(folder / "model.safetensors", 5000),
            "model.safetensors",
            "cut short or damaged",
        ),
        (lambda folder: (folder / "model.safetensors").unlink(), "", "no weights in the model"),
    ],
)
def test_a_damaged_model_folder_is_named(good_folder, tmp_path, damage, named, reason):
    folder = damaged_copy(good_folder, tmp_path, damage)
    with pytest.raises(RadoncInputError, match=reason) as info:
        load_model(str(folder))
    assert info.value.file == str(folder / named if named else folder)
    assert "Hugging Face cache" not in info.value.reason  # a local folder, not a download


@pytest.mark.parametrize(
    "typed,meant",
    [
        ("tiny-lama", "tiny-llama"),
        ("Tiny-Llama", "tiny-llama"),
        ("smollm2", "smollm2-135m"),
        ("llama2_7b", "llama2-7b"),
    ],
)
def test_a_mistyped_registry_name_suggests_the_close_one(typed, meant):
    with pytest.raises(RadoncInputError, match=f"did you mean '{meant}'"):
        resolve_model(typed)


def test_a_mistyped_folder_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "runs" / "base").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RadoncInputError, match="no such folder.*did you mean 'runs/base'"):
        resolve_model("runs/bsae")
    # An owner/name whose owner is no folder here stays a hub id.
    assert resolve_model("meta-llama/Llama-2-7b-chat-hf").source == "hub"
