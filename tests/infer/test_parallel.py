"""Worker processes: the same prediction file as one process, in the same order."""

from __future__ import annotations

import json

import pytest
import torch

from radonc_llm.errors import RadoncInputError
from radonc_llm.infer.parallel import ParallelBackend, check_prompt_version, local_backend
from radonc_llm.infer.predict import predict_cases
from radonc_llm.models.registry import load_model
from radonc_llm.tasks.prompts import PROMPT_VERSION
from tests.infer.conftest import lively, prediction_rows


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A lively tiny model saved as a folder, so worker processes load the same weights."""
    folder = tmp_path_factory.mktemp("lively")
    model, tokenizer = load_model("tiny-llama", dtype=torch.float32)
    lively(model, end_token=tokenizer.convert_tokens_to_ids("<|im_end|>"))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_two_workers_write_the_file_one_process_writes(tmp_path, model_dir, cases):
    files = {}
    for processes in (1, 2):
        files[processes] = tmp_path / f"{processes}.jsonl"
        with local_backend(str(model_dir), processes=processes) as backend:
            assert isinstance(backend, ParallelBackend) == (processes > 1)
            predict_cases(
                backend, cases, files[processes], decoding="constrained", batch_size=3,
                model_label="tiny", show_progress=False,
            )  # fmt: skip
    single, parallel = prediction_rows(files[1]), prediction_rows(files[2])
    assert len(single) == 3 * len(cases)
    assert parallel == single  # same rows, same order
    # The comparison means something: the answers differ from case to case.
    assert len({row["raw"] for row in single if row["task"] == "regimen"}) > 3


def test_a_bad_model_fails_before_workers_start(tmp_path):
    with pytest.raises(RadoncInputError, match="unknown model"):
        ParallelBackend("no-such-model", processes=2)


@pytest.mark.parametrize(
    "versions,refused", [(["1"], True), ([PROMPT_VERSION], False), (None, False)]
)
def test_a_run_trained_on_older_prompts_is_refused(tmp_path, versions, refused):
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    manifest = {"config": {"model": "tiny-llama"}}
    if versions is not None:
        manifest["prompt_versions"] = versions
    (run / "manifest.json").write_text(json.dumps(manifest))
    if refused:
        with pytest.raises(RadoncInputError, match="prompt version 1; the prompts are now") as info:
            check_prompt_version(str(run))
        assert info.value.field == "prompt_versions"
        assert info.value.file == str(run / "manifest.json")
        with pytest.raises(RadoncInputError, match="prompt version 1"), local_backend(str(run)):
            pass
    else:
        check_prompt_version(str(run))


def test_a_gpu_predicts_in_one_process(monkeypatch):
    import torch

    from radonc_llm.infer.backends import TransformersBackend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    loaded = []
    monkeypatch.setattr(
        TransformersBackend, "load", classmethod(lambda cls, name, **kw: loaded.append(kw) or name)
    )
    with pytest.warns(UserWarning, match="on a GPU prediction runs in one process"):
        with local_backend("tiny-llama", processes=2) as backend:
            assert backend == "tiny-llama"  # the in-process backend, not worker processes
    assert len(loaded) == 1


@pytest.mark.slow
def test_worker_and_per_task_backends_name_prompts_longer_than_the_context(model_dir, cases):
    from radonc_llm.infer.parallel import PerTaskBackend
    from radonc_llm.infer.predict import default_messages, over_context

    long_case = cases[0].model_copy(update={"diagnosis_text": "pT2 N1 µ × é " * 2000})
    mixed = [long_case, *cases[1:]]
    per_task = PerTaskBackend(
        "a-run", {"icd10": str(model_dir)}, dtype="float32", processes=1
    )  # a plain model folder stands in for the task's run
    window = json.loads((model_dir / "config.json").read_text())["max_position_embeddings"]
    try:
        with ParallelBackend(str(model_dir), processes=2) as workers:
            for backend in (workers, per_task):
                context, too_long = over_context(backend, mixed, "icd10", default_messages)
                assert context == window
                assert [case_id for case_id, _ in too_long] == [long_case.case_id]
                assert over_context(backend, cases[1:], "icd10", default_messages) == (window, [])
    finally:
        per_task.close()
