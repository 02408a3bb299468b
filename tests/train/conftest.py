"""Tiny task files in the format `radonc-llm tasks` writes, and tiny training configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radonc_llm.config import TrainConfig
from radonc_llm.tasks.prompts import PROMPT_VERSION, prompt_messages

SITES = [
    (
        "Adenocarcinoma of the prostate, Gleason 3+4, PSA 8.",
        "C61",
        "photon",
        "60 Gy in 20 fractions",
    ),
    ("Basal cell carcinoma of the nose, 1.2 cm.", "C44.311", "electron", "50 Gy in 20 fractions"),
    ("Medulloblastoma in a 7-year-old child.", "C71.6", "proton", "CSI 23.4 Gy in 13 fractions"),
    (
        "Cervical squamous cell carcinoma FIGO IIB.",
        "C53.9",
        "brachytherapy",
        "HDR 28 Gy in 4 fractions",
    ),
]


def task_rows(task: str, count: int, *, offset: int = 0) -> list[dict]:
    rows = []
    for k in range(count):
        text, icd10, modality, regimen = SITES[(k + offset) % len(SITES)]
        answer = {"regimen": regimen, "modality": modality, "icd10": icd10}[task]
        case_id = f"case-{k + offset:04d}"
        note = f"{text} Patient {k + offset}, ECOG {k % 3}." + " Smoker." * (k % 3)
        rows.append(
            {
                "example_id": f"{case_id}:{task}",
                "case_id": case_id,
                "task": task,
                "messages": [
                    *prompt_messages(task, note),
                    {"role": "assistant", "content": answer},
                ],
                "answer": answer,
                "prompt_version": PROMPT_VERSION,
            }
        )
    return rows


def write_task_dir(folder: Path, count: int, *, offset: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for task in ("regimen", "modality", "icd10"):
        with (folder / f"{task}.jsonl").open("w", encoding="utf-8") as handle:
            for row in task_rows(task, count, offset=offset):
                handle.write(json.dumps(row) + "\n")
    return folder


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Task files of 8 training and 2 validation cases, shared by a test module."""
    root = tmp_path_factory.mktemp("data")
    write_task_dir(root / "train", 8)
    write_task_dir(root / "val", 2, offset=100)
    return root


@pytest.fixture
def task_dirs(tmp_path: Path) -> tuple[Path, Path]:
    return write_task_dir(tmp_path / "tasks" / "train", 16), write_task_dir(
        tmp_path / "tasks" / "val", 4, offset=100
    )


@pytest.fixture
def tiny_config(task_dirs, tmp_path) -> TrainConfig:
    train_dir, val_dir = task_dirs
    return TrainConfig(
        model="tiny-llama",
        train_dir=train_dir,
        val_dir=val_dir,
        output_dir=tmp_path / "run",
        micro_batch_size=4,
        gradient_accumulation_steps=2,
        epochs=2,
        learning_rate=1e-2,
        lora_rank=4,
        lora_alpha=8,
        lora_dropout=0.1,
        precision="fp32",
        checkpoint_every_steps=3,
        keep_checkpoints=2,
        log_every_steps=1,
        seed=0,
    )


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Each test starts without Accelerate's process-wide state: one test's `Accelerator()`
    (on the GPU, where there is one) would otherwise refuse a later `Accelerator(cpu=True)`."""
    from accelerate.state import AcceleratorState

    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def differentiable_lora(model):
    """A rank-4 LoRA on the tiny model whose B matrices are not zero (they start at zero, which
    would give the adapter nothing to differentiate)."""
    import torch

    from radonc_llm.models.lora import add_lora
    from radonc_llm.models.registry import LLAMA_LORA_TARGETS

    peft_model = add_lora(model, rank=4, alpha=8, dropout=0.0, target_modules=LLAMA_LORA_TARGETS)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    return peft_model
