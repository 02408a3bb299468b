"""A checkpoint resumes only in as many processes as wrote it: another number of processes makes
another global batch and data order, so the run would not continue as it began."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from radonc_llm.errors import RadoncInputError
from radonc_llm.train.checkpoint import CHECKPOINT_FILES, load_checkpoint


def _checkpoint(folder, ranks: int):
    for name in CHECKPOINT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text('{"step": 2}' if name == "state.json" else "")
    for rank in range(ranks):
        (folder / f"rng-rank{rank}.pt").write_bytes(b"")
    return folder


@pytest.mark.parametrize("written_by,running", [(2, 1), (1, 2)])
def test_another_number_of_processes_is_refused_before_any_weight_loads(
    tmp_path, written_by, running
):
    checkpoint = _checkpoint(tmp_path / "step-000002", written_by)
    accelerator = SimpleNamespace(num_processes=running, process_index=0)
    with pytest.raises(RadoncInputError) as info:
        load_checkpoint(
            checkpoint, accelerator=accelerator, peft_model=None, optimizer=None, scheduler=None
        )
    assert f"written by {written_by} process(es) and this resume runs {running}" in str(info.value)
    assert f"`processes: {written_by}`" in info.value.reason
