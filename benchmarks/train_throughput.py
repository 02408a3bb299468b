"""LoRA fine-tuning speed: our trainer vs TRL's SFTTrainer, same model, data, batch and steps.

Targets (issue "Fine-tuning"): trained tokens/s >= 3x TRL's best CPU setting with equal or
lower validation loss after the same examples; model FLOPs utilisation >= 50% (4 x parameters
x tokens/s over the matmul peak measured here in the trainer's compute precision); peak RSS
under 8 GB.

Each trainer runs in a fresh process (its peak RSS is its own) on the same examples: a seeded
sample of the task files, equal across tasks. Tokens are prompt + answer tokens without
padding; training time excludes model loading and validation. Validation loss is the mean
cross-entropy over answer tokens of the same validation examples, computed by one function for
every trainer (fp32). The last line is one JSON object with the figures.

Validation loss after 30 steps moves with the training seed (LoRA initialisation, data order)
by more than the trainers differ: three seeds of our trainer on the same 720 examples gave
0.635, 0.590 and 0.575. So ours and TRL's best each train with `--seeds` seeds (the same
examples every time) and the loss compared is the mean over seeds, shown with its spread;
TRL's default runs once (its speed is the reference, not its loss).

    python benchmarks/train_throughput.py --tasks data/tasks [--examples 720 --steps 30 --batch 24]
        [--seeds 3] [--batching grouped|random|cases] [--window STEPS]
        [--omp-wait passive|default] [--max-grad-norm 1.0] [--loraplus-ratio 16]

`--tasks` is a folder with train/ and val/ task files from `radonc-llm tasks`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TASKS = ("regimen", "modality", "icd10")


# -- what runs inside each worker process --------------------------------------------------------


def matmul_peak_gflops(dtype_name: str, *, size: int = 2048, repeats: int = 10) -> float:
    """Best-of-`repeats` dense matmul rate: the ceiling the trainer's matmuls can reach here."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def sample_rows(data_dir: Path, per_task: int, seed: int) -> list[tuple[Path, int, dict]]:
    from radonc_llm.train.data import read_task_rows

    # Nested: every task takes the same cases, so `--batching cases` can share their notes.
    return read_task_rows(data_dir, TASKS, max_per_task=per_task, seed=seed, nested=True)


