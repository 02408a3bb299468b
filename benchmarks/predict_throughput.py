"""Prediction throughput of the embedded SmolLM2-135M: our pipeline vs a naive one.

Targets (issue "Prediction and evaluation"), on 2 CPU cores: constrained modality and ICD-10
>= 20 cases/s each, free regimen generation >= 8 cases/s, and >= 5x a naive one-case-at-a-
time `transformers` text-generation pipeline measured in the same run (same model, same
dtype, same prompts); malformed answers with constrained decoding: 0.

Each task runs through `predict_cases` (batching, prefix cache, extraction, the resumable
store), after a warm-up (ICD-10 trie built, prompt prefix cached); then all three tasks run
in one `predict_cases` call, as `predict` runs them by default (each note once, then each
task's question), and that time is compared with the three separate runs. Load average is recorded
before and after: on a shared machine other processes take CPU and the figures drop.
The last output line is one JSON object with the figures.

    python benchmarks/predict_throughput.py [--cases test.jsonl] [--n 400] [--naive 8]
        [--batch-size N] [--dtype auto] [--processes 2]

Our pipeline runs in `--processes` worker processes sharing the cores (2 of 1 thread on the
2-core development machine, about twice the work of one 2-thread process); the naive pipeline
runs in this process with torch's default threads.

Without --cases, the cases come from `radonc-llm synth --patients 2000 --seed 0` + `curate`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

# OpenMP workers that spin while they wait turn every small op into a wait for a time slice
# when other processes share the cores (measured here under load ~5: a [32, 576] x [576, 1536]
# bf16 matmul took 5-10 ms spinning, 0.4-0.7 ms passive). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from radonc_llm.data.cases import read_cases  # noqa: E402
from radonc_llm.infer.backends import TransformersBackend, torch_dtype  # noqa: E402
from radonc_llm.infer.constrained import icd10_trie  # noqa: E402
from radonc_llm.infer.parallel import (  # noqa: E402
    answer_batches,
    local_backend,
    threads_per_process,
)
from radonc_llm.infer.predict import predict_cases  # noqa: E402
from radonc_llm.models.precision import resolve_inference_dtype  # noqa: E402
from radonc_llm.tasks.prompts import TASK_PROMPTS, prompt_messages  # noqa: E402

TARGETS = {"modality": 20.0, "icd10": 20.0, "regimen": 8.0}
SPEEDUP_TARGET = 5.0


def synthetic_cases(folder: Path) -> Path:
    cli = Path(sys.executable).with_name("radonc-llm")
    subprocess.run(
        [str(cli), "synth", "--patients", "2000", "--seed", "0", "--out", str(folder / "raw")],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [str(cli), "curate", "--raw", str(folder / "raw"), "--out", str(folder / "cur")],
        check=True,
        capture_output=True,
    )
    return folder / "cur" / "cases.jsonl"


def prompt_pass_bound(model, tokenizer, cases, dtype: str) -> dict[str, float]:
    """The most modality cases/s this machine could do: its matmul peak (both cores, the
    run's dtype) over the prompt pass's FLOPs (2 x non-embedding parameters per prompt token
    after the shared system prompt; the label scoring and the LM head at one position come
    on top). A target above this needs fewer tokens or FLOPs per case, not better code."""
    from radonc_llm.infer.generate import chat_prompt_ids, common_prefix_length
    from train_throughput import matmul_peak_gflops  # this folder's training benchmark

    prompts = [
        chat_prompt_ids(tokenizer, prompt_messages("modality", case.diagnosis_text))
        for case in cases
    ]
    shared = common_prefix_length(prompts)
    tokens = sum(len(prompt) - shared for prompt in prompts) / len(prompts)
    embedding = model.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - embedding  # the head is tied
    peak = matmul_peak_gflops({"bfloat16": "bf16", "float32": "fp32"}[dtype])
    return {
        "prompt_tokens_per_case": tokens,
        "gflop_per_case": 2 * body * tokens / 1e9,
        "matmul_peak_gflops": peak,
        "modality_bound_cases_per_s": peak * 1e9 / (2 * body * tokens),
    }


def timed_runs(backend, cases, args) -> dict[str, dict]:
    """Each task through `predict_cases`, after an untimed warm-up of every worker (ICD-10
    trie built, prompt prefixes cached)."""
    for task, decoding in (
        ("modality", "constrained"),
        ("icd10", "constrained"),
        ("regimen", "free"),
    ):
        batches = [[prompt_messages(task, cases[-1].diagnosis_text)]] * (2 * args.processes)
        list(answer_batches(backend, task, batches, decoding=decoding))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task, decoding, n in (
            ("modality", "constrained", args.n),
            ("icd10", "constrained", args.n),
            ("regimen", "free", max(args.n // 2, 1)),
        ):
            subset = cases[:n]
            out = Path(tmp) / f"{task}.jsonl"
            began = time.perf_counter()
            summary = predict_cases(
                backend, subset, out, tasks=[task], decoding=decoding,
                batch_size=args.batch_size, show_progress=False,
            )  # fmt: skip
            seconds = time.perf_counter() - began
            rows = [json.loads(line) for line in out.read_text().splitlines()]
            results[task] = {
                "cases": len(subset),
                "seconds": seconds,
                "cases_per_s": len(subset) / seconds,
                "new_tokens_per_s": sum(r["n_new_tokens"] or 0 for r in rows) / seconds,
                "malformed": summary.tasks[task].malformed,
                "answers": {r["case_id"]: r["raw"] for r in rows},
            }
        # What `predict` does by default: all three tasks in one run, each note read once.
        subset, out = cases[: args.n], Path(tmp) / "together.jsonl"
        began = time.perf_counter()
        summary = predict_cases(
            backend, subset, out, decoding="constrained", batch_size=args.batch_size,
            show_progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - began
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        together_regimens = {r["case_id"]: r["raw"] for r in rows if r["task"] == "regimen"}
        results["together"] = {
            "cases": len(subset),
            "seconds": seconds,
            "cases_per_s": len(subset) / seconds,
            "malformed": summary.tasks["modality"].malformed + summary.tasks["icd10"].malformed,
            # Seconds the three separate runs above take for these cases.
            "separate_seconds": sum(
                results[task]["seconds"] * len(subset) / results[task]["cases"]
                for task in ("modality", "icd10", "regimen")
            ),
            "same_regimens": sum(
                answer == together_regimens.get(case_id)
                for case_id, answer in results["regimen"]["answers"].items()
            ),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, help="case JSONL (default: synthetic)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=400, help="cases per task (the demo scores 400)")
    parser.add_argument("--naive", type=int, default=8, help="cases for the naive pipeline")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="prompts per batch (default: predict's own)"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16"),
        help="auto: bfloat16 where the CPU computes it natively (AVX512-BF16/AMX), else float32",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--processes", type=int, default=2, help="worker processes of our pipeline (1 = in process)"
    )
    args = parser.parse_args()
    args.dtype = resolve_inference_dtype(args.dtype)  # the table names what ran
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases_file = args.cases or synthetic_cases(tmp)
        cases = read_cases(cases_file)
        # Plain `nn.Linear` layers: the naive pipeline below gets the model as transformers
        # loads it; our pipeline (its workers, or a second copy here) packs its weights.
        local = TransformersBackend.load(
            args.model, dtype=torch_dtype(args.dtype), pack_weights=False
        )
        model, tokenizer = local.model, local.tokenizer
        started = time.perf_counter()
        icd10_trie(tokenizer)
        trie_seconds = time.perf_counter() - started
        if args.processes > 1:
            opened = local_backend(args.model, dtype=args.dtype, processes=args.processes)
        else:
            opened = nullcontext(
                TransformersBackend.load(args.model, dtype=torch_dtype(args.dtype))
            )
        with opened as backend:
            results = timed_runs(backend, cases, args)

        # The naive way: a text-generation pipeline, one case at a time, same model and dtype.
        from transformers import pipeline

        generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
        naive_cases = cases[: args.naive]
        settings = {"max_new_tokens": TASK_PROMPTS["regimen"].max_new_tokens, "do_sample": False}
        generator(prompt_messages("regimen", cases[-1].diagnosis_text), **settings)
        began = time.perf_counter()
        naive_answers = []
        for case in naive_cases:
            output = generator(prompt_messages("regimen", case.diagnosis_text), **settings)
            naive_answers.append(output[0]["generated_text"][-1]["content"].strip())
        naive_seconds = time.perf_counter() - began
        regimen_answers = results["regimen"]["answers"]
        same = sum(
            " ".join(answer.split()) == " ".join(regimen_answers.get(case.case_id, "").split())
            for case, answer in zip(naive_cases, naive_answers, strict=True)
        )
        bound = prompt_pass_bound(model, tokenizer, cases[: args.n], args.dtype)
    load_after = os.getloadavg()[0]

    naive_rate = len(naive_cases) / naive_seconds
    speedup = results["regimen"]["cases_per_s"] / naive_rate
    table = Table(
        title=f"Prediction throughput, {args.model} ({args.dtype}, batch {args.batch_size or 'auto'}, "
        f"{args.processes} process(es) of {threads_per_process(args.processes)} "
        f"thread(s), naive {torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
        f"load average {load_before:.1f} -> {load_after:.1f})"
    )
    for column in ("run", "cases", "seconds", "cases/s", "target", "malformed", "met"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for task, label in (
        ("modality", "modality, constrained"),
        ("icd10", "ICD-10, trie"),
        ("regimen", "regimen, batched greedy"),
    ):
        r = results[task]
        table.add_row(
            label,
            str(r["cases"]),
            f"{r['seconds']:.1f}",
            f"{r['cases_per_s']:.2f}",
            f">= {TARGETS[task]:g}",
            str(r["malformed"]),
            "yes" if r["cases_per_s"] >= TARGETS[task] else "NO",
        )
    together = results["together"]
    table.add_row(
        "all three tasks together",
        str(together["cases"]),
        f"{together['seconds']:.1f}",
        f"{together['cases_per_s']:.2f}",
        "",
        str(together["malformed"]),
        "",
    )
    table.add_row(
        "regimen, naive pipeline",
        str(len(naive_cases)),
        f"{naive_seconds:.1f}",
        f"{naive_rate:.2f}",
        "",
        "",
        "",
    )
    table.add_row(
        "speed-up vs naive",
        "",
        "",
        f"{speedup:.1f}x",
        f">= {SPEEDUP_TARGET:g}x",
        "",
        "yes" if speedup >= SPEEDUP_TARGET else "NO",
    )
    console.print(table)
    console.print(
        f"ICD-10 trie built in {trie_seconds:.1f} s (once per run, not timed above); "
        f"naive and batched regimen answers identical for {same}/{len(naive_cases)} cases; "
        f"batched regimen wrote {results['regimen']['new_tokens_per_s']:.0f} new tokens/s (cases/s "
        "depends on how long a model's answers are)."
    )
    console.print(
        f"All three tasks together (what `predict` does by default: each note runs once, then "
        f"each task's question): {together['seconds']:.1f} s for {together['cases']} cases, "
        f"vs {together['separate_seconds']:.1f} s task by task "
        f"({together['separate_seconds'] / together['seconds']:.2f}x); regimens identical to "
        f"the task-by-task run for {together['same_regimens']}/{results['regimen']['cases']} cases."
    )
    console.print(
        f"Ceiling here: {bound['prompt_tokens_per_case']:.0f} prompt tokens per case after the "
        f"shared system prompt, {bound['gflop_per_case']:.1f} GFLOP per case; at the matmul peak "
        f"of {bound['matmul_peak_gflops']:.0f} GFLOP/s ({args.dtype}) at most "
        f"{bound['modality_bound_cases_per_s']:.1f} modality cases/s."
    )
    constrained_malformed = (
        results["modality"]["malformed"] + results["icd10"]["malformed"] + together["malformed"]
    )
    figures = {
        "model": args.model,
        "dtype": args.dtype,
        "batch_size": args.batch_size or "auto",
        "threads": torch.get_num_threads(),
        "processes": args.processes,
        "regimen_new_tokens_per_s": round(results["regimen"]["new_tokens_per_s"], 1),
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "modality_cases_per_s": round(results["modality"]["cases_per_s"], 3),
        "icd10_cases_per_s": round(results["icd10"]["cases_per_s"], 3),
        "regimen_cases_per_s": round(results["regimen"]["cases_per_s"], 3),
        "naive_regimen_cases_per_s": round(naive_rate, 3),
        "together_cases_per_s": round(together["cases_per_s"], 3),
        "together_speedup_vs_separate": round(
            together["separate_seconds"] / together["seconds"], 2
        ),
        "speedup_vs_naive": round(speedup, 2),
        "constrained_malformed": constrained_malformed,
        "naive_same_answers": f"{same}/{len(naive_cases)}",
        "cases": {task: r["cases"] for task, r in results.items()},
        "trie_seconds": round(trie_seconds, 2),
        **{name: round(value, 2) for name, value in bound.items()},
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "meets_targets": all(results[t]["cases_per_s"] >= TARGETS[t] for t in TARGETS)
        and speedup >= SPEEDUP_TARGET
        and constrained_malformed == 0,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
