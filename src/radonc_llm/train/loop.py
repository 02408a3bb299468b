"""The fine-tuning recipe: `radonc-llm train CONFIG.yaml [--resume]`, read top to bottom.

set-up (model + LoRA, data, optimizer) -> loop over optimizer steps -> validate, checkpoint,
keep the best adapter -> manifest. `accelerate launch` runs the same code with DDP (or FSDP /
DeepSpeed from configs/accelerate/); on one device Accelerate is a thin pass-through.

Where the speed comes from:
- batches hold examples of similar length (little padding), right-padded, so causal attention
  needs no padding mask (a real token never attends to a later pad);
- the language-model head runs only at the positions that predict answer tokens (the head's
  49k-wide logits over every prompt token would be most of the work and memory);
- bf16 matmuls where the hardware has them: frozen base weights stored in bf16, LoRA weights and
  optimizer in fp32, autocast in between;
- gradient accumulation without bias: the loss is summed over answer tokens and divided by the
  number of answer tokens in the whole optimizer step (all micro-batches, all processes), so
  accumulation and data parallelism give the same update as one big batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import signal
import subprocess  # noqa: S404  (torchrun, fixed arguments)
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from radonc_llm.config import TrainConfig, in_working_folder
from radonc_llm.errors import RadoncInputError
from radonc_llm.models import attention as grouped_attention
from radonc_llm.models.lora import add_lora
from radonc_llm.models.precision import resolve_precision
from radonc_llm.models.registry import (
    MODEL_REGISTRY,
    is_run_dir,
    load_model,
    resolve_model,
    run_status,
)
from radonc_llm.storage import (
    append_jsonl,
    file_sha256,
    remove_leftover_temporaries,
    write_json_atomic,
    write_jsonl_atomic,
    write_text_atomic,
)
from radonc_llm.train import checkpoint as ckpt
from radonc_llm.train.data import (
    AnswerBatch,
    CaseBatch,
    TokenizedExample,
    case_attention_mask,
    case_groups,
    check_no_shared_cases,
    collate,
    collate_cases,
    epoch_batches,
    read_task_rows,
    shard_step,
    tokenize_rows,
)
from radonc_llm.train.manifest import (
    base_model_record,
    data_hashes,
    git_commit,
    hardware,
    now_iso,
    package_versions,
)

logger = logging.getLogger(__name__)


class AnswerLoss(nn.Module):
    """Cross-entropy summed over answer tokens, with the LM head applied only where needed."""

    def __init__(self, peft_model: nn.Module, *, autocast_dtype: torch.dtype | None) -> None:
        super().__init__()
        self.peft_model = peft_model
        self.autocast_dtype = autocast_dtype
        # FSDP's auto-wrap policy reads the wrap unit (the decoder layer) from here.
        self._no_split_modules = getattr(peft_model.get_base_model(), "_no_split_modules", None)

    def forward(
        self,
        input_ids: torch.Tensor,
        answer_rows: torch.Tensor,
        answer_cols: torch.Tensor,
        targets: torch.Tensor,
        reduction: str = "sum",
        prefix_length: int = 0,
        cases: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Summed (or per-token) answer loss of a micro-batch: an `AnswerBatch`'s rows, or with
        `cases` (a `CaseBatch`'s positions and segments) its packed rows."""
        causal_lm = self.peft_model.get_base_model()
        backbone = getattr(causal_lm, causal_lm.base_model_prefix)
        autocast = (
            torch.autocast(input_ids.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            if cases is not None:
                # Packed cases: one pass, the mask keeps every branch to its own prompt.
                dtype = self.autocast_dtype or backbone.get_input_embeddings().weight.dtype
                hidden = backbone(
                    input_ids=input_ids,
                    attention_mask=case_attention_mask(cases["segments"], dtype),
                    position_ids=cases["position_ids"],
                    use_cache=False,
                ).last_hidden_state
            elif prefix_length:
                # The rows share their first `prefix_length` tokens (system prompt, instruction):
                # run them once, repeat their keys/values for every row, and run only the rest.
                # Gradients flow back through the repeated cache, so this is exact.
                from transformers import DynamicCache

                cache = DynamicCache(config=backbone.config)
                # The cache goes in as the 4th positional argument: its keyword is
                # `past_key_values` before transformers 5.24 and `cache` after.
                backbone(input_ids[:1, :prefix_length], None, None, cache, use_cache=True)
                cache.batch_repeat_interleave(input_ids.shape[0])
                hidden = backbone(
                    input_ids[:, prefix_length:], None, None, cache, use_cache=True
                ).last_hidden_state
                answer_cols = answer_cols - prefix_length
            else:
                # Right padding + causal attention: no padding mask needed for the real tokens.
                hidden = backbone(input_ids=input_ids, use_cache=False).last_hidden_state
            logits = causal_lm.get_output_embeddings()(hidden[answer_rows, answer_cols])
        return F.cross_entropy(logits.float(), targets, reduction=reduction)


def _attention(config: TrainConfig, device: torch.device) -> str:
    """The attention implementation to train with; auto: grouped eager on a CPU, SDPA on a GPU."""
    if config.attention != "auto":
        return config.attention
    return grouped_attention.register() if device.type == "cpu" else "sdpa"


@dataclass(frozen=True)
class StepStats:
    """One optimizer step over all processes: mean answer-token loss and token counts
    (`computed_tokens` leaves out the shared prompt prefixes that ran once per micro-batch)."""

    loss: float
    answer_tokens: int
    tokens: int
    computed_tokens: int


@dataclass
class RunState:
    """What the loop carries from step to step (and a checkpoint saves)."""

    step: int = 0
    best_val_loss: float | None = None
    best_step: int | None = None
    trained_tokens: int = 0
    computed_tokens: int = 0
    answer_tokens: int = 0
    train_seconds: float = 0.0
    last_train_loss: float | None = None
    config_hash: str = ""
    data_hash: str = ""  # of the task files; checkpoints before it have ""
    extra: dict[str, Any] = field(default_factory=dict)


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    stop_after_steps: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train the adapter(s) a config asks for; return the run's results (also in its manifest).

    `stop_after_steps` stops as a kill would (after the checkpoint of that step, if any); tests
    use it to check that `resume=True` continues exactly.
    """
    _check_no_foreign_files(Path(config.output_dir), tasks=config.tasks)
    if config.processes > 1 and "WORLD_SIZE" not in os.environ:
        config = _fit_processes_to_gpus(config)
        if config.processes > 1:
            return train_in_processes(config, resume=resume)
    if config.adapter_mode == "per_task":
        results = {}
        for task in config.tasks:
            results[task] = train_adapter(
                config.for_task(task),
                resume=resume,
                stop_after_steps=stop_after_steps,
                show_progress=show_progress,
            )
        summary = {
            "kind": "train",
            "adapter_mode": "per_task",
            "model": config.model,
            "config": config.model_dump(mode="json"),
            "runs": {task: str(config.output_dir / task) for task in config.tasks},
            "results": results,
        }
        write_json_atomic(config.output_dir / "manifest.json", summary)
        return summary
    return train_adapter(
        config, resume=resume, stop_after_steps=stop_after_steps, show_progress=show_progress
    )


def _fit_processes_to_gpus(config: TrainConfig) -> TrainConfig:
    """On a machine with fewer GPUs than `processes` (the demo's `processes: 2` is for a
    2-core CPU), one process per GPU with the accumulation raised to keep the global batch:
    the same steps, as the DDP test shows. A count that does not divide stays an error."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not gpus or config.processes <= gpus or config.processes % gpus:
        return config
    factor = config.processes // gpus
    warnings.warn(
        f"{config.processes} processes on {gpus} GPU(s): training in {gpus} process(es) with "
        f"{config.gradient_accumulation_steps * factor} accumulation steps (same global batch)",
        stacklevel=3,
    )
    return config.model_copy(
        update={
            "processes": gpus,
            "gradient_accumulation_steps": config.gradient_accumulation_steps * factor,
        }
    )


# Set in the processes that `train_in_processes` starts.
LAUNCHED_BY_US = "RADONC_LLM_LAUNCHED"


def train_in_processes(config: TrainConfig, *, resume: bool) -> dict[str, Any]:
    """Run this training under torchrun in `config.processes` processes; return its results.

    The processes share the cores (OMP_NUM_THREADS = cores / processes) and print as one
    run does (rank 0 only). The config they read is written into the run folder.
    """
    from radonc_llm.infer.parallel import threads_per_process

    if torch.cuda.is_available() and config.processes > torch.cuda.device_count():
        raise RadoncInputError(
            f"{config.processes} processes but {torch.cuda.device_count()} GPU(s): use one "
            "process per GPU (processes share the CPU only)",
            field="processes",
        )
    # Bad task rows fail here, named by file, row and field, before torchrun starts: from a
    # worker the same message comes with the launcher's traceback after it.
    _read_rows(config)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    launched = config.output_dir / "launch_config.yaml"
    write_text_atomic(
        launched,
        f"# radonc-llm train {launched}: written for {config.processes} processes\n"
        + yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False),
    )
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={config.processes}",
        "-m", "radonc_llm.cli", "train", str(launched), *(["--resume"] if resume else []),
    ]  # fmt: skip
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads_per_process(config.processes)),
        LAUNCHED_BY_US: "1",  # this process prints the summary, not rank 0 as well
    }
    returncode = _run_process_group(command, env=env)
    if returncode != 0:
        raise RadoncInputError(
            f"training in {config.processes} processes stopped (exit status {returncode}); "
            "the messages above say why. The same command with --resume continues from the "
            "last checkpoint",
            file=launched,
        )
    manifest = json.loads((config.output_dir / "manifest.json").read_text(encoding="utf-8"))
    return manifest if config.adapter_mode == "per_task" else manifest["results"]


