"""Hand-edited and damaged task files, over-long examples and damaged checkpoints: each stops
with the file, row and field, or is counted and reported; no answer token is ever cut."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from radonc_llm.errors import RadoncInputError
from radonc_llm.train.checkpoint import latest_checkpoint, read_checkpoint_state
from radonc_llm.train.data import read_task_rows, tokenize_rows
from radonc_llm.train.loop import train

from .conftest import task_rows, write_task_dir
from .test_loop import tiny_config


def write_rows(folder, task, rows):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def tokenizer():
    from radonc_llm.models.registry import load_model

    return load_model("tiny-llama")[1]


# -- rows --------------------------------------------------------------------------------------


def test_a_last_line_cut_short_is_named_as_an_interrupted_write(tmp_path):
    path = write_rows(tmp_path, "modality", task_rows("modality", 4))
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(RadoncInputError, match="no line end.*stopped part way") as info:
        read_task_rows(tmp_path, ["modality"])
    assert (info.value.file, info.value.row) == (str(path), 4)


def test_a_bad_line_in_the_middle_is_not_called_cut_short(tmp_path):
    path = write_rows(tmp_path, "modality", task_rows("modality", 4))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([*lines[:2], lines[2][:-40] + "\n", lines[3]]))
    with pytest.raises(RadoncInputError, match="not valid JSON") as info:
        read_task_rows(tmp_path, ["modality"])
    assert info.value.row == 3 and "part way" not in info.value.reason


def test_bom_blank_lines_and_crlf_keep_every_row_and_its_line(tmp_path):
    path = write_rows(tmp_path, "modality", task_rows("modality", 4))
    lines = path.read_bytes().splitlines(keepends=True)
    damaged = b"\xef\xbb\xbf" + b"".join([lines[0], b"\n", *lines[1:]]).replace(b"\n", b"\r\n")
    path.write_bytes(damaged)
    rows = read_task_rows(tmp_path, ["modality"])
    assert [line for _, line, _ in rows] == [1, 3, 4, 5]
    assert [row["example_id"] for _, _, row in rows] == [
        row["example_id"] for row in task_rows("modality", 4)
    ]


@pytest.mark.parametrize("field", ["example_id", "case_id"])
@pytest.mark.parametrize("value", [None, "", "  ", ["a"], {"id": 1}, True, 1.5])
def test_an_identifier_that_is_not_a_name_is_refused(tmp_path, field, value):
    rows = task_rows("modality", 4)
    rows[1][field] = value
    path = write_rows(tmp_path, "modality", rows)
    with pytest.raises(RadoncInputError, match=f"{field} must be a non-empty string") as info:
        read_task_rows(tmp_path, ["modality"])
    assert (info.value.file, info.value.row, info.value.field) == (str(path), 2, field)


def test_a_whole_number_identifier_is_accepted(tmp_path):
    rows = task_rows("modality", 2)
    rows[0]["example_id"], rows[1]["example_id"] = 7, 8
    write_rows(tmp_path, "modality", rows)
    assert len(read_task_rows(tmp_path, ["modality"])) == 2


def test_a_row_without_its_answer_says_the_answer_is_missing(tmp_path):
    rows = task_rows("modality", 4)
    rows[2]["messages"] = rows[2]["messages"][:-1]
    write_rows(tmp_path, "modality", rows)
    with pytest.raises(
        RadoncInputError, match="end with a 'user' turn: the assistant's answer.*is missing"
    ) as info:
        read_task_rows(tmp_path, ["modality"])
    assert (info.value.row, info.value.field) == (3, "messages.1")


def test_a_turn_out_of_place_reads_as_english(tmp_path):
    rows = task_rows("modality", 4)
    rows[0]["messages"] = [*rows[0]["messages"], {"role": "assistant", "content": "x"}]
    write_rows(tmp_path, "modality", rows)
    with pytest.raises(RadoncInputError, match="is an 'assistant' turn where a 'user'"):
        read_task_rows(tmp_path, ["modality"])


def test_a_sample_reports_how_many_rows_it_left_out(tmp_path, caplog):
    write_rows(tmp_path, "modality", task_rows("modality", 8))
    with caplog.at_level(logging.INFO, logger="radonc_llm.train.data"):
        rows = read_task_rows(tmp_path, ["modality"], max_per_task=5)
    assert len(rows) == 5
    assert "modality.jsonl: 5 of 8 examples sampled (3 left out" in caplog.text


# -- tokenising: no answer token is ever cut -------------------------------------------------


def test_every_over_long_example_is_counted_and_the_length_to_set_named(tmp_path, tokenizer):
    rows = task_rows("modality", 5)
    for k in (1, 3):
        user = rows[k]["messages"][1]
        rows[k]["messages"][1] = {**user, "content": user["content"] + " word" * (200 + 50 * k)}
    path = write_rows(tmp_path, "modality", rows)
    lengths = [
        len(ex.input_ids)
        for ex in tokenize_rows(read_task_rows(tmp_path, ["modality"]), tokenizer, max_length=4096)
    ]
    with pytest.raises(RadoncInputError, match="2 of 5 examples are longer") as info:
        tokenize_rows(read_task_rows(tmp_path, ["modality"]), tokenizer, max_length=256)
    assert (info.value.file, info.value.row) == (str(path), 2)
    assert f"max_length: {max(lengths)}" in info.value.reason
    assert f"row 4 ({lengths[3]} tokens)" in info.value.reason
    assert "None is cut" in info.value.reason


def test_an_answer_holding_the_end_of_turn_token_is_refused_not_cut(tmp_path, tokenizer):
    rows = task_rows("modality", 3)
    answer = rows[1]["messages"][-1]
    rows[1]["messages"][-1] = {**answer, "content": f"photon{tokenizer.eos_token}\nand more"}
    path = write_rows(tmp_path, "modality", rows)
    with pytest.raises(RadoncInputError, match="special token") as info:
        tokenize_rows(read_task_rows(tmp_path, ["modality"]), tokenizer, max_length=512)
    assert (info.value.file, info.value.row, info.value.field) == (
        str(path),
        2,
        "messages.2.content",
    )


def test_a_chat_template_that_renders_the_prompt_otherwise_names_the_row(tmp_path, tokenizer):
    class Reordering:  # a template whose generation prompt is not where the answer starts
        eos_token_id = tokenizer.eos_token_id
        all_special_tokens = tokenizer.all_special_tokens

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            text = "".join(f"[{m['role']}] {m['content']}\n" for m in messages)
            return text + "[bot]" if add_generation_prompt else "[x]" + text

        def __call__(self, text, add_special_tokens):
            return tokenizer(text, add_special_tokens=add_special_tokens)

    path = write_rows(tmp_path, "modality", task_rows("modality", 2))
    with pytest.raises(RadoncInputError, match="chat template renders the prompt") as info:
        tokenize_rows(read_task_rows(tmp_path, ["modality"]), Reordering(), max_length=512)
    assert (info.value.file, info.value.row) == (str(path), 1)


# -- checkpoints -----------------------------------------------------------------------------


def fake_checkpoint(run, step, state=None):
    folder = run / "checkpoints" / f"step-{step:06d}"
    (folder / "adapter").mkdir(parents=True)
    for name in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors"):
        (folder / name).write_text("{}")
    for name in ("optimizer.pt", "scheduler.pt", "rng-rank0.pt"):
        (folder / name).write_bytes(b"x")
    (folder / "state.json").write_text(json.dumps({"step": step, **(state or {})}))
    return folder


@pytest.mark.parametrize(
    "state,what",
    [
        ({"step": 7}, "says step 7 in the folder of step 2"),
        ({"step": -2}, "says step -2"),
        ({"trained_tokens": None}, "'trained_tokens' is null, not a whole number"),
        ({"best_val_loss": "low"}, "'best_val_loss' is a string, not a number"),
        ({"train_seconds": [1]}, "'train_seconds' is a list, not a number"),
        ({"best_step": 1.5}, "'best_step' is a number with a fraction, not a whole number"),
    ],
)
def test_a_checkpoint_state_of_wrong_values_is_named(tmp_path, state, what):
    fake_checkpoint(tmp_path, 1)
    checkpoint = fake_checkpoint(tmp_path, 2, state)
    with pytest.raises(RadoncInputError, match="damaged checkpoint") as info:
        read_checkpoint_state(checkpoint)
    assert what in info.value.reason
    assert info.value.file == str(checkpoint / "state.json")
    assert "to resume from step-000001" in info.value.reason


def test_the_newest_checkpoint_without_its_state_is_named_not_skipped(tmp_path):
    fake_checkpoint(tmp_path, 1)
    newest = fake_checkpoint(tmp_path, 2)
    (newest / "state.json").unlink()
    assert latest_checkpoint(tmp_path) == newest
    with pytest.raises(RadoncInputError, match="state.json is missing") as info:
        read_checkpoint_state(newest)
    assert f"delete {newest} to resume from step-000001" in info.value.reason
    (tmp_path / "checkpoints" / ".step-000003.tmp").mkdir()  # a save a kill cut short
    (tmp_path / "checkpoints" / "notes.txt").write_text("x")
    assert latest_checkpoint(tmp_path) == newest


@pytest.fixture(scope="module")
def stopped_run(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "stopped"
    config = tiny_config(data_root, output_dir=out, max_steps=4, checkpoint_every_steps=2)
    assert train(config, stop_after_steps=2, show_progress=False)["status"] == "stopped"
    return out


def copy_run(run, tmp_path):
    return shutil.copytree(run, tmp_path / "run")


def test_an_empty_checkpoint_file_says_it_is_empty(stopped_run, data_root, tmp_path):
    run = copy_run(stopped_run, tmp_path)
    (run / "checkpoints" / "step-000002" / "scheduler.pt").write_bytes(b"")
    config = tiny_config(data_root, output_dir=run, max_steps=4)
    with pytest.raises(RadoncInputError, match=r"scheduler.pt is empty \(0 bytes\)"):
        train(config, resume=True, show_progress=False)


def test_a_checkpoint_with_a_wrong_counter_stops_before_training(stopped_run, data_root, tmp_path):
    run = copy_run(stopped_run, tmp_path)
    state_file = run / "checkpoints" / "step-000002" / "state.json"
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "answer_tokens": None}))
    config = tiny_config(data_root, output_dir=run, max_steps=4)
    with pytest.raises(RadoncInputError, match="'answer_tokens' is null") as info:
        train(config, resume=True, show_progress=False)
    assert info.value.file == str(state_file)


def test_resume_after_a_kill_mid_way_through_a_metrics_line(stopped_run, data_root, tmp_path):
    run = copy_run(stopped_run, tmp_path)
    metrics = run / "metrics.jsonl"
    whole = metrics.read_text().splitlines()
    assert [json.loads(line)["step"] for line in whole] == [1, 2]
    metrics.write_text("\n".join(whole) + '\n{"step": 3, "epoch": 0.')  # the kill came here
    config = tiny_config(data_root, output_dir=run, max_steps=4)
    assert train(config, resume=True, show_progress=False)["status"] == "finished"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [row["step"] for row in rows if row["split"] == "train"] == [1, 2, 3, 4]


def test_a_damaged_metrics_line_before_the_last_is_named(stopped_run, data_root, tmp_path):
    run = copy_run(stopped_run, tmp_path)
    metrics = run / "metrics.jsonl"
    whole = metrics.read_text().splitlines()
    metrics.write_text(f"{whole[0][:10]}\n{whole[1]}\n")
    config = tiny_config(data_root, output_dir=run, max_steps=4)
    with pytest.raises(RadoncInputError, match="not valid JSON") as info:
        train(config, resume=True, show_progress=False)
    assert (info.value.file, info.value.row) == (str(metrics), 1)


def test_a_train_file_of_one_example_trains_and_is_warned_about(tmp_path):
    write_task_dir(tmp_path / "train", 8)
    write_task_dir(tmp_path / "val", 2, offset=100)
    modality = tmp_path / "train" / "modality.jsonl"
    modality.write_text(modality.read_text().splitlines(keepends=True)[0])
    config = tiny_config(tmp_path, max_steps=1)
    with pytest.warns(UserWarning, match="task 'modality' has 1 training example"):
        results = train(config, show_progress=False)
    assert results["train_examples"] == 8 + 1 + 8
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["data"]["train"][str(modality)]["examples_used"] == 1


def test_resume_refuses_a_best_adapter_cut_short_and_says_where_a_copy_is(data_root, tmp_path):
    config = tiny_config(data_root, output_dir=tmp_path / "run", max_steps=4, eval_every_steps=1)
    train(config, stop_after_steps=2, show_progress=False)
    weights = tmp_path / "run" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])
    with pytest.raises(RadoncInputError, match=r"best adapter \(validation at step 2\)") as info:
        train(config, resume=True, show_progress=False)
    assert info.value.file == str(weights)
    assert "cut short" in info.value.reason
    assert f"copy {tmp_path / 'run' / 'checkpoints' / 'step-000002' / 'adapter'}" in (
        info.value.reason
    )


def test_a_missing_best_adapter_without_a_checkpoint_of_its_step_says_start_again(tmp_path):
    from radonc_llm.train.checkpoint import check_best_adapter

    check_best_adapter(tmp_path, {"step": 4, "best_step": None})  # never validated: no adapter
    with pytest.raises(RadoncInputError, match="step 3\\) is missing; start again") as info:
        check_best_adapter(tmp_path, {"step": 4, "best_step": 3})
    assert info.value.file == str(tmp_path / "adapter" / "adapter_model.safetensors")


def test_a_kill_between_the_renames_of_a_save_keeps_the_previous_adapter(tmp_path):
    """replace_dir moves the adapter aside, then the new one in: a kill between the two leaves
    only `.adapter.old`, the last best adapter, which a resume must not delete."""
    from radonc_llm.train.checkpoint import remove_unfinished_saves

    previous = tmp_path / ".adapter.old"
    previous.mkdir()
    (previous / "adapter_model.safetensors").write_bytes(b"best so far")
    (tmp_path / ".adapter.tmp").mkdir()  # the new save, never renamed in
    assert remove_unfinished_saves(tmp_path) == 2
    assert (tmp_path / "adapter" / "adapter_model.safetensors").read_bytes() == b"best so far"
    assert not previous.exists() and not (tmp_path / ".adapter.tmp").exists()
