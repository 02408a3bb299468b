import json
import shutil

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from radonc_llm.errors import RadoncInputError
from radonc_llm.models.lora import add_lora
from radonc_llm.models.registry import LLAMA_LORA_TARGETS, load_model
from radonc_llm.tasks.prompts import PROMPT_VERSION
from radonc_llm.train.export import export_run
from radonc_llm.train.loop import AnswerLoss, _forward, train

from .conftest import differentiable_lora


def tiny_config(root, **fields):
    from radonc_llm.config import TrainConfig

    settings = dict(
        model="tiny-llama",
        train_dir=root / "train",
        val_dir=root / "val",
        output_dir=root / "run",
        micro_batch_size=4,
        gradient_accumulation_steps=2,
        epochs=2,
        learning_rate=1e-2,
        lora_rank=4,
        lora_alpha=8,
        lora_dropout=0.1,  # dropout draws random numbers: resume must restore the RNG
        precision="fp32",
        checkpoint_every_steps=2,
        keep_checkpoints=1,
        log_every_steps=1,
    )
    settings.update(fields)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    """One uninterrupted tiny run (24 examples, global batch 8, 2 epochs = 6 steps)."""
    out = tmp_path_factory.mktemp("runs") / "full"
    results = train(tiny_config(data_root, output_dir=out), show_progress=False)
    return out, results


def adapter_weights(folder):
    return load_file(str(folder / "adapter_model.safetensors"))


def test_run_folder_holds_manifest_metrics_tensorboard_and_adapter(trained):
    run, results = trained
    assert results["status"] == "finished" and results["steps"] == 6
    manifest = json.loads((run / "manifest.json").read_text())
    for key in ("config", "git_commit", "packages", "seeds", "data", "hardware", "started_at"):
        assert key in manifest, key
    assert manifest["finished_at"] >= manifest["started_at"]
    assert all(len(entry["sha256"]) == 64 for entry in manifest["data"]["train"].values())
    assert manifest["results"]["best_step"] in {3, 6}
    assert manifest["prompt_versions"] == [PROMPT_VERSION]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    # Each logged step reports its gradient norm before clipping (at max_grad_norm=1.0).
    train_rows = [r for r in rows if r["split"] == "train"]
    assert all(r["grad_norm"] > 0 for r in train_rows)
    assert all(r["clipped_fraction"] == float(r["grad_norm"] > 1.0) for r in train_rows)
    val = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in val] == [3, 6]  # each epoch
    assert {"loss_regimen", "loss_modality", "loss_icd10"} <= set(val[0])
    assert min(r["loss"] for r in val) == pytest.approx(results["best_val_loss"])
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "adapter" / "adapter_config.json").is_file()


def test_adapter_weights_change_and_base_weights_do_not(trained, tmp_path):
    run, _ = trained
    base, _ = load_model("tiny-llama")
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    torch.manual_seed(0)  # the trainer's LoRA init seed
    fresh = add_lora(base, rank=4, alpha=8, dropout=0.1, target_modules=LLAMA_LORA_TARGETS)
    initial = {k: v.clone() for k, v in fresh.state_dict().items() if "lora_" in k}
    trained_weights = adapter_weights(run / "adapter")
    assert trained_weights and all("lora_" in key for key in trained_weights)
    changed = 0
    for key, value in trained_weights.items():
        start = initial[key.replace(".weight", ".default.weight")]
        changed += not torch.equal(value, start)
    assert changed == len(trained_weights)  # lora_B starts at zero, lora_A at its seeded init

    # The merged export is the unchanged base plus exactly the LoRA delta.
    merged_dir = export_run(run, tmp_path / "merged", merge=True)
    merged, _ = load_model(str(merged_dir))
    merged_state = merged.state_dict()
    prefix = "base_model.model."
    for name, weight in base_state.items():
        module = name.removesuffix(".weight")
        a_key = f"{prefix}{module}.lora_A.weight"
        if a_key in trained_weights:
            delta = trained_weights[f"{prefix}{module}.lora_B.weight"] @ trained_weights[a_key]
            assert torch.allclose(merged_state[name], weight + delta * (8 / 4), atol=1e-6), name
        else:
            assert torch.equal(merged_state[name], weight), name