def _run_process_group(command: list[str], *, env: dict[str, str]) -> int:
    """Run `command` in a process group of its own and return its exit status.

    When this process is interrupted (Ctrl-C) or terminated, the whole group gets SIGINT (then
    SIGKILL after 30 s), so no training worker is left running without its launcher.
    """
    process = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main_thread else None

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        if in_main_thread:
            signal.signal(signal.SIGTERM, terminated)
        return process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        raise
    finally:
        if in_main_thread and previous is not None:  # None: a handler set from C, not Python
            signal.signal(signal.SIGTERM, previous)


def train_adapter(
    config: TrainConfig,
    *,
    resume: bool = False,
    stop_after_steps: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    from accelerate import Accelerator

    started_at = now_iso()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        # Launched as several processes on a machine without GPUs (`accelerate launch
        # --multi_gpu` or torchrun): Accelerate then needs cpu=True to pick gloo DDP.
        cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
    )
    run_dir = Path(config.output_dir)
    checkpoint = _check_run_dir(run_dir, resume=resume)
    if accelerator.is_main_process and run_dir.is_dir():
        leftovers = remove_leftover_temporaries(run_dir) + ckpt.remove_unfinished_saves(run_dir)
        if leftovers:
            logger.info(
                "removed %d temporary file(s) or folder(s) of an interrupted run", leftovers
            )
    if accelerator.gradient_accumulation_steps != config.gradient_accumulation_steps:
        raise RadoncInputError(
            f"the accelerate launch settings ask for {accelerator.gradient_accumulation_steps} "
            "accumulation steps; set the same number in the training config",
            field="gradient_accumulation_steps",
        )
    precision = resolve_precision(config.precision, accelerator.device.type)
    compute_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    # FSDP-1 flattens base and LoRA weights of a block into one tensor of one dtype: load the
    # base in fp32 and let FSDP's mixed precision compute in bf16.
    load_dtype = torch.float32 if accelerator.distributed_type.name == "FSDP" else compute_dtype

    # -- model + LoRA ------------------------------------------------------------------------
    spec = resolve_model(config.model)
    base, tokenizer = load_model(config.model, dtype=load_dtype, quantization=config.quantization)
    if config.quantization == "4bit":
        from peft import prepare_model_for_kbit_training

        base = prepare_model_for_kbit_training(
            base, use_gradient_checkpointing=config.gradient_checkpointing
        )
    elif config.gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    base.set_attn_implementation(_attention(config, accelerator.device))
    torch.manual_seed(config.seed)  # same LoRA init on every process
    peft_model = add_lora(
        base,
        rank=config.lora_rank,
        alpha=config.lora_alpha,
        dropout=config.lora_dropout,
        target_modules=config.lora_target_modules or spec.lora.target_modules,
        last_layers=config.lora_last_layers,
    )
    if load_dtype != torch.float32:
        # PEFT would cast bf16 activations up to the fp32 LoRA weights (a copy per layer);
        # under autocast the matmul runs in bf16 anyway.
        for module in peft_model.modules():
            if hasattr(module, "cast_input_dtype_enabled"):
                module.cast_input_dtype_enabled = False
    torch.manual_seed(config.seed + 1 + accelerator.process_index)  # LoRA dropout stream

    # -- data --------------------------------------------------------------------------------
    train_rows, val_rows = _read_rows(config)
    train_examples = tokenize_rows(train_rows, tokenizer, max_length=config.max_length)
    prompt_versions = sorted(
        {str(row["prompt_version"]) for _, _, row in train_rows if "prompt_version" in row}
    )
    val_examples: list[TokenizedExample] = []
    if val_rows:
        val_examples = tokenize_rows(val_rows, tokenizer, max_length=config.max_length)
    # The units of batching: whole cases (`batch_by_case`) or single examples.
    units = _units(train_examples, by_case=config.batch_by_case)
    lengths = [sum(len(train_examples[i].input_ids) for i in unit) for unit in units]
    pad_id = tokenizer.pad_token_id
    global_batch = (
        config.micro_batch_size * config.gradient_accumulation_steps * accelerator.num_processes
    )
    groups = (
        [train_examples[unit[0]].task for unit in units]
        if config.group_by_task and not config.batch_by_case
        else None
    )
    share_prefix = config.share_prompt_prefix and not config.gradient_checkpointing

    def batches_of(epoch: int) -> list[list[int]]:
        return epoch_batches(
            lengths,
            global_batch=global_batch,
            seed=config.seed,
            epoch=epoch,
            group_by_length=config.length_grouping,
            length_window=config.length_window_steps,
            groups=groups,
            run=config.micro_batch_size,
        )

    steps_per_epoch = len(batches_of(0))
    if accelerator.is_main_process:
        _warn_small_tasks(train_examples, global_batch=global_batch, train_dir=config.train_dir)
    total_steps = config.max_steps or math.ceil(config.epochs * steps_per_epoch)

    # -- optimizer, schedule, distributed wrapping -------------------------------------------
    model = AnswerLoss(peft_model, autocast_dtype=None if precision == "fp32" else compute_dtype)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    if config.loraplus_lr_ratio is None:
        optimizer = torch.optim.AdamW(
            trainable, lr=config.learning_rate, weight_decay=config.weight_decay, foreach=True
        )
    else:
        from peft.optimizers import create_loraplus_optimizer

        optimizer = create_loraplus_optimizer(
            peft_model,
            torch.optim.AdamW,
            lr=config.learning_rate,
            loraplus_lr_ratio=config.loraplus_lr_ratio,
            loraplus_weight_decay=config.weight_decay,
            foreach=True,
        )
    warmup = round(config.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(config.lr_scheduler, warmup=warmup, total=total_steps)
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    peft_model = accelerator.unwrap_model(model).peft_model

    state = RunState(config_hash=_config_hash(config), data_hash=_data_hash(config))
    if checkpoint is not None:
        # Settings and data are checked before any weight is loaded: another LoRA rank would
        # otherwise fail deep inside PEFT with a page of tensor shapes.
        _check_resumable(checkpoint, config, state)
        saved = ckpt.load_checkpoint(
            checkpoint,
            accelerator=accelerator,
            peft_model=peft_model,
            optimizer=optimizer,
            scheduler=scheduler,
        )
        # This config's hashes, not the checkpoint's: an older checkpoint accepted after a move
        # would otherwise hand its old hashes to every later checkpoint.
        current = (state.config_hash, state.data_hash)
        state = RunState(**{k: v for k, v in saved.items() if k in RunState.__dataclass_fields__})
        state.config_hash, state.data_hash = current
        ckpt.check_best_adapter(run_dir, saved)

    # -- run folder --------------------------------------------------------------------------
    main = accelerator.is_main_process
    manifest = _manifest(
        config, accelerator, started_at, precision, train_examples, val_examples, prompt_versions
    )
    metrics_path = run_dir / "metrics.jsonl"
    writer = None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "manifest.json", {**manifest, "status": "running"})
        kept = ckpt.metrics_until(metrics_path, state.step) if metrics_path.exists() else []
        write_jsonl_atomic(metrics_path, kept)  # drop rows of steps a kill undid
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=state.step + 1)

    def log(row: dict) -> None:
        if not main:
            return
        with metrics_path.open("a", encoding="utf-8") as handle:
            append_jsonl(handle, row)
        for key, value in row.items():
            if isinstance(value, float) and key not in {"epoch", "time"}:
                writer.add_scalar(f"{row['split']}/{key}", value, row["step"])

    def validate(epoch: float) -> None:
        if not val_examples:
            return
        losses = evaluate_loss(
            model,
            val_examples,
            config=config,
            accelerator=accelerator,
            pad_id=pad_id,
            share_prefix=share_prefix,
        )
        log({"step": state.step, "epoch": epoch, "split": "val", **losses, "time": now_iso()})
        if state.best_val_loss is None or losses["loss"] < state.best_val_loss:
            state.best_val_loss, state.best_step = losses["loss"], state.step
            _save_adapter(accelerator, model, peft_model, run_dir / "adapter")

    # -- the loop ----------------------------------------------------------------------------
    stopped = False
    progress = _progress(show_progress and main)
    task_id = progress.add_task("train", total=total_steps, completed=state.step, loss=0.0, tps=0.0)
    window_loss = window_tokens = 0.0
    window_norms: list[float] = []
    batches_epoch, batches = -1, []
    step_started = time.perf_counter()
    rate_tokens, rate_start = 0, time.perf_counter()
    with progress:
        while state.step < total_steps:
            epoch = state.step // steps_per_epoch
            if epoch != batches_epoch:
                batches_epoch = epoch
                batches = batches_of(epoch)
            batch = batches[state.step % steps_per_epoch]
            micro_batches = shard_step(
                batch,
                lengths,
                micro_batches=config.gradient_accumulation_steps,
                num_processes=accelerator.num_processes,
                process_index=accelerator.process_index,
                groups=groups,
            )
            stats = train_step(
                model,
                micro_batches,
                units,
                train_examples,
                batch,
                accelerator=accelerator,
                config=config,
                pad_id=pad_id,
                share_prefix=share_prefix,
            )
            if config.max_grad_norm is not None:
                # The norm before clipping: steps above max_grad_norm were scaled down.
                grad_norm = float(accelerator.clip_grad_norm_(trainable, config.max_grad_norm))
                window_norms.append(grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            now = time.perf_counter()
            state.train_seconds += now - step_started
            step_started = now
            state.step += 1
            state.trained_tokens += stats.tokens
            state.computed_tokens += stats.computed_tokens
            state.answer_tokens += stats.answer_tokens
            state.last_train_loss = stats.loss
            window_loss += stats.loss * stats.answer_tokens
            window_tokens += stats.answer_tokens
            rate_tokens += stats.tokens
            tokens_per_s = rate_tokens / max(now - rate_start, 1e-9)
            progress.update(task_id, completed=state.step, loss=stats.loss, tps=tokens_per_s)
            epoch_done = state.step / steps_per_epoch
            if state.step % config.log_every_steps == 0 or state.step == total_steps:
                log(
                    {
                        "step": state.step,
                        "epoch": round(epoch_done, 4),
                        "split": "train",
                        "loss": window_loss / max(window_tokens, 1),
                        "lr": scheduler.get_last_lr()[0],
                        "tokens_per_s": tokens_per_s,
                        **_norm_figures(window_norms, config.max_grad_norm),
                        "time": now_iso(),
                    }
                )
                window_loss = window_tokens = 0.0
                window_norms = []
            at_epoch_end = state.step % steps_per_epoch == 0
            at_eval_step = config.eval_every_steps and state.step % config.eval_every_steps == 0
            if at_epoch_end or at_eval_step or state.step == total_steps:
                validate(round(epoch_done, 4))
                step_started = time.perf_counter()  # validation time is not training time
            if state.step % config.checkpoint_every_steps == 0 or state.step == total_steps:
                ckpt.save_checkpoint(
                    run_dir,
                    step=state.step,
                    accelerator=accelerator,
                    peft_model=peft_model,
                    adapter_state=_adapter_state(accelerator, model),
                    optimizer=optimizer,
                    scheduler=scheduler,
                    state=state.__dict__,
                    keep=config.keep_checkpoints,
                )
                step_started = time.perf_counter()
            if stop_after_steps is not None and state.step >= stop_after_steps:
                stopped = state.step < total_steps
                break

    # -- results -----------------------------------------------------------------------------
    if not val_examples and not stopped:
        _save_adapter(accelerator, model, peft_model, run_dir / "adapter")
    checksums = adapter_checksums(peft_model, accelerator)
    results = {
        "status": "stopped" if stopped else "finished",
        "steps": state.step,
        "total_steps": total_steps,
        "epochs": round(state.step / steps_per_epoch, 4),
        "train_examples": len(train_examples),
        "val_examples": len(val_examples),
        "global_batch": global_batch,
        "best_val_loss": state.best_val_loss,
        "best_step": state.best_step,
        "final_train_loss": state.last_train_loss,
        "trained_tokens": state.trained_tokens,
        "computed_tokens": state.computed_tokens,
        "answer_tokens": state.answer_tokens,
        "train_seconds": round(state.train_seconds, 3),
        "tokens_per_s": state.trained_tokens / max(state.train_seconds, 1e-9),
        "adapter_sha256_by_rank": checksums,
    }
    if main:
        writer.close()
        write_json_atomic(
            run_dir / "manifest.json",
            {**manifest, "status": results["status"], "finished_at": now_iso(), "results": results},
        )
    accelerator.wait_for_everyone()
    return results


def _units(examples: list[TokenizedExample], *, by_case: bool) -> list[list[int]]:
    return case_groups(examples) if by_case else [[index] for index in range(len(examples))]


def _collate_units(
    units: list[list[TokenizedExample]], *, config: TrainConfig, pad_id: int, share_prefix: bool
) -> AnswerBatch | CaseBatch:
    if config.batch_by_case:
        return collate_cases(units, pad_id=pad_id)
    return collate(sum(units, []), pad_id=pad_id, share_prefix=share_prefix)


def train_step(
    model: nn.Module,
    micro_batches: list[list[int]],
    units: list[list[int]],
    examples: list[TokenizedExample],
    batch: list[int],
    *,
    accelerator: Any,
    config: TrainConfig,
    pad_id: int,
    share_prefix: bool,
) -> StepStats:
    """Forward/backward over this process's micro-batches of one optimizer step.

    `micro_batches` and `batch` index `units` (lists of example indices: one example, or
    every example of a case). Each answer token's loss is divided by the answer tokens of the
    whole step (all micro-batches, all processes), times what DDP's gradient mean and Accelerate's
    accumulation divide by; so the update equals that of one big batch. With
    `loss_weighting: task` a token is divided by the step's answer tokens of its own task
    instead, and each task present weighs the same: a one-word modality answer then counts as
    much as a 20-token regimen.
    """
    tasks = sorted({example.task for example in examples})
    local = torch.zeros(len(tasks) + 1, dtype=torch.long)
    for index in (i for unit in sum(micro_batches, []) for i in units[unit]):
        local[tasks.index(examples[index].task)] += examples[index].answer_length
        local[-1] += len(examples[index].input_ids)
    counts = accelerator.reduce(local.to(accelerator.device), reduction="sum").cpu()
    per_task, step_tokens = counts[:-1].double(), int(counts[-1])
    step_answer = int(per_task.sum())
    if config.loss_weighting == "task":
        present = per_task > 0
        task_weight = torch.where(present, 1.0 / (per_task * present.sum()), 0.0)
    else:
        task_weight = torch.full_like(per_task, 1.0 / step_answer)
    scale = accelerator.num_processes * config.gradient_accumulation_steps
    sums = torch.zeros(2, device=accelerator.device)  # loss, tokens actually computed
    for indices in micro_batches:
        with accelerator.accumulate(model):
            # A process whose share of a small last batch is empty still runs a pass (with weight
            # 0) so that every process joins the gradient all-reduce.
            weight = 1.0 if indices else 0.0
            chosen = [[examples[i] for i in units[unit]] for unit in indices or batch[:1]]
            micro = _collate_units(chosen, config=config, pad_id=pad_id, share_prefix=share_prefix)
            token_losses = _forward(model, micro.to(accelerator.device), reduction="none") * weight
            rows = sum(chosen, [])  # the batch's examples, in order
            row_weight = task_weight[[tasks.index(example.task) for example in rows]]
            token_weight = row_weight[micro.answer_examples].to(token_losses)
            accelerator.backward((token_losses * token_weight).sum() * scale)
            sums[0] += token_losses.detach().sum()
            sums[1] += weight * micro.computed_tokens
    sums = accelerator.reduce(sums, reduction="sum")
    return StepStats(
        loss=float(sums[0]) / step_answer,
        answer_tokens=step_answer,
        tokens=step_tokens,
        computed_tokens=int(sums[1]),
    )


def _forward(
    model: nn.Module, batch: AnswerBatch | CaseBatch, reduction: str = "sum"
) -> torch.Tensor:
    cases = None
    if isinstance(batch, CaseBatch):
        cases = {"position_ids": batch.position_ids, "segments": batch.segments}
    return model(
        batch.input_ids,
        batch.answer_rows,
        batch.answer_cols,
        batch.targets,
        reduction,
        getattr(batch, "prefix_length", 0),
        cases,
    )


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    examples: list[TokenizedExample],
    *,
    config: TrainConfig,
    accelerator: Any,
    pad_id: int,
    share_prefix: bool,
) -> dict[str, float]:
    """Mean answer-token loss over all examples (and per task), shared out over processes."""
    model.eval()
    tasks = sorted({example.task for example in examples})
    sums = torch.zeros(2 * len(tasks), dtype=torch.float64, device=accelerator.device)
    units = _units(examples, by_case=config.batch_by_case)
    # By task, then length: little padding, and each batch shares its task's prompt prefix.
    order = sorted(
        range(len(units)),
        key=lambda u: (
            examples[units[u][0]].task if not config.batch_by_case else "",
            -sum(len(examples[i].input_ids) for i in units[u]),
        ),
    )
    mine = order[accelerator.process_index :: accelerator.num_processes]
    size = config.micro_batch_size * 2  # no activations kept: twice the training batch fits
    for start in range(0, len(mine), size):
        chosen = [[examples[i] for i in units[u]] for u in mine[start : start + size]]
        micro = _collate_units(chosen, config=config, pad_id=pad_id, share_prefix=share_prefix)
        micro = micro.to(accelerator.device)
        token_losses = _forward(model, micro, reduction="none").double()
        for row, example in enumerate(sum(chosen, [])):
            slot = tasks.index(example.task)
            sums[slot] += token_losses[micro.answer_examples == row].sum()
            sums[len(tasks) + slot] += example.answer_length
    sums = accelerator.reduce(sums, reduction="sum")
    model.train()
    losses = {"loss": float(sums[: len(tasks)].sum() / sums[len(tasks) :].sum())}
    for slot, task in enumerate(tasks):
        losses[f"loss_{task}"] = float(sums[slot] / sums[len(tasks) + slot])
    return losses


