"""Linear layers whose weights are packed once for oneDNN, for inference on a CPU.

`F.linear` on a CPU hands the weight to oneDNN, which reorders it into its blocked layout on
every call. A prompt pass (~1,000 rows per call) hardly notices; a decoding step (one row per
answer being written, ~20 rows) spends most of its time there: SmolLM2's [576 -> 1536] layer
with 20 rows and a cold cache took 495 us in bf16, 298 us with the weight packed once (a
1000-row prompt pass: 9.4 ms -> 8.8 ms). ICD-10 trie walks and regimen generation are mostly
such steps.

Same oneDNN kernel: in bfloat16 the results are bit-identical to `F.linear` (a bias, which
Llama-family layers do not have, may be added with one rounding fewer). Float32 goes
through oneDNN instead of MKL and differs in the last bits; in both, a row's result does not
depend on the other rows of its batch, so batched answers still equal one-at-a-time ones.
Inference only: the packed weight is no parameter (nothing trains or saves it).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

PACKED_DTYPES = (torch.bfloat16, torch.float32)


class PackedLinear(torch.nn.Module):
    """`nn.Linear` for inference with its weight in oneDNN's layout (see the module doc)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        self.register_buffer(
            "packed_weight", torch.ops.mkldnn._reorder_linear_weight(weight), persistent=False
        )
        bias = linear.bias.detach() if linear.bias is not None else None
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed"


def can_pack(model: Any) -> bool:
    """Whether `model` runs where packing applies: on a CPU with oneDNN, in bf16 or fp32."""
    parameter = next(model.parameters(), None)
    return (
        parameter is not None
        and parameter.device.type == "cpu"
        and parameter.dtype in PACKED_DTYPES
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def pack_linears(model: torch.nn.Module) -> int:
    """Replace every `nn.Linear` of an inference model on a CPU by a `PackedLinear`, in place;
    return how many were packed (0 where packing does not apply: the model is left as it was).

    A weight shared with another module (a tied LM head) is packed as a copy; the other
    module keeps the original.
    """
    if not can_pack(model):
        return 0
    linears = [
        (name, module)
        for name, module in model.named_modules()
        if type(module) is torch.nn.Linear and module.weight.dtype in PACKED_DTYPES
    ]
    try:
        packed = [(name, PackedLinear(module)) for name, module in linears]
    except RuntimeError as exc:  # a torch built without the op's kernels for this CPU
        logger.info("linear layers left unpacked: %s", exc)
        return 0
    for name, module in packed:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, module)
    return len(packed)
