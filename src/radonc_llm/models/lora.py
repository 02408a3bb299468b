"""LoRA set-up: wrap a base model with a PEFT adapter whose base weights stay frozen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def add_lora(
    model: Any,
    *,
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: Sequence[str],
    adapter_dtype: torch.dtype = torch.float32,
) -> Any:
    """Return a PeftModel with a fresh LoRA adapter on `target_modules`.

    The adapter weights are kept in `adapter_dtype` (fp32) even when the base is bf16: the
    optimizer then updates full-precision weights while the matmuls run in bf16.
    """
    from peft import LoraConfig, get_peft_model

    missing = [name for name in target_modules if not _has_module(model, name)]
    if missing:
        raise ValueError(f"model has no module named {missing}")
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    for param in peft_model.parameters():
        if param.requires_grad:
            param.data = param.data.to(adapter_dtype)
    return peft_model


def lora_state(peft_model: Any) -> dict[str, torch.Tensor]:
    """The adapter weights only (the trainable LoRA tensors), detached copies."""
    return {
        name: param.detach().clone()
        for name, param in peft_model.named_parameters()
        if param.requires_grad
    }


def _has_module(model: Any, suffix: str) -> bool:
    return any(name.rsplit(".", 1)[-1] == suffix for name, _ in model.named_modules())
