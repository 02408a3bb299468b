from pathlib import Path

import pytest
import yaml

from radonc_llm.config import TrainConfig, load_train_config
from radonc_llm.errors import RadoncInputError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def write_config(tmp_path: Path, task_dirs, **fields) -> Path:
    train_dir, val_dir = task_dirs
    raw = {"model": "tiny-llama", "train_dir": str(train_dir), "val_dir": str(val_dir)}
    raw.update(fields)
    path = tmp_path / "config.yaml"
    path.write_text("# radonc-llm train config.yaml\n" + yaml.safe_dump(raw))
    return path


def test_a_good_config_loads(tmp_path, task_dirs):
    config = load_train_config(write_config(tmp_path, task_dirs, lora_rank=8))
    assert config.lora_rank == 8 and config.tasks == ["regimen", "modality", "icd10"]


@pytest.mark.parametrize(
    "fields,field,reason",
    [
        ({"model": "gpt-17"}, "model", "unknown model 'gpt-17'"),
        ({"lora_rank": 0}, "lora_rank", "greater than 0"),
        ({"lora_rank": -4}, "lora_rank", "greater than 0"),
        ({"tasks": ["modality", "staging"]}, "tasks", "unknown task"),
        ({"adapter_mode": "both"}, "adapter_mode", "multitask"),
        ({"learning_rate": "fast"}, "learning_rate", "number"),
        ({"lora_ranks": 8}, "lora_ranks", r"unknown field \(did you mean 'lora_rank'\?\)"),
        ({"colour": 8}, "colour", r"unknown field; known fields: model, tasks"),
        ({"max_train_examples_per_task": 0}, "max_train_examples_per_task", "greater than 0"),
        (
            {"max_train_examples_per_task": {"regimen": 10, "staging": 5}},
            "max_train_examples_per_task",
            r"task\(s\) \['staging'\] are not in this config's tasks",
        ),
        (
            {"max_train_examples_per_task": {"regimen": -1}},
            "max_train_examples_per_task",
            "greater than 0",
        ),
    ],
)
def test_bad_fields_fail_at_load_naming_the_field(tmp_path, task_dirs, fields, field, reason):
    path = write_config(tmp_path, task_dirs, **fields)
    with pytest.raises(RadoncInputError, match=reason) as info:
        load_train_config(path)
    assert info.value.field == field
    assert info.value.file == str(path)


def test_missing_data_file_names_the_field_and_file(tmp_path, task_dirs):
    (task_dirs[1] / "icd10.jsonl").unlink()
    with pytest.raises(RadoncInputError, match="missing data file .*icd10.jsonl") as info:
        load_train_config(write_config(tmp_path, task_dirs))
    assert info.value.field == "val_dir"


def test_split_without_examples_of_a_task_names_the_task(tmp_path, task_dirs):
    (task_dirs[0] / "modality.jsonl").write_text("\n")
    with pytest.raises(RadoncInputError, match="no examples of task 'modality'") as info:
        load_train_config(write_config(tmp_path, task_dirs))
    assert info.value.field == "train_dir"


def test_qlora_without_cuda_is_refused_at_load(tmp_path, task_dirs, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(RadoncInputError, match="needs a CUDA GPU") as info:
        load_train_config(write_config(tmp_path, task_dirs, quantization="4bit"))
    assert info.value.field == "quantization"


def test_per_task_config_points_each_adapter_to_its_own_folder(tmp_path, task_dirs):
    config = load_train_config(write_config(tmp_path, task_dirs, adapter_mode="per_task"))
    one = config.for_task("icd10")
    assert one.tasks == ["icd10"] and one.output_dir == config.output_dir / "icd10"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_name_their_command_and_match_the_schema(path, task_dirs):
    text = path.read_text()
    assert text.startswith("# "), "each config starts with a comment naming its command"
    if "accelerate" in path.parts:
        assert "accelerate launch" in text.splitlines()[0]
        return
    assert text.splitlines()[0].startswith("# radonc-llm train ")
    raw = yaml.safe_load(text)
    assert raw.get("quantization", "none") in {"none", "4bit"}
    # Data folders are the user's, and QLoRA needs CUDA: check every other field.
    train_dir, val_dir = task_dirs
    TrainConfig.model_validate(
        {**raw, "train_dir": train_dir, "val_dir": val_dir, "quantization": "none"}
    )