def adapter_checksums(peft_model: nn.Module, accelerator: Any) -> list[str]:
    """sha256 of this process's adapter weights, gathered from every process (DDP check)."""
    digest = hashlib.sha256()
    for name, param in sorted(peft_model.named_parameters()):
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().float().cpu().numpy().tobytes())
    raw = torch.tensor(list(digest.digest()), dtype=torch.int64, device=accelerator.device)
    gathered = accelerator.gather(raw).reshape(accelerator.num_processes, -1).cpu()
    return [bytes(row.tolist()).hex() for row in gathered]


def _adapter_state(accelerator: Any, model: nn.Module) -> dict | None:
    """Full state dict for PEFT to pick the adapter from (gathered under FSDP/ZeRO-3)."""
    if accelerator.distributed_type.name in {"FSDP", "DEEPSPEED"}:
        full = accelerator.get_state_dict(model)
        return {k.removeprefix("peft_model."): v for k, v in full.items()}
    return None


def _save_adapter(accelerator: Any, model: nn.Module, peft_model: nn.Module, out_dir: Path) -> None:
    state = _adapter_state(accelerator, model)
    if accelerator.is_main_process:
        ckpt.save_adapter(peft_model, out_dir, state_dict=state)
    accelerator.wait_for_everyone()


def _norm_figures(norms: list[float], limit: float | None) -> dict[str, float]:
    """Mean gradient norm of the logged steps and the share of them that clipping scaled down."""
    if not norms or limit is None:
        return {}
    return {
        "grad_norm": sum(norms) / len(norms),
        "clipped_fraction": sum(norm > limit for norm in norms) / len(norms),
    }


