"""Damaged task files, checkpoints and run folders: each stops with a message that names the
file, the row or field and the reason, and nothing is trained on or exported silently."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from radonc_llm.errors import RadoncInputError
from radonc_llm.train.data import check_no_shared_cases, read_task_rows
from radonc_llm.train.export import export_run
from radonc_llm.train.loop import _warn_small_tasks, train

from .conftest import task_rows, write_task_dir
from .test_loop import tiny_config


def write_rows(folder, task, rows):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# -- task files ----------------------------------------------------------------------------


def _drop_system(messages):
    return messages[1:]


def _second_answer(messages):
    return [*messages, {"role": "assistant", "content": "photon"}]


def _misspell_user(messages):
    return [messages[0], {**messages[1], "role": "usr"}, *messages[2:]]


def _misspell_system(messages):
    return [{**messages[0], "role": "sytem"}, *messages[1:]]


@pytest.mark.parametrize(
    "damage,field,reason",
    [
        (_drop_system, "messages.0.role", "must be the system prompt"),
        (_second_answer, "messages.3.role", "'assistant' turn where a 'user' turn belongs"),
        (_misspell_user, "messages.1.role", "unknown role 'usr'"),
        (_misspell_system, "messages.0.role", "unknown role 'sytem'"),
    ],
)
def test_rows_whose_turns_prediction_never_sends_are_refused(tmp_path, damage, field, reason):
    rows = task_rows("modality", 4)
    rows[2]["messages"] = damage(rows[2]["messages"])
    path = write_rows(tmp_path, "modality", rows)
    with pytest.raises(RadoncInputError, match=reason) as info:
        read_task_rows(tmp_path, ["modality"])
    assert (info.value.file, info.value.row, info.value.field) == (str(path), 3, field)


def test_a_repeated_example_is_refused_not_counted_twice(tmp_path):
    rows = task_rows("modality", 4)
    path = write_rows(tmp_path, "modality", [*rows, rows[1]])
    with pytest.raises(RadoncInputError, match="first on row 2") as info:
        read_task_rows(tmp_path, ["modality"])
    assert (info.value.file, info.value.row, info.value.field) == (str(path), 5, "example_id")


def test_crlf_task_files_read_like_lf_ones(tmp_path):
    lf = write_rows(tmp_path / "lf", "modality", task_rows("modality", 4))
    crlf = write_rows(tmp_path / "crlf", "modality", task_rows("modality", 4))
    crlf.write_bytes(lf.read_bytes().replace(b"\n", b"\r\n"))
    rows = [[row for _, _, row in read_task_rows(p.parent, ["modality"])] for p in (lf, crlf)]
    assert rows[0] == rows[1] and len(rows[0]) == 4


def test_validation_cases_that_are_training_cases_are_refused(tmp_path):
    train_dir = write_task_dir(tmp_path / "train", 8)
    val_dir = write_task_dir(tmp_path / "val", 2, offset=6)  # case-0006 and -0007 leak
    tasks = ["modality"]
    with pytest.raises(RadoncInputError, match="2 validation case") as info:
        check_no_shared_cases(read_task_rows(train_dir, tasks), read_task_rows(val_dir, tasks))
    assert info.value.field == "case_id" and info.value.file == str(val_dir / "modality.jsonl")
    clean = write_task_dir(tmp_path / "clean", 2, offset=100)
    check_no_shared_cases(read_task_rows(train_dir, tasks), read_task_rows(clean, tasks))


def test_a_leaking_validation_split_stops_training_before_it_starts(tmp_path):
    write_task_dir(tmp_path / "train", 8)
    write_task_dir(tmp_path / "val", 2)  # the first two training cases again
    with pytest.raises(RadoncInputError, match="also training cases"):
        train(tiny_config(tmp_path), show_progress=False)
    assert not (tmp_path / "run").exists()


def test_a_task_smaller_than_one_step_is_warned_about(task_dirs, tiny):
    from radonc_llm.train.data import tokenize_rows

    _, tokenizer = tiny
    rows = read_task_rows(task_dirs[0], ["regimen", "modality"])
    rows = [item for item in rows if item[0].stem == "regimen"] + [
        item for item in rows if item[0].stem == "modality"
    ][:1]
    examples = tokenize_rows(rows, tokenizer, max_length=512)
    with pytest.warns(UserWarning, match="task 'modality' has 1 training example") as caught:
        _warn_small_tasks(examples, global_batch=8, train_dir=task_dirs[0])
    assert len(caught) == 1  # regimen's 16 fill two steps


@pytest.fixture
def tiny(task_dirs):
    from radonc_llm.models.registry import load_model

    return load_model("tiny-llama")


# -- resuming --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stopped_run(data_root, tmp_path_factory):
    """A run killed after step 2 of 4 (checkpoint step-000002 and no adapter: validation
    comes at the end of the epoch, step 3)."""
    out = tmp_path_factory.mktemp("runs") / "stopped"
    config = tiny_config(data_root, output_dir=out, max_steps=4, checkpoint_every_steps=2)
    results = train(config, stop_after_steps=2, show_progress=False)
    assert results["status"] == "stopped"
    assert not (out / "adapter").exists()
    return out


def copy_run(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_resume_with_another_lora_rank_names_the_setting_before_loading(
    stopped_run, data_root, tmp_path
):
    run = copy_run(stopped_run, tmp_path)
    config = tiny_config(data_root, output_dir=run, max_steps=4, lora_rank=8)
    with pytest.raises(RadoncInputError, match="lora_rank: 4 then, 8 now") as info:
        train(config, resume=True, show_progress=False)
    assert info.value.field == "output_dir"


def test_resume_on_changed_task_files_is_refused(tmp_path):
    write_task_dir(tmp_path / "train", 8)
    write_task_dir(tmp_path / "val", 2, offset=100)
    config = tiny_config(tmp_path, max_steps=4, checkpoint_every_steps=2)
    train(config, stop_after_steps=2, show_progress=False)
    modality = tmp_path / "train" / "modality.jsonl"
    modality.write_text("".join(modality.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(RadoncInputError, match="other task files") as info:
        train(config, resume=True, show_progress=False)
    assert info.value.field == "output_dir"


@pytest.mark.parametrize(
    "damage,named,what",
    [
        (lambda ckpt: (ckpt / "optimizer.pt").unlink(), "optimizer.pt", "is missing"),
        (
            lambda ckpt: (ckpt / "adapter" / "adapter_model.safetensors").unlink(),
            "adapter_model.safetensors",
            "is missing",
        ),
        (lambda ckpt: (ckpt / "rng-rank0.pt").unlink(), "rng-rank0.pt", "is missing"),
        (
            lambda ckpt: (ckpt / "optimizer.pt").write_bytes(
                (ckpt / "optimizer.pt").read_bytes()[:300]
            ),
            "optimizer.pt",
            "cannot be read",
        ),
        (lambda ckpt: (ckpt / "state.json").write_text('{"step": '), "state.json", "valid JSON"),
    ],
)
def test_resume_from_a_damaged_checkpoint_names_the_file(
    stopped_run, data_root, tmp_path, damage, named, what
):
    run = copy_run(stopped_run, tmp_path)
    checkpoint = run / "checkpoints" / "step-000002"
    damage(checkpoint)
    config = tiny_config(data_root, output_dir=run, max_steps=4)
    with pytest.raises(RadoncInputError, match=what) as info:
        train(config, resume=True, show_progress=False)
    assert info.value.file.endswith(named)
    assert f"delete {checkpoint} to start again from step 0" in info.value.reason


# -- export --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "finished"
    train(tiny_config(data_root, output_dir=out, max_steps=1), show_progress=False)
    return out


def test_export_of_a_run_without_adapter_says_it_stopped_early(stopped_run, tmp_path):
    with pytest.raises(RadoncInputError, match="without an adapter yet.*--resume") as info:
        export_run(stopped_run, tmp_path / "out")
    assert info.value.file == str(stopped_run)
    assert not (tmp_path / "out").exists()


def test_export_of_an_unfinished_run_warns(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "stopped"}))
    with pytest.warns(UserWarning, match="status is 'stopped'"):
        export_run(run, tmp_path / "out", merge=False)
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_export_refuses_an_output_that_is_a_file_or_inside_the_run(finished_run, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(RadoncInputError, match="output is a file"):
        export_run(finished_run, afile)
    for inside in (finished_run / "merged", finished_run / "adapter" / "copy"):
        with pytest.raises(RadoncInputError, match="inside the run folder"):
            export_run(finished_run, inside, merge=False)
        assert not inside.exists()


def test_export_of_a_merged_model_points_to_predict(finished_run, tmp_path):
    merged = export_run(finished_run, tmp_path / "merged", merge=False)
    with pytest.raises(RadoncInputError, match="exported model, not a training run"):
        export_run(merged, tmp_path / "again")
    with pytest.raises(RadoncInputError, match="no such training run folder"):
        export_run(tmp_path / "nope", tmp_path / "again")


def test_export_refuses_a_cut_adapter(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    weights = run / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(RadoncInputError, match="cut short or damaged") as info:
        export_run(run, tmp_path / "out", merge=False)
    assert info.value.file == str(weights)
    assert not (tmp_path / "out").exists()


def test_resume_over_a_trained_adapter_without_checkpoints_is_refused(tmp_path):
    from radonc_llm.train.loop import _check_run_dir

    (tmp_path / "adapter").mkdir()
    with pytest.raises(RadoncInputError, match="no checkpoint to resume from"):
        _check_run_dir(tmp_path, resume=True)
    assert _check_run_dir(tmp_path / "fresh", resume=True) is None  # nothing there: step 0


def test_saved_adapter_lists_its_target_modules_in_one_order(tmp_path):
    from radonc_llm.train.checkpoint import save_adapter

    class Unordered:  # PEFT writes the modules from a set: any order
        def save_pretrained(self, folder, state_dict=None):
            folder.mkdir(parents=True)
            config = {"r": 8, "target_modules": ["v_proj", "q_proj", "down_proj"]}
            (folder / "adapter_config.json").write_text(json.dumps(config))

    save_adapter(Unordered(), tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved == {"r": 8, "target_modules": ["down_proj", "q_proj", "v_proj"]}


def test_an_output_dir_holding_other_files_is_refused_naming_them(data_root, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "old-runs").mkdir()
    config = tiny_config(data_root, output_dir=tmp_path, max_steps=1)
    for resume in (False, True):
        with pytest.raises(RadoncInputError, match=r"not a training run's \(notes.txt, old-runs\)"):
            train(config, resume=resume, show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "old-runs"]


def test_resume_removes_the_temporary_files_a_kill_left(stopped_run, data_root, tmp_path):
    run = copy_run(stopped_run, tmp_path)
    leftover = run / ".metrics.jsonl.k3j9x0ab.tmp"
    leftover.write_text('{"step": 1')
    half_saves = [
        run / ".adapter.old",
        run / ".adapter.tmp",
        run / "checkpoints" / ".step-000004.tmp",
    ]
    for folder in half_saves:  # a kill between a save's writes and renames
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"half")
    config = tiny_config(data_root, output_dir=run, max_steps=4)
    train(config, resume=True, show_progress=False)
    assert not leftover.exists()
    assert not any(folder.exists() for folder in half_saves)
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


def test_export_removes_the_partial_folder_of_a_killed_export(finished_run, tmp_path):
    partial = tmp_path / ".out.a1b2c3d4.tmp"  # what a kill mid-merge leaves (mkdtemp's name)
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    other = tmp_path / ".outside.a1b2c3d4.tmp"  # another output's: not ours to remove
    other.mkdir()
    export_run(finished_run, tmp_path / "out", merge=False)
    assert not partial.exists()
    assert other.exists()
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(data_root, tmp_path):
    """Validation saved its best adapter at step 1; the first checkpoint was due at step 2."""
    from safetensors.torch import load_file

    settings = dict(max_steps=3, eval_every_steps=1, checkpoint_every_steps=2)
    killed = tiny_config(data_root, output_dir=tmp_path / "killed", **settings)
    train(killed, stop_after_steps=1, show_progress=False)
    assert (tmp_path / "killed" / "adapter").is_dir()
    assert not (tmp_path / "killed" / "checkpoints").exists()
    resumed = train(killed, resume=True, show_progress=False)
    assert resumed["status"] == "finished" and resumed["steps"] == 3
    whole = tiny_config(data_root, output_dir=tmp_path / "whole", **settings)
    train(whole, show_progress=False)
    weights = "adapter/adapter_model.safetensors"
    got, want = load_file(tmp_path / "killed" / weights), load_file(tmp_path / "whole" / weights)
    assert all(torch.equal(got[name], want[name]) for name in want)


def test_unfinished_saves_are_found_and_nothing_else(tmp_path):
    from radonc_llm.train.checkpoint import remove_unfinished_saves

    half = [tmp_path / ".adapter.old", tmp_path / "checkpoints" / ".step-000008.old"]
    kept = [tmp_path / "adapter", tmp_path / "checkpoints" / "step-000006"]
    for folder in half + kept:
        folder.mkdir(parents=True)
    assert remove_unfinished_saves(tmp_path) == 2
    assert not any(f.exists() for f in half) and all(f.is_dir() for f in kept)
