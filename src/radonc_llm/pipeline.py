"""`radonc-llm run CONFIG`: the whole study, stage by stage, resumable.

Each stage writes into `runs/<name>/<stage>/` and records, in `<stage>/.stage.json`, a hash of
its inputs and settings. A rerun skips a stage whose hash did not change; a stage that did not
finish (no record, or a changed hash) runs again, and the long ones (training, prediction)
resume from their own checkpoints. Stage times go into `runs/<name>/manifest.json`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from radonc_llm.storage import file_sha256, write_json_atomic

STAGE_RECORD = ".stage.json"


@dataclass
class Stage:
    """One step of the study: its folder name, what it reads, its settings, and how to run it."""

    name: str
    inputs: Callable[[], list[Path]]
    settings: dict[str, Any]
    run: Callable[[Path], None]


def _hash_inputs(paths: list[Path], settings: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in sorted(paths):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.name == STAGE_RECORD or file.name.startswith("."):
                continue
            digest.update(str(file.relative_to(path.parent)).encode())
            digest.update(file_sha256(file).encode())
    return digest.hexdigest()


def stage_is_current(stage_dir: Path, input_hash: str) -> bool:
    record = stage_dir / STAGE_RECORD
    if not record.exists():
        return False
    return json.loads(record.read_text()).get("input_hash") == input_hash


def run_stages(run_dir: Path, stages: list[Stage], *, console: Console) -> dict[str, dict]:
    """Run the stages in order, skipping those already done with the same inputs."""
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    times: dict[str, dict] = manifest.get("stages", {})
    for index, stage in enumerate(stages, start=1):
        stage_dir = run_dir / stage.name
        input_hash = _hash_inputs(stage.inputs(), stage.settings)
        label = f"[{index}/{len(stages)}] {stage.name}"
        if stage_is_current(stage_dir, input_hash):
            console.print(f"{label}: [green]up to date[/], skipped")
            times.setdefault(stage.name, {})["status"] = "skipped (up to date)"
            continue
        console.rule(label)
        started = time.perf_counter()
        stage_dir.mkdir(parents=True, exist_ok=True)
        stage.run(stage_dir)
        seconds = time.perf_counter() - started
        record = {
            "input_hash": input_hash,
            "seconds": round(seconds, 2),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        write_json_atomic(stage_dir / STAGE_RECORD, record)
        times[stage.name] = {**record, "status": "ran"}
        manifest["stages"] = times
        write_json_atomic(manifest_path, manifest)
        console.print(f"{label}: done in {seconds:.1f} s")
    manifest["stages"] = times
    write_json_atomic(manifest_path, manifest)
    return times
