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
        ("- model: tiny-llama\n", "expected a mapping of field: value, got a list"),
        (b"# caf\xe9\nmodel: tiny-llama\n", r"not UTF-8 text \(byte 0xe9 on line 1\)"),
        ("model: tiny-llama\nlora_rank:\t8\n", "line 2.*indents with spaces, never tabs"),
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
