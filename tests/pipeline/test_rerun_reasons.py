"""A rerun of `radonc-llm run` after the recipe was edited, a stage folder deleted, or the run
started from another folder: the stages that must run again do, each saying why (which setting,
which input file), and those that need not (a thread count changed) keep their work."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from radonc_llm import pipeline
from radonc_llm.pipeline import Stage, load_study_config, run_stages, study_stages

QUIET = Console(quiet=True)


def _stages(run_dir: Path, source: Path, ran: list[str], *, bootstrap: int = 50) -> list[Stage]:
    """first: source -> first/a.txt; second: first/a.txt -> second/b.txt, with a setting."""

    def first(out: Path) -> None:
        ran.append("first")
        (out / "a.txt").write_text(source.read_text())

    def second(out: Path) -> None:
        ran.append("second")
        (out / "b.txt").write_text((run_dir / "first" / "a.txt").read_text().upper())

    return [
        Stage("first", "first", [source], {}, first, outputs=["a.txt"]),
        Stage("second", "second", [run_dir / "first" / "a.txt"], {"bootstrap": bootstrap},
              second, outputs=["b.txt"]),
    ]  # fmt: skip


def _run(run_dir: Path, stages: list[Stage]) -> str:
    console = Console(record=True, width=300)
    run_stages(run_dir, stages, console=console)
    return console.export_text()


@pytest.fixture
def done(tmp_path):
    source, run_dir, ran = tmp_path / "source.txt", tmp_path / "run", []
    source.write_text("note")
    run_stages(run_dir, _stages(run_dir, source, ran), console=QUIET)
    ran.clear()
    return source, run_dir, ran


def test_a_changed_setting_is_named_with_its_old_and_new_value(done):
    source, run_dir, ran = done
    output = _run(run_dir, _stages(run_dir, source, ran, bootstrap=60))
    assert ran == ["second"]
    assert "second: settings changed (bootstrap: 50 then, 60 now), running it again" in output


def test_a_changed_input_file_is_named(done):
    source, run_dir, ran = done
    source.write_text("other note")
    output = _run(run_dir, _stages(run_dir, source, ran))
    assert ran == ["first", "second"]
    assert f"first: {source} changed, running it again" in output
    assert "second: first/a.txt changed, running it again" in output


def test_a_deleted_stage_folder_says_its_record_is_gone(done):
    source, run_dir, ran = done
    for path in sorted((run_dir / "second").iterdir()):
        path.unlink()
    (run_dir / "second").rmdir()
    output = _run(run_dir, _stages(run_dir, source, ran))
    assert ran == ["second"]
    assert "second: its record second/.stage-second.json is gone or unreadable" in output
    assert (run_dir / "second" / "b.txt").read_text() == "NOTE"


def test_a_record_of_an_older_version_is_completed_and_then_names_changes(done):
    source, run_dir, ran = done
    record_file = run_dir / "second" / ".stage-second.json"
    record = json.loads(record_file.read_text())
    old = {key: record[key] for key in ("input_hash", "status", "seconds", "finished_at")}
    record_file.write_text(json.dumps(old))  # as an older version wrote it
    assert "up to date" in _run(run_dir, _stages(run_dir, source, ran))
    assert ran == [] and json.loads(record_file.read_text())["settings"] == {"bootstrap": 50}
    output = _run(run_dir, _stages(run_dir, source, ran, bootstrap=70))
    assert "bootstrap: 50 then, 70 now" in output


def test_a_record_hashed_with_older_settings_is_up_to_date(done):
    """A stage whose settings lost a key that never changed its outputs stays done."""
    source, run_dir, ran = done
    stages = _stages(run_dir, source, ran)
    stages[1].older_settings = [dict(stages[1].settings)]
    stages[1].settings = {}
    output = _run(run_dir, stages)
    assert ran == [] and "second: up to date" in output
    record = json.loads((run_dir / "second" / ".stage-second.json").read_text())
    assert record["settings"] == {}
    stages[1].older_settings = []
    assert "second: up to date" in _run(run_dir, stages)  # the record now has the new hash
    assert ran == []


def _recipe(tmp_path: Path, **train) -> Path:
    recipe = {
        "name": "edge",
        "runs_dir": "runs",
        "export": {"synthetic": {"patients": 20, "seed": 1}},
        "train": {"model": "tiny-llama", "max_steps": 1, **train},
        "evaluation": {"baselines": ["majority"]},
    }
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _train_stage(recipe: Path) -> Stage:
    stages = study_stages(load_study_config(recipe), console=QUIET)
    return next(stage for stage in stages if stage.name == "train")


def test_threads_logging_and_checkpoint_spacing_do_not_restart_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain = _train_stage(_recipe(tmp_path))
    tuned = _train_stage(_recipe(tmp_path, num_threads=1, log_every_steps=1, keep_checkpoints=3,
                                 checkpoint_every_steps=1))  # fmt: skip
    assert tuned.settings == plain.settings == {"model": "tiny-llama", "max_steps": 1}
    # A run recorded by a version that hashed every field is still up to date.
    assert tuned.older_settings == [{**plain.settings, "num_threads": 1, "log_every_steps": 1,
                                     "keep_checkpoints": 3, "checkpoint_every_steps": 1}]  # fmt: skip
    assert _train_stage(_recipe(tmp_path, lora_rank=4)).settings != plain.settings


def test_a_run_beside_the_recipe_is_pointed_out_when_run_from_elsewhere(tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "runs" / "edge").mkdir(parents=True)
    (project / "runs" / "edge" / "manifest.json").write_text("{}")
    elsewhere.mkdir()
    recipe = _recipe(project)
    monkeypatch.setattr(pipeline, "run_stages", lambda *args, **kwargs: {})
    monkeypatch.chdir(elsewhere)
    with pytest.warns(UserWarning, match="a run of this name lies beside the recipe in") as caught:
        pipeline.run_study(recipe, console=QUIET)
    assert str(project / "runs" / "edge") in str(caught[0].message)
    assert str(elsewhere / "runs" / "edge") in str(caught[0].message)
    monkeypatch.chdir(project)
    with warnings.catch_warnings():  # run from the recipe's folder: that run, no warning
        warnings.simplefilter("error")
        pipeline.run_study(recipe, console=QUIET)


def test_a_run_recorded_before_records_named_their_inputs_stays_up_to_date(done):
    """The stage hash is computed as before (settings JSON, then each input's path and sha256),
    so a run recorded by an older version is not redone."""
    source, run_dir, ran = done
    digest = hashlib.sha256(json.dumps({"bootstrap": 50}, sort_keys=True).encode())
    digest.update(b"a.txt")
    digest.update(hashlib.sha256(b"note").hexdigest().encode())
    record_file = run_dir / "second" / ".stage-second.json"
    record_file.write_text(json.dumps({"input_hash": digest.hexdigest(), "status": "done"}))
    assert "second: up to date" in _run(run_dir, _stages(run_dir, source, ran))
    assert ran == []