def test_run_loads_as_peft_model_and_through_the_registry(trained):
    run, _ = trained
    base, _ = load_model("tiny-llama")
    peft_model = PeftModel.from_pretrained(base, str(run / "adapter"))
    via_registry, tokenizer = load_model(str(run))
    assert isinstance(via_registry, PeftModel)
    ids = tokenizer("Diagnosis: C61", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(peft_model(ids).logits, via_registry(ids).logits)


def test_a_second_run_into_the_same_folder_needs_resume(trained, data_root):
    run, _ = trained
    with pytest.raises(RadoncInputError, match="--resume") as info:
        train(tiny_config(data_root, output_dir=run), show_progress=False)
    assert info.value.field == "output_dir"


def test_resume_after_a_kill_reaches_the_same_weights(trained, data_root, tmp_path):
    full, _ = trained
    out = tmp_path / "killed"
    # Stop after step 3 (the last checkpoint is step 2): step 3 is redone after the resume.
    stopped = train(tiny_config(data_root, output_dir=out), stop_after_steps=3, show_progress=False)
    assert stopped["status"] == "stopped"
    assert json.loads((out / "manifest.json").read_text())["status"] == "stopped"
    (out / "checkpoints" / ".step-000003.tmp" / "adapter").mkdir(parents=True)  # a killed save
    resumed = train(tiny_config(data_root, output_dir=out), resume=True, show_progress=False)
    assert resumed["status"] == "finished" and resumed["steps"] == 6
    expected = adapter_weights(full / "checkpoints" / "step-000006" / "adapter")
    got = adapter_weights(out / "checkpoints" / "step-000006" / "adapter")
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.allclose(got[key], expected[key], atol=1e-6, rtol=0), key
    losses = [
        [
            (r["step"], r["split"], r["loss"])
            for r in map(json.loads, (run / "metrics.jsonl").open())
        ]
        for run in (full, out)
    ]
    assert [row[:2] for row in losses[0]] == [row[:2] for row in losses[1]]
    assert [row[2] for row in losses[1]] == pytest.approx([row[2] for row in losses[0]], abs=1e-6)
    assert [c.name for c in (out / "checkpoints").iterdir()] == ["step-000006"]


def test_resume_with_changed_settings_is_refused(data_root, tmp_path):
    out = tmp_path / "run"
    train(
        tiny_config(data_root, output_dir=out, max_steps=2), stop_after_steps=2, show_progress=False
    )
    with pytest.raises(RadoncInputError, match="different settings"):
        train(
            tiny_config(data_root, output_dir=out, max_steps=2, learning_rate=0.5),
            resume=True,
            show_progress=False,
        )


def test_per_task_mode_trains_one_adapter_per_task(data_root, tmp_path):
    config = tiny_config(
        data_root,
        output_dir=tmp_path / "per_task",
        adapter_mode="per_task",
        tasks=["modality", "icd10"],
        max_steps=1,
    )
    summary = train(config, show_progress=False)
    assert set(summary["runs"]) == {"modality", "icd10"}
    for task in ("modality", "icd10"):
        manifest = json.loads((tmp_path / "per_task" / task / "manifest.json").read_text())
        assert manifest["config"]["tasks"] == [task]
        assert (tmp_path / "per_task" / task / "adapter" / "adapter_config.json").is_file()
    with pytest.raises(RadoncInputError, match="one adapter per task"):
        load_model(str(tmp_path / "per_task"))

    # Predicted as one system: each task by its own adapter, into one file.
    from typer.testing import CliRunner

    from radonc_llm.cli import app
    from tests.infer.sample_cases import SAMPLE_CASES

    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(row) + "\n" for row in SAMPLE_CASES[:2]))
    out = tmp_path / "pred.jsonl"
    run = str(tmp_path / "per_task")
    args = ["predict", "--model", run, "--cases", str(cases), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--tasks", "modality,icd10"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["case_id"], r["task"]) for r in rows) == sorted(
        (c["case_id"], t) for c in SAMPLE_CASES[:2] for t in ("modality", "icd10")
    )
    assert {r["model"] for r in rows} == {run} and not any(r["malformed"] for r in rows)
    result = CliRunner().invoke(app, [*args, "--tasks", "regimen"])
    assert result.exit_code == 2 and "not for regimen" in result.output


