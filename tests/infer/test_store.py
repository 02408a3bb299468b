"""The prediction file: resumable after a kill, same rows as an uninterrupted run."""

from __future__ import annotations

import hashlib
import json

import pytest

from radonc_llm.errors import RadoncInputError
from radonc_llm.infer.backends import Answer, TransformersBackend
from radonc_llm.infer.predict import predict_cases
from radonc_llm.infer.store import PredictionStore
from radonc_llm.tasks.prompts import PROMPT_VERSION
from tests.infer.conftest import prediction_rows


class Killed(Exception):
    pass


class FakeBackend:
    """Deterministic answers from the prompt text; can die after a number of batches."""

    name = "fake"
    model_name = "fake-model"
    supports_constrained = False

    def __init__(self, die_after_batches: int | None = None) -> None:
        self.die_after = die_after_batches
        self.batches = 0
        self.seen: list[str] = []

    def answer(self, task, conversations, *, decoding):
        if self.die_after is not None and self.batches >= self.die_after:
            raise Killed()
        self.batches += 1
        out = []
        for messages in conversations:
            digest = hashlib.sha256(messages[-1]["content"].encode()).hexdigest()
            self.seen.append(messages[-1]["content"])
            raw = {
                "modality": ["photon", "IMRT", "proton or photon", "electrons"][
                    int(digest, 16) % 4
                ],
                "icd10": ["C61", "c50412", "no idea", "C71.1"][int(digest, 16) % 4],
                "regimen": f"{int(digest[:2], 16) % 70 + 1} Gy in {int(digest[2:4], 16) % 30 + 1} fractions",
            }[task]
            out.append(Answer(raw=raw))
        return out


