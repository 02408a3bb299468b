"""Resumable checkpoints and the adapter folder, each written whole or not at all.

A checkpoint holds everything a killed run needs to continue as if it never stopped:

    <run>/checkpoints/step-000100/
        adapter/            LoRA weights (PEFT format)
        optimizer.pt        AdamW moments
        scheduler.pt        learning-rate schedule position
        rng-rank<k>.pt      torch RNG of each process (LoRA dropout)
        state.json          step, best validation loss, tokens seen, time spent

The data order needs no state: it is a function of (seed, epoch), and the step number says
where in the epoch the run stood. Folders are written under a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from radonc_llm.storage import write_json_atomic

CHECKPOINTS = "checkpoints"


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def save_adapter(peft_model: Any, out_dir: str | Path, *, state_dict: dict | None = None) -> None:
    """Write the adapter in PEFT format to `out_dir`, replacing what was there atomically."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    peft_model.save_pretrained(tmp, state_dict=state_dict)
    replace_dir(tmp, out_dir)


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder `src` to `dst`, replacing `dst`; a kill leaves one of the two intact."""
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: Path,
    *,
    step: int,
    accelerator: Any,
    peft_model: Any,
    adapter_state: dict | None,
    optimizer: Any,
    scheduler: Any,
    state: dict,
    keep: int,
) -> Path:
    """Write a checkpoint of `step` (all processes call this; the main one writes the shared
    files), then delete all but the newest `keep`."""
    folder = Path(run_dir) / CHECKPOINTS
    final = folder / checkpoint_name(step)
    tmp = folder / f".{checkpoint_name(step)}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng-rank{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        peft_model.save_pretrained(tmp / "adapter", state_dict=adapter_state)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        write_json_atomic(tmp / "state.json", {**state, "step": step})
        _fsync_tree(tmp)
        replace_dir(tmp, final)
        for old in sorted(folder.glob("step-*"))[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(
    checkpoint: Path, *, accelerator: Any, peft_model: Any, optimizer: Any, scheduler: Any
) -> dict:
    """Restore weights, optimizer, schedule and this process's RNG; return the saved state."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(checkpoint / "adapter" / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(peft_model, weights)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise RuntimeError(f"checkpoint {checkpoint} has weights the model lacks: {unexpected[:3]}")
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    rng_file = checkpoint / f"rng-rank{accelerator.process_index}.pt"
    if not rng_file.is_file():
        raise RuntimeError(
            f"{checkpoint} was written by fewer processes; resume with the same number of processes"
        )
    set_rng_state(torch.load(rng_file, weights_only=True))
    return json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
