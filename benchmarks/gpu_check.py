"""The 7B path on one GPU: LoRA training and prediction with a model of LLaMA-2-7B's shape.

No 7B weights can be downloaded here, so this builds the architecture of LLaMA-2-7B (or
Mistral-7B) with random weights, in bf16, saves it as a local model folder (what a user with
the weights points `model:` at), then runs the product's own code on it:

1. `train_adapter` with the study's preset (`configs/<arch>_7b/lora_multitask.yaml`: LoRA r=16 on
   every attention and MLP projection, micro-batch 8 x 4 accumulation, bf16), cut to `--steps`
   optimizer steps on synthetic task files;
2. `TransformersBackend.load(run)`: base + adapter merged, on the GPU in bf16;
3. `predict_cases` for the three tasks (regimen free, modality and ICD-10 constrained) on
   `--cases` test cases, and the first 8 cases again one at a time (batched = one-at-a-time).

Random weights: the figures are speed and memory, not quality. The last output line is one
JSON object: train tokens/s, peak GPU memory, cases/s per task, malformed counts.

    python benchmarks/gpu_check.py [--arch llama|mistral] [--steps 30] [--cases 64]
        [--layers N (fewer layers: a quick run of the same code)] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from radonc_llm.config import TrainConfig
from radonc_llm.data.cases import read_cases
from radonc_llm.infer.backends import TransformersBackend
from radonc_llm.infer.predict import predict_cases
from radonc_llm.models.registry import smollm2_tokenizer
from radonc_llm.train.loop import train_adapter

ROOT = Path(__file__).resolve().parents[1]

# The published configurations of the two study models (vocabulary: SmolLM2's tokenizer's).
SHAPES = {
    "llama": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
    },
    "mistral": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
    },
}
PRESETS = {
    "llama": "configs/llama2_7b/lora_multitask.yaml",
    "mistral": "configs/mistral_7b/lora_multitask.yaml",
}


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "radonc_llm.cli", *args], check=True, cwd=ROOT)


def task_files(folder: Path, patients: int) -> tuple[Path, Path, Path]:
    """Synthetic cohort -> curated cases -> split -> task files (the README's pipeline)."""
    cli("synth", "--out", str(folder / "raw"), "--patients", str(patients), "--seed", "0")
    cli("curate", "--raw", str(folder / "raw"), "--out", str(folder / "cur"))
    cli("split", "--cases", str(folder / "cur" / "cases.jsonl"), "--out", str(folder / "split"))
    for split in ("train", "val"):
        cli(
            "tasks",
            "--cases",
            str(folder / "split" / f"{split}.jsonl"),
            "--out",
            str(folder / "tasks" / split),
        )
    return folder / "tasks" / "train", folder / "tasks" / "val", folder / "split" / "test.jsonl"


# `--dry-run`: the same code on a model small enough for a CPU, to check the script itself.
DRY_RUN_SHAPE = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def build_model(arch: str, folder: Path, layers: int | None, dry_run: bool = False) -> dict:
    """A randomly initialised model of the study model's shape, saved in bf16 with a tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    tokenizer = smollm2_tokenizer()
    shape = {**SHAPES[arch], **(DRY_RUN_SHAPE if dry_run else {})}
    if layers:
        shape["num_hidden_layers"] = layers
    config_cls, model_cls = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "mistral": (MistralConfig, MistralForCausalLM),
    }[arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        **shape,
    )
    started = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = model_cls(config)
    finally:
        torch.set_default_dtype(previous)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"parameters": params, "build_and_save_s": round(time.perf_counter() - started, 1)}


def train(arch: str, model_dir: Path, train_dir: Path, val_dir: Path, out: Path, steps: int):
    preset = yaml.safe_load((ROOT / PRESETS[arch]).read_text(encoding="utf-8"))
    preset.update(
        model=str(model_dir),
        train_dir=str(train_dir),
        val_dir=str(val_dir),
        output_dir=str(out),
        max_steps=steps,
        checkpoint_every_steps=steps,
        max_val_examples_per_task=32,
    )
    config = TrainConfig.model_validate(preset)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    results = train_adapter(config, show_progress=False)
    figures = {
        "steps": results["steps"],
        "global_batch": results["global_batch"],
        "trained_tokens": results["trained_tokens"],
        "train_seconds": results["train_seconds"],
        "tokens_per_s": round(results["tokens_per_s"], 1),
        "best_val_loss": results["best_val_loss"],
        "wall_s_with_load_and_checkpoint": round(time.perf_counter() - started, 1),
    }
    if torch.cuda.is_available():
        figures["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return figures


def predict(run_dir: Path, cases_file: Path, n_cases: int, work: Path) -> dict:
    cases = read_cases(cases_file)[:n_cases]
    started = time.perf_counter()
    backend = TransformersBackend.load(str(run_dir), dtype=torch.bfloat16)
    figures: dict = {
        "device": str(backend.model.device),
        "load_and_merge_s": round(time.perf_counter() - started, 1),
    }
    for task, decoding in (
        ("modality", "constrained"),
        ("icd10", "constrained"),
        ("regimen", "free"),
    ):
        predict_cases(
            backend,
            cases[:4],
            work / f"warm-{task}.jsonl",
            tasks=[task],
            decoding=decoding,
            show_progress=False,
        )
        summary = predict_cases(
            backend,
            cases,
            work / f"{task}.jsonl",
            tasks=[task],
            decoding=decoding,
            batch_size=32,
            show_progress=False,
        )
        one = predict_cases(
            backend,
            cases[:8],
            work / f"{task}-one.jsonl",
            tasks=[task],
            decoding=decoding,
            batch_size=1,
            show_progress=False,
        )
        batched = _predictions(work / f"{task}.jsonl")
        alone = _predictions(work / f"{task}-one.jsonl")
        figures[task] = {
            "decoding": decoding,
            "cases_per_s": round(summary.tasks[task].cases_per_s or 0.0, 2),
            "malformed": summary.tasks[task].malformed,
            "batched_equals_one_at_a_time": sum(batched[k] == v for k, v in alone.items()),
            "compared": len(alone),
            "one_at_a_time_cases_per_s": round(one.tasks[task].cases_per_s or 0.0, 2),
        }
    if torch.cuda.is_available():
        figures["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return figures


def _predictions(path: Path) -> dict[str, str | None]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {row["case_id"]: row["raw"] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=sorted(SHAPES), default="llama")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cases", type=int, default=64)
    parser.add_argument("--patients", type=int, default=1500)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--dry-run", action="store_true", help="a tiny model (checks the script)")
    args = parser.parse_args()

    figures: dict = {
        "arch": args.arch,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        train_dir, val_dir, test_file = task_files(work / "data", args.patients)
        figures["model"] = build_model(args.arch, work / "model", args.layers, args.dry_run)
        figures["train"] = train(
            args.arch, work / "model", train_dir, val_dir, work / "run", args.steps
        )
        print(json.dumps(figures["train"]), flush=True)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        figures["predict"] = predict(work / "run", test_file, args.cases, work)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