def test_rows_hold_the_promised_fields(tmp_path, cases):
    out = tmp_path / "pred.jsonl"
    summary = predict_cases(FakeBackend(), cases, out, batch_size=3, show_progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 * len(cases)
    assert {(r["case_id"], r["task"]) for r in rows} == {
        (c.case_id, t) for c in cases for t in ("regimen", "modality", "icd10")
    }
    for row in rows:
        for key in ("case_id", "task", "prediction", "raw", "malformed", "model", "decoding"):
            assert key in row
        assert row["malformed"] == (row["prediction"] is None)
        assert row["prompt_version"] == PROMPT_VERSION and row["model"] == "fake-model"
    assert any(r["malformed"] for r in rows)  # "proton or photon", "no idea"
    assert summary.tasks["modality"].malformed == sum(
        r["malformed"] for r in rows if r["task"] == "modality"
    )
    manifest = json.loads((tmp_path / "pred.manifest.json").read_text())
    assert manifest["per_task"]["icd10"]["predicted"] == len(cases)


def test_killed_run_resumes_to_the_same_file(tmp_path, cases):
    whole = tmp_path / "whole.jsonl"
    predict_cases(FakeBackend(), cases, whole, batch_size=3, show_progress=False)

    resumed = tmp_path / "resumed.jsonl"
    with pytest.raises(Killed):
        predict_cases(
            FakeBackend(die_after_batches=4), cases, resumed, batch_size=3, show_progress=False
        )
    written = len(resumed.read_text().splitlines())
    assert 0 < written < 3 * len(cases)
    # The kill also cut an append short: half a row without its newline.
    with resumed.open("a") as handle:
        handle.write('{"case_id": "c0')
    backend = FakeBackend()
    summary = predict_cases(backend, cases, resumed, batch_size=3, show_progress=False)
    assert summary.repaired_last_line
    assert len(backend.seen) == 3 * len(cases) - written  # done rows are not asked again
    assert prediction_rows(resumed) == prediction_rows(whole)

    again = FakeBackend()
    predict_cases(again, cases, resumed, batch_size=3, show_progress=False)
    assert again.seen == [] and prediction_rows(resumed) == prediction_rows(whole)


def test_resumed_local_model_run_matches_uninterrupted(tmp_path, tiny, cases):
    model, tokenizer = tiny
    whole, part = tmp_path / "whole.jsonl", tmp_path / "part.jsonl"
    backend = TransformersBackend(model, tokenizer, model_name="tiny")
    predict_cases(backend, cases, whole, decoding="constrained", batch_size=3, show_progress=False)
    predict_cases(
        backend,
        cases[:5],
        part,
        decoding="constrained",
        batch_size=2,
        tasks=["modality"],
        show_progress=False,
    )
    predict_cases(backend, cases, part, decoding="constrained", batch_size=3, show_progress=False)
    got = {(r["case_id"], r["task"]): r for r in prediction_rows(part)}
    expected = {(r["case_id"], r["task"]): r for r in prediction_rows(whole)}
    assert got.keys() == expected.keys()
    for key, row in expected.items():
        assert got[key]["prediction"] == row["prediction"]
        assert got[key]["raw"] == row["raw"]
    constrained = [r for r in expected.values() if r["task"] in ("modality", "icd10")]
    assert constrained and not any(r["malformed"] for r in constrained)


def test_store_refuses_another_system_and_damagedprediction_rows(tmp_path, cases):
    out = tmp_path / "pred.jsonl"
    predict_cases(FakeBackend(), cases[:2], out, tasks=["modality"], show_progress=False)
    with pytest.raises(RadoncInputError, match="decoding"):
        with PredictionStore(out, run_info={"model": "fake-model", "decoding": "constrained"}):
            pass
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n{not json\n" + lines[1] + "\n")
    with pytest.raises(RadoncInputError, match="row 2") as error:
        with PredictionStore(out, run_info={}):
            pass
    assert str(out) in error.value.message
    out.write_text(lines[0] + "\n" + lines[0] + "\n")
    with pytest.raises(RadoncInputError, match="repeats case"):
        with PredictionStore(out, run_info={}):
            pass


def test_last_row_without_newline_is_kept(tmp_path, cases):
    out = tmp_path / "pred.jsonl"
    predict_cases(FakeBackend(), cases[:2], out, tasks=["modality"], show_progress=False)
    out.write_text(out.read_text().rstrip("\n"))
    backend = FakeBackend()
    predict_cases(backend, cases[:3], out, tasks=["modality"], show_progress=False)
    assert len(backend.seen) == 1
    assert len(out.read_text().splitlines()) == 3


def test_constrained_decoding_needs_a_local_model(tmp_path, cases):
    with pytest.raises(RadoncInputError, match="cannot constrain"):
        predict_cases(
            FakeBackend(), cases, tmp_path / "p.jsonl", decoding="constrained", show_progress=False
        )
    with pytest.raises(RadoncInputError, match="unknown task"):
        predict_cases(
            FakeBackend(), cases, tmp_path / "p.jsonl", tasks=["staging"], show_progress=False
        )


def test_out_that_is_a_folder_or_under_a_file_is_refused(tmp_path, cases):
    with pytest.raises(RadoncInputError, match="is a folder"):
        predict_cases(FakeBackend(), cases, tmp_path, show_progress=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(RadoncInputError, match="cannot create the folder"):
        predict_cases(FakeBackend(), cases, tmp_path / "file" / "p.jsonl", show_progress=False)


def test_a_full_disk_stops_the_run_clearly_and_a_rerun_repairs_and_completes(
    tmp_path, cases, monkeypatch
):
    import errno

    from radonc_llm.infer import store as store_module

    whole = tmp_path / "whole.jsonl"
    predict_cases(FakeBackend(), cases, whole, batch_size=3, show_progress=False)
    out = tmp_path / "pred.jsonl"
    real_append = store_module.append_jsonl
    appended = []

    def fills_up(handle, row):
        if len(appended) == 5:  # the disk fills up in the middle of the sixth row
            handle.write(json.dumps(row)[:40])
            handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(handle, row)
        appended.append(row)

    monkeypatch.setattr(store_module, "append_jsonl", fills_up)
    with pytest.raises(RadoncInputError) as caught:
        predict_cases(FakeBackend(), cases, out, batch_size=3, show_progress=False)
    message = caught.value.message
    assert message.startswith(f"{out}: cannot write the prediction file (No space left on device)")
    assert "rows written so far are kept" in message and "while answering" not in message
    assert len(out.read_text().splitlines()) == 6  # five rows and the cut sixth

    monkeypatch.setattr(store_module, "append_jsonl", real_append)
    summary = predict_cases(FakeBackend(), cases, out, batch_size=3, show_progress=False)
    assert summary.repaired_last_line
    assert prediction_rows(out) == prediction_rows(whole)


def test_a_file_that_cannot_be_written_is_named_before_any_prediction(tmp_path, cases, monkeypatch):
    import errno
    from pathlib import Path

    out = tmp_path / "pred.jsonl"
    real_open = Path.open

    def read_only(self, mode="r", *args, **kwargs):
        if self == out and mode != "r":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", read_only)
    backend = FakeBackend()
    with pytest.raises(RadoncInputError, match="cannot write the prediction file") as caught:
        predict_cases(backend, cases, out, show_progress=False)
    assert "(Read-only file system)" in caught.value.message and str(out) in caught.value.message
    assert backend.seen == []


def test_a_manifest_that_cannot_be_written_is_named(tmp_path, cases, monkeypatch):
    import errno

    from radonc_llm.infer import predict as predict_module

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(predict_module, "write_json_atomic", full)
    out = tmp_path / "pred.jsonl"
    with pytest.raises(RadoncInputError, match="cannot write the run's manifest") as caught:
        predict_cases(FakeBackend(), cases, out, tasks=["modality"], show_progress=False)
    assert "pred.manifest.json" in caught.value.message
    assert len(out.read_text().splitlines()) == len(cases)  # the predictions are complete


def test_two_runs_on_one_file_are_refused(tmp_path):
    out = tmp_path / "pred.jsonl"
    with PredictionStore(out, run_info={}):
        with pytest.raises(RadoncInputError, match="another prediction run is writing"):
            with PredictionStore(out, run_info={}):
                pass
    with PredictionStore(out, run_info={}):  # free again once the first run ends
        pass


def test_problems_in_a_resumed_file_name_its_line(tmp_path, cases):
    out = tmp_path / "pred.jsonl"
    predict_cases(FakeBackend(), cases[:2], out, tasks=["modality"], show_progress=False)
    first, second = out.read_text().splitlines()
    out.write_text(f"{first}\n\n{second}\n{first}\n")
    with pytest.raises(RadoncInputError) as caught:
        PredictionStore(out, run_info={}).open()
    assert caught.value.row == 4 and "repeats case" in caught.value.message
    other = json.dumps({**json.loads(second), "model": "other-model"})
    out.write_text(f"{first}\n\n{other}\n")
    with pytest.raises(RadoncInputError) as caught:
        PredictionStore(out, run_info={"model": "fake-model"}).open()
    assert caught.value.row == 3 and caught.value.field == "model"
    assert "model='other-model', this run has model='fake-model'" in caught.value.message
