import json
import random
from collections import Counter

import pytest
import torch

from radonc_llm.errors import RadoncInputError
from radonc_llm.models.lora import add_lora
from radonc_llm.models.registry import LLAMA_LORA_TARGETS, load_model
from radonc_llm.train.data import (
    IGNORE_INDEX,
    collate,
    epoch_batches,
    padded_labels,
    read_task_rows,
    shard_step,
    tempered_sample,
    tokenize_rows,
)
from radonc_llm.train.loop import AnswerLoss

from .conftest import differentiable_lora, task_rows


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


def test_prompt_tokens_carry_no_loss_and_answer_ends_with_end_of_turn(task_dirs, tiny):
    _, tokenizer = tiny
    rows = read_task_rows(task_dirs[0], ["modality"])
    example = tokenize_rows(rows[:1], tokenizer, max_length=512)[0]
    prompt = tokenizer.apply_chat_template(
        rows[0][2]["messages"][:-1], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    labels = example.labels()
    assert list(example.input_ids[: len(prompt_ids)]) == prompt_ids
    assert labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    answer = labels[len(prompt_ids) :]
    assert IGNORE_INDEX not in answer
    assert answer[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.decode(answer) == rows[0][2]["answer"] + "<|im_end|>"


def test_answer_only_loss_equals_hugging_face_masked_loss(task_dirs, tiny):
    model, tokenizer = tiny
    peft_model = add_lora(model, rank=4, alpha=8, dropout=0.0, target_modules=LLAMA_LORA_TARGETS)
    examples = tokenize_rows(
        read_task_rows(task_dirs[0], ["regimen", "icd10"]), tokenizer, max_length=512
    )[:6]
    batch = collate(examples, pad_id=tokenizer.pad_token_id)
    ours = AnswerLoss(peft_model, autocast_dtype=None)(
        batch.input_ids, batch.answer_rows, batch.answer_cols, batch.targets, "mean"
    )
    labels = padded_labels(examples)
    reference = peft_model(
        input_ids=batch.input_ids, attention_mask=(labels != -200).long(), labels=labels
    ).loss
    assert batch.num_answer_tokens == int((labels != IGNORE_INDEX).sum())
    assert torch.allclose(ours, reference, atol=1e-5)


def test_epoch_batches_cover_every_example_once_and_group_lengths():
    lengths = [((i * 37) % 50) + 10 for i in range(203)]
    batches = epoch_batches(lengths, global_batch=8, seed=3, epoch=1)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(203))
    assert batches == epoch_batches(lengths, global_batch=8, seed=3, epoch=1)
    assert batches != epoch_batches(lengths, global_batch=8, seed=3, epoch=2)
    padding = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    random_order = epoch_batches(lengths, global_batch=8, seed=3, epoch=1, group_by_length=False)
    random_padding = sum(
        max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in random_order
    )
    assert padding < random_padding / 4


def test_a_length_window_of_one_step_keeps_each_step_a_random_sample():
    lengths = [((i * 37) % 50) + 10 for i in range(203)]
    random_steps = epoch_batches(lengths, global_batch=8, seed=3, epoch=1, group_by_length=False)
    one_step = epoch_batches(lengths, global_batch=8, seed=3, epoch=1, length_window=1)
    wide = epoch_batches(lengths, global_batch=8, seed=3, epoch=1, length_window=64)
    # The same steps as unsorted random batches, only in another order and sorted inside.
    assert sorted(map(sorted, one_step)) == sorted(map(sorted, random_steps))
    assert one_step != random_steps
    assert all(
        [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
        for batch in one_step
    )

    def padding(batches):
        return sum(
            max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches
        )

    assert padding(wide) < padding(one_step)
    with pytest.raises(ValueError, match="length_window"):
        epoch_batches(lengths, global_batch=8, seed=3, epoch=1, length_window=0)


def test_shard_step_splits_a_step_between_processes_and_micro_batches():
    lengths = list(range(10, 21))
    batch = list(range(11))
    shares = [
        shard_step(batch, lengths, micro_batches=2, num_processes=2, process_index=rank)
        for rank in (0, 1)
    ]
    flat = sorted(i for share in shares for micro in share for i in micro)
    assert flat == batch
    assert all(len(share) == 2 for share in shares)
    tiny_step = shard_step([0], lengths, micro_batches=2, num_processes=2, process_index=1)
    assert tiny_step == [[], []]


def test_bad_rows_fail_naming_file_line_and_field(tmp_path):
    rows = task_rows("modality", 3)
    rows[1]["messages"] = rows[1]["messages"][:-1]
    path = tmp_path / "modality.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(RadoncInputError) as info:
        read_task_rows(tmp_path, ["modality"])
    assert (info.value.file, info.value.row, info.value.field) == (str(path), 2, "messages.1")


def test_too_long_example_is_an_error_not_cut(task_dirs, tiny):
    _, tokenizer = tiny
    rows = read_task_rows(task_dirs[0], ["regimen"])
    with pytest.raises(RadoncInputError, match="max_length=20") as info:
        tokenize_rows(rows, tokenizer, max_length=20)
    assert info.value.row == 1 and info.value.field == "messages"


def test_shared_prompt_prefix_gives_the_same_loss_and_gradients(task_dirs):
    model, tokenizer = load_model("tiny-mistral")
    peft_model = differentiable_lora(model)
    examples = tokenize_rows(read_task_rows(task_dirs[0], ["icd10"]), tokenizer, max_length=512)
    scorer = AnswerLoss(peft_model, autocast_dtype=None)
    results = []
    for share in (False, True):
        batch = collate(examples[:5], pad_id=tokenizer.pad_token_id, share_prefix=share)
        loss = scorer(
            batch.input_ids, batch.answer_rows, batch.answer_cols, batch.targets,
            "sum", batch.prefix_length,
        )  # fmt: skip
        peft_model.zero_grad()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}
        results.append((batch.prefix_length, loss.detach(), grads))
    (p0, loss0, grads0), (p1, loss1, grads1) = results
    # The rows share system prompt and "Diagnosis:" (~29 tokens with the tiny tokenizer).
    assert p0 == 0 and 20 < p1 < min(e.prompt_length for e in examples[:5])
    assert torch.allclose(loss0, loss1, rtol=1e-5)
    for name in grads0:
        assert torch.allclose(grads0[name], grads1[name], rtol=1e-4, atol=1e-6), name


def test_task_grouping_keeps_tasks_in_proportion_and_micro_batches_task_pure():
    groups = ["regimen"] * 40 + ["modality"] * 40 + ["icd10"] * 40
    lengths = [30 + (i * 7) % 23 for i in range(120)]
    batches = epoch_batches(lengths, global_batch=12, seed=1, epoch=0, groups=groups)
    assert sorted(i for b in batches for i in b) == list(range(120))
    for batch in batches:
        assert sorted(groups[i] for i in batch).count("icd10") == 4  # 4 of each task per step
        for rank in (0, 1):
            micro = shard_step(
                batch, lengths, micro_batches=3, num_processes=2, process_index=rank, groups=groups
            )
            assert all(len({groups[i] for i in part}) == 1 for part in micro)


def test_runs_of_one_task_make_micro_batches_pure_when_steps_are_smaller_than_the_tasks():
    # The demo's shape: 2 processes x 1 micro-batch of 4, 3 tasks.
    groups = ["regimen"] * 40 + ["modality"] * 40 + ["icd10"] * 40
    lengths = [30 + (i * 7) % 23 for i in range(120)]

    def micro_batches(batches):
        return [
            part
            for batch in batches
            for rank in (0, 1)
            for part in shard_step(
                batch, lengths, micro_batches=1, num_processes=2, process_index=rank, groups=groups
            )
        ]

    mixed = epoch_batches(lengths, global_batch=8, seed=1, epoch=0, groups=groups)
    runs = epoch_batches(lengths, global_batch=8, seed=1, epoch=0, groups=groups, run=4)
    assert sorted(i for b in runs for i in b) == list(range(120))
    assert not all(len({groups[i] for i in part}) == 1 for part in micro_batches(mixed))
    assert all(len({groups[i] for i in part}) == 1 for part in micro_batches(runs))
    # In order, every 3 steps hold each task equally (4 + 4 of 24 per task, 2 micro-batches).
    in_order = epoch_batches(
        lengths, global_batch=8, seed=1, epoch=0, groups=groups, run=4, group_by_length=False
    )
    for start in range(0, 15, 3):
        window = [groups[i] for batch in in_order[start : start + 3] for i in batch]
        assert Counter(window) == {"regimen": 8, "modality": 8, "icd10": 8}


def test_tempered_sample_gives_rare_strata_more_and_respects_caps():
    strata = ["breast"] * 400 + ["prostate"] * 100 + ["keloid"] * 4
    counts = {}
    for temperature in (1.0, 0.5, 0.0):
        keep = tempered_sample(strata, 100, temperature, random.Random(0))
        assert len(keep) == len(set(keep)) == 100
        counts[temperature] = Counter(strata[i] for i in keep)
    assert counts[1.0] == {"breast": 79, "prostate": 20, "keloid": 1}  # proportional
    # sqrt weights 20:10:2 ask 62.5, 31.25, 6.25; keloid has 4, the 96 left go 2:1.
    assert counts[0.5] == {"breast": 64, "prostate": 32, "keloid": 4}
    assert counts[0.0] == {"breast": 48, "prostate": 48, "keloid": 4}  # keloid's rest shared
    # More than there is: everything, once.
    assert sorted(tempered_sample(strata, 10**6, 0.5, random.Random(0))) == list(range(504))


def test_tempered_task_rows_sample_by_the_stratum_the_task_files_carry(tmp_path):
    rows = [
        {"example_id": f"c{i}:modality", "case_id": f"c{i}", "task": "modality",
         "stratum": "C50" if i < 90 else "C61",
         "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "x"},
                      {"role": "assistant", "content": "photon"}]}
        for i in range(100)
    ]  # fmt: skip
    (tmp_path / "modality.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = read_task_rows(tmp_path, ["modality"], max_per_task=20, seed=3)
    tempered = read_task_rows(tmp_path, ["modality"], max_per_task=20, seed=3, temperature=0.0)
    prostate = [sum(r["stratum"] == "C61" for _, _, r in x) for x in (plain, tempered)]
    assert prostate[1] == 10 and prostate[0] < 10
    lines = [line for _, line, _ in tempered]
    assert lines == sorted(lines)  # file order kept


def test_example_counts_can_differ_per_task(task_dirs):
    everything = read_task_rows(task_dirs[0], ["regimen", "modality", "icd10"])
    available = Counter(path.stem for path, _, _ in everything)
    assert min(available.values()) > 3
    rows = read_task_rows(
        task_dirs[0], ["regimen", "modality", "icd10"], max_per_task={"regimen": 2, "icd10": 3}
    )
    counts = Counter(path.stem for path, _, _ in rows)
    assert counts == {"regimen": 2, "icd10": 3, "modality": available["modality"]}
