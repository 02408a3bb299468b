"""Pydantic models of the YAML configs, validated at load so a bad config fails before any work.

`load_train_config(path)` reads a `radonc-llm train` recipe; an error names the file, the
field and the fix (RadoncInputError), never a traceback an hour into training.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from radonc_llm.data.cases import TASKS
from radonc_llm.errors import RadoncInputError


class ConfigModel(BaseModel):
    """Base of the YAML config models: an unknown key, true/false given for a number, and an
    infinite or NaN number are refused (pydantic would drop, read as 1/0, or accept them)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _no_true_or_false_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and _is_numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected a number, got {str(value).lower()}{YAML_BOOLEANS}")
        return value


# YAML 1.1, which PyYAML reads, takes these words unquoted as booleans.
YAML_BOOLEANS = " (YAML reads unquoted true/false, yes/no and on/off as booleans)"


def _is_numeric(annotation: Any) -> bool:
    if annotation in (int, float):
        return True
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return is_union and any(_is_numeric(arg) for arg in typing.get_args(annotation))


def in_working_folder(path: Path) -> str:
    """`path` as a message shows it: a relative one with the folder it was read from."""
    return (
        str(path) if path.is_absolute() else f"{path} (relative to the working folder {Path.cwd()})"
    )


class TrainConfig(ConfigModel):
    """A fine-tuning recipe: `radonc-llm train CONFIG.yaml`. Relative paths are read from the
    working folder (where the command runs), not from the config file's folder."""

    model: str = Field(
        "smollm2-135m",
        description="Registry name (smollm2-135m, llama2-7b, mistral-7b, tiny-llama, "
        "tiny-mistral), a local model folder or a hub id.",
    )
    tasks: list[str] = Field(
        default_factory=lambda: list(TASKS),
        description="Tasks to train on, some of regimen, modality and icd10; each needs "
        "<train_dir>/<task>.jsonl.",
    )
    adapter_mode: Literal["multitask", "per_task"] = Field(
        "multitask",
        description="One adapter for all tasks (multitask) or one adapter per task, each in "
        "<output_dir>/<task>/.",
    )
    train_dir: Path = Field(
        Path("data/tasks/train"), description="Folder of task files from `radonc-llm tasks`."
    )
    val_dir: Path | None = Field(
        Path("data/tasks/val"),
        description="Folder of validation task files; null trains without validation and keeps "
        "the last weights.",
    )
    output_dir: Path = Field(
        Path("runs/train/smollm2-lora-multitask"), description="Run folder to write."
    )
    max_train_examples_per_task: int | dict[str, int] | None = Field(
        None,
        description="Use at most this many training examples per task (a seeded sample), "
        "or a number per task ({regimen: 1300, modality: 850}; a task not named uses all); "
        "null uses all.",
    )
    sampling_temperature: float = Field(
        1.0,
        ge=0,
        le=1,
        description="How max_train_examples_per_task samples: 1 at random; below 1 tempered "
        "over diagnosis groups (ICD-10 categories), each group's share proportional to its "
        "size ** temperature (0: equal), so rare diagnoses are seen more often. Not with "
        "batch_by_case (use sampling_floor).",
    )
    sampling_floor: int = Field(
        0,
        ge=0,
        description="With batch_by_case: max_train_examples_per_task takes at least this many "
        "cases of every diagnosis group (ICD-10 category; all of a smaller group), the rest "
        "at random. Rare diagnoses are then seen, at little cost to the common ones.",
    )
    max_val_examples_per_task: int | None = Field(
        None, gt=0, description="Validate on at most this many examples per task; null uses all."
    )
    max_length: int = Field(
        512, gt=8, description="Longest tokenised example allowed; a longer one is an error."
    )

    lora_rank: int = Field(
        16, gt=0, le=4096, description="LoRA rank r (at most 4096, the width of a 7B model)."
    )
    lora_alpha: float = Field(32, gt=0, description="LoRA alpha; the update is scaled by alpha/r.")
    lora_dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input; 0 is fastest on a CPU."
    )
    lora_target_modules: list[str] | None = Field(
        None,
        description="Module names to adapt; null takes the model's preset "
        "(all attention and MLP projections).",
    )

    lora_last_layers: int | None = Field(
        None,
        gt=0,
        description="Adapt only the last N decoder layers (null: all). Backward stops at the "
        "lowest adapted layer, so a step costs less.",
    )
    loraplus_lr_ratio: float | None = Field(
        None,
        ge=1.0,
        description="LoRA+: the B matrices learn this many times faster than the A matrices "
        "(PEFT's create_loraplus_optimizer); null: one rate for both.",
    )

    epochs: float = Field(2.0, gt=0, description="Passes over the training examples.")
    max_steps: int | None = Field(
        None, gt=0, description="Stop after this many optimizer steps (overrides epochs)."
    )
    micro_batch_size: int = Field(16, gt=0, description="Examples per forward pass per process.")
    gradient_accumulation_steps: int = Field(
        1,
        gt=0,
        description="Micro-batches per optimizer step; the global batch is "
        "micro_batch_size x gradient_accumulation_steps x processes.",
    )
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on LoRA weights.")
    warmup_ratio: float = Field(
        0.03, ge=0, lt=1, description="Fraction of steps with linear warm-up."
    )
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Learning-rate decay after warm-up."
    )
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="Clip the gradient norm; null disables clipping."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="auto: bf16 where the hardware computes it natively (CUDA with bf16, or a "
        "CPU with AVX512-BF16/AMX), else fp32.",
    )
    quantization: Literal["none", "4bit"] = Field(
        "none", description="4bit = QLoRA (bitsandbytes NF4); needs CUDA."
    )
    attention: Literal["auto", "eager", "sdpa"] = Field(
        "auto",
        description="Attention kernel; auto: eager on a CPU (for ~100-token examples PyTorch's "
        "CPU flash kernel measured ~25% slower per step), in its grouped form that does not copy "
        "keys and values per query head; sdpa on a GPU.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward: less memory, ~30% slower (7B)."
    )
    length_grouping: bool = Field(
        True, description="Batch examples of similar length together (little padding)."
    )
    length_window_steps: int = Field(
        64,
        ge=1,
        description="Length grouping sorts the examples of this many optimizer steps together: "
        "64 pads least but fills each step with examples of one length (and length follows "
        "content); smaller windows pad more and mix lengths more.",
    )
    group_by_task: bool = Field(
        True,
        description="Each micro-batch holds one task, so its prompts share system prompt + "
        "instruction, and the tasks come in proportion: a step of fewer micro-batches than "
        "tasks holds some of them, and the next steps the others.",
    )
    batch_by_case: bool = Field(
        False,
        description="Batch whole cases: every task example of a case in the same micro-batch "
        "(micro_batch_size counts cases), packed in one row: its shared prompt start (system "
        "prompt and note, with task prompts that put the note first) once, then each task's "
        "question and answer, masked to see only the note and themselves. Exact. Samples "
        "cases, not examples, with max_train_examples_per_task (a smaller task takes a subset "
        "of a larger one's cases). group_by_task does not apply.",
    )
    share_prompt_prefix: bool = Field(
        True,
        description="Run the prompt prefix that all rows of a micro-batch share once and reuse "
        "its keys/values (exact; ~40% less work on the demo data). Off with gradient "
        "checkpointing.",
    )
    loss_weighting: Literal["token", "task"] = Field(
        "token",
        description="token: every answer token of a step weighs the same (long regimen answers "
        "dominate); task: each task's tokens are averaged apart and the tasks weigh the same.",
    )
    seed: int = Field(0, description="Seed of weights init, data order and dropout.")

    eval_every_steps: int | None = Field(
        None, gt=0, description="Also validate every N steps (always at each epoch end)."
    )
    checkpoint_every_steps: int = Field(
        100, gt=0, description="Save a resumable checkpoint every N optimizer steps."
    )
    keep_checkpoints: int = Field(1, gt=0, description="Resumable checkpoints kept on disk.")
    log_every_steps: int = Field(10, gt=0, description="Write train loss every N steps.")
    num_threads: int | None = Field(
        None, gt=0, description="CPU threads per process; null keeps torch's default."
    )
    processes: int = Field(
        1,
        gt=0,
        description="Data-parallel processes that `radonc-llm train` starts itself (torchrun, "
        "DDP; the global batch grows with them). On a 2-core CPU, 2 processes of 1 thread "
        "ran ~2x the examples of 1 process of 2 threads. Ignored when already launched by "
        "`accelerate launch` or torchrun.",
    )

    @field_validator("model")
    @classmethod
    def _model_is_known(cls, value: str, info: ValidationInfo) -> str:
        from radonc_llm.models.registry import MODEL_REGISTRY, resolve_model

        try:
            spec = resolve_model(value)
        except RadoncInputError as exc:
            config_file = (info.context or {}).get("config_file")
            beside = beside_the_config(Path(value).expanduser(), config_file)
            raise ValueError(f"{exc.reason}{beside}") from None
        if spec.source == "hub" and value in MODEL_REGISTRY:
            _warn_without_cuda(value)
        return value

    @field_validator("tasks")
    @classmethod
    def _tasks_are_known(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one task")
        unknown = [task for task in value if task not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; expected some of {list(TASKS)}")
        if len(set(value)) != len(value):
            raise ValueError("a task is listed twice")
        return value

    @field_validator("max_train_examples_per_task")
    @classmethod
    def _example_counts_are_positive(
        cls, value: int | dict[str, int] | None, info
    ) -> int | dict[str, int] | None:
        counts = value.values() if isinstance(value, dict) else [value]
        if any(count is not None and count <= 0 for count in counts):
            raise ValueError("example counts must be greater than 0")
        tasks = info.data.get("tasks") or []
        unknown = [task for task in value if task not in tasks] if isinstance(value, dict) else []
        if unknown:
            raise ValueError(f"task(s) {unknown} are not in this config's tasks {tasks}")
        return value

    @field_validator("train_dir", "val_dir")
    @classmethod
    def _task_files_have_examples(cls, value: Path | None, info) -> Path | None:
        tasks = info.data.get("tasks")
        if value is None or not tasks:
            return value
        if info.context and info.context.get("task_files_written_later"):
            return value  # a study recipe checks its train section before the tasks stage runs
        for task in tasks:
            path = Path(value) / f"{task}.jsonl"
            if not path.is_file():
                config_file = (info.context or {}).get("config_file")
                raise ValueError(
                    f"missing data file {in_working_folder(path)} (write it with `radonc-llm "
                    f"tasks`){beside_the_config(path, config_file)}"
                )
            if not _has_a_line(path):
                raise ValueError(f"{path} holds no examples of task '{task}'")
        return value

    @field_validator("output_dir")
    @classmethod
    def _output_dir_is_not_a_file(cls, value: Path) -> Path:
        if value.is_file():
            raise ValueError(f"{value} is a file; give a folder for the run")
        return value

    @field_validator("max_train_examples_per_task", mode="before")
    @classmethod
    def _count_or_counts(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for task, count in value.items():
                whole = isinstance(count, int) or (isinstance(count, float) and count.is_integer())
                if isinstance(count, bool) or not whole:
                    raise ValueError(
                        f"the count of task '{task}' must be a whole number, got {count!r}"
                    )
            return value
        if value is None or isinstance(value, int | float):
            return value
        raise ValueError(
            f"expected a number, a mapping of task: number ({{regimen: 1300}}) or null, got {value!r}"
        )

    @field_validator("lora_target_modules")
    @classmethod
    def _targets_exist(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        from radonc_llm.models.registry import MODEL_REGISTRY

        spec = MODEL_REGISTRY.get(info.data.get("model", ""))
        if value and spec is not None:
            known = [*spec.lora.target_modules, "lm_head", "embed_tokens"]
            unknown = [name for name in value if name not in known]
            if unknown:
                raise ValueError(
                    f"{spec.name} has no module named {unknown}; expected some of {known}"
                )
        return value

    @model_validator(mode="after")
    def _sampling_fits_batching(self) -> TrainConfig:
        if self.batch_by_case and self.sampling_temperature < 1:
            raise ValueError(
                "sampling_temperature samples examples, and batch_by_case whole cases; "
                "use sampling_floor with batch_by_case"
            )
        if self.sampling_floor and not self.batch_by_case:
            raise ValueError("sampling_floor samples whole cases: it needs batch_by_case: true")
        return self

    @field_validator("quantization")
    @classmethod
    def _quantization_needs_cuda(cls, value: str) -> str:
        if value == "4bit":
            import importlib.util

            import torch

            if not torch.cuda.is_available():
                raise ValueError("4bit (QLoRA) needs a CUDA GPU; use 'none' on a CPU")
            if importlib.util.find_spec("bitsandbytes") is None:
                raise ValueError("4bit (QLoRA) needs bitsandbytes: pip install bitsandbytes")
        return value

    def for_task(self, task: str) -> TrainConfig:
        """The config of one task's adapter in per-task mode."""
        return self.model_copy(
            update={
                "tasks": [task],
                "adapter_mode": "multitask",
                "output_dir": self.output_dir / task,
            }
        )


def _warn_without_cuda(model: str) -> None:
    import torch

    if not torch.cuda.is_available():
        warnings.warn(
            f"'{model}' is a 7B model, set up for a CUDA GPU, and none is found: on a CPU it "
            "needs ~28 GB of memory in float32 and trains many times slower; use smollm2-135m "
            "(configs/smollm2/) on a CPU",
            stacklevel=2,
        )


def beside_the_config(path: Path, config_file: Path | None) -> str:
    """A hint where a relative path that is missing from the working folder lies beside the
    config file: relative paths are read from the working folder, never the config's folder."""
    if config_file is None or path.is_absolute():
        return ""
    beside = Path(config_file).parent / path
    if Path(config_file).parent.resolve() == Path.cwd().resolve() or not beside.exists():
        return ""
    return (
        f"; relative paths are read from the working folder, not from the config file's folder: "
        f"{beside} exists, so run from {Path(config_file).parent} or give the absolute path"
    )


def _has_a_line(path: Path) -> bool:
    with path.open("rb") as handle:
        return any(line.strip() for line in handle)


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read and validate a training YAML; the first problem fails naming file and field."""
    raw = read_config_file(path)
    study_keys = [key for key in STUDY_ONLY_KEYS if key in raw]
    if study_keys:
        raise RadoncInputError(
            f"this is a study recipe (it has '{study_keys[0]}'), not a training config: run it "
            f"with `radonc-llm run {path}`, or train from a training config such as "
            "configs/smollm2/lora_multitask.yaml",
            file=path,
        )
    raw.update(overrides)
    return validate_config(
        TrainConfig, raw, file=path, context={"config_file": Path(path)}, set_in_code=overrides
    )


# Keys of a `radonc-llm run` recipe that a training config never has.
STUDY_ONLY_KEYS = ("kind", "export", "runs_dir", "train_preset")


class _ConfigLoader(yaml.SafeLoader):
    """`yaml.safe_load`, except that a key given twice is an error (PyYAML keeps the last one
    silently) and `1e-3` is a number, as in YAML 1.2 (YAML 1.1 needs `1.0e-3`)."""


def _mapping_without_duplicate_keys(loader: _ConfigLoader, node: yaml.MappingNode) -> dict:
    first_line: dict[str, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        if key_node.value in first_line:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key '{key_node.value}' is given twice (first on line "
                f"{first_line[key_node.value]}); keep one",
                key_node.start_mark,
            )
        first_line[key_node.value] = key_node.start_mark.line + 1
    return loader.construct_mapping(node)


_ConfigLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicate_keys
)
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_config_file(path: str | Path, *, named_by: str | None = None) -> dict[str, Any]:
    """A YAML config file as a mapping of field: value (`yaml.safe_load`, duplicate keys
    refused); a missing, unreadable, empty or non-UTF-8 file, bad YAML or anything but a
    mapping fails naming the file. `named_by` says which other file named this one (e.g. "the
    train_preset of recipe.yaml"), and goes into each message."""
    path = Path(path)
    by = f" ({named_by})" if named_by else ""
    if path.is_dir():
        raise RadoncInputError(f"is a folder; give the YAML config file itself{by}", file=path)
    if not path.is_file():
        where = "" if path.is_absolute() else f" in the working folder {Path.cwd()}"
        raise RadoncInputError(f"config file not found{where}{by}", file=path)
    try:
        text = path.read_bytes().decode("utf-8")
        raw = yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise RadoncInputError(f"cannot read the file ({exc.strerror}){by}", file=path) from None
    except UnicodeDecodeError as exc:
        raise RadoncInputError(f"{_not_utf8(exc)}; save the file as UTF-8{by}", file=path) from None
    except yaml.YAMLError as exc:
        raise RadoncInputError(f"not valid YAML: {_yaml_problem(exc)}{by}", file=path) from None
    if raw is None:
        raise RadoncInputError(f"the file is empty; expected lines of field: value{by}", file=path)
    if not isinstance(raw, dict):
        raise RadoncInputError(
            f"expected a mapping of field: value (lines such as `lora_rank: 16`), got "
            f"{_a_yaml_kind(raw)}{by}",
            file=path,
        )
    return raw


def _not_utf8(exc: UnicodeDecodeError) -> str:
    if exc.object.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text, not UTF-8"
    line = exc.object[: exc.start].count(b"\n") + 1
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line})"


def _a_yaml_kind(value: Any) -> str:
    """What a YAML document holds instead of a mapping: 'a list (...)', "a single str ('x')"."""
    if isinstance(value, list):
        return "a list (lines starting with '- ')"
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    hint = "; put a space after each colon" if isinstance(value, str) and ":" in value else ""
    return f"a single {type(value).__name__} ({shown}){hint}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's problem and where it is, without its quoting of the whole document."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if "'\\t'" in problem:
        problem += _tab_hint(mark)
    if "could not determine a constructor" in problem:
        problem += " (configs hold plain values: tags such as !!python/... are refused)"
    if "another document" in problem:
        problem += " (a config is one YAML document: remove the '---' line)"
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _tab_hint(mark: Any) -> str:
    """Why PyYAML refused a tab: in the indentation, or between a key and its value or
    before a comment (YAML 1.2 allows that; PyYAML, a YAML 1.1 reader, does not)."""
    buffer, pointer = getattr(mark, "buffer", None), getattr(mark, "pointer", None)
    if isinstance(buffer, str) and isinstance(pointer, int):
        line_start = buffer.rfind("\n", 0, pointer) + 1
        if buffer[line_start:pointer].strip(" \t\ufeff"):
            return " (a tab after a key or a value is refused here: replace the tab with a space)"
    return " (YAML indents with spaces, never tabs)"


def validate_config(
    model: type[BaseModel],
    raw: dict,
    *,
    file: str | Path | None = None,
    context: dict[str, Any] | None = None,
    set_in_code: Iterable[str] = (),
):
    """Validate `raw` against a config model; turn the first error into a RadoncInputError
    naming the file, the field, the field's line in `file` (unless the field is one of
    `set_in_code`) and the fix."""
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        error = RadoncInputError.from_validation_error(exc, file=file)
        first = exc.errors()[0]
        reason = error.reason
        if first["type"] == "extra_forbidden":
            section = _section_model(model, first["loc"][:-1])
            close = difflib.get_close_matches(str(first["loc"][-1]), section.model_fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            reason = f"unknown field{hint}; known fields: {', '.join(section.model_fields)}"
            if file is not None and model is not TrainConfig and _is_a_training_config(raw):
                reason = _training_config_given(file)
        elif first["type"] == "missing" and file is not None and _is_a_training_config(raw):
            reason = _training_config_given(file)
        elif first["type"] == "missing":
            reason = _missing_field(model, first["loc"])
        else:
            reason = _with_the_value(reason, first, model)
        loc = tuple(part for part in first["loc"] if not _is_a_union_member(part))
        field = ".".join(str(part) for part in loc) or None
        line = None
        if file is not None and loc and loc[0] not in set(set_in_code):
            line = _key_line(Path(file), loc)
        if line is not None:
            reason = f"line {line}: {reason}"
        raise RadoncInputError(reason, file=file, field=field) from None


def _is_a_union_member(part: str | int) -> bool:
    """Whether a part of a pydantic error location is the union member tried ('int',
    'dict[str,int]'), not a field or key."""
    return isinstance(part, str) and (
        part in ("int", "float", "str", "bool") or part.startswith(("dict[", "list[", "tuple["))
    )


def _is_a_training_config(raw: dict) -> bool:
    return bool(raw) and all(key in TrainConfig.model_fields for key in raw)


def _training_config_given(file: str | Path) -> str:
    return (
        "this is a training config (its fields are those of `radonc-llm train`), not a study "
        f"recipe: train with `radonc-llm train {file}`, or run a study recipe such as "
        "configs/demo.yaml"
    )


def _with_the_value(reason: str, error: dict, model: type[BaseModel]) -> str:
    """Pydantic's reason with what the file gave, and the fix where a YAML reading explains
    it: an empty value (null), a word YAML took for a boolean, a decimal comma."""
    value = error.get("input")
    if value is None and error["type"] not in ("value_error", "assertion_error"):
        return _empty_value(model, error["loc"])
    if error["type"] in ("value_error", "assertion_error", "model_type"):
        return reason
    if isinstance(value, bool):
        return f"{reason}, got {str(value).lower()}{YAML_BOOLEANS}; quote the word"
    if not isinstance(value, str | int | float):
        return reason
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    reason += f" ({shown})" if "got" in reason else f", got {shown}"
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+,\d+", value.strip()):
        reason += "; write a decimal point, not a comma"
    return reason


def _empty_value(model: type[BaseModel], loc: tuple) -> str:
    """Why a field written without a value (`epochs:`, `epochs: ~`, `predict:` with every line
    below it commented out), which YAML reads as null, is refused, and what to write there."""
    info = _field_info(model, loc)
    if info is not None and _is_a_section(info.annotation):
        fix = "" if info.is_required() else ", or delete the line to use the defaults"
        return f"is empty (null); give its fields on the indented lines below it{fix}"
    default = _default_of(model, loc)
    fix = f", or delete the line to use the default ({default})" if default is not None else ""
    return f"is empty (null); give {_what_to_give(info)}{fix}"


def _is_a_section(annotation: Any) -> bool:
    """Whether a field holds fields of its own (a config model, or a mapping such as `train`)."""
    candidates = [annotation, *typing.get_args(annotation)]
    return any(
        (isinstance(c, type) and issubclass(c, BaseModel)) or typing.get_origin(c) is dict
        for c in candidates
    )


def _what_to_give(info: FieldInfo | None) -> str:
    """'one of cosine, linear, constant' for a field of fixed choices, else 'a value' and what
    the field means ('a value (passes over the training examples)')."""
    if info is None:
        return "a value"
    choices = [
        choice
        for arg in [info.annotation, *typing.get_args(info.annotation)]
        if typing.get_origin(arg) is Literal
        for choice in typing.get_args(arg)
    ]
    if choices:
        return f"one of {', '.join(map(str, choices))}"
    if not info.description:
        return "a value"
    meaning = info.description.rstrip(".")
    if meaning.split()[0][1:].islower():  # "Passes over" -> "passes over"; "LoRA rank" stays
        meaning = meaning[0].lower() + meaning[1:]
    return f"a value ({meaning})"


def _missing_field(model: type[BaseModel], loc: tuple) -> str:
    """'missing: add a line `name: ...` (Run name; ...)'."""
    info = _field_info(model, loc)
    described = f" ({info.description})" if info is not None and info.description else ""
    return f"missing: add a line `{loc[-1]}: ...`{described}"


def _field_info(model: type[BaseModel], loc: tuple) -> FieldInfo | None:
    """The field at `loc` (("predict", "batch_size")); None for a list item or a dict key."""
    try:
        return _section_model(model, loc[:-1]).model_fields[loc[-1]]
    except (KeyError, StopIteration, TypeError, IndexError):
        return None


def _default_of(model: type[BaseModel], loc: tuple) -> str | None:
    """The default of the field at `loc`, as YAML writes it; None for a required field or a
    list item."""
    info = _field_info(model, loc)
    if info is None or info.is_required():
        return None
    default = info.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        return None
    if isinstance(default, Path):
        return str(default)
    return yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("\n...")


def with_line(reason: str, file: str | Path, field: str | None) -> str:
    """`reason` led by the line of `field` (dotted, e.g. "train.lora_rank") in the YAML `file`,
    as validate_config writes it: "line 12: ..."; unchanged where the file cannot say."""
    if not field:
        return reason
    loc = tuple(int(part) if part.isdigit() else part for part in field.split("."))
    line = _key_line(Path(file), loc)
    return f"line {line}: {reason}" if line is not None else reason


def _key_line(path: Path, loc: tuple) -> int | None:
    """The line of the field at `loc` (e.g. ("train", "lora_rank")) in a YAML file, or of its
    nearest enclosing key; None where the file cannot say."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_ConfigLoader)  # noqa: S506
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if getattr(k, "value", None) == str(part)]
            if not found:
                break
            line, node = found[0][0].start_mark.line + 1, found[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _section_model(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The config model of the section at `loc` (e.g. ("predict",) -> PredictSection)."""
    for name in loc:
        annotation = model.model_fields[name].annotation
        candidates = [annotation, *typing.get_args(annotation)]
        model = next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
    return model
