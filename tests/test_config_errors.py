"""A bad config file fails at load with one message naming the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from radonc_llm.config import load_train_config, read_config_file
from radonc_llm.errors import RadoncInputError
from tests.train.conftest import write_task_dir


@pytest.fixture
def config_text(tmp_path) -> str:
    train = write_task_dir(tmp_path / "tasks" / "train", 4)
    val = write_task_dir(tmp_path / "tasks" / "val", 2, offset=4)
    return f"model: tiny-llama\ntrain_dir: {train}\nval_dir: {val}\nlora_rank: 8\n"


def _load(tmp_path: Path, text: str | bytes):
    path = tmp_path / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_train_config(path)


@pytest.mark.parametrize(
    "text,reason",
    [
        ("model: tiny-llama\nlora_rank: 8\nlora_rank: 16\n", r"line 3.*'lora_rank' is given twice"),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- model: tiny-llama\n", r"expected a mapping of field: value .*, got a list"),
        ("tiny-llama\n", r"got a single str \('tiny-llama'\)"),
        ("16\n", r"got a single int \(16\)"),
        ("\ufeffmodel: tiny-llama\nmodel: tiny-mistral\n", "'model' is given twice"),
        ("model: tiny-llama\ntrain:\n\tlora_rank: 8\n", "line 3.*indents with spaces"),
        ("model: tiny-llama\n".encode("utf-16"), "UTF-16 text, not UTF-8"),
        ("model: tiny-llama\n---\nlora_rank: 8\n", "remove the '---' line"),
        ("model:tiny-llama\n", "put a space after each colon"),
        (b"# caf\xe9\nmodel: tiny-llama\n", r"not UTF-8 text \(byte 0xe9 on line 1\)"),
        ("model: tiny-llama\nlora_rank:\t8\n", "line 2.*tab after a key .* replace the tab with a"),
        ("model: tiny-llama\t# the base\n", "line 1.*replace the tab with a space"),
        ("seed: !!python/object/apply:os.system ['true']\n", "tags such as !!python"),
    ],
)
def test_a_file_that_is_not_a_config_fails_naming_the_file(tmp_path, text, reason):
    with pytest.raises(RadoncInputError, match=reason) as info:
        _load(tmp_path, text)
    assert info.value.file == str(tmp_path / "config.yaml")


def test_a_folder_is_not_taken_for_a_missing_file(tmp_path):
    with pytest.raises(RadoncInputError, match="is a folder"):
        read_config_file(tmp_path)


def test_a_number_in_exponent_form_is_a_number(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-3 as a string; a config reads it as YAML 1.2 does.
    assert read_config_file(_write(tmp_path, "learning_rate: 1e-3\n")) == {"learning_rate": 0.001}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "raw.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "line,field,reason",
    [
        ("lora_rank: true", "lora_rank", "expected a number, got true"),
        ("learning_rate: .inf", "learning_rate", "finite number"),
        ("epochs: 1e400", "epochs", "finite number"),
        ("lora_rank: 100000000000000000000000", "lora_rank", "less than or equal to 4096"),
        ("max_train_examples_per_task: all", "max_train_examples_per_task", "a number, a mapping"),
        ("lora_target_modules: [q_prj]", "lora_target_modules", r"no module named \['q_prj'\]"),
        ("output_dir: CONFIG", "output_dir", "is a file; give a folder"),
    ],
)
def test_a_bad_value_fails_naming_the_field(tmp_path, config_text, line, field, reason):
    line = line.replace("CONFIG", str(tmp_path / "config.yaml"))
    text = config_text.replace("lora_rank: 8\n", "") + line + "\n"
    with pytest.raises(RadoncInputError, match=reason) as info:
        _load(tmp_path, text)
    assert info.value.field == field


def test_learning_rate_without_a_dot_loads(tmp_path, config_text):
    assert _load(tmp_path, config_text + "learning_rate: 1e-3\n").learning_rate == 0.001


def test_a_relative_data_folder_is_read_from_the_working_folder(tmp_path, config_text, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _load(tmp_path, config_text.replace(str(tmp_path / "tasks"), "tasks"))
    assert config.train_dir == Path("tasks/train")
    monkeypatch.chdir(tmp_path / "tasks")
    with pytest.raises(RadoncInputError, match=f"relative to the working folder {tmp_path}"):
        load_train_config(tmp_path / "config.yaml")


def test_a_missing_model_folder_says_where_it_looked(tmp_path, config_text, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RadoncInputError, match=f"no such folder \\({tmp_path}/models/mine") as info:
        _load(tmp_path, config_text.replace("model: tiny-llama", "model: ./models/mine"))
    assert info.value.field == "model"


def test_a_7b_model_without_cuda_warns_at_load(tmp_path, config_text, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.warns(UserWarning, match="'llama2-7b' is a 7B model, set up for a CUDA GPU"):
        _load(tmp_path, config_text.replace("tiny-llama", "llama2-7b"))


def test_a_bom_is_read_as_the_start_of_a_utf8_file(tmp_path, config_text):
    assert _load(tmp_path, b"\xef\xbb\xbf" + config_text.encode()).lora_rank == 8


@pytest.mark.parametrize(
    "line,field,reason",
    [
        (
            "lora_rank: null",
            "lora_rank",
            "line 4: is empty (null); give a value (LoRA rank r (at most 4096, the width of a "
            "7B model)), or delete the line to use the default (16)",
        ),
        ("epochs: ~", "epochs", "give a value (passes over the training examples), or delete"),
        ("tasks:", "tasks", "give a value (tasks to train on, some of regimen, modality and icd10"),
        ("lr_scheduler:", "lr_scheduler", "give one of cosine, linear, constant, or delete"),
        ("lora_rank:", "lora_rank", "line 4: is empty"),
        ("tasks:", "tasks", "the default ([regimen, modality, icd10])"),
        ("lora_rank: yes", "lora_rank", "expected a number, got true (YAML reads unquoted"),
        ("quantization: no", "quantization", "got false (YAML reads unquoted"),
        ("lr_scheduler: Cosine", "lr_scheduler", "'constant', got 'Cosine'"),
        ("epochs: 1,5", "epochs", "got '1,5'; write a decimal point, not a comma"),
        ("tasks: regimen", "tasks", "a valid list, got 'regimen'"),
        ("lora_rank: 0", "lora_rank", "line 4: Input should be greater than 0, got 0"),
        ("learning_rte: 1e-3", "learning_rte", "line 4: unknown field"),
        ("max_train_examples_per_task: 2.5", "max_train_examples_per_task", "part (2.5)"),
        (
            "max_train_examples_per_task: {regimen: 2.5}",
            "max_train_examples_per_task",
            "the count of task 'regimen' must be a whole number, got 2.5",
        ),
    ],
)
def test_a_bad_value_says_what_the_file_gave_and_on_which_line(
    tmp_path, config_text, line, field, reason
):
    with pytest.raises(RadoncInputError) as info:
        _load(tmp_path, config_text.replace("lora_rank: 8\n", "") + line + "\n")
    assert reason in info.value.reason, info.value.reason
    assert info.value.field == field


def test_numbers_in_the_forms_people_write_them_load(tmp_path, config_text):
    text = config_text + 'learning_rate: 5e-4\nweight_decay: "1E-2"\nwarmup_ratio: 5.e-2\n'
    config = _load(tmp_path, text + "length_grouping: no\ngroup_by_task: off\n")
    assert (config.learning_rate, config.weight_decay, config.warmup_ratio) == (5e-4, 0.01, 0.05)
    assert config.length_grouping is False and config.group_by_task is False


def test_a_study_recipe_given_to_train_says_to_run_it(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("name: demo\nexport:\n  synthetic: {patients: 20}\n")
    with pytest.raises(RadoncInputError, match=f"study recipe .*`radonc-llm run {path}`"):
        load_train_config(path)


def test_a_relative_folder_beside_the_config_says_paths_are_read_from_the_working_folder(
    tmp_path, monkeypatch
):
    project = tmp_path / "project"
    write_task_dir(project / "tasks" / "train", 4)
    (project / "config.yaml").write_text(
        "model: tiny-llama\ntrain_dir: tasks/train\nval_dir: null\n"
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RadoncInputError) as info:
        load_train_config("project/config.yaml")
    assert info.value.field == "train_dir"
    assert "relative to the working folder" in info.value.reason
    assert "project/tasks/train/regimen.jsonl exists, so run from project" in info.value.reason


def test_a_file_named_by_another_says_which(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("- lora_rank: 8\n")
    with pytest.raises(RadoncInputError, match=r"got a list .*\(the train_preset of r.yaml\)"):
        read_config_file(preset, named_by="the train_preset of r.yaml")
    with pytest.raises(RadoncInputError, match=r"is a folder.*\(the train_preset of r.yaml\)"):
        read_config_file(tmp_path, named_by="the train_preset of r.yaml")