def _lr_lambda(kind: str, *, warmup: int, total: int):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


# Settings that may differ on resume: they change where and how often a run writes, not the
# weights.
OUTPUT_ONLY_FIELDS = frozenset(
    {"output_dir", "checkpoint_every_steps", "keep_checkpoints", "log_every_steps", "num_threads"}
)
# A resume compares the task files by content (the data hash), not by where they lie: a project
# folder moved or renamed, or a relative config run from another working folder, reads the same
# data. Only whether a validation folder is given changes the run.
DATA_FOLDER_FIELDS = frozenset({"train_dir", "val_dir"})
# A model file up to this size (config, tokenizer, an adapter) is hashed whole; a larger one (a
# model's weight shards) by its size and three slices, so that starting or resuming a run does
# not read a 7B model's 13 GB to recognise it.
WHOLE_HASH_BYTES = 64 << 20
SLICE_BYTES = 4 << 20


def _config_hash(config: TrainConfig) -> str:
    """Hash of the settings that change the weights (see `_resume_settings`): a resume must
    match it."""
    return _settings_hash(_resume_settings(config.model_dump(mode="json")))


def _settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _resume_settings(fields: dict[str, Any]) -> dict[str, Any]:
    """The settings of a config (as `model_dump(mode="json")` gives them) that a resume must
    keep: all but the output-only ones, the task folders reduced to whether validation runs
    (their files are compared by content), the model to what it is, not where it lies."""
    settings = {
        key: value
        for key, value in fields.items()
        if key not in OUTPUT_ONLY_FIELDS | DATA_FOLDER_FIELDS
    }
    settings["validates"] = fields.get("val_dir") is not None
    settings["model"] = _model_identity(str(fields.get("model")))
    return settings


