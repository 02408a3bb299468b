"""LoRA set-up: wrap a base model with a PEFT adapter whose base weights stay frozen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from radonc_llm.errors import RadoncInputError


def add_lora(
    model: Any,
    *,
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: Sequence[str],
    adapter_dtype: torch.dtype = torch.float32,
    last_layers: int | None = None,
) -> Any:
    """Return a PeftModel with a fresh LoRA adapter on `target_modules`.

    With `last_layers`, only the last N decoder layers are adapted: backward then stops at
    the lowest adapted layer, so a step costs less. The adapter weights are kept in
    `adapter_dtype` (fp32) even when the base is bf16: the optimizer then updates
    full-precision weights while the matmuls run in bf16.
    """
    from peft import LoraConfig, get_peft_model

    missing = [name for name in target_modules if not _has_module(model, name)]
    if missing:
        raise RadoncInputError(
            f"the model has no module named {missing}", field="lora_target_modules"
        )
    layers = model.config.num_hidden_layers
    if last_layers is not None and not 0 < last_layers <= layers:
        raise RadoncInputError(
            f"{last_layers} layers asked, the model has {layers}", field="lora_last_layers"
        )
    chosen = list(range(layers - last_layers, layers)) if last_layers else None
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        bias="none",
        task_type="CAUSAL_LM",
        layers_to_transform=chosen,
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
