"""`radonc-llm run`: a shortened study (tiny model, small cohort) end to end, rerun, killed, resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.errors import RadoncInputError
from radonc_llm.models.registry import resolve_model
from radonc_llm.pipeline import load_study_config, recipe_kind

STAGES_BEFORE_TRAIN = ["export", "curate", "split", "tasks", "baseline_majority", "predict_base"]


def _recipe(tmp: Path, name: str, **train) -> Path:
    recipe = {
        "name": name,
        "runs_dir": str(tmp / "runs"),
        "export": {"synthetic": {"patients": 300, "seed": 1}},
        "train": {"model": "tiny-llama", "max_steps": 4, "micro_batch_size": 8,
                  "checkpoint_every_steps": 1, **train},
        "evaluation": {"test_sample": 6, "bootstrap": 50, "baselines": ["majority"]},
    }  # fmt: skip
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _stages(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())["stages"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    recipe = _recipe(tmp, "tiny")
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    return recipe, tmp / "runs" / "tiny", result.output


def test_a_study_writes_every_artefact_in_its_fixed_place(finished_run):
    _, run_dir, output = finished_run
    for path in ("curate/cases.jsonl", "curate/excluded.jsonl", "curate/funnel.json",
                 "split/test.jsonl", "train/manifest.json", "train/adapter/adapter_config.json",
                 "predict/base.jsonl", "predict/finetuned.jsonl", "predict/majority.jsonl",
                 "report/report.html", "report/report.md"):  # fmt: skip
        assert (run_dir / path).is_file(), path
    assert resolve_model(str(run_dir / "train")).source == "run"
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert set(metrics["systems"]) == {"base", "finetuned", "majority"}
    assert "report.html" in output
    stages = _stages(run_dir)
    assert all(stage["status"] == "ran" and stage["seconds"] >= 0 for stage in stages.values())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["seeds"]["split"] == 0 and "torch" in manifest["versions"]
    assert "curate/cases.jsonl" in manifest["data_hashes"]


def test_a_rerun_skips_every_stage(finished_run):
    recipe, run_dir, _ = finished_run
    before = (run_dir / "evaluate" / "metrics.json").stat().st_mtime_ns
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    assert all(stage["status"].startswith("skipped") for stage in _stages(run_dir).values())
    assert (run_dir / "evaluate" / "metrics.json").stat().st_mtime_ns == before


def test_a_run_folder_moved_elsewhere_is_still_up_to_date(finished_run, tmp_path):
    recipe, run_dir, _ = finished_run
    shutil.copytree(run_dir, tmp_path / "moved" / run_dir.name)
    moved = yaml.safe_load(recipe.read_text()) | {"runs_dir": str(tmp_path / "moved")}
    (tmp_path / "moved.yaml").write_text(yaml.safe_dump(moved))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "moved.yaml")])
    assert result.exit_code == 0, result.output
    stages = _stages(tmp_path / "moved" / run_dir.name)
    assert {
        name for name, stage in stages.items() if not stage["status"].startswith("skipped")
    } == set()


def test_an_exported_review_refreshes_the_report(finished_run, tmp_path):
    recipe, run_dir, _ = finished_run
    copy = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, copy)
    moved = yaml.safe_load(recipe.read_text()) | {"runs_dir": str(tmp_path / "runs")}
    (tmp_path / "copy.yaml").write_text(yaml.safe_dump(moved))
    (copy / "review").mkdir()
    (copy / "review" / "review_metrics.json").write_text('{"study_id": "s", "sources": []}')
    result = CliRunner().invoke(app, ["run", str(tmp_path / "copy.yaml")])
    assert result.exit_code == 0, result.output
    stages = _stages(copy)
    assert stages["report"]["status"] == "ran"
    assert {name for name, s in stages.items() if s["status"] == "ran"} == {"report"}


def test_a_study_of_one_adapter_per_task_predicts_and_reruns_nothing(tmp_path):
    recipe = _recipe(tmp_path, "per_task", adapter_mode="per_task", max_steps=1)
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "per_task"
    rows = [json.loads(line) for line in (run_dir / "predict" / "finetuned.jsonl").open()]
    assert {row["task"] for row in rows} == {"regimen", "modality", "icd10"}
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    assert all(stage["status"].startswith("skipped") for stage in _stages(run_dir).values())


def test_a_changed_setting_reruns_from_that_stage_and_keeps_the_old_outputs(tmp_path):
    recipe = _recipe(tmp_path, "change")
    assert CliRunner().invoke(app, ["run", str(recipe)]).exit_code == 0
    changed = _recipe(tmp_path, "change", max_steps=2)
    result = CliRunner().invoke(app, ["run", str(changed)])
    assert result.exit_code == 0, result.output
    stages = _stages(tmp_path / "runs" / "change")
    assert all(stages[name]["status"].startswith("skipped") for name in STAGES_BEFORE_TRAIN)
    assert stages["train"]["status"] == "ran" and stages["predict_finetuned"]["status"] == "ran"
    superseded = list((tmp_path / "runs" / "change" / "superseded").iterdir())
    assert any((path / "adapter").is_dir() for path in superseded)
    # Each old output leaves with its manifest, which tells how it was made.
    old = {path.name.rsplit("-", 1)[0]: path for path in superseded}
    assert (old["predict_finetuned"] / "finetuned.manifest.json").is_file()
    assert {p.name for p in old["evaluate"].iterdir()} >= {"metrics.json", "manifest.json"}


def test_a_run_killed_during_training_resumes_without_redoing_earlier_stages(tmp_path):
    recipe = _recipe(tmp_path, "killed", max_steps=6)
    run_dir = tmp_path / "runs" / "killed"
    command = [sys.executable, "-m", "radonc_llm.cli", "run", str(recipe)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = run_dir / "train" / "checkpoints"
    deadline = time.monotonic() + 600
    while not any(checkpoints.glob("step-*/state.json")) and process.poll() is None:
        assert time.monotonic() < deadline, "training never wrote a checkpoint"
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (run_dir / "train" / "adapter").exists() or not (run_dir / "evaluate").exists()

    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    stages = _stages(run_dir)
    assert all(stages[name]["status"].startswith("skipped") for name in STAGES_BEFORE_TRAIN)
    assert stages["train"]["status"] == "resumed"
    trained = json.loads((run_dir / "train" / "manifest.json").read_text())
    assert trained["results"]["steps"] == 6
    assert (run_dir / "report" / "report.html").is_file()


def test_bad_training_settings_fail_at_load_naming_the_field(tmp_path):
    with pytest.raises(RadoncInputError) as error:
        load_study_config(_recipe(tmp_path, "bad", lora_rank=0))
    assert error.value.field == "train.lora_rank"
    with pytest.raises(RadoncInputError) as error:
        load_study_config(_recipe(tmp_path, "bad2", output_dir="elsewhere"))
    assert error.value.field == "train.output_dir"


CONFIGS = Path(__file__).resolve().parents[2] / "configs"
STUDY_RECIPES = [path for path in sorted(CONFIGS.glob("*.yaml")) if recipe_kind(path) == "study"]


def test_the_shipped_study_recipes_are_found():
    assert {"demo.yaml", "paper_scale.yaml", "llama2_7b.yaml", "mistral_7b.yaml"} <= {
        path.name for path in STUDY_RECIPES
    }


@pytest.mark.parametrize("recipe", STUDY_RECIPES, ids=lambda path: path.name)
def test_every_shipped_study_recipe_loads(recipe, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)
    study = load_study_config(recipe)
    assert study.name == recipe.stem
