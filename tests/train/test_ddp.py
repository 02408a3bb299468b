"""DDP through `accelerate launch`: 2 CPU processes (gloo) agree with one process."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from radonc_llm.config import TrainConfig
from radonc_llm.train.loop import train

from .conftest import write_task_dir

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings(root: Path, out: str, accumulation: int) -> dict:
    return {
        "model": "tiny-llama",
        "train_dir": str(root / "train"),
        "val_dir": str(root / "val"),
        "output_dir": str(root / out),
        "micro_batch_size": 4,
        "gradient_accumulation_steps": accumulation,
        "epochs": 2,
        "learning_rate": 0.01,
        "lora_rank": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,  # each process draws its own dropout masks; one process cannot match
        "precision": "fp32",
        "log_every_steps": 1,
        "num_threads": 1,
    }


def losses(run: Path) -> list[tuple[int, str, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(row["step"], row["split"], row["loss"]) for row in rows]


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    write_task_dir(tmp_path / "train", 8)  # 24 examples: 3 steps of 8 per epoch
    write_task_dir(tmp_path / "val", 2, offset=100)
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(
        "# radonc-llm train ddp.yaml\n" + yaml.safe_dump(settings(tmp_path, "ddp", 1))
    )
    launcher = Path(sys.executable).parent / "accelerate"
    command = [
        str(launcher), "launch", "--config_file", str(ROOT / "configs/accelerate/ddp_cpu.yaml"),
        "--main_process_port", str(free_port()), "-m", "radonc_llm.cli", "train", str(config_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    # One process: the same global batch of 8 as 2 micro-batches of 4, accumulated.
    single = train(TrainConfig(**settings(tmp_path, "single", 2)), show_progress=False)

    manifest = json.loads((tmp_path / "ddp" / "manifest.json").read_text())
    assert manifest["hardware"]["num_processes"] == 2
    checksums = manifest["results"]["adapter_sha256_by_rank"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]  # identical adapters on both ranks
    assert manifest["results"]["steps"] == single["steps"] == 6

    ddp_losses, single_losses = losses(tmp_path / "ddp"), losses(tmp_path / "single")
    assert [row[:2] for row in ddp_losses] == [row[:2] for row in single_losses]
    assert [row[2] for row in ddp_losses] == pytest.approx(
        [row[2] for row in single_losses], abs=1e-5
    )
    ddp_adapter = load_file(str(tmp_path / "ddp" / "adapter" / "adapter_model.safetensors"))
    single_adapter = load_file(str(tmp_path / "single" / "adapter" / "adapter_model.safetensors"))
    for key, value in single_adapter.items():
        assert torch.allclose(ddp_adapter[key], value, atol=1e-5), key


@pytest.mark.slow
def test_train_starts_its_own_processes_and_resumes_with_them(tmp_path):
    write_task_dir(tmp_path / "train", 8)
    write_task_dir(tmp_path / "val", 2, offset=100)
    config_path = tmp_path / "self.yaml"
    config_path.write_text(
        yaml.safe_dump({**settings(tmp_path, "self", 1), "processes": 2, "epochs": 1})
    )
    done = subprocess.run(  # noqa: S603  (nothing to resume yet: starts from step 0)
        [str(Path(sys.executable).parent / "radonc-llm"), "train", str(config_path), "--resume"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("Training run in") == 1  # the launcher's summary, not rank 0's too

    manifest = json.loads((tmp_path / "self" / "manifest.json").read_text())
    assert manifest["hardware"]["num_processes"] == 2
    results = manifest["results"]
    assert results["steps"] == 3  # 24 examples, 8 per step
    assert len(set(results["adapter_sha256_by_rank"])) == 1
    launched = yaml.safe_load((tmp_path / "self" / "launch_config.yaml").read_text())
    assert launched["processes"] == 2 and launched["output_dir"] == str(tmp_path / "self")


def _processes_running(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_stopping_the_launcher_stops_its_training_processes(tmp_path):
    write_task_dir(tmp_path / "train", 8)
    write_task_dir(tmp_path / "val", 2, offset=100)
    config_path = tmp_path / "long.yaml"
    config_path.write_text(
        yaml.safe_dump({**settings(tmp_path, "long", 1), "processes": 2, "epochs": 500})
    )
    launcher = subprocess.Popen(  # noqa: S603
        [str(Path(sys.executable).parent / "radonc-llm"), "train", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = tmp_path / "long" / "metrics.jsonl"
    for _ in range(600):  # the ranks are training once a step is logged
        if metrics.is_file() and metrics.read_text().strip():
            break
        time.sleep(0.1)
    needle = str(tmp_path / "long" / "launch_config.yaml")
    assert len(_processes_running(needle)) >= 3  # torchrun and its 2 ranks
    launcher.terminate()
    assert launcher.wait(timeout=60) != 0
    for _ in range(100):
        if not _processes_running(needle):
            break
        time.sleep(0.1)
    assert _processes_running(needle) == []