def write_sample(rows, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    for task in TASKS:
        with (out_dir / f"{task}.jsonl").open("w", encoding="utf-8") as handle:
            for path, _, row in rows:
                if path.stem == task:
                    handle.write(json.dumps(row) + "\n")
    return out_dir


def validation_loss(peft_model, tokenizer, val_rows) -> float:
    """Mean answer-token cross-entropy in fp32: one definition for every trainer."""
    import torch

    from radonc_llm.train.data import collate, tokenize_rows
    from radonc_llm.train.loop import AnswerLoss

    peft_model = peft_model.float().eval()
    examples = tokenize_rows(val_rows, tokenizer, max_length=2048)
    scorer = AnswerLoss(peft_model, autocast_dtype=None)
    total = tokens = 0.0
    with torch.no_grad():
        for start in range(0, len(examples), 16):
            batch = collate(examples[start : start + 16], pad_id=tokenizer.pad_token_id)
            total += float(
                scorer(batch.input_ids, batch.answer_rows, batch.answer_cols, batch.targets)
            )
            tokens += batch.num_answer_tokens
    return total / tokens


def worker_ours(args) -> dict:
    from radonc_llm.config import TrainConfig
    from radonc_llm.models.registry import load_model
    from radonc_llm.train.loop import train

    work = Path(args.work)
    by_case = args.batching == "cases"
    config = TrainConfig(
        model=args.model,
        train_dir=work / "train",
        val_dir=None,
        output_dir=work / f"ours-run-seed{args.seed}",
        # Whole cases: one micro-batch of batch / 3 cases holds the step's examples.
        micro_batch_size=args.batch // 3 if by_case else args.batch // args.accumulation,
        gradient_accumulation_steps=1 if by_case else args.accumulation,
        batch_by_case=by_case,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler="linear",
        warmup_ratio=0.0,
        lora_rank=args.rank,
        lora_alpha=2 * args.rank,
        lora_dropout=0.0,
        max_grad_norm=args.max_grad_norm or None,
        loraplus_lr_ratio=args.loraplus_ratio or None,
        precision=args.precision,
        length_grouping=args.batching == "grouped",
        group_by_task=args.batching == "grouped",
        length_window_steps=args.window,
        checkpoint_every_steps=10**6,
        log_every_steps=max(1, args.steps // 5),
        seed=args.seed,
    )
    results = train(config, show_progress=False)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    model, tokenizer = load_model(str(config.output_dir))
    manifest = json.loads((config.output_dir / "manifest.json").read_text())
    base = model.get_base_model()
    return {
        "trainer": "ours",
        "parameters": sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n),
        "precision": manifest["precision"],
        "tokens_per_s": results["tokens_per_s"],
        "trained_tokens": results["trained_tokens"],
        "computed_tokens": results["computed_tokens"],
        "train_seconds": results["train_seconds"],
        "peak_rss_gb": rss,
        "val_loss": validation_loss(model, tokenizer, sample_rows(work / "val", 10**9, 0)),
    }


def worker_trl(args, *, best: bool) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from radonc_llm.models.registry import LLAMA_LORA_TARGETS, load_model

    work = Path(args.work)
    rows = sample_rows(work / "train", 10**9, 0)
    data = Dataset.from_list(
        [{"prompt": row["messages"][:-1], "completion": row["messages"][-1:]} for _, _, row in rows]
    )
    from radonc_llm.models.precision import cpu_has_native_bf16

    model, tokenizer = load_model(args.model, dtype=torch.float32)
    # The seed sets the LoRA initialisation too, as in ours: PEFT draws it when the adapter is
    # added, before the Trainer seeds its own data order.
    torch.manual_seed(args.seed)
    # Default: what SFTConfig gives on a CPU (use_cpu is required there, bf16 off: fp32).
    # Best: the fastest setting measured: no gradient checkpointing, and bf16 autocast where the
    # CPU computes bf16 natively (emulated bf16 is ~100x slower than fp32).
    bf16 = best and cpu_has_native_bf16()
    settings = {"bf16": bf16, "gradient_checkpointing": False} if best else {"bf16": False}
    config = SFTConfig(
        output_dir=str(work / f"{'trl-best' if best else 'trl-default'}-seed{args.seed}"),
        per_device_train_batch_size=args.batch // args.accumulation,
        gradient_accumulation_steps=args.accumulation,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="linear",
        warmup_steps=0,
        max_grad_norm=args.max_grad_norm,  # 0: no clipping
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=max(1, args.steps // 5),
        seed=args.seed,
        dataloader_num_workers=0,
        max_length=2048,
        **settings,
    )
    tokens = {"count": 0.0}

    class CountTokens(TrainerCallback):
        def on_log(self, _args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                tokens["count"] = float(logs["num_tokens"])

    lora = LoraConfig(
        r=args.rank,
        lora_alpha=2 * args.rank,
        lora_dropout=0.0,
        target_modules=list(LLAMA_LORA_TARGETS),
        task_type="CAUSAL_LM",
    )
    if args.loraplus_ratio:
        # The same LoRA+ optimizer as ours (PEFT's), handed to the Trainer: AdamW, B matrices
        # at ratio x the rate; the Trainer builds its linear schedule on it.
        from peft import get_peft_model
        from peft.optimizers import create_loraplus_optimizer

        model = get_peft_model(model, lora)
        optimizer = create_loraplus_optimizer(
            model, torch.optim.AdamW, lr=args.lr, loraplus_lr_ratio=args.loraplus_ratio
        )
        extra = {"optimizers": (optimizer, None)}
    else:
        extra = {"peft_config": lora}
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[CountTokens()],
        **extra,
    )
    output = trainer.train()
    seconds = float(output.metrics["train_runtime"])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {
        "trainer": "trl-best" if best else "trl-default",
        "precision": "bf16" if bf16 else "fp32",
        "tokens_per_s": tokens["count"] / seconds,
        "trained_tokens": tokens["count"],
        "train_seconds": seconds,
        "peak_rss_gb": rss,
        "val_loss": validation_loss(trainer.model, tokenizer, sample_rows(work / "val", 10**9, 0)),
    }


def worker_peak(args) -> dict:
    from radonc_llm.models.precision import cpu_has_native_bf16

    # Emulated bf16 (a CPU without AVX512-BF16/AMX) runs ~1 GFLOP/s: no trainer computes in it.
    bf16 = matmul_peak_gflops("bf16") if cpu_has_native_bf16() else None
    return {"bf16": bf16, "fp32": matmul_peak_gflops("fp32")}


# -- the driver ----------------------------------------------------------------------------------


def summarise(seed_runs: list[dict]) -> dict:
    """One trainer over its seeds: mean tokens/s and validation loss, the loss's spread and
    values, the largest peak RSS."""
    losses = [run["val_loss"] for run in seed_runs]
    return {
        "precision": seed_runs[0]["precision"],
        "tokens_per_s": statistics.mean(run["tokens_per_s"] for run in seed_runs),
        "peak_rss_gb": max(run["peak_rss_gb"] for run in seed_runs),
        "val_loss": statistics.mean(losses),
        "val_loss_sd": statistics.stdev(losses) if len(losses) > 1 else None,
        "val_loss_by_seed": losses,
    }


# The options every worker process gets from the driver.
WORKER_OPTIONS = (
    "model steps batch accumulation lr rank precision seed batching window max_grad_norm "
    "loraplus_ratio".split()
)


def run_worker(kind: str, args, work: Path, *, seed: int) -> dict:
    """One trainer (or the peak measurement) in a fresh process, with training seed `seed`."""
    command = [sys.executable, __file__, "--worker", kind, "--work", str(work)]
    for name in WORKER_OPTIONS:
        value = seed if name == "seed" else getattr(args, name)
        command += [f"--{name.replace('_', '-')}", str(value)]
    # Every trainer gets the same OpenMP setting. passive: idle threads sleep (the CLI's
    # default, right when processes share the cores); default: OpenMP's own (threads spin a
    # while first), ~25% faster for one 2-thread process on an idle machine.
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if args.omp_wait == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    done = subprocess.run(command, capture_output=True, text=True, env=env)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, default=Path("data/tasks"))
    parser.add_argument("--examples", type=int, default=720, help="training examples (all tasks)")
    parser.add_argument("--val-examples", type=int, default=96, help="validation examples")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=24, help="global batch (one process)")
    parser.add_argument(
        "--accumulation",
        type=int,
        default=3,
        help="micro-batches per step, for both trainers (3: one task per micro-batch for ours)",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument(
        "--max-grad-norm",
        type=float,
        default=1.0,
        help="gradient clipping of both trainers (TRL's default 1.0; 0: none)",
    )
    parser.add_argument(
        "--loraplus-ratio",
        type=float,
        default=0.0,
        help="LoRA+ for both trainers (PEFT's create_loraplus_optimizer): the B matrices learn "
        "this many times faster; 0: one rate (plain AdamW). The demo uses 16",
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="auto", help="our trainer's precision")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the example sample and the first training seed"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="training seeds of ours and TRL's best (seed, seed + 1, ...); validation loss is "
        "compared as the mean over them",
    )
    parser.add_argument(
        "--batching",
        choices=("grouped", "random", "cases"),
        default="grouped",
        help="our trainer's batches: grouped (similar lengths, one task per micro-batch), "
        "random (as TRL's, ~15%% fewer tokens/s) or cases (`batch_by_case`: whole cases in "
        "random order, batch / 3 per step, each note run once for its three tasks; needs "
        "task prompts that put the note first). Single 30-step runs once ranked these by "
        "validation loss; one seed's loss moves by ~0.06 with the seed, so compare them over "
        "several --seeds",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="grouped batching: steps whose examples are sorted by length together "
        "(`length_window_steps` of a train config; default: its default)",
    )
    parser.add_argument(
        "--omp-wait",
        choices=("passive", "default"),
        default="passive",
        help="OpenMP wait policy of every trainer: passive (the CLI's) or OpenMP's default "
        "(faster on an idle machine, much slower on a shared one)",
    )
    parser.add_argument("--skip-trl-default", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.batching == "cases" and args.batch % 3:
        parser.error("--batching cases needs a --batch that is a multiple of 3 (whole cases)")
    if args.window is None:
        from radonc_llm.config import TrainConfig

        args.window = TrainConfig.model_fields["length_window_steps"].default

    if args.worker:
        run = {
            "ours": worker_ours,
            "trl-default": lambda a: worker_trl(a, best=False),
            "trl-best": lambda a: worker_trl(a, best=True),
            "peak": worker_peak,
        }[args.worker]
        print(json.dumps(run(args)))
        return

    # A log file gets the whole table, not 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 200)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        per_task = args.examples // len(TASKS)
        write_sample(sample_rows(args.tasks / "train", per_task, args.seed), work / "train")
        write_sample(
            sample_rows(args.tasks / "val", args.val_examples // len(TASKS), 0), work / "val"
        )
        seeds = [args.seed + k for k in range(args.seeds)]
        jobs = [("peak", args.seed)]
        jobs += [(kind, seed) for seed in seeds for kind in ("ours", "trl-best")]
        jobs += [] if args.skip_trl_default else [("trl-default", args.seed)]
        runs: dict[str, list[dict]] = {}
        for kind, seed in jobs:
            with console.status(f"running {kind}, seed {seed}"):
                started = time.perf_counter()
                run = run_worker(kind, args, work, seed=seed)
            runs.setdefault(kind, []).append(run)
            loss = f", validation loss {run['val_loss']:.4f}" if "val_loss" in run else ""
            console.print(f"{kind} seed {seed} done in {time.perf_counter() - started:.0f} s{loss}")

    peak = runs.pop("peak")[0]
    trainers = {kind: summarise(seed_runs) for kind, seed_runs in runs.items()}
    ours = trainers["ours"]
    parameters = runs["ours"][0]["parameters"]
    mfu = 4 * parameters * ours["tokens_per_s"] / (peak[ours["precision"]] * 1e9)
    # The same with only the tokens the model actually ran: shared prompt prefixes count once
    # per micro-batch (the MFU counts every trained token).
    computed_per_s = statistics.mean(
        run["computed_tokens"] / run["train_seconds"] for run in runs["ours"]
    )
    mfu_computed = 4 * parameters * computed_per_s / (peak[ours["precision"]] * 1e9)
    table = Table(
        title=f"LoRA r{args.rank} fine-tuning, {args.model}: {args.steps} steps x batch "
        f"{args.batch} ({args.accumulation} micro-batches, ours {args.batching}, length window {args.window}), "
        f"{f'LoRA+ ratio {args.loraplus_ratio:g}, ' if args.loraplus_ratio else ''}"
        f"{per_task * len(TASKS)} examples, training seeds {', '.join(map(str, seeds))}, "
        f"{os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}, OpenMP wait {args.omp_wait}"
    )
    for column in (
        "trainer",
        "precision",
        "seeds",
        "tokens/s",
        "vs TRL best",
        "MFU",
        "peak RSS GB",
        "val loss (mean ± sd)",
        "val loss by seed",
    ):
        table.add_column(column, justify="right")
    best = trainers["trl-best"]["tokens_per_s"]
    for name, run in trainers.items():
        run_mfu = 4 * parameters * run["tokens_per_s"] / (peak[run["precision"]] * 1e9)
        spread = f" ± {run['val_loss_sd']:.4f}" if len(run["val_loss_by_seed"]) > 1 else ""
        table.add_row(
            name, run["precision"], str(len(run["val_loss_by_seed"])),
            f"{run['tokens_per_s']:.0f}", f"{run['tokens_per_s'] / best:.2f}x",
            f"{run_mfu:.1%}", f"{run['peak_rss_gb']:.2f}", f"{run['val_loss']:.4f}{spread}",
            " ".join(f"{loss:.4f}" for loss in run["val_loss_by_seed"]),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"matmul peak here: bf16 {peak['bf16'] or 0:.0f} GFLOP/s (0: emulated, not measured), "
        f"fp32 {peak['fp32']:.0f} GFLOP/s; "
        "MFU = 4 x parameters x tokens/s / peak in the trainer's precision; ours counting "
        f"only tokens it ran (shared prompt prefixes once per micro-batch): {mfu_computed:.1%}; "
        "tokens/s: mean over seeds; peak RSS: the largest"
    )
    trl_best = trainers["trl-best"]
    trl_default = trainers.get("trl-default", {})
    summary = {
        "model": args.model,
        "steps": args.steps,
        "batch": args.batch,
        "batching": args.batching,
        "length_window_steps": args.window,
        "omp_wait": args.omp_wait,
        "loraplus_ratio": args.loraplus_ratio or None,
        "examples": per_task * len(TASKS),
        "seeds": seeds,
        "parameters": parameters,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "tokens_per_s": ours["tokens_per_s"],
        "trl_default_tokens_per_s": trl_default.get("tokens_per_s"),
        "trl_best_tokens_per_s": best,
        "speedup_vs_trl_best": ours["tokens_per_s"] / best,
        "mfu": mfu,
        "mfu_computed_tokens": mfu_computed,
        "computed_tokens_per_s": computed_per_s,
        "matmul_peak_gflops": peak,
        "peak_rss_gb": ours["peak_rss_gb"],
        "trl_best_peak_rss_gb": trl_best["peak_rss_gb"],
        "val_loss": ours["val_loss"],
        "val_loss_sd": ours["val_loss_sd"],
        "val_loss_by_seed": ours["val_loss_by_seed"],
        "trl_best_val_loss": trl_best["val_loss"],
        "trl_best_val_loss_sd": trl_best["val_loss_sd"],
        "trl_best_val_loss_by_seed": trl_best["val_loss_by_seed"],
        "trl_default_val_loss": trl_default.get("val_loss"),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