def _model_identity(model: str) -> str:
    """A registry name or hub id as written; a local model folder (or a training run's adapter)
    by its files' names and contents, wherever the folder now lies."""
    path = Path(model).expanduser()
    if model in MODEL_REGISTRY or not path.is_dir():
        return model
    folder = path / "adapter" if is_run_dir(path) else path
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{file.name}:{_file_fingerprint(file)}\n".encode())
    return f"model folder {digest.hexdigest()[:16]}"


def _file_fingerprint(path: Path) -> str:
    size = path.stat().st_size
    if size <= WHOLE_HASH_BYTES:
        return file_sha256(path)
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        for start in (0, size // 2, size - SLICE_BYTES):
            handle.seek(start)
            digest.update(handle.read(SLICE_BYTES))
    return digest.hexdigest()


def _older_config_hash(fields: dict[str, Any]) -> str:
    """The settings hash of checkpoints written before task folders were compared by content:
    every field but the output-only ones, the task folders and the model as written."""
    return _settings_hash({k: v for k, v in fields.items() if k not in OUTPUT_ONLY_FIELDS})


# What a run folder holds (a per-task run holds one such folder per task); names starting
# with a dot are the temporary files of writes and the study run's stage records.
RUN_ENTRIES = frozenset(
    {
        "adapter",
        "checkpoints",
        "manifest.json",
        "metrics.jsonl",
        "tensorboard",
        "launch_config.yaml",
    }
)


def _check_no_foreign_files(output_dir: Path, *, tasks: Iterable[str]) -> None:
    """Refuse an output_dir that holds files of something else (a folder of runs, a project
    folder): a run written among them would mix with them, and a later cleanup could take them."""
    if not output_dir.is_dir():
        return
    foreign = sorted(
        entry.name
        for entry in output_dir.iterdir()
        if not entry.name.startswith(".") and entry.name not in RUN_ENTRIES | set(tasks)
    )
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise RadoncInputError(
            f"holds files that are not a training run's ({shown}); choose a new or empty "
            "output_dir (a run writes manifest.json, adapter/, checkpoints/ and logs there)",
            file=output_dir,
            field="output_dir",
        )


def _check_run_dir(run_dir: Path, *, resume: bool) -> Path | None:
    checkpoint = ckpt.latest_checkpoint(run_dir)
    if resume:
        # A run killed after a validation saved its best adapter but before its first
        # checkpoint is still 'running': it starts again from step 0, which writes that
        # adapter again. Only a run that finished has an adapter to protect.
        interrupted = run_status(run_dir) in ("running", "stopped")
        if checkpoint is None and (run_dir / "adapter").exists() and not interrupted:
            raise RadoncInputError(
                "holds a trained adapter but no checkpoint to resume from: --resume would "
                "train again from step 0 over it; choose another output_dir or move this one",
                file=run_dir,
                field="output_dir",
            )
        if checkpoint is None:
            logger.info("no checkpoint in %s: starting from step 0", run_dir)
        return checkpoint
    if (run_dir / "manifest.json").exists() or checkpoint is not None:
        raise RadoncInputError(
            "holds a previous run; pass --resume to continue it or choose another output_dir",
            file=run_dir,
            field="output_dir",
        )
    return None


def _read_rows(config: TrainConfig) -> tuple[list, list]:
    """The (file, line, row) of the training and validation examples the config asks for,
    checked row by row, and checked for validation cases that are also training cases."""
    train_rows = read_task_rows(
        config.train_dir,
        config.tasks,
        max_per_task=config.max_train_examples_per_task,
        seed=config.seed,
        temperature=config.sampling_temperature,
        floor=config.sampling_floor,
        nested=config.batch_by_case,
    )
    val_rows = []
    if config.val_dir is not None:
        val_rows = read_task_rows(
            config.val_dir,
            config.tasks,
            max_per_task=config.max_val_examples_per_task,
            seed=config.seed,
            nested=config.batch_by_case,
        )
        check_no_shared_cases(train_rows, val_rows)
    return train_rows, val_rows


def _warn_small_tasks(
    examples: list[TokenizedExample], *, global_batch: int, train_dir: Path
) -> None:
    for task, count in _count_by_task(examples).items():
        if count < global_batch:
            warnings.warn(
                f"{Path(train_dir) / f'{task}.jsonl'}: task '{task}' has {count} training "
                f"example(s), fewer than one optimizer step ({global_batch}); the adapter will "
                "learn little of it",
                stacklevel=3,
            )


def _data_hash(config: TrainConfig) -> str:
    """sha256 of the task files a run reads: a resume must read the same data."""
    digest = hashlib.sha256()
    for folder in (config.train_dir, config.val_dir):
        for task in config.tasks if folder is not None else ():
            path = Path(folder) / f"{task}.jsonl"
            digest.update(f"{path.name}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()[:16]


def _check_resumable(checkpoint: Path, config: TrainConfig, state: RunState) -> None:
    """Refuse a checkpoint of other settings or other task files, naming what differs. Where the
    task folders lie does not matter, only their files' contents."""
    saved = ckpt.read_checkpoint_state(checkpoint)
    run_dir = Path(config.output_dir)
    manifest = _run_manifest(run_dir)
    before = manifest.get("config") if isinstance(manifest.get("config"), dict) else None
    same_settings = saved.get("config_hash") == state.config_hash or _older_hash_of_these_settings(
        str(saved.get("config_hash")), config, before
    )
    if not same_settings:
        raise RadoncInputError(
            f"checkpoint {checkpoint.name} was made with different settings"
            f"{_changed_settings(config, before)}; restore the config or start a new output_dir",
            file=run_dir,
            field="output_dir",
        )
    # Checkpoints before the data hash have "": the run's manifest still names each file's hash.
    changed_files = _changed_data_files(config, manifest.get("data"))
    if (saved.get("data_hash") and saved["data_hash"] != state.data_hash) or changed_files:
        what = (
            f": {'; '.join(changed_files)}"
            if changed_files
            else f" (the files in {_data_folders(config)} changed since)"
        )
        raise RadoncInputError(
            f"checkpoint {checkpoint.name} was made from other task files{what}; restore them "
            "or start a new output_dir",
            file=run_dir,
            field="output_dir",
        )


def _run_manifest(run_dir: Path) -> dict[str, Any]:
    """A run's manifest.json ({} where it cannot be read): the config and the task files'
    hashes it records say what changed since."""
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _older_hash_of_these_settings(
    saved_hash: str, config: TrainConfig, before: dict[str, Any] | None
) -> bool:
    """Whether a checkpoint's hash of the older kind (task folders and model as written) is of
    these settings: of this config as written, or of the run's recorded config (its hash proves
    the record) when the two differ only in where the task folders and the model lie."""
    if _older_config_hash(config.model_dump(mode="json")) == saved_hash:
        return True
    if before is None:
        return False
    # The manifest records a local model folder's full path; the hash took it as written.
    recorded = [before, {**before, "model": config.model}]
    if not any(_older_config_hash(fields) == saved_hash for fields in recorded):
        return False
    return not _setting_differences(config, before)


def _changed_settings(config: TrainConfig, before: dict[str, Any] | None) -> str:
    """' (lora_rank: 4 then, 8 now)': the weight-changing settings that differ from the run's
    recorded config, or why the record cannot say."""
    if before is None:
        return " (the run's manifest.json, which would say which, cannot be read)"
    changed = _setting_differences(config, before)
    if changed:
        return f" ({'; '.join(changed)})"
    return (
        " (the run's manifest.json records these settings, but the checkpoint's state.json "
        "does not: it may come from an older radonc-llm)"
    )


def _setting_differences(config: TrainConfig, before: dict[str, Any]) -> list[str]:
    """The settings a resume must keep that differ between a run's recorded config and this
    one, as 'field: value then, value now'. A field the record lacks (added to radonc-llm
    since) counts as its default."""
    now = config.model_dump(mode="json")
    defaults = {
        name: json.loads(json.dumps(info.get_default(call_default_factory=True), default=str))
        for name, info in TrainConfig.model_fields.items()
        if not info.is_required()
    }
    then = {**defaults, **before}
    then_settings, now_settings = _resume_settings(then), _resume_settings(now)
    shown = {"validates": "val_dir"}
    return [
        f"{shown.get(key, key)}: {_shown_value(key, then)} then, {_shown_value(key, now)} now"
        for key, value in now_settings.items()
        if then_settings.get(key) != value
    ]


def _shown_value(key: str, fields: dict[str, Any]) -> str:
    if key == "validates":
        return repr(fields.get("val_dir"))
    return repr(fields.get(key))


def _changed_data_files(config: TrainConfig, recorded: Any) -> list[str]:
    """The task files whose sha256 differs from the one the run's manifest records (`recorded`,
    its "data"), each as 'path (sha256 1a2b3c4d5e6f then, 6f5e4d3c2b1a now)'; [] where the
    record cannot say. Files are matched by split and name, not by where they lie."""
    try:
        hashes = {
            split: {Path(path).name: entry["sha256"] for path, entry in files.items()}
            for split, files in recorded.items()
        }
    except (KeyError, TypeError, AttributeError):
        return []
    changed = []
    for split, folder in (("train", config.train_dir), ("val", config.val_dir)):
        then = hashes.get(split)
        if folder is None or then is None:
            continue  # validation given or not is a setting
        for task in config.tasks:
            path = Path(folder) / f"{task}.jsonl"
            if path.name not in then:
                changed.append(f"{path} (not read then)")
                continue
            digest = file_sha256(path)
            if digest != then[path.name]:
                changed.append(f"{path} (sha256 {then[path.name][:12]} then, {digest[:12]} now)")
    return changed


def _data_folders(config: TrainConfig) -> str:
    folders = [config.train_dir] + ([config.val_dir] if config.val_dir is not None else [])
    return " and ".join(in_working_folder(Path(folder)) for folder in folders)


def _manifest(
    config: TrainConfig,
    accelerator: Any,
    started_at: str,
    precision: str,
    train_examples: list[TokenizedExample],
    val_examples: list[TokenizedExample],
    prompt_versions: list[str],
) -> dict[str, Any]:
    base = base_model_record(config.model)  # found from another folder, or a moved project
    model = base["model"]
    files = [Path(config.train_dir) / f"{task}.jsonl" for task in config.tasks]
    train_counts = _count_by_task(train_examples)
    data = {"train": data_hashes(files, train_counts)}
    if config.val_dir is not None:
        val_files = [Path(config.val_dir) / f"{task}.jsonl" for task in config.tasks]
        data["val"] = data_hashes(val_files, _count_by_task(val_examples))
    return {
        "kind": "train",
        "model": model,
        "model_as_written": base["model_as_written"],
        "config": {**config.model_dump(mode="json"), "model": model},
        **git_commit(),
        "packages": package_versions(),
        "seeds": {"seed": config.seed, "data_order": "torch.randperm(seed * 100003 + epoch)"},
        "precision": precision,
        "attention": _attention(config, accelerator.device),
        "data": data,
        "prompt_versions": prompt_versions,  # predict refuses a run of other prompts
        "hardware": hardware(accelerator),
        "started_at": started_at,
        "adapter": "adapter",
    }


def _count_by_task(examples: list[TokenizedExample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for example in examples:
        counts[example.task] = counts.get(example.task, 0) + 1
    return counts


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[tps]:.0f} tok/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not enabled,
    )
