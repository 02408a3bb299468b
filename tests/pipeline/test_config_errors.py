"""A bad study recipe fails at load naming the file (recipe or preset), the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from radonc_llm.errors import RadoncInputError
from radonc_llm.pipeline import load_study_config, recipe_kind, run_recipe

RECIPE = """\
name: tiny
runs_dir: {runs}
export:
  synthetic: {{patients: 20, seed: 0}}
predict:
  batch_size: 4
train:
  model: tiny-llama
"""


def _recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text.format(runs=tmp_path / "runs"))
    return path


def test_a_section_given_twice_is_refused(tmp_path):
    with pytest.raises(RadoncInputError, match="'predict' is given twice"):
        load_study_config(_recipe(tmp_path, RECIPE + "predict:\n  batch_size: 8\n"))


def test_an_unknown_key_in_a_section_lists_that_sections_fields(tmp_path):
    text = RECIPE.replace("batch_size: 4", "batchsize: 4")
    with pytest.raises(RadoncInputError, match="known fields: decoding, batch_size") as info:
        load_study_config(_recipe(tmp_path, text))
    assert info.value.field == "predict.batchsize"


@pytest.mark.parametrize("fractions", ["[0.8, 0.3, 0.1]", "[1.2, -0.1, -0.1]", "[0.9, 0.1, 0.0]"])
def test_split_shares_are_checked_at_load(tmp_path, fractions):
    text = RECIPE + f"split:\n  fractions: {fractions}\n"
    with pytest.raises(RadoncInputError, match="three shares above 0 summing to 1") as info:
        load_study_config(_recipe(tmp_path, text))
    assert info.value.field == "split.fractions"


def test_a_missing_export_folder_names_its_field_and_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = RECIPE.replace("  synthetic: {{patients: 20, seed: 0}}", "  path: raw")
    with pytest.raises(RadoncInputError, match=f"raw \\(relative to the working folder {tmp_path}"):
        load_study_config(_recipe(tmp_path, text))


def test_a_misspelt_key_in_the_preset_names_the_preset_file(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("model: tiny-llama\nlearning_rte: 1.0e-3\n")
    text = RECIPE.replace("train:\n  model: tiny-llama\n", "train_preset: preset.yaml\n")
    with pytest.raises(RadoncInputError, match="unknown field.*train_preset of") as info:
        load_study_config(_recipe(tmp_path, text))
    assert (info.value.file, info.value.field) == (str(preset), "learning_rte")


def test_a_missing_preset_says_where_it_looked(tmp_path):
    text = RECIPE.replace("train:\n  model: tiny-llama\n", "train_preset: nope.yaml\n")
    with pytest.raises(RadoncInputError, match=f"looked for .* or {tmp_path}/nope.yaml"):
        load_study_config(_recipe(tmp_path, text))


def test_kind_study_may_be_written_out(tmp_path):
    recipe = _recipe(tmp_path, "kind: study\n" + RECIPE)
    assert recipe_kind(recipe) == "study"
    assert load_study_config(recipe).name == "tiny"


def test_a_non_utf8_recipe_fails_without_a_traceback(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(b"name: d\xe9mo\n")
    assert recipe_kind(recipe) == "study"
    with pytest.raises(RadoncInputError, match="not UTF-8 text"):
        load_study_config(recipe)


def test_an_absurd_bootstrap_is_refused(tmp_path):
    text = RECIPE + "evaluation:\n  bootstrap: 1e12\n"
    with pytest.raises(RadoncInputError) as info:
        load_study_config(_recipe(tmp_path, text))
    assert info.value.field == "evaluation.bootstrap"


def test_a_training_config_given_to_run_says_to_train_with_it(tmp_path):
    config = tmp_path / "lora.yaml"
    config.write_text("model: tiny-llama\nlora_rank: 8\n")
    with pytest.raises(RadoncInputError, match=f"training config .*`radonc-llm train {config}`"):
        load_study_config(config)


def test_an_unknown_section_names_its_line_and_the_close_one(tmp_path):
    text = RECIPE.replace("train:\n", "training:\n")
    with pytest.raises(
        RadoncInputError, match=r"line 7: unknown field \(did you mean 'train'"
    ) as info:
        load_study_config(_recipe(tmp_path, text))
    assert info.value.field == "training"


@pytest.mark.parametrize(
    "old,new,field,reason",
    [
        ("name: tiny", "name:", "name", "line 1: is empty (null); give a value"),
        ("  model: tiny-llama", "  lora_rank: null", "train.lora_rank", "is empty (null)"),
        ("  batch_size: 4", "  batch_size: four", "predict.batch_size", "got 'four'"),
    ],
)
def test_a_bad_value_in_a_section_says_what_was_given(tmp_path, old, new, field, reason):
    with pytest.raises(RadoncInputError) as info:
        load_study_config(_recipe(tmp_path, RECIPE.replace(old, new)))
    assert info.value.field == field
    assert reason in info.value.reason


def test_a_missing_required_field_says_what_to_add(tmp_path):
    with pytest.raises(
        RadoncInputError, match=r"missing: add a line `name: \.\.\.` \(Run name"
    ) as info:
        load_study_config(_recipe(tmp_path, RECIPE.replace("name: tiny\n", "")))
    assert info.value.field == "name"


def test_a_date_order_is_checked_at_load(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    text = RECIPE.replace(
        "  synthetic: {{patients: 20, seed: 0}}", f"  path: {raw}\n  date_order: ymd"
    )
    with pytest.raises(RadoncInputError) as info:
        load_study_config(_recipe(tmp_path, text))
    assert info.value.field == "export.date_order"
    study = load_study_config(_recipe(tmp_path, text.replace("ymd", "dmy")))
    assert study.export.date_order == "dmy"


@pytest.mark.parametrize(
    "line,field,reason",
    [
        ("  lora_rank: -1", "train.lora_rank", "line 9: Input should be greater than 0, got -1"),
        ('  epochs: "two"', "train.epochs", "line 9: Input should be a valid number"),
        ("  lora_rnk: 8", "train.lora_rnk", "line 9: unknown field (did you mean 'lora_rank'?)"),
        ("  tasks: [regimen, icd9]", "train.tasks", "line 9: unknown task(s) ['icd9']"),
        ("  tasks: [regimen, ~]", "train.tasks.1", "line 9: is empty (null)"),
        ("  epochs: ~", "train.epochs", "line 9: is empty (null); give a value (passes over"),
        (
            "  tasks:",
            "train.tasks",
            "line 9: is empty (null); give a value (tasks to train on, some",
        ),
        # A check of several fields together points at the section.
        ("  batch_by_case: true\n  sampling_temperature: 0.5", "train", "line 7: sampling_"),
    ],
)
def test_a_bad_training_field_names_its_line_in_the_recipe(tmp_path, line, field, reason):
    with pytest.raises(RadoncInputError) as info:
        load_study_config(_recipe(tmp_path, RECIPE + line + "\n"))
    assert (info.value.file, info.value.field) == (str(tmp_path / "recipe.yaml"), field)
    assert info.value.reason.startswith(reason), info.value.reason


@pytest.mark.parametrize(
    "model,reason",
    [
        ("nosuch", "line 8: unknown model 'nosuch'"),
        ("", "line 8: is empty (null); give a value (registry name (smollm2-135m"),
    ],
)
def test_a_bad_or_empty_model_names_its_line_and_the_models(tmp_path, model, reason):
    text = RECIPE.replace("model: tiny-llama", f"model: {model}")
    with pytest.raises(RadoncInputError) as info:
        load_study_config(_recipe(tmp_path, text))
    assert info.value.field == "train.model"
    assert info.value.reason.startswith(reason), info.value.reason
    assert "tiny-llama" in info.value.reason


def test_a_bad_field_of_the_preset_names_its_line_in_the_preset(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("model: tiny-llama\n\nlora_rank: 0\n")
    text = RECIPE.replace("train:\n  model: tiny-llama\n", "train_preset: preset.yaml\n")
    with pytest.raises(RadoncInputError) as info:
        load_study_config(_recipe(tmp_path, text))
    assert (info.value.file, info.value.field) == (str(preset), "lora_rank")
    assert info.value.reason.startswith("line 3: Input should be greater than 0, got 0 (the ")


@pytest.mark.parametrize(
    "section,reason",
    [
        ("predict: ~\n", "line 5: is empty (null); give its fields on the indented lines below it"),
        ("train:\n", "line 7: is empty (null); give its fields on the indented lines below it, or"),
    ],
)
def test_a_section_left_empty_says_to_give_its_fields(tmp_path, section, reason):
    text = (
        RECIPE.replace("predict:\n  batch_size: 4\n", "predict: ~\n")
        if "predict" in section
        else (RECIPE.replace("train:\n  model: tiny-llama\n", section))
    )
    with pytest.raises(RadoncInputError) as info:
        load_study_config(_recipe(tmp_path, text))
    assert info.value.reason.startswith(reason), info.value.reason
    assert "delete the line to use the defaults" in info.value.reason


@pytest.mark.parametrize(
    "kind,reason",
    [
        ("kind: null", "line 1: is empty (null); give one of study, cross_institution, or delete"),
        ("kind:", "line 1: is empty (null); give one of study, cross_institution"),
        ("kind: stduy", "line 1: unknown kind 'stduy' (did you mean 'study'?); expected one of"),
        ("kind: [study]", "line 1: unknown kind ['study'] (not a word)"),
    ],
)
def test_an_empty_or_unknown_kind_lists_the_kinds(tmp_path, kind, reason):
    with pytest.raises(RadoncInputError) as info:
        run_recipe(_recipe(tmp_path, f"{kind}\n" + RECIPE), console=Console(quiet=True))
    assert info.value.field == "kind"
    assert info.value.reason.startswith(reason), info.value.reason
    assert not (tmp_path / "runs").exists()


def test_a_relative_export_folder_beside_the_recipe_says_where_paths_are_read_from(
    tmp_path, monkeypatch
):
    (tmp_path / "project" / "raw").mkdir(parents=True)
    recipe = tmp_path / "project" / "recipe.yaml"
    recipe.write_text(
        RECIPE.replace("  synthetic: {{patients: 20, seed: 0}}", "  path: raw").format(runs="runs")
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RadoncInputError) as info:
        load_study_config(recipe)
    assert info.value.field == "export.path"
    assert "not from the config file's folder: " in info.value.reason
    beside = tmp_path / "project"
    assert f"{beside / 'raw'} exists, so run from {beside} or give" in info.value.reason
    monkeypatch.chdir(tmp_path / "project")
    assert load_study_config(Path("recipe.yaml")).export.path == Path("raw")
