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
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, NoReturn

import torch

from radonc_llm.errors import RadoncInputError
from radonc_llm.storage import is_cut_last_line, iter_jsonl, write_json_atomic

CHECKPOINTS = "checkpoints"
CHECKPOINT_NAME = re.compile(r"step-(\d+)")
logger = logging.getLogger(__name__)


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of a run, or None. Saves are renamed into place whole, so a newest
    one that lacks a file was damaged since: it is returned (and refused on reading, naming the
    file), never passed over for an older one without a word."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return None
    saved = sorted(p for p in folder.iterdir() if CHECKPOINT_NAME.fullmatch(p.name))
    return saved[-1] if saved else None


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
    """Clear what saves killed before their renames left in a run folder (the adapter's
    `.adapter.tmp` and `.adapter.old`, a checkpoint's `.step-N.tmp` and `.step-N.old`);
    returns how many. Safe on resume: the save that was cut short came before its step's
    checkpoint, so the run does it again. An `.old` folder whose folder is missing holds it
    whole (the kill came between `replace_dir`'s two renames): it is put back, not deleted."""
    run_dir = Path(run_dir)
    new = [*run_dir.glob(".adapter.tmp"), *(run_dir / CHECKPOINTS).glob(".step-*.tmp")]
    moved_aside = [*run_dir.glob(".adapter.old"), *(run_dir / CHECKPOINTS).glob(".step-*.old")]
    for old in moved_aside:
        final = old.with_name(old.name.removeprefix(".").removesuffix(".old"))
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, final)
    for folder in new:
        shutil.rmtree(folder, ignore_errors=True)
    return len(new) + len(moved_aside)


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


# What the training loop's RunState saves, by kind: a value of another kind (a hand edit, a
# damaged disk) would fail only steps later, deep in the loop.
STATE_NUMBERS = {
    "step": "whole",
    "trained_tokens": "whole",
    "computed_tokens": "whole",
    "answer_tokens": "whole",
    "best_step": "whole or null",
    "train_seconds": "number",
    "best_val_loss": "number or null",
    "last_train_loss": "number or null",
}


def read_checkpoint_state(checkpoint: Path) -> dict:
    """The saved `state.json` of a checkpoint, after checking that its files are all there and
    its counters are numbers; a damaged checkpoint fails naming the file (and the older
    checkpoint to fall back on)."""
    if not checkpoint.is_dir():
        _damaged(checkpoint, checkpoint, "is not a folder")
    for name in CHECKPOINT_FILES:
        if not (checkpoint / name).is_file():
            _damaged(checkpoint, checkpoint / name, "is missing")
    state_file = checkpoint / "state.json"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _damaged(checkpoint, state_file, f"is not valid JSON ({exc})")
    if not isinstance(state, dict) or "step" not in state:
        _damaged(checkpoint, state_file, "holds no step number")
    for name, kind in STATE_NUMBERS.items():
        if name in state and not _is_kind(state[name], kind):
            wanted = "whole number" if kind.startswith("whole") else "number"
            _damaged(
                checkpoint, state_file, f"says '{name}' is {_kind_of(state[name])}, not a {wanted}"
            )
    number = CHECKPOINT_NAME.fullmatch(checkpoint.name)
    if state["step"] < 0 or (number and int(number.group(1)) != state["step"]):
        _damaged(
            checkpoint,
            state_file,
            f"says step {state['step']} in the folder of step "
            f"{int(number.group(1)) if number else '?'}",
        )
    return state


def _is_kind(value: Any, kind: str) -> bool:
    if value is None:
        return kind.endswith("or null")
    if isinstance(value, bool):
        return False
    if kind.startswith("whole"):
        return isinstance(value, int)
    return isinstance(value, int | float)


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a number with a fraction"
    kinds = {bool: "true or false", str: "a string", list: "a list", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)


def metrics_until(path: Path, step: int) -> list[dict]:
    """The rows of a run's metrics.jsonl up to `step`, the checkpoint a resume starts from: a
    kill undid the later steps. A last line the kill cut short is dropped; any other bad line
    stops the resume, naming it."""
    rows: list[dict] = []
    try:
        rows.extend(row for _, row in iter_jsonl(path))
    except RadoncInputError as exc:
        if exc.row is None or not is_cut_last_line(path, exc.row):
            raise
        logger.info("%s: dropped row %d, cut short by the kill", path, exc.row)
    return [row for row in rows if not isinstance(row.get("step"), int) or row["step"] <= step]


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
        _damaged(checkpoint, weights_file, _unreadable(weights_file, exc))
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
            _damaged(checkpoint, checkpoint / name, _unreadable(checkpoint / name, exc))
    try:
        set_rng_state(torch.load(rng_file, weights_only=True))
    except Exception as exc:
        _damaged(checkpoint, rng_file, _unreadable(rng_file, exc))
    return state


def check_best_adapter(run_dir: Path, state: dict) -> None:
    """Refuse to resume a run whose best adapter (written at a validation before the
    checkpoint) is missing or cut short: the resumed run would keep it unless a later
    validation did better, and finish without a usable adapter."""
    from radonc_llm.models.registry import check_safetensors_whole

    best_step = state.get("best_step")
    if best_step is None:
        return
    weights = Path(run_dir) / "adapter" / "adapter_model.safetensors"
    copy = Path(run_dir) / CHECKPOINTS / checkpoint_name(best_step) / "adapter"
    fix = (
        f"; the checkpoint of that step holds the same weights: copy {copy} to "
        f"{weights.parent}, then resume"
        if copy.is_dir()
        else "; start again in a new output_dir"
    )
    what = f"the run's best adapter (validation at step {best_step})"
    if not weights.is_file():
        raise RadoncInputError(f"{what} is missing{fix}", file=weights)
    try:
        check_safetensors_whole(weights)
    except RadoncInputError as exc:
        raise RadoncInputError(f"{what} {exc.reason}{fix}", file=weights) from None


def _unreadable(path: Path, exc: Exception) -> str:
    """Why a checkpoint file cannot be loaded, in a line: torch's zip reader explains itself
    over several sentences, and an empty file (a save cut at its start) says nothing at all."""
    if path.stat().st_size == 0:
        return "is empty (0 bytes)"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot be read ({first.split('. ')[0][:300]})"


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
