"""`radonc-llm export RUN --out DIR` with what users really pass: `~` paths, a folder of runs, a
run whose base model moved, an output that cannot be written or fills the disk. Each fails with
one line naming the path and the fix, and leaves no output folder and no temporary folder."""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from safetensors.torch import load_file

from radonc_llm.errors import RadoncInputError
from radonc_llm.models.lora import add_lora
from radonc_llm.models.registry import LLAMA_LORA_TARGETS, load_model
from radonc_llm.train.export import export_run


@pytest.fixture(scope="module")
def base_and_run(tmp_path_factory):
    """A base model folder and a finished run on it (manifest naming the folder, adapter)."""
    root = tmp_path_factory.mktemp("export")
    model, tokenizer = load_model("tiny-llama")
    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    run = root / "runs" / "run"
    peft_model = add_lora(model, rank=4, alpha=8, dropout=0.0, target_modules=LLAMA_LORA_TARGETS)
    peft_model.save_pretrained(run / "adapter")
    manifest = {"kind": "train", "status": "finished", "config": {"model": str(base)}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return base, run


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_home_relative_run_and_output_are_expanded(base_and_run, tmp_path, monkeypatch):
    _, run = base_and_run
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(run, tmp_path / "run")
    out = export_run("~/run/", "~/adapter-out/", merge=False)
    assert out == tmp_path / "adapter-out"
    assert (
        load_file(out / "adapter_model.safetensors").keys()
        == load_file(run / "adapter" / "adapter_model.safetensors").keys()
    )
    assert not (Path.cwd() / "~").exists()


def test_a_folder_of_runs_names_the_runs_in_it(base_and_run, tmp_path):
    _, run = base_and_run
    with pytest.raises(RadoncInputError, match="a folder of training runs") as info:
        export_run(run.parent, tmp_path / "out")
    assert str(run) in info.value.reason
    assert not (tmp_path / "out").exists()


def test_a_run_whose_base_moved_is_named_and_nothing_is_written(base_and_run, tmp_path):
    base, run = base_and_run
    moved_base = tmp_path / "base"
    shutil.copytree(base, moved_base)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["config"]["model"] = str(moved_base)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    moved_base.rename(tmp_path / "base_old")
    with pytest.raises(RadoncInputError, match="base model .* is not there any more") as info:
        export_run(copy, tmp_path / "merged", merge=True)
    assert (info.value.file, info.value.field) == (str(copy / "manifest.json"), "config.model")
    assert "base_old" in info.value.reason  # did you mean
    assert not (tmp_path / "merged").exists() and leftovers(tmp_path) == []


def test_an_output_that_cannot_be_written_is_named(base_and_run, tmp_path, monkeypatch):
    _, run = base_and_run
    out = tmp_path / "read-only" / "merged"

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    with pytest.raises(RadoncInputError, match="cannot write the output folder here") as info:
        export_run(run, out, merge=False)
    assert info.value.file == str(out)
    assert "Permission denied" in info.value.reason


def test_an_output_under_a_file_is_named(base_and_run, tmp_path):
    _, run = base_and_run
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RadoncInputError, match="cannot write the output folder here") as info:
        export_run(run, tmp_path / "afile" / "merged", merge=False)
    assert info.value.file == str(tmp_path / "afile" / "merged")


def test_a_full_disk_mid_export_leaves_nothing(base_and_run, tmp_path, monkeypatch):
    _, run = base_and_run

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".out.x.tmp"))

    monkeypatch.setattr(shutil, "copytree", disk_full)
    with pytest.raises(RadoncInputError, match="No space left on device.*nothing was written"):
        export_run(run, tmp_path / "out", merge=False)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_the_run_folder_itself_or_a_full_folder_is_refused(base_and_run, tmp_path):
    base, run = base_and_run
    with pytest.raises(RadoncInputError, match="inside the run folder"):
        export_run(run, run, merge=False)
    with pytest.raises(RadoncInputError, match="exists and is not empty"):
        export_run(run, base, merge=False)
    assert sorted(p.name for p in run.iterdir()) == ["adapter", "manifest.json"]


def test_a_merged_export_loads_back_as_a_model_folder(base_and_run, tmp_path):
    _, run = base_and_run
    merged = export_run(run, tmp_path / "merged", merge=True)
    model, tokenizer = load_model(str(merged))
    assert not hasattr(model, "merge_and_unload") and tokenizer.chat_template
    assert (merged / "training_manifest.json").is_file() and leftovers(tmp_path) == []
