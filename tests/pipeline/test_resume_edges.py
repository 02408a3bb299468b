"""`run_stages` and `radonc-llm run` at the edges: deleted outputs, leftovers without a record,
a run folder of another kind, a runs_dir that cannot be written, too few patients."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from radonc_llm import pipeline
from radonc_llm.cli import app
from radonc_llm.errors import RadoncInputError
from radonc_llm.pipeline import Stage, open_run_manifest, run_stages

QUIET = Console(quiet=True)


def _statuses(run_dir: Path) -> dict[str, str]:
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    return {name: stage["status"] for name, stage in stages.items()}


def _copy_stages(run_dir: Path, source: Path, ran: list[str]) -> list[Stage]:
    """first: source -> first/a.txt; second: first/a.txt -> second/b.txt (upper case)."""

    def first(out: Path) -> None:
        ran.append("first")
        out.mkdir(parents=True, exist_ok=True)
        (out / "a.txt").write_text(source.read_text())

    def second(out: Path) -> None:
        ran.append("second")
        out.mkdir(parents=True, exist_ok=True)
        (out / "b.txt").write_text((run_dir / "first" / "a.txt").read_text().upper())

    return [
        Stage("first", "first", [source], {}, first, outputs=["a.txt"]),
        Stage("second", "second", [run_dir / "first" / "a.txt"], {}, second, outputs=["b.txt"]),
    ]


def test_a_finished_stage_whose_output_was_deleted_runs_again(tmp_path):
    source, run_dir, ran = tmp_path / "source.txt", tmp_path / "run", []
    source.write_text("note")
    run_stages(run_dir, _copy_stages(run_dir, source, ran), console=QUIET)
    (run_dir / "first" / "a.txt").unlink()
    run_stages(run_dir, _copy_stages(run_dir, source, ran), console=QUIET)
    assert ran == ["first", "second", "first"]  # rebuilt the same: the next stage is up to date
    assert _statuses(run_dir) == {"first": "ran", "second": "skipped (up to date)"}
    assert (run_dir / "second" / "b.txt").read_text() == "NOTE"


def test_temporary_files_of_a_killed_write_are_removed_on_the_next_run(tmp_path):
    source, run_dir, ran = tmp_path / "source.txt", tmp_path / "run", []
    source.write_text("note")
    run_stages(run_dir, _copy_stages(run_dir, source, ran), console=QUIET)
    left = run_dir / "second" / ".b.txt.k3j9x0aa.tmp"  # a kill between write and rename
    left.write_text("NO")
    console = Console(record=True, width=200)
    run_stages(run_dir, _copy_stages(run_dir, source, ran), console=console)
    assert not left.exists() and ran == ["first", "second"]
    assert "removed 1 temporary file(s)" in console.export_text()


def test_a_stage_whose_expected_output_was_deleted_starts_afresh(tmp_path):
    """Like training: a deleted adapter is not rebuilt by resuming from the last checkpoint."""
    seen: list[list[str]] = []

    def train(out: Path) -> None:
        seen.append(sorted(path.name for path in out.iterdir()))
        (out / "checkpoint").write_text("step 4")
        (out / "adapter").write_text("weights")

    def stages() -> list[Stage]:
        return [Stage("train", "train", [], {}, train, outputs=["."], expected=["adapter"])]

    run_dir = tmp_path / "run"
    run_stages(run_dir, stages(), console=QUIET)
    (run_dir / "train" / "adapter").unlink()
    run_stages(run_dir, stages(), console=QUIET)
    assert seen == [[".stage-train.json"], [".stage-train.json"]]  # no old checkpoint to resume
    assert (run_dir / "train" / "adapter").read_text() == "weights"
    (old,) = (run_dir / "superseded").iterdir()
    assert (old / "checkpoint").read_text() == "step 4"  # moved aside, not lost


def test_outputs_found_without_a_record_are_moved_aside_not_extended(tmp_path):
    """A prediction file from elsewhere (its record lost) must not be resumed as this stage's."""
    run_dir = tmp_path / "run"
    stale = run_dir / "predict" / "base.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"case_id": "c1", "model": "another"}\n')

    def predict(out: Path) -> None:
        with (out / "base.jsonl").open("a") as handle:  # appends, as a resumable stage does
            handle.write('{"case_id": "c1", "model": "base"}\n')

    run_stages(
        run_dir, [Stage("predict_base", "predict", [], {}, predict, outputs=["base.jsonl"])],
        console=QUIET,
    )  # fmt: skip
    assert stale.read_text() == '{"case_id": "c1", "model": "base"}\n'
    (moved,) = (run_dir / "superseded").rglob("base.jsonl")
    assert "another" in moved.read_text()


