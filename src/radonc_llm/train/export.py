"""`radonc-llm export RUN --out DIR [--merge]`: a training run's adapter as a standalone model."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from radonc_llm.errors import RadoncInputError
from radonc_llm.models.registry import (
    check_adapter_files,
    is_run_dir,
    load_model,
    not_a_model_reason,
    run_status,
)
from radonc_llm.storage import remove_temporaries_of
from radonc_llm.train.checkpoint import replace_dir

logger = logging.getLogger(__name__)


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
    run_dir, out_dir = Path(run_dir).expanduser(), Path(out_dir).expanduser()
    _check_run(run_dir)
    _check_out_dir(out_dir, run_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if remove_temporaries_of(out_dir):  # a merged 7B model is ~14 GB of them
            logger.info("removed the partial folder(s) a killed export left beside %s", out_dir)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    except OSError as exc:
        raise RadoncInputError(
            f"cannot write the output folder here ({exc.strerror or exc}); choose a folder you "
            "can write to",
            file=out_dir,
        ) from None
    try:
        # Load before anything is written: a run that cannot load leaves nothing behind.
        model, tokenizer = load_model(str(run_dir), dtype=dtype) if merge else (None, None)
        try:
            if merge:
                merged = model.merge_and_unload()
                merged.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
            else:
                shutil.copytree(run_dir / "adapter", tmp, dirs_exist_ok=True)
            shutil.copy2(run_dir / "manifest.json", tmp / "training_manifest.json")
            replace_dir(tmp, out_dir)
        except OSError as exc:  # a full disk, a folder made read-only meanwhile
            raise RadoncInputError(
                f"writing the {'merged model' if merge else 'adapter'} failed "
                f"({exc.strerror or exc}); nothing was written there; free space or choose "
                "another folder, then export again",
                file=out_dir,
            ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _check_run(run_dir: Path) -> None:
    if not run_dir.exists():
        raise RadoncInputError("no such training run folder", file=run_dir)
    if is_run_dir(run_dir):
        check_adapter_files(run_dir / "adapter")
        status = run_status(run_dir)
        if status != "finished":
            warnings.warn(
                f"{run_dir}: the run's status is '{status}', not 'finished': exporting the best "
                "adapter it has saved so far; `radonc-llm train CONFIG --resume` finishes it",
                stacklevel=3,
            )
        return
    if run_dir.is_dir() and (run_dir / "training_manifest.json").is_file():
        raise RadoncInputError(
            "this is an exported model, not a training run; predict with it directly "
            f"(`radonc-llm predict --model {run_dir}`)",
            file=run_dir,
        )
    if run_dir.is_dir() and (run_dir / "manifest.json").is_file():
        reason = f"not a training run to export: {not_a_model_reason(run_dir)}"
    elif run_dir.is_dir() and (runs := _runs_inside(run_dir)):
        names = ", ".join(str(run) for run in runs[:3]) + (", ..." if len(runs) > 3 else "")
        reason = f"a folder of training runs, not one run; export one of them: {names}"
    else:
        reason = "not a training run (expected manifest.json and adapter/adapter_config.json)"
    raise RadoncInputError(reason, file=run_dir)


def _runs_inside(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if child.is_dir() and is_run_dir(child))


def _check_out_dir(out_dir: Path, run_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise RadoncInputError("output is a file; give a folder to write", file=out_dir)
    if out_dir.resolve().is_relative_to(run_dir.resolve()):
        # A resumed run replaces its own folders (adapter/, checkpoints/), and a copy of the
        # adapter inside adapter/ would copy itself.
        raise RadoncInputError(
            f"output folder is inside the run folder {run_dir}; choose a folder outside it",
            file=out_dir,
        )
    if out_dir.exists() and any(out_dir.iterdir()):
        raise RadoncInputError(
            "output folder exists and is not empty; choose a new folder or empty this one",
            file=out_dir,
        )
