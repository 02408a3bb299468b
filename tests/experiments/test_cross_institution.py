"""`radonc-llm run` on a shortened cross-institution recipe: tiny model, a few steps, four
patients per test cohort, the real public tables (found as the importer tests find them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.data.cases import read_cases
from radonc_llm.errors import RadoncInputError
from radonc_llm.experiments.cross_institution import (
    load_cross_institution_config,
    synthetic_model_dir,
)
from tests.data.test_importers import FOLDERS
from tests.data.test_importers import _external as external_tables

COHORTS = ("radcure", "hnscc-mdacc", "hn1")
SYSTEMS = {"base", "tuned-synthetic", "tuned-radcure", "majority", "nearest-regimen"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny models gain nothing from threads; on a shared CPU an idle OpenMP worker turns each
    # small matmul into a wait for a time slice.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _recipe(tmp: Path, name: str = "tiny", **changes) -> Path:
    external = external_tables()
    recipe = {
        "kind": "cross_institution",
        "name": name,
        "runs_dir": str(tmp / "runs"),
        "cohorts": {cohort: str(external / FOLDERS[cohort]) for cohort in COHORTS},
        "synthetic_model": {"run": str(tmp / "no-demo-run"), "patients": 200, "seed": 1},
        "train": {"model": "tiny-llama", "max_steps": 2, "micro_batch_size": 8,
                  "max_val_examples_per_task": 8, "checkpoint_every_steps": 1},
        "evaluation": {"test_sample": 4, "bootstrap": 50},
    }  # fmt: skip
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cross")
    recipe = _recipe(tmp)
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    return recipe, tmp / "runs" / "tiny", result.output


def test_the_run_splits_by_role_and_evaluates_every_system_on_every_cohort(finished_run):
    _, run_dir, output = finished_run
    split = json.loads((run_dir / "split" / "split.json").read_text())
    # RADCURE's challenge training patients (1,788 kept) are split into training and validation.
    assert split["train"]["cases"] + split["val"]["cases"] == 1788
    assert 0.08 < split["val"]["cases"] / 1788 < 0.12
    assert split["tests"]["radcure"] == {"role": "internal", "cases": 740, "patients": 740,
                                         "evaluated": 4}  # fmt: skip
    assert split["tests"]["hn1"]["role"] == "external" and split["tests"]["hn1"]["cases"] == 137
    trained = {c.patient_id for name in ("train", "val")
               for c in read_cases(run_dir / "split" / f"{name}.jsonl")}  # fmt: skip
    for cohort in COHORTS:
        tested = {c.patient_id for c in read_cases(run_dir / "split" / f"test_{cohort}.jsonl")}
        assert not trained & tested, cohort
        metrics = json.loads((run_dir / "evaluate" / cohort / "metrics.json").read_text())
        assert set(metrics["systems"]) == SYSTEMS and metrics["n_cases"] == 4
        assert set(metrics["systems"]["base"]) == {"regimen", "icd10"}  # modality: all photon
        transfer = json.loads((run_dir / "evaluate" / cohort / "transfer.json").read_text())
        assert set(transfer["systems"]["tuned-radcure"]) >= {
            "dose_agreement", "fractions_agreement", "concurrent_agreement",
            "dose_per_fraction_error", "eqd2_error", "rouge1", "icd10_category",
        }  # fmt: skip
        compared = {(c["system"], c["metric"]) for c in transfer["comparisons"]}
        assert ("tuned-radcure", "icd10_category") in compared
        assert all(c["baseline"] == "base" for c in transfer["comparisons"])
    # Every row of every table is kept or ledgered, and every kept case has a role.
    for cohort in COHORTS:
        imported = json.loads((run_dir / "cohorts" / f"{cohort}.import.json").read_text())
        ledger = (run_dir / "cohorts" / f"{cohort}.excluded.jsonl").read_text().splitlines()
        kept = read_cases(run_dir / "cohorts" / f"{cohort}.jsonl")
        assert sum(imported["input_rows"].values()) == len(kept) + len(ledger), cohort
        roles = split["tests"][cohort]["cases"]
        if cohort == "radcure":
            roles += sum(split[part]["cases"] for part in ("train", "val", "unused"))
        assert roles == len(kept), cohort
    # Institutions hold different patients: compared by unpaired tests, never paired ones.
    gaps = json.loads((run_dir / "institutions" / "institutions.json").read_text())
    assert gaps["external_cohorts"] == ["hnscc-mdacc", "hn1"]
    assert {row["test"] for row in gaps["comparisons"]} <= {"fisher_exact", "mann_whitney_u", None}
    assert any(r["system"] == "tuned-radcure" and r["cohort"] == "hn1" for r in gaps["comparisons"])
    # Without runs/demo/train the recipe tuned its own synthetic model, as stages of the run.
    assert (run_dir / "synthetic" / "train" / "adapter" / "adapter_config.json").is_file()
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert {"import_hn1", "train", "synthetic_train", "evaluate_hn1", "institutions",
            "report"} <= set(stages)  # fmt: skip
    assert all(stage["status"] == "ran" for stage in stages.values())
    assert "HN1 (MAASTRO)" in output and "report.html" in output


def test_the_report_has_a_table_per_cohort_and_the_schemes_section(finished_run):
    _, run_dir, _ = finished_run
    markdown = (run_dir / "report" / "report.md").read_text()
    html = (run_dir / "report" / "report.html").read_text()
    for name in ("RADCURE", "HNSCC (MD Anderson)", "HN1 (MAASTRO)"):
        assert f"{name}: regimen and code agreement per system." in markdown
        assert f"{name}: regimen and code agreement per system." in html
    assert "Institutional fractionation schemes" in markdown
    # Each institution's habit, from the real tables: 70 Gy/35, 70 Gy/33 and 68 Gy/34.
    assert "RADCURE 70 Gy/35; HNSCC (MD Anderson) 70 Gy/33; HN1 (MAASTRO) 68 Gy/34" in markdown
    assert "Local-habit patients given the training habit" in markdown
    assert "Each system at the other institutions (unpaired tests)" in markdown
    assert "HN1 (MAASTRO) vs RADCURE (held-out)" in markdown
    for label in ("Original model", "Tuned on the synthetic cohort", "Tuned on RADCURE"):
        assert label in markdown
    assert (run_dir / "report" / "figures" / "fig02-training-habit.png").is_file()


def test_a_rerun_skips_every_stage(finished_run):
    recipe, run_dir, _ = finished_run
    before = (run_dir / "evaluate" / "hn1" / "transfer.json").stat().st_mtime_ns
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert all(stage["status"].startswith("skipped") for stage in stages.values())
    assert (run_dir / "evaluate" / "hn1" / "transfer.json").stat().st_mtime_ns == before


def test_a_finished_synthetic_run_is_used_as_it_is(finished_run, tmp_path):
    _, run_dir, _ = finished_run
    existing = run_dir / "synthetic" / "train"
    config = load_cross_institution_config(
        _recipe(tmp_path, synthetic_model={"run": str(existing), "if_missing": "fail"})
    )
    assert synthetic_model_dir(config) == existing


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"cohorts": {"radcure": "x", "mayo": "y"}}, "cohorts", "unknown cohort"),
        ({"cohorts": {"hn1": "/nowhere/hn1"}}, "cohorts.hn1", "download"),
        ({"train_cohort": "hn2"}, "train_cohort", "not among the cohorts"),
        ({"tasks": ["regimen", "dose"]}, "tasks", "expected distinct tasks"),
        ({"train": {"lora_rank": 0}}, "train.lora_rank", "greater than 0"),
        ({"train": {"tasks": ["icd10"]}}, "train.tasks", "set by the experiment"),
        ({"evaluation": {"baselines": ["oracle"]}}, "evaluation.baselines", "unknown baseline"),
        ({"synthetic_model": {"if_missing": "fail"}}, "synthetic_model.run", "make demo"),
        ({"train_preset": "nowhere.yaml"}, "train_preset", "not found"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_config_errors_name_the_field(tmp_path, changes, field, words):
    recipe = _recipe(tmp_path, **changes)
    with pytest.raises(RadoncInputError) as error:
        load_cross_institution_config(recipe)
    assert error.value.field == field
    assert words in error.value.reason and str(recipe) in error.value.message


def test_the_shipped_recipe_loads(monkeypatch):
    monkeypatch.chdir(REPO)  # its paths are relative to the repository root
    config = load_cross_institution_config(REPO / "configs" / "real_hn.yaml")
    assert config.train_cohort == "radcure" and config.test_cohorts[1:] == ["hnscc-mdacc", "hn1"]
    assert config.train["model"] == "smollm2-135m"
