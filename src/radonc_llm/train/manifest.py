"""What a training run records about itself: code, packages, data, hardware, times."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess  # noqa: S404  (git, fixed arguments)
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from radonc_llm.storage import file_sha256

PACKAGES = (
    "radonc-llm",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "safetensors",
    "tokenizers",
)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def git_commit() -> dict[str, Any]:
    """The commit of the source tree and whether it had uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(  # noqa: S603
            ["git", "rev-parse", "HEAD"],  # noqa: S607
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        status = subprocess.run(  # noqa: S603
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    if commit.returncode != 0:
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hardware(accelerator: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(accelerator.device),
        "num_processes": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def data_hashes(files: Iterable[Path], counts: dict[str, int]) -> dict[str, dict[str, Any]]:
    """sha256 and the number of examples used, per task file."""
    return {
        str(path): {"sha256": file_sha256(path), "examples_used": counts.get(path.stem, 0)}
        for path in files
    }


def base_model_record(model: str) -> dict[str, str]:
    """How a run's manifest names its base model: `model`, a registry name or hub id as written
    and a local folder by its absolute path (a run used from another working folder finds it),
    and `model_as_written`, the config's own words (a moved project finds its base by them,
    from the folders above the run; see `registry.base_model_of`)."""
    from radonc_llm.models.registry import MODEL_REGISTRY

    path = Path(model).expanduser()
    resolved = str(path.resolve()) if model not in MODEL_REGISTRY and path.exists() else model
    return {"model": resolved, "model_as_written": model}
