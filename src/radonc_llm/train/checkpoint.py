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
from typing import Any, NoReturn

import torch

from radonc_llm.errors import RadoncInputError
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
    _save_pretrained(peft_model, tmp, state_dict=state_dict)
    replace_dir(tmp, out_dir)


def _save_pretrained(peft_model: Any, folder: Path, *, state_dict: dict | None) -> None:
    """PEFT's save, with the target modules listed in sorted order: PEFT keeps them in a set,
    whose order changes from one process to the next, and the same weights must give the same
    files (a study run compares hashes to know what to redo)."""
    peft_model.save_pretrained(folder, state_dict=state_dict)
    for config_file in Path(folder).rglob("adapter_config.json"):
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if isinstance(config.get("target_modules"), list):
            config["target_modules"] = sorted(config["target_modules"])
            write_json_atomic(config_file, config)


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder `src` to `dst`, replacing `dst`; a kill leaves one of the two intact."""
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def remove_unfinished_saves(run_dir: str | Path) -> int:
    """Delete the folders that saves killed before their renames left in a run folder (the
    adapter's `.adapter.tmp` and `.adapter.old`, a checkpoint's `.step-N.tmp`); returns how
    many. Safe on resume: the save that was cut short came before its step's checkpoint, so
    the run does it again."""
    run_dir = Path(run_dir)
    unfinished = [*run_dir.glob(".adapter.tmp"), *run_dir.glob(".adapter.old")]
    unfinished += [*(run_dir / CHECKPOINTS).glob(".step-*.tmp")]
    unfinished += [*(run_dir / CHECKPOINTS).glob(".step-*.old")]
    for folder in unfinished:
        shutil.rmtree(folder, ignore_errors=True)
    return len(unfinished)


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
        _save_pretrained(peft_model, tmp / "adapter", state_dict=adapter_state)
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


CHECKPOINT_FILES = (
    "adapter/adapter_config.json",
    "adapter/adapter_model.safetensors",
    "optimizer.pt",
    "scheduler.pt",
    "state.json",
)


def read_checkpoint_state(checkpoint: Path) -> dict:
    """The saved `state.json` of a checkpoint, after checking that its files are all there;
    a damaged checkpoint fails naming the file (and the older checkpoint to fall back on)."""
    for name in CHECKPOINT_FILES:
        if not (checkpoint / name).is_file():
            _damaged(checkpoint, checkpoint / name, "is missing")
    try:
        state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _damaged(checkpoint, checkpoint / "state.json", f"is not valid JSON ({exc})")
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        _damaged(checkpoint, checkpoint / "state.json", "holds no step number")
    return state


def load_checkpoint(
    checkpoint: Path, *, accelerator: Any, peft_model: Any, optimizer: Any, scheduler: Any
) -> dict:
    """Restore weights, optimizer, schedule and this process's RNG; return the saved state."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = read_checkpoint_state(checkpoint)
    rng_file = checkpoint / f"rng-rank{accelerator.process_index}.pt"
    if not (checkpoint / "rng-rank0.pt").is_file():
        _damaged(checkpoint, checkpoint / "rng-rank0.pt", "is missing")
    written_by = len(list(checkpoint.glob("rng-rank*.pt")))
    if written_by != accelerator.num_processes:
        # Another number of processes makes another global batch, so another data order.
        raise RadoncInputError(
            f"the checkpoint was written by {written_by} process(es) and this resume runs "
            f"{accelerator.num_processes}: the global batch and the data order would change; "
            f"resume with {written_by} (`processes: {written_by}` in the config, or the same "
            "`accelerate launch --num_processes`)",
            file=checkpoint,
        )
    if not rng_file.is_file():
        _damaged(checkpoint, rng_file, "is missing")
    weights_file = checkpoint / "adapter" / "adapter_model.safetensors"
    try:
        weights = load_file(str(weights_file))
    except Exception as exc:  # safetensors raises its own SafetensorError on a cut file
        _damaged(checkpoint, weights_file, f"cannot be read ({exc})")
    try:
        result = set_peft_model_state_dict(peft_model, weights)
    except RuntimeError as exc:  # shapes of another LoRA rank or model
        _damaged(checkpoint, weights_file, f"does not fit the model ({str(exc)[:300]})")
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        _damaged(checkpoint, weights_file, f"has weights the model lacks: {unexpected[:3]}")
    for name, target in (("optimizer.pt", optimizer), ("scheduler.pt", scheduler)):
        try:
            target.load_state_dict(torch.load(checkpoint / name, weights_only=True))
        except Exception as exc:  # a cut zip archive, a pickle error, another optimizer's state
            _damaged(checkpoint, checkpoint / name, f"cannot be read ({str(exc)[:300]})")
    try:
        set_rng_state(torch.load(rng_file, weights_only=True))
    except Exception as exc:
        _damaged(checkpoint, rng_file, f"cannot be read ({str(exc)[:300]})")
    return state


def _damaged(checkpoint: Path, path: Path, what: str) -> NoReturn:
    """Stop a resume from a damaged checkpoint, saying which file and what to do."""
    older = [
        p
        for p in sorted(checkpoint.parent.glob("step-*"))
        if p.name < checkpoint.name and (p / "state.json").is_file()
    ]
    fallback = (
        f"delete {checkpoint} to resume from {older[-1].name}"
        if older
        else f"delete {checkpoint} to start again from step 0"
    )
    raise RadoncInputError(f"damaged checkpoint: {path.name} {what}; {fallback}", file=path)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
