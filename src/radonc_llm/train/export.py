"""`radonc-llm export RUN --out DIR [--merge]`: a training run's adapter as a standalone model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from radonc_llm.errors import RadoncInputError
from radonc_llm.models.registry import is_run_dir, load_model
from radonc_llm.train.checkpoint import replace_dir


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    merge: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write the run's best adapter merged into its base model (loadable with
    `AutoModelForCausalLM.from_pretrained` and `load_model`), or, with merge=False, the adapter
    alone in PEFT format. The folder appears whole or not at all."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not is_run_dir(run_dir):
        raise RadoncInputError(
            "not a training run (expected manifest.json and adapter/adapter_config.json)",
            file=run_dir,
        )
    if out_dir.exists() and any(out_dir.iterdir()):
        raise RadoncInputError("output folder exists and is not empty", file=out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        if merge:
            model, tokenizer = load_model(str(run_dir), dtype=dtype)
            merged = model.merge_and_unload()
            merged.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        else:
            shutil.copytree(run_dir / "adapter", tmp, dirs_exist_ok=True)
        shutil.copy2(run_dir / "manifest.json", tmp / "training_manifest.json")
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