@pytest.mark.parametrize("weighting", ["token", "task"])
def test_step_loss_weights_tokens_or_tasks_as_configured(data_root, weighting):
    from accelerate import Accelerator

    from radonc_llm.train.data import collate, read_task_rows, tokenize_rows
    from radonc_llm.train.loop import AnswerLoss, train_step

    model, tokenizer = load_model("tiny-llama")
    peft_model = differentiable_lora(model)
    scorer = AnswerLoss(peft_model, autocast_dtype=None)
    rows = read_task_rows(data_root / "train", ["regimen", "modality"])
    examples = tokenize_rows(rows, tokenizer, max_length=512)
    regimen = [i for i, e in enumerate(examples) if e.task == "regimen"][:3]
    modality = [i for i, e in enumerate(examples) if e.task == "modality"][:3]
    config = tiny_config(data_root, gradient_accumulation_steps=2, loss_weighting=weighting)

    def grads():
        found = {n: p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}
        peft_model.zero_grad()
        return found

    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
    units = [[index] for index in range(len(examples))]
    stats = train_step(
        scorer, [regimen, modality], units, examples, regimen + modality,
        accelerator=accelerator, config=config, pad_id=tokenizer.pad_token_id, share_prefix=True,
    )  # fmt: skip
    ours = grads()

    def task_loss(indices, reduction):
        batch = collate([examples[i] for i in indices], pad_id=tokenizer.pad_token_id)
        return scorer(
            batch.input_ids, batch.answer_rows, batch.answer_cols, batch.targets, reduction
        )

    if weighting == "task":  # each task's token mean, the tasks averaged
        expected = (task_loss(regimen, "mean") + task_loss(modality, "mean")) / 2
    else:  # the mean over every answer token of the step
        expected = task_loss(regimen + modality, "mean")
    expected.backward()
    reference = grads()
    answer_tokens = sum(examples[i].answer_length for i in regimen + modality)
    assert stats.answer_tokens == answer_tokens
    assert stats.loss == pytest.approx(task_loss(regimen + modality, "mean").item(), rel=1e-4)
    for name, value in reference.items():
        assert torch.allclose(ours[name], value, rtol=1e-4, atol=1e-7), name


