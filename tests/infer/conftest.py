"""Fixtures for prediction tests: a tiny random model whose greedy answers vary by prompt."""

from __future__ import annotations

import json

import pytest
import torch

from radonc_llm.models.registry import load_model
from tests.infer.sample_cases import sample_cases


def prediction_rows(path) -> list[dict]:
    """The rows of a prediction file without their timings, which differ from run to run."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.pop("latency_s")
    return rows


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    # Tiny models gain nothing from threads, and on a shared CPU an idle OpenMP worker turns
    # each small matmul into a wait for a time slice.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lively(model: torch.nn.Module, *, end_token: int) -> torch.nn.Module:
    """Redraw the weights with a larger spread (seeded) so answers differ between prompts,
    and make the end-of-turn token likely enough that rows stop at different steps.

    The registry's tiny model is initialised with std 0.02 and answers "\\n" to everything,
    which would make batched == one-at-a-time hold trivially.
    """
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.3, generator=generator)
        model.get_output_embeddings().weight[end_token] *= 3.0
    return model


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer): tiny-llama in float64, so batching cannot flip an argmax by rounding."""
    model, tokenizer = load_model("tiny-llama", dtype=torch.float64)
    return lively(model, end_token=tokenizer.convert_tokens_to_ids("<|im_end|>")), tokenizer


@pytest.fixture()
def cases():
    return sample_cases()