def test_a_run_folder_of_another_kind_is_refused(tmp_path):
    run_dir = tmp_path / "runs" / "shared"
    run_dir.mkdir(parents=True)
    manifest = {"config": {"kind": "cross_institution"}, "config_file": "configs/real_hn.yaml"}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RadoncInputError, match="holds a cross_institution run") as error:
        open_run_manifest(run_dir, config={"kind": "study"}, config_file="study.yaml", seeds={})
    assert error.value.field == "name" and error.value.file == "study.yaml"
    assert json.loads((run_dir / "manifest.json").read_text()) == manifest


def test_another_recipe_with_the_same_name_is_warned_about(tmp_path):
    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True)
    first = {"kind": "study", "name": "demo", "evaluation": {"test_sample": 400}}
    manifest = {"config": first, "config_file": str(tmp_path / "demo.yaml")}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    other = first | {"evaluation": {"test_sample": 50}}
    with pytest.warns(UserWarning, match="was last run from .*demo.yaml, now from .*quick.yaml"):
        open_run_manifest(run_dir, config=other, config_file=tmp_path / "quick.yaml", seeds={})
    with warnings.catch_warnings():  # the same recipe edited, or rerun unchanged: no warning
        warnings.simplefilter("error")
        open_run_manifest(run_dir, config=first, config_file=tmp_path / "quick.yaml", seeds={})
        open_run_manifest(run_dir, config=other, config_file=tmp_path / "quick.yaml", seeds={})


def _recipe(tmp_path: Path, runs_dir: Path, *, patients: int = 300) -> Path:
    recipe = {
        "name": "edge",
        "runs_dir": str(runs_dir),
        "export": {"synthetic": {"patients": patients, "seed": 1}},
        "train": {"model": "tiny-llama", "max_steps": 1, "micro_batch_size": 8},
        "evaluation": {"test_sample": 6, "bootstrap": 50, "baselines": ["majority"]},
    }
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("runs_dir", ["a_file", "a_file/runs"])
def test_a_runs_dir_that_is_a_file_fails_naming_it(tmp_path, runs_dir):
    (tmp_path / "a_file").write_text("")
    result = CliRunner().invoke(app, ["run", str(_recipe(tmp_path, tmp_path / runs_dir))])
    assert result.exit_code == 2, result.output
    output = result.output.replace("\n", "")
    assert "field 'runs_dir'" in output and f"{tmp_path / 'a_file'} is a file" in output


def test_a_runs_dir_that_cannot_be_written_fails_before_any_stage(tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pipeline.tempfile, "TemporaryFile", refused)
    with pytest.raises(RadoncInputError, match="Permission denied") as error:
        pipeline.run_study(_recipe(tmp_path, tmp_path / "runs"), console=QUIET)
    assert error.value.field == "runs_dir"
    assert not (tmp_path / "runs" / "edge" / "export").exists()


def test_too_few_patients_fail_at_the_split_naming_the_cases_file(tmp_path):
    recipe = _recipe(tmp_path, tmp_path / "runs", patients=6)
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 2, result.output
    output = result.output.replace("\n", "")
    assert "curate/cases.jsonl" in output and "got no patient" in output
    assert not (tmp_path / "runs" / "edge" / "tasks").exists()


class _FrozenClock(dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return dt.datetime(2026, 1, 1, tzinfo=tz)


def test_a_stage_superseded_twice_within_a_second_keeps_both_old_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(dt, "datetime", _FrozenClock)
    run_dir = tmp_path / "run"

    def stage(version: str) -> Stage:
        def run(out: Path) -> None:
            (out / "result.txt").write_text(version)

        return Stage("evaluate", "evaluate", [], {"version": version}, run, outputs=["result.txt"])

    for version in ("a", "b", "c"):
        run_stages(run_dir, [stage(version)], console=QUIET)
    kept = sorted(path.read_text() for path in (run_dir / "superseded").rglob("result.txt"))
    assert kept == ["a", "b"]
