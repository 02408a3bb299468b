"""Resuming is keyed by what changes the weights: the settings and the task files' contents, not
where the task folders or the model lie. A refusal names the setting or the file that changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.config import load_train_config
from radonc_llm.errors import RadoncInputError
from radonc_llm.train.loop import _config_hash, _model_identity, _older_config_hash, train

from .conftest import write_task_dir

SETTINGS = {
    "model": "tiny-llama",
    "micro_batch_size": 4,
    "max_steps": 4,
    "learning_rate": 1e-2,
    "lora_rank": 4,
    "lora_alpha": 8,
    "precision": "fp32",
    "checkpoint_every_steps": 2,
    "log_every_steps": 1,
}


def _write_config(project: Path, **fields) -> Path:
    """A config in `project` whose folders are absolute paths inside it (the user's way)."""
    settings = {
        **SETTINGS,
        "train_dir": str(project / "tasks" / "train"),
        "val_dir": str(project / "tasks" / "val"),
        "output_dir": str(project / "run"),
        **fields,
    }
    path = project / "train.yaml"
    path.write_text("# radonc-llm train train.yaml\n" + yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="module")
def stopped_project(tmp_path_factory) -> Path:
    """A project folder whose run was killed after its step-2 checkpoint (of 4 steps)."""
    project = tmp_path_factory.mktemp("stopped") / "project"
    write_task_dir(project / "tasks" / "train", 8)
    write_task_dir(project / "tasks" / "val", 2, offset=100)
    config = load_train_config(_write_config(project))
    assert train(config, stop_after_steps=2, show_progress=False)["status"] == "stopped"
    return project


@pytest.fixture
def moved(stopped_project, tmp_path) -> Path:
    """The stopped project, moved (copied) to another folder, its config rewritten there."""
    project = tmp_path / "renamed project"
    shutil.copytree(stopped_project, project)
    _write_config(project)
    return project


def test_a_moved_project_resumes_from_its_checkpoint(moved):
    result = train(load_train_config(moved / "train.yaml"), resume=True, show_progress=False)
    assert result["status"] == "finished" and result["steps"] == 4
    steps = [json.loads(line)["step"] for line in (moved / "run" / "metrics.jsonl").open()]
    assert steps[0] == 1 and steps.count(1) == 1  # continued at step 3, not restarted


def test_a_relative_config_resumes_from_another_working_folder(moved, tmp_path, monkeypatch):
    # The run started with absolute folders; now the same data are given relative to another
    # working folder.
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(moved / "tasks", elsewhere / "data")
    monkeypatch.chdir(elsewhere)
    config = load_train_config(_write_config(moved, train_dir="data/train", val_dir="data/val"))
    assert train(config, resume=True, show_progress=False)["steps"] == 4


def test_a_changed_setting_is_named(moved):
    config = load_train_config(_write_config(moved, learning_rate=0.5))
    with pytest.raises(RadoncInputError, match=r"different settings \(learning_rate: 0.01 then"):
        train(config, resume=True, show_progress=False)


def test_a_changed_task_file_is_named_with_both_hashes(moved):
    path = moved / "tasks" / "val" / "icd10.jsonl"
    path.write_text(path.read_text().replace("Patient 100,", "Patient 101,"))
    with pytest.raises(RadoncInputError) as error:
        train(load_train_config(moved / "train.yaml"), resume=True, show_progress=False)
    assert f"{path} (sha256 " in error.value.reason and " now)" in error.value.reason
    assert "regimen.jsonl" not in error.value.reason


def test_dropping_validation_is_a_changed_setting(moved):
    config = load_train_config(_write_config(moved, val_dir=None))
    with pytest.raises(RadoncInputError, match=r"val_dir: '.*tasks/val' then, None now"):
        train(config, resume=True, show_progress=False)


def _as_an_older_checkpoint(project: Path) -> None:
    """Give the run's checkpoint the settings hash of older versions (task folders as written)."""
    state_file = project / "run" / "checkpoints" / "step-000002" / "state.json"
    recorded = json.loads((project / "run" / "manifest.json").read_text())["config"]
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "config_hash": _older_config_hash(recorded)}))


def test_an_older_checkpoint_of_a_moved_project_resumes(stopped_project, moved):
    _as_an_older_checkpoint(moved)  # its manifest still names the folders before the move
    result = train(load_train_config(moved / "train.yaml"), resume=True, show_progress=False)
    assert result["steps"] == 4


def test_an_older_checkpoint_with_another_setting_is_refused_naming_it(moved):
    _as_an_older_checkpoint(moved)
    config = load_train_config(_write_config(moved, lora_rank=8))
    with pytest.raises(RadoncInputError, match=r"different settings \(lora_rank: 4 then, 8 now\)"):
        train(config, resume=True, show_progress=False)


def test_the_cli_refusal_is_one_line_naming_the_run(moved):
    _write_config(moved, seed=3)
    result = CliRunner().invoke(app, ["train", str(moved / "train.yaml"), "--resume"])
    assert result.exit_code == 2
    assert "seed: 0 then, 3 now" in result.output and "Traceback" not in result.output


def _config(train_dir: Path, val_dir: Path | None, **fields):
    from radonc_llm.config import TrainConfig

    return TrainConfig(
        **{"model": "tiny-llama", "train_dir": train_dir, "val_dir": val_dir, **fields}
    )


def test_the_settings_hash_ignores_where_the_data_lie_but_not_what_changes_the_run(tmp_path):
    first = write_task_dir(tmp_path / "a" / "train", 4)
    second = write_task_dir(tmp_path / "b" / "train", 4)
    val = write_task_dir(tmp_path / "val", 2, offset=10)
    assert _config_hash(_config(first, val)) == _config_hash(_config(second, val))
    assert _config_hash(_config(first, val)) == _config_hash(
        _config(first, val, output_dir="elsewhere", log_every_steps=3)
    )
    assert _config_hash(_config(first, val)) != _config_hash(_config(first, None))
    assert _config_hash(_config(first, val)) != _config_hash(_config(first, val, lora_rank=8))


def test_a_local_model_is_known_by_its_files_not_its_place(tmp_path):
    model = tmp_path / "models" / "mine"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "model.safetensors").write_bytes(b"weights")
    copy = tmp_path / "moved" / "theirs"
    shutil.copytree(model, copy)
    assert _model_identity(str(model)) == _model_identity(str(copy))
    (copy / "model.safetensors").write_bytes(b"other weights")
    assert _model_identity(str(model)) != _model_identity(str(copy))
    assert _model_identity("tiny-llama") == "tiny-llama"
