"""Which number format a model computes in: bf16 only where the hardware computes it natively.

On a CPU without AVX512-BF16 or AMX, PyTorch emulates bf16 matmuls: measured on a 2-core AVX2
EPYC, 0.9 GFLOP/s against 135 in fp32. A run that asks for bf16 there would take ~100x longer,
so `auto` (the demo's setting) picks fp32 on such a CPU, and an explicit bf16 gets a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path

EMULATED_BF16_WARNING = (
    "this CPU has no native bf16 (no AVX512-BF16 or AMX): PyTorch emulates it, ~100x slower "
    "than float32 here; use 'auto' or float32"
)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls several times faster than fp32 (measured 927 vs 218
    GFLOP/s on a 2-core EPYC with AVX512-BF16); without them bf16 is emulated and far slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def bf16_is_native(device_type: str) -> bool:
    """Whether `device_type` ("cpu", "cuda", ...) computes bf16 natively."""
    import torch

    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(precision: str, device_type: str) -> str:
    """A training precision (`auto`, `bf16`, `fp32`) -> `bf16` or `fp32` for `device_type`."""
    if precision == "auto":
        return "bf16" if bf16_is_native(device_type) else "fp32"
    if precision == "bf16" and device_type == "cpu" and not cpu_has_native_bf16():
        warnings.warn(EMULATED_BF16_WARNING, stacklevel=2)
    return precision


# Inference names dtypes as torch does; training configs use the short names.
_PRECISION_OF_DTYPE = {"auto": "auto", "bfloat16": "bf16", "float32": "fp32"}


def inference_device() -> str:
    """Where local inference runs: the (first) GPU when there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_inference_dtype(dtype: str) -> str:
    """An inference dtype (`auto`, `bfloat16`, `float32`) -> `bfloat16` or `float32`, for the
    device local inference runs on (`inference_device`)."""
    precision = resolve_precision(_PRECISION_OF_DTYPE[dtype], inference_device())
    return {"bf16": "bfloat16", "fp32": "float32"}[precision]
