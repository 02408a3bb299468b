"""A training run whose manifest names its base model by a relative path (older runs, trained
with `model: ./models/my-llama`) loads from any working folder: the path is tried from the
working folder, then from each folder above the run; where it is found nowhere, the error names
every place tried."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from radonc_llm.errors import RadoncInputError
from radonc_llm.models.lora import add_lora
from radonc_llm.models.registry import LLAMA_LORA_TARGETS, base_model_of, load_model
from radonc_llm.train.export import export_run
from radonc_llm.train.manifest import base_model_record


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_folder):
    """project/models/my-llama (a base folder) and project/runs/ft, trained on it, whose
    manifest records the base as the config wrote it: ./models/my-llama."""
    root = tmp_path_factory.mktemp("project")
    base = root / "models" / "my-llama"
    shutil.copytree(tiny_model_folder, base)
    model, _ = load_model(str(base))
    run = root / "runs" / "ft"
    peft_model = add_lora(model, rank=4, alpha=8, dropout=0.0, target_modules=LLAMA_LORA_TARGETS)
    torch.manual_seed(0)
    for name, weight in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight)  # a trained adapter changes the outputs
    peft_model.save_pretrained(run / "adapter")
    manifest = {"kind": "train", "status": "finished", "config": {"model": "./models/my-llama"}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return root, base, run


def _manifest(run: Path, **fields) -> Path:
    copy = run.parent / f"{run.name}-{len(list(run.parent.iterdir()))}"
    shutil.copytree(run, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest.update(fields)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_an_older_run_with_a_relative_base_loads_from_another_folder(
    project, tmp_path, monkeypatch
):
    root, base, run = project
    monkeypatch.chdir(tmp_path)  # not the project folder: ./models/my-llama is not here
    assert base_model_of(run) == str(base)
    model, _ = load_model(str(run))
    assert any("lora_A" in name for name, _ in model.named_parameters())


def test_the_working_folder_is_tried_before_the_folders_above_the_run(
    project, tmp_path, monkeypatch
):
    _, _, run = project
    here = tmp_path / "models" / "my-llama"
    here.mkdir(parents=True)
    (here / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert base_model_of(run) == str(here)


def test_a_relative_base_found_nowhere_names_every_place_tried(project, tmp_path, monkeypatch):
    _, _, run = project
    lost = _manifest(run, config={"model": "./models/lost-llama"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RadoncInputError, match="is not there any more") as info:
        base_model_of(lost)
    assert (info.value.file, info.value.field) == (str(lost / "manifest.json"), "config.model")
    for place in (tmp_path, lost.parent, lost.parent.parent):
        assert str(place / "models" / "lost-llama") in info.value.reason
    with pytest.raises(RadoncInputError, match="looked for"):
        export_run(lost, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_a_moved_project_finds_its_base_by_the_path_the_config_wrote(
    project, tmp_path, monkeypatch
):
    """The absolute path recorded at training time is gone (the project moved); the path as
    written, beside the run's folders, still finds it."""
    _, base, run = project
    moved = _manifest(
        run, config={"model": str(tmp_path / "old-place" / "my-llama")},
        model_as_written="./models/my-llama",
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert base_model_of(moved) == str(base)


def test_an_owner_name_found_nowhere_stays_a_hub_id(project, tmp_path, monkeypatch):
    _, _, run = project
    hub = _manifest(run, config={"model": "radonc-test/base"})
    monkeypatch.chdir(tmp_path)
    assert base_model_of(hub) == "radonc-test/base"


def test_export_of_an_older_run_from_another_folder_merges_it(project, tmp_path, monkeypatch):
    _, _, run = project
    monkeypatch.chdir(tmp_path)
    out = export_run(run, tmp_path / "merged", merge=True)
    assert (out / "config.json").is_file() and (out / "training_manifest.json").is_file()


def test_what_training_records_finds_the_base_after_the_project_moves(
    project, tmp_path, monkeypatch
):
    root, _, run = project
    monkeypatch.chdir(root)
    record = base_model_record("./models/my-llama")
    assert record == {
        "model": str(root / "models" / "my-llama"),
        "model_as_written": "./models/my-llama",
    }
    moved_root = tmp_path / "moved"
    shutil.copytree(root / "models", moved_root / "models")
    shutil.copytree(run, moved_root / "runs" / "ft")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["model"] = record["model"]
    text = json.dumps({**manifest, **record})
    (moved_root / "runs" / "ft" / "manifest.json").write_text(text)
    monkeypatch.chdir(tmp_path)
    # The recorded absolute path still exists (the old project is there): it wins.
    assert base_model_of(moved_root / "runs" / "ft") == str(root / "models" / "my-llama")
    gone = json.loads(text)
    gone["config"]["model"] = str(tmp_path / "deleted" / "models" / "my-llama")
    (moved_root / "runs" / "ft" / "manifest.json").write_text(json.dumps(gone))
    assert base_model_of(moved_root / "runs" / "ft") == str(moved_root / "models" / "my-llama")