def test_prediction_backend_folds_the_adapter_into_the_weights(trained):
    from radonc_llm.infer.backends import TransformersBackend

    run, _ = trained
    peft_model, tokenizer = load_model(str(run))
    backend = TransformersBackend.load(str(run))
    assert not isinstance(backend.model, PeftModel)
    assert not any("lora" in name for name, _ in backend.model.named_parameters())
    ids = tokenizer("Diagnosis: C61", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        # The backend sits on the GPU where there is one; the reference stays on the CPU.
        folded = backend.model(ids.to(backend.model.device)).logits.cpu()
        assert torch.allclose(peft_model(ids).logits, folded, atol=1e-4)


def test_adapting_the_last_layers_only_leaves_the_others_bare(data_root, tmp_path):
    model, _ = load_model("tiny-llama")
    layers = model.config.num_hidden_layers
    peft_model = add_lora(
        model, rank=4, alpha=8, dropout=0.0, target_modules=LLAMA_LORA_TARGETS, last_layers=1
    )
    adapted = {
        int(name.split("layers.")[1].split(".")[0])
        for name, _ in peft_model.named_parameters()
        if "lora_" in name
    }
    assert adapted == {layers - 1}
    with pytest.raises(RadoncInputError) as info:
        add_lora(
            load_model("tiny-llama")[0], rank=4, alpha=8, dropout=0.0,
            target_modules=LLAMA_LORA_TARGETS, last_layers=layers + 1,
        )  # fmt: skip
    assert info.value.field == "lora_last_layers"


def test_loraplus_trains_b_matrices_at_the_ratio_of_the_rate(data_root, tmp_path):
    from radonc_llm.train.checkpoint import latest_checkpoint

    out = tmp_path / "loraplus"
    train(
        tiny_config(data_root, output_dir=out, loraplus_lr_ratio=16, epochs=1, lora_dropout=0.0),
        show_progress=False,
    )
    saved = torch.load(latest_checkpoint(out) / "optimizer.pt", weights_only=True)
    groups = [g for g in saved["param_groups"] if g["params"]]
    assert sorted(g["initial_lr"] for g in groups) == [1e-2, 16e-2]
    # Every adapter weight is in exactly one group: the A matrices at the rate, B at 16x.
    assert sum(len(g["params"]) for g in groups) == len(saved["state"])


def test_whole_case_batches_give_the_losses_and_gradients_of_single_examples(data_root):
    # A case's three prompts share system prompt and note: `collate_cases` packs them once, and
    # every answer token must get the loss (and the LoRA weights the gradient) it gets alone.
    from radonc_llm.train.data import (
        case_groups,
        collate,
        collate_cases,
        read_task_rows,
        tokenize_rows,
    )

    model, tokenizer = load_model("tiny-llama")
    peft_model = differentiable_lora(model)
    scorer = AnswerLoss(peft_model, autocast_dtype=None)
    rows = read_task_rows(data_root / "train", ["regimen", "modality", "icd10"])
    examples = tokenize_rows(rows, tokenizer, max_length=512)
    groups = case_groups(examples)
    assert len(groups) == 8 and all(len(group) == 3 for group in groups)
    cases = [[examples[i] for i in group] for group in groups[:3]]
    cases[2] = cases[2][:1]  # a case with one task only
    pad = tokenizer.pad_token_id

    def losses_and_grads(batch):
        losses = _forward(scorer, batch, reduction="none")
        losses.sum().backward()
        grads = {n: p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}
        peft_model.zero_grad()
        return losses.detach(), grads

    shared = collate_cases(cases, pad_id=pad)
    alone = collate(sum(cases, []), pad_id=pad)
    assert shared.num_tokens == alone.num_tokens
    # The note runs once per case, not once per task.
    assert shared.computed_tokens < 0.6 * alone.num_tokens
    assert shared.input_ids.shape[0] == 3  # a row per case
    assert torch.equal(shared.targets, alone.targets)
    # Loss weights and per-task sums find each answer token's example (not its packed row).
    assert torch.equal(shared.answer_examples, alone.answer_examples)
    got, got_grads = losses_and_grads(shared)
    expected, expected_grads = losses_and_grads(alone)
    assert torch.allclose(got, expected, atol=1e-5)
    for name, value in expected_grads.items():  # float32 sums in another order: rounding only
        assert torch.allclose(got_grads[name], value, rtol=1e-3, atol=1e-6), name


def test_nested_sampling_gives_smaller_tasks_a_subset_of_the_cases(data_root):
    from radonc_llm.train.data import read_task_rows

    counts = {"regimen": 6, "modality": 3, "icd10": 5}
    rows = read_task_rows(
        data_root / "train", list(counts), max_per_task=counts, seed=3, nested=True
    )
    cases = {
        task: {row["case_id"] for path, _, row in rows if path.stem == task} for task in counts
    }
    assert {task: len(ids) for task, ids in cases.items()} == counts
    assert cases["modality"] <= cases["icd10"] <= cases["regimen"]


def test_sampling_floor_takes_every_rare_diagnosis_and_stays_nested(tmp_path):
    from radonc_llm.train.data import read_task_rows

    from .conftest import task_rows

    # 30 cases: 27 breast (C50), 3 Merkel cell (C4A); a sample of 6 cases per task.
    folder = tmp_path / "train"
    folder.mkdir()
    for task in ("regimen", "modality", "icd10"):
        rows = task_rows(task, 30)
        for index, row in enumerate(rows):
            row["stratum"] = "C4A" if index % 10 == 3 else "C50"
        (folder / f"{task}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))

    def merkel(floor, seed):
        rows = read_task_rows(
            folder, ["icd10"], max_per_task=6, seed=seed, nested=True, floor=floor
        )
        assert len(rows) == 6
        return sum(row["stratum"] == "C4A" for _, _, row in rows)

    # At random, 6 of 30 holds all three Merkel cases in few seeds; with a floor of 3, in all.
    assert [merkel(3, seed) for seed in range(10)] == [3] * 10
    assert min(merkel(0, seed) for seed in range(10)) < 3
    counts = {"regimen": 6, "modality": 4}
    rows = read_task_rows(folder, list(counts), max_per_task=counts, seed=0, nested=True, floor=2)
    cases = {
        task: {row["case_id"] for path, _, row in rows if path.stem == task} for task in counts
    }
    assert cases["modality"] < cases["regimen"]


def test_bad_task_rows_stop_a_multi_process_run_before_it_starts(data_root, tmp_path, monkeypatch):
    # Two processes on a CPU (on a one-GPU machine two processes are refused before this check).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    root = tmp_path / "data"
    shutil.copytree(data_root, root)  # `data_root` is shared by the module's tests
    path = root / "train" / "icd10.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[2])
    del row["messages"]
    lines[2] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "two"
    with pytest.raises(RadoncInputError, match="row 3") as error:
        train(tiny_config(root, output_dir=out, processes=2), show_progress=False)
    assert error.value.field == "messages" and error.value.file == str(path)
    assert not out.exists()  # torchrun never started


def test_sampling_settings_must_fit_the_batching(data_root):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="sampling_floor"):
        tiny_config(data_root, sampling_floor=5)
    with pytest.raises(ValidationError, match="use sampling_floor with batch_by_case"):
        tiny_config(data_root, batch_by_case=True, sampling_temperature=0.5)
    assert tiny_config(data_root, batch_by_case=True, sampling_floor=5).sampling_floor == 5


def test_training_by_case_runs_each_note_once(data_root, tmp_path):
    out = tmp_path / "by_case"
    results = train(
        tiny_config(data_root, output_dir=out, batch_by_case=True, micro_batch_size=2),
        show_progress=False,
    )
    # 8 cases, 2 per micro-batch x 2 micro-batches per step: 2 steps per epoch.
    assert results["status"] == "finished" and results["steps"] == 4
    assert results["train_examples"] == 24
    assert results["computed_tokens"] < 0.6 * results["trained_tokens"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"]
    assert len(val) == 2 and {"loss_regimen", "loss_modality", "loss_icd10"} <= set(val[0])


def test_training_by_case_with_gradient_checkpointing_reaches_the_same_adapter(data_root, tmp_path):
    # Packed cases need no key/value cache, so checkpointing (recompute in backward) applies.
    adapters = []
    for checkpointing in (False, True):
        out = tmp_path / f"checkpointing-{checkpointing}"
        config = tiny_config(
            data_root,
            output_dir=out,
            batch_by_case=True,
            micro_batch_size=2,
            gradient_checkpointing=checkpointing,
        )
        assert train(config, show_progress=False)["status"] == "finished"
        adapters.append(adapter_weights(out / "adapter"))
    assert adapters[0].keys() == adapters[1].keys()
    for name, value in adapters[0].items():
        assert torch.allclose(adapters[1][name], value, atol=1e-6), name


def test_more_processes_than_gpus_train_in_one_per_gpu_with_the_same_global_batch(
    data_root, tmp_path, monkeypatch
):
    import radonc_llm.train.loop as loop

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    seen = []
    monkeypatch.setattr(loop, "train_adapter", lambda config, **kwargs: seen.append(config))
    config = tiny_config(data_root, output_dir=tmp_path / "run", processes=2)
    with pytest.warns(UserWarning, match="same global batch"):
        train(config, show_progress=False)
    (used,) = seen
    assert used.processes == 1
    assert used.gradient_accumulation_steps == 2 * config.gradient_accumulation_steps
