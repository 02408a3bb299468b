"""`radonc-llm run CONFIG`: the whole study, stage by stage, resumable.

Each stage writes into `runs/<name>/<folder>/` and records, in `<folder>/.stage-<stage>.json`, a
hash of its inputs and settings. A rerun skips a stage whose record says done with the same hash.
A stage that started with the same hash but did not finish runs again and picks up its own
progress (training from its last checkpoint, prediction from the rows already written). A stage
whose inputs changed, or a finished one whose outputs were deleted, first moves its old outputs
to `runs/<name>/superseded/` and runs afresh: nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from rich.console import Console
from rich.markup import escape

from radonc_llm.config import (
    ConfigModel,
    TrainConfig,
    beside_the_config,
    in_working_folder,
    read_config_file,
    validate_config,
    with_line,
)
from radonc_llm.data.cases import TASKS, read_cases, write_cases
from radonc_llm.errors import RadoncInputError
from radonc_llm.storage import (
    file_in_the_way,
    file_sha256,
    remove_leftover_temporaries,
    write_json_atomic,
)

BASELINE_KINDS = ("majority", "tfidf-logreg", "nearest-regimen", "few-shot")


class SyntheticExport(ConfigModel):
    patients: int = Field(
        15724, gt=0, description="Patients in the synthetic export (study: 15,724)."
    )
    seed: int = Field(0, description="Seed of the generator.")


class ExportSection(ConfigModel):
    """Where the raw export comes from: a synthetic one, or a folder of a real export."""

    synthetic: SyntheticExport | None = Field(None, description="Generate a synthetic export.")
    path: Path | None = Field(
        None, description="Folder of a real export (patients, diagnoses, treatment_courses)."
    )
    encoding: str = Field(
        "utf-8",
        description="Text encoding of a real export's CSV/JSONL files (a Windows export: "
        "cp1252); never guessed.",
    )
    date_order: Literal["dmy", "mdy"] | None = Field(
        None,
        description="How a real export writes dates with numbers only: dmy (31/12/2024) or "
        "mdy (12/31/2024); without it such dates are refused, never guessed.",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        from radonc_llm.data.ingest import check_encoding

        try:
            return check_encoding(value)
        except RadoncInputError as exc:
            raise ValueError(exc.reason) from None

    @field_validator("path")
    @classmethod
    def _folder_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and not value.is_dir():
            config_file = (info.context or {}).get("config_file")
            raise ValueError(
                f"export folder {in_working_folder(value)} not found"
                f"{beside_the_config(value, config_file)}"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ExportSection:
        if (self.synthetic is None) == (self.path is None):
            raise ValueError("give exactly one of 'synthetic' or 'path'")
        return self


class SplitSection(ConfigModel):
    seed: int = Field(0, description="Seed of the patient-level split.")
    fractions: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="Train/val/test shares."
    )

    @field_validator("fractions")
    @classmethod
    def _shares_of_one(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        # The study trains, validates and tests: an empty split would fail stages later.
        if any(share <= 0 for share in value) or abs(sum(value) - 1) > 1e-6:
            raise ValueError(
                f"expected three shares above 0 summing to 1 (train, val, test), got {list(value)}"
            )
        return value


class PredictSection(ConfigModel):
    decoding: Literal["free", "constrained"] = Field(
        "constrained",
        description="constrained: modality by label scoring, ICD-10 through the code trie, so "
        "both models are compared on what they know rather than on answer formatting.",
    )
    batch_size: int | None = Field(
        None,
        gt=0,
        description="Prompts per forward pass; default: 32 where answers are decoded token by "
        "token (regimen, ICD-10), 16 where only scored (modality).",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "float32",
        description="Inference precision; auto: bfloat16 where the hardware computes it natively "
        "(CPUs with AVX512-BF16 or AMX, recent GPUs), else float32. Resolved at load, so the "
        "stage records what ran.",
    )
    processes: int = Field(
        1,
        gt=0,
        description="Worker processes, each with its own model copy and share of the cores "
        "(CPU only; on a small CPU 2 processes of 1 thread did ~2x the work of 1 process "
        "of 2 threads). Does not change the predictions.",
    )

    @field_validator("dtype")
    @classmethod
    def _resolve_dtype(cls, dtype: str) -> str:
        from radonc_llm.models.precision import resolve_inference_dtype

        return resolve_inference_dtype(dtype)


class EvaluationSection(ConfigModel):
    test_sample: int | None = Field(
        None, gt=0, description="Evaluate on a seeded sample of this many test cases; null = all."
    )
    seed: int = Field(0, description="Seed of the test sample and of the bootstrap.")
    bootstrap: int = Field(
        2000,
        gt=0,
        le=100_000,
        description="Bootstrap resamples for the 95% CIs (beyond ~10,000 only time grows).",
    )
    baselines: list[str] = Field(
        default_factory=lambda: ["majority", "tfidf-logreg", "nearest-regimen"],
        description="Reference systems: majority, tfidf-logreg, nearest-regimen, few-shot.",
    )

    @field_validator("baselines")
    @classmethod
    def _known_baselines(cls, value: list[str]) -> list[str]:
        unknown = [kind for kind in value if kind not in BASELINE_KINDS]
        if unknown:
            raise ValueError(
                f"unknown baseline(s) {unknown}; expected some of {list(BASELINE_KINDS)}"
            )
        return value


class StudyConfig(ConfigModel):
    """A whole study: `radonc-llm run CONFIG.yaml`. Relative paths are read from the working
    folder (where the command runs); `train_preset` also from beside the recipe."""

    kind: Literal["study"] = Field("study", description="The recipe's runner (see run_recipe).")
    name: str = Field(
        description="Run name; everything goes to <runs_dir>/<name>/.", pattern=r"^[\w.-]+$"
    )
    runs_dir: Path = Field(Path("runs"), description="Folder that holds the runs.")
    export: ExportSection
    split: SplitSection = Field(default_factory=SplitSection)
    train_preset: Path | None = Field(
        None,
        description="A `radonc-llm train` config whose settings this study starts from (its "
        "train_dir, val_dir and output_dir are ignored); `train` overrides its fields.",
    )
    train: dict[str, Any] = Field(
        default_factory=dict,
        description="Training settings (the fields of a `radonc-llm train` config, without "
        "train_dir, val_dir and output_dir, which the study sets).",
    )
    predict: PredictSection = Field(default_factory=PredictSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.name


STUDY_OWNED_TRAIN_FIELDS = ("train_dir", "val_dir", "output_dir")
# Validation context for a training section checked before the tasks stage writes its files.
DEFERRED = {"task_files_written_later": True}


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate a study recipe, its training section included, before any work."""
    path = Path(path)
    study = validate_config(
        StudyConfig, read_config_file(path), file=path, context={"config_file": path}
    )
    own_train = dict(study.train)
    preset: dict[str, Any] = {}
    if study.train_preset is not None:
        preset = read_train_preset(study.train_preset, recipe=path)
        study.train = {**preset, **study.train}
    owned = [name for name in STUDY_OWNED_TRAIN_FIELDS if name in study.train]
    if owned:
        raise RadoncInputError("set by the study; remove it", file=path, field=f"train.{owned[0]}")
    try:
        train_config(study, context={**DEFERRED, "config_file": path})
    except RadoncInputError as exc:
        raise train_section_error(
            exc, recipe=path, own_train=own_train, preset=preset, train_preset=study.train_preset
        ) from None
    return study


def train_section_error(
    exc: RadoncInputError,
    *,
    recipe: Path,
    own_train: dict[str, Any],
    preset: dict[str, Any],
    train_preset: Path | None,
) -> RadoncInputError:
    """A recipe's training settings failed as a `radonc-llm train` config: the error, naming the
    file and line the bad field came from (the recipe's `train` section, or its train_preset)."""
    name = (exc.field or "").split(".")[0]
    if name in preset and name not in own_train:  # the mistake is in the preset file
        preset_file = find_train_preset(train_preset, recipe=recipe)
        return RadoncInputError(
            f"{with_line(exc.reason, preset_file, exc.field)} (the train_preset of {recipe})",
            file=preset_file,
            field=exc.field,
        )
    field = f"train.{exc.field}" if exc.field else "train"
    # A field the study sets (output_dir) is on no line of the file; a check of several
    # fields together (no field) points at the section.
    written = name in own_train or not exc.field
    reason = with_line(exc.reason, recipe, field) if written else exc.reason
    return RadoncInputError(reason, file=recipe, field=field)


def find_train_preset(preset: Path, *, recipe: Path) -> Path:
    """A training preset's file: from the working folder, else beside the recipe."""
    candidates = [preset, recipe.parent / preset]
    found = next((candidate for candidate in candidates if candidate.exists()), None)
    if found is None:
        looked = " or ".join(dict.fromkeys(str(candidate.absolute()) for candidate in candidates))
        raise RadoncInputError(
            f"training preset not found (looked for {looked})", file=recipe, field="train_preset"
        )
    return found


def read_train_preset(preset: Path, *, recipe: Path) -> dict[str, Any]:
    """A training config's settings, found from the working folder or beside the recipe."""
    found = find_train_preset(preset, recipe=recipe)
    raw = read_config_file(found, named_by=f"the train_preset of {recipe}")
    return {key: value for key, value in raw.items() if key not in STUDY_OWNED_TRAIN_FIELDS}


def train_config(study: StudyConfig, *, context: dict | None = None) -> TrainConfig:
    tasks_dir = study.run_dir / "tasks"
    raw = {
        **study.train,
        "train_dir": tasks_dir / "train",
        "val_dir": tasks_dir / "val",
        "output_dir": study.run_dir / "train",
    }
    return validate_config(TrainConfig, raw, context=context)


# -- the stage runner -------------------------------------------------------------------------


@dataclass
class Stage:
    """One step of the study: its name, its folder, what it reads, its settings, how it runs."""

    name: str
    folder: str
    inputs: list[Path]
    settings: dict[str, Any]
    run: Callable[[Path], None]
    outputs: list[str] = field(default_factory=list)  # paths in the folder this stage owns
    # Paths a finished stage leaves (default: outputs); one deleted -> the stage runs again.
    expected: list[str] | None = None
    # Settings under which an older version hashed this same work: a record of one of them is
    # taken as up to date, not as new settings to run afresh.
    older_settings: list[dict[str, Any]] = field(default_factory=list)

    def missing_outputs(self, run_dir: Path) -> list[str]:
        expected = self.outputs if self.expected is None else self.expected
        return [name for name in expected if not (run_dir / self.folder / name).exists()]


def _input_files(paths: list[Path], run_dir: Path) -> list[tuple[str, str, str | None]]:
    """The files a stage reads, in hashing order: (hash key, name shown, sha256), the sha256
    None for an input that is not there. Dot files (stage records, temporaries) are not read."""
    entries: list[tuple[str, str, str | None]] = []
    for path in sorted(paths):
        if not path.exists():
            entries.append((path.name, _shown(path, run_dir), None))
            continue
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if any(part.startswith(".") for part in file.relative_to(path.parent).parts):
                continue
            key = str(file.relative_to(path.parent))
            entries.append((key, _shown(file, run_dir), file_sha256(file)))
    return entries


def _shown(path: Path, run_dir: Path) -> str:
    """A path as a message names it: within the run folder from there, else as given."""
    try:
        return path.relative_to(run_dir).as_posix()
    except ValueError:
        return str(path)


def _hash_inputs(entries: list[tuple[str, str, str | None]], settings: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for key, _, sha in entries:
        if sha is None:
            digest.update(f"missing:{key}".encode())
            continue
        digest.update(key.encode())
        digest.update(sha.encode())
    return digest.hexdigest()


def _what_changed(
    record: dict, settings: dict[str, Any], inputs: dict[str, str | None], *, limit: int = 4
) -> str:
    """'settings changed (lora_rank: 4 then, 8 now); split/train.jsonl changed': why a stage's
    record no longer fits, from the settings and input hashes it recorded."""
    before_settings, before_inputs = record.get("settings"), record.get("inputs")
    if not isinstance(before_settings, dict) or not isinstance(before_inputs, dict):
        return "its inputs or settings changed since it last ran"
    settings = json.loads(json.dumps(settings, default=str))
    unset = object()
    changes = [
        f"{key}: {_setting(before_settings.get(key, unset))} then, "
        f"{_setting(settings.get(key, unset))} now"
        for key in sorted(before_settings.keys() | settings.keys())
        if before_settings.get(key, unset) != settings.get(key, unset)
    ]
    files = [
        f"{name} {'is missing' if sha is None else 'is new' if name not in before_inputs else 'changed'}"
        for name, sha in inputs.items()
        if before_inputs.get(name, "") != sha
    ] + [f"{name} is gone" for name in before_inputs if name not in inputs]
    parts = []
    if changes:
        more = f", and {len(changes) - limit} more" if len(changes) > limit else ""
        parts.append(f"settings changed ({'; '.join(changes[:limit])}{more})")
    if files:
        more = f", and {len(files) - limit} more file(s)" if len(files) > limit else ""
        parts.append(f"{', '.join(files[:limit])}{more}")
    return "; ".join(parts) or "its inputs or settings changed since it last ran"


def _setting(value: Any) -> str:
    """A recorded setting as a message shows it: JSON, or 'unset' where the stage had none."""
    if isinstance(value, str | int | float | bool | list | dict | None):
        return json.dumps(value)
    return "unset"


def _timing(record: dict) -> dict:
    """What the run manifest keeps of a stage's record: its hash, status and times."""
    return {key: value for key, value in record.items() if key not in ("settings", "inputs")}


def _record_path(run_dir: Path, stage: Stage) -> Path:
    return run_dir / stage.folder / f".stage-{stage.name}.json"


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _supersede(run_dir: Path, stage: Stage) -> None:
    """Move a stage's old outputs aside before it runs on new inputs."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    folder = base = run_dir / "superseded" / f"{stage.name}-{stamp}"
    number = 1
    while folder.exists():  # superseded twice within a second: keep both
        number += 1
        folder = base.with_name(f"{base.name}-{number}")
    for name in stage.outputs:
        old = run_dir / stage.folder / name
        if old.exists():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(old, target)


def run_stages(run_dir: Path, stages: list[Stage], *, console: Console) -> dict[str, dict]:
    """Run the stages in order, skipping those already done with the same inputs."""
    leftovers = remove_leftover_temporaries(run_dir)
    if leftovers:
        console.print(f"note: removed {leftovers} temporary file(s) left by an interrupted run")
    manifest_path = run_dir / "manifest.json"
    manifest = _read_record(manifest_path)
    times: dict[str, dict] = manifest.get("stages", {})
    for index, stage in enumerate(stages, start=1):
        label = f"[{index}/{len(stages)}] {stage.name}"
        entries = _input_files(stage.inputs, run_dir)
        inputs = {shown: sha for _, shown, sha in entries}
        input_hash = _hash_inputs(entries, stage.settings)
        record_path = _record_path(run_dir, stage)
        record = _read_record(record_path)
        older = [_hash_inputs(entries, settings) for settings in stage.older_settings]
        if record.get("input_hash") in older:
            record["input_hash"] = input_hash
            record.pop("settings", None)  # rewritten below, as this version names them
        same_inputs = record.get("input_hash") == input_hash
        finished = same_inputs and record.get("status") == "done"
        missing = stage.missing_outputs(run_dir) if finished else []
        # The settings and each input's hash, recorded, let a later run name what changed.
        what_ran = {
            "settings": json.loads(json.dumps(stage.settings, default=str)),
            "inputs": inputs,
        }
        if finished and not missing:
            console.print(f"{label}: [green]up to date[/], skipped")
            if any(key not in record for key in what_ran):  # a record of an older version
                write_json_atomic(record_path, {**record, **what_ran})
            times.setdefault(stage.name, _timing(record))["status"] = "skipped (up to date)"
            continue
        if missing:
            why = f"{', '.join(missing)} deleted"
        elif record.get("input_hash") and not same_inputs:
            why = _what_changed(record, stage.settings, inputs)
        elif not record and stage.name in times:
            why = (
                f"its record {_shown(record_path, run_dir)} is gone or unreadable (folder deleted?)"
            )
        else:
            why = None
        if why is not None:
            console.print(f"{label}: {escape(why)}, running it again")
        # Only a stage that did not finish picks up its own progress; anything else found in
        # its place (other inputs, a finished run with parts deleted, no record) is moved aside.
        resuming = same_inputs and not finished
        if not resuming:
            _supersede(run_dir, stage)
        console.rule(f"{label}{' (resuming)' if resuming else ''}")
        started = time.perf_counter()
        write_json_atomic(record_path, {"input_hash": input_hash, "status": "running", **what_ran})
        stage.run(run_dir / stage.folder)
        seconds = round(time.perf_counter() - started, 2)
        record = {
            "input_hash": input_hash,
            "status": "done",
            "seconds": seconds,
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **what_ran,
        }
        write_json_atomic(record_path, record)
        times[stage.name] = {**_timing(record), "status": "resumed" if resuming else "ran"}
        manifest["stages"] = times
        write_json_atomic(manifest_path, manifest)
        console.print(f"{label}: done in {seconds:.1f} s")
    manifest["stages"] = times
    write_json_atomic(manifest_path, manifest)
    return times


# -- the study's stages -----------------------------------------------------------------------


def sample_cases(cases_file: Path, out: Path, *, size: int | None, seed: int) -> None:
    """The evaluation cases: a seeded sample of the test split (all of it when size is None)."""
    cases = read_cases(cases_file)
    if size is not None and size < len(cases):
        chosen = set(random.Random(seed).sample(range(len(cases)), size))
        cases = [case for index, case in enumerate(cases) if index in chosen]
    write_cases(out, cases)


def study_stages(study: StudyConfig, *, console: Console) -> list[Stage]:
    """The recipe, top to bottom: export, curate, split, tasks, baselines, predict, train, evaluate, report."""
    run_dir = study.run_dir
    export_dir = run_dir / "export" if study.export.synthetic else study.export.path
    cases_file = run_dir / "curate" / "cases.jsonl"
    split_dir = run_dir / "split"
    eval_cases = split_dir / "eval_cases.jsonl"
    predict_dir = run_dir / "predict"
    train_dir = run_dir / "train"
    stages: list[Stage] = []

    if study.export.synthetic:

        def run_synth(out: Path) -> None:
            from radonc_llm.data.synth import SynthConfig, write_synthetic_export

            config = SynthConfig(
                patients=study.export.synthetic.patients, seed=study.export.synthetic.seed
            )
            write_synthetic_export(config, out)

        stages.append(
            Stage("export", "export", [], study.export.synthetic.model_dump(), run_synth,
                  outputs=["patients.csv", "diagnoses.csv", "treatment_courses.csv"])
        )  # fmt: skip

    def run_curate(out: Path) -> None:
        from radonc_llm.data.cohort import curate_export, write_curation
        from radonc_llm.data.reports import funnel_table

        result = curate_export(
            export_dir, encoding=study.export.encoding, date_order=study.export.date_order
        )
        write_curation(result, out)
        console.print(funnel_table(result))

    def run_split(out: Path) -> None:
        from radonc_llm.data.reports import split_table
        from radonc_llm.data.split import write_splits

        try:
            summary = write_splits(
                read_cases(cases_file), out, fractions=study.split.fractions,
                seed=study.split.seed, allow_empty=False, source=cases_file,
            )  # fmt: skip
        except RadoncInputError as exc:  # too few patients: the cases file says how many
            raise RadoncInputError(exc.reason, file=exc.file or cases_file) from None
        sample_cases(
            out / "test.jsonl",
            eval_cases,
            size=study.evaluation.test_sample,
            seed=study.evaluation.seed,
        )
        console.print(split_table(summary))

    def run_tasks(out: Path) -> None:
        from radonc_llm.tasks.build import write_task_datasets

        for name in ("train", "val", "test"):
            split_file = split_dir / f"{name}.jsonl"
            write_task_datasets(read_cases(split_file), out / name, source=split_file)

    # A date order joins the settings only where given: runs curated without one stay up to date.
    curate_settings: dict[str, Any] = {"encoding": study.export.encoding}
    if study.export.date_order is not None:
        curate_settings["date_order"] = study.export.date_order
    stages += [
        Stage("curate", "curate", [export_dir], curate_settings, run_curate,
              outputs=["cases.jsonl", "excluded.jsonl", "funnel.json"]),
        Stage("split", "split", [cases_file], {**study.split.model_dump(), "test_sample": study.evaluation.test_sample, "sample_seed": study.evaluation.seed}, run_split,
              outputs=["train.jsonl", "val.jsonl", "test.jsonl", "split.json", "eval_cases.jsonl"]),
        Stage("tasks", "tasks", [split_dir / "train.jsonl", split_dir / "val.jsonl", split_dir / "test.jsonl"],
              {"prompt_version": _prompt_version()}, run_tasks, outputs=["train", "val", "test"]),
    ]  # fmt: skip

    base_model = train_config(study, context=DEFERRED).model
    for kind in study.evaluation.baselines:
        stages.append(
            baseline_stage(
                kind, split_dir / "train.jsonl", eval_cases, predict_dir / f"{kind}.jsonl",
                model=base_model, settings=study.predict, seed=study.evaluation.seed, console=console,
            )
        )  # fmt: skip
    stages.append(
        predict_stage("predict_base", base_model, eval_cases, predict_dir / "base.jsonl",
                      settings=study.predict, console=console)
    )  # fmt: skip

    def run_train(out: Path) -> None:
        from radonc_llm.train.loop import train

        train(train_config(study), resume=True)

    stages.append(
        Stage("train", "train", [run_dir / "tasks" / "train", run_dir / "tasks" / "val"],
              train_settings(study.train), run_train, outputs=["."],
              expected=trained_outputs(train_config(study, context=DEFERRED)),
              older_settings=[{**study.train}])
    )  # fmt: skip
    stages.append(
        predict_stage("predict_finetuned", str(train_dir), eval_cases, predict_dir / "finetuned.jsonl",
                      settings=study.predict, console=console, extra_inputs=(train_dir / "adapter",),
                      recorded_model=model_in_run(train_dir, run_dir))
    )  # fmt: skip

    systems = {"base": predict_dir / "base.jsonl", "finetuned": predict_dir / "finetuned.jsonl"}
    systems |= {kind: predict_dir / f"{kind}.jsonl" for kind in study.evaluation.baselines}

    def run_evaluate(out: Path) -> None:
        from radonc_llm.evaluate.run import evaluate_predictions

        result = evaluate_predictions(
            read_cases(eval_cases), systems, out,
            n_resamples=study.evaluation.bootstrap, seed=study.evaluation.seed, cases_file=eval_cases,
        )  # fmt: skip
        for message in result.messages:
            console.print(f"[yellow]note:[/] {message}")

    def run_report(out: Path) -> None:
        from radonc_llm.evaluate.report import write_report

        write_report(run_dir, out)

    stages += [
        Stage("evaluate", "evaluate", [eval_cases, *systems.values()], study.evaluation.model_dump(),
              run_evaluate, outputs=["metrics.json", "per_case.jsonl", "manifest.json"],
              expected=["metrics.json", "per_case.jsonl"]),
        Stage("report", "report", [run_dir / "evaluate" / "metrics.json", run_dir / "train" / "metrics.jsonl",
                                   run_dir / "review" / "review_metrics.json"],  # once the review is exported
              {}, run_report, outputs=["report.html", "report.md", "figures"]),
    ]  # fmt: skip
    return stages


def train_settings(train: dict[str, Any]) -> dict[str, Any]:
    """A training section's settings that change the weights: threads, logging and checkpoint
    spacing do not, so a change of them resumes (or keeps) the run, never starts it afresh."""
    from radonc_llm.train.loop import OUTPUT_ONLY_FIELDS

    return {key: value for key, value in train.items() if key not in OUTPUT_ONLY_FIELDS}


def trained_outputs(config: TrainConfig) -> list[str]:
    """What a finished training run holds: its manifest and its adapter, or one per task."""
    if config.adapter_mode == "per_task":
        return ["manifest.json", *(f"{task}/adapter" for task in config.tasks)]
    return ["adapter", "manifest.json"]


def model_in_run(model_dir: Path, run_dir: Path) -> str | None:
    """How stage settings name a model folder that lies inside the run folder: by its place in
    the run ("run:train"), so that the run stays up to date when its folder moves."""
    try:
        return "run:" + model_dir.resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return None


def _prompt_version() -> str:
    from radonc_llm.tasks.prompts import PROMPT_VERSION

    return PROMPT_VERSION


def predict_stage(
    name: str,
    model: str,
    cases_file: Path,
    out: Path,
    *,
    settings: PredictSection,
    console: Console,
    system: str | None = None,
    extra_inputs: tuple[Path, ...] = (),
    tasks: tuple[str, ...] = TASKS,
    recorded_model: str | None = None,
) -> Stage:
    """Predict `tasks` (default all three) of `cases_file` with `model` into `out` (named
    `system`). `recorded_model`: how the stage's settings name a model that lies inside the run
    folder, so that a run folder moved elsewhere is still up to date (its weights are inputs)."""

    def run(_: Path) -> None:
        from radonc_llm.infer.parallel import local_backend
        from radonc_llm.infer.predict import predict_cases

        with local_backend(model, dtype=settings.dtype, processes=settings.processes) as backend:
            predict_cases(
                backend, read_cases(cases_file), out, tasks=tasks, decoding=settings.decoding,
                batch_size=settings.batch_size, model_label=system or out.stem,
                cases_file=cases_file, console=console,
            )  # fmt: skip

    # A prediction file is appended to as rows finish, so a stage killed half-way resumes it.
    task_setting = {"tasks": list(tasks)} if tuple(tasks) != TASKS else {}
    return Stage(
        name, str(out.parent.name), [cases_file, *extra_inputs],
        {**settings.model_dump(exclude={"processes"}), "model": recorded_model or model,
         "prompt_version": _prompt_version(), **task_setting},
        # Its manifest too, so that new inputs move the old one aside with the rows it tells of.
        run, outputs=[out.name, f"{out.stem}.manifest.json"], expected=[out.name],
    )  # fmt: skip


def baseline_stage(
    kind: str,
    train_file: Path,
    cases_file: Path,
    out: Path,
    *,
    model: str,
    settings: PredictSection,
    seed: int,
    console: Console,
    tasks: tuple[str, ...] | None = None,
) -> Stage:
    """A reference system's predictions (`model` serves the few-shot baseline only) of `tasks`
    (default: every task the baseline answers)."""

    def run(_: Path) -> None:
        from radonc_llm.evaluate.baselines import run_baseline

        run_baseline(
            kind, read_cases(train_file), read_cases(cases_file), out, tasks=tasks, model=model,
            decoding=settings.decoding, batch_size=settings.batch_size, dtype=settings.dtype,
            processes=settings.processes, seed=seed, console=console,
        )  # fmt: skip

    model_setting = (
        {"model": model, **settings.model_dump(exclude={"processes"})} if kind == "few-shot" else {}
    )
    task_setting = {"tasks": list(tasks)} if tasks is not None else {}
    return Stage(
        f"baseline_{kind}", str(out.parent.name), [train_file, cases_file],
        {"kind": kind, "seed": seed, **model_setting, **task_setting}, run, outputs=[out.name],
    )  # fmt: skip


RECIPE_KINDS = ("study", "cross_institution")


def recipe_kind(config_path: str | Path) -> Any:
    """The `kind` a recipe declares: `study` (default) or another experiment's name, as the
    file writes it (None for `kind:` without a value)."""
    try:
        raw = read_config_file(config_path)
    except RadoncInputError:
        return "study"  # load_study_config reports the problem with file and reason
    return raw.get("kind", "study")


def run_recipe(config_path: str | Path, *, console: Console) -> Path:
    """Run the recipe with the runner of its kind; returns the run folder."""
    kind = recipe_kind(config_path)
    if kind == "study":
        return run_study(config_path, console=console).run_dir
    if kind == "cross_institution":
        from radonc_llm.experiments.cross_institution import run_cross_institution

        return run_cross_institution(config_path, console=console)
    kinds = ", ".join(RECIPE_KINDS)
    if kind is None:
        reason = f"is empty (null); give one of {kinds}, or delete the line to run a study"
    else:
        shown = f"'{kind}'" if isinstance(kind, str) else f"{kind!r} (not a word)"
        close = difflib.get_close_matches(str(kind), RECIPE_KINDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        reason = f"unknown kind {shown}{hint}; expected one of {kinds}"
    raise RadoncInputError(with_line(reason, config_path, "kind"), file=config_path, field="kind")


def run_study(config_path: str | Path, *, console: Console) -> StudyConfig:
    """Run (or resume) every stage of a study recipe; the run manifest records how."""
    study = load_study_config(config_path)
    run_dir = study.run_dir
    _warn_of_a_run_beside_the_recipe(run_dir, Path(config_path))
    open_run_manifest(
        run_dir,
        config=study.model_dump(mode="json"),
        config_file=config_path,
        seeds={
            "export": study.export.synthetic.seed if study.export.synthetic else None,
            "split": study.split.seed,
            "train": train_config(study, context=DEFERRED).seed,
            "evaluation": study.evaluation.seed,
        },
    )
    run_stages(run_dir, study_stages(study, console=console), console=console)
    close_run_manifest(
        run_dir, [run_dir / "curate" / "cases.jsonl", *sorted((run_dir / "split").glob("*.jsonl"))]
    )
    return study


def _warn_of_a_run_beside_the_recipe(run_dir: Path, config_file: Path) -> None:
    """A relative runs_dir is read from the working folder: run from another folder, a recipe
    starts a new run there; say so where its earlier run lies beside the recipe."""
    if run_dir.is_absolute() or (run_dir / "manifest.json").exists():
        return
    beside = config_file.parent / run_dir
    if beside.resolve() == run_dir.resolve() or not (beside / "manifest.json").is_file():
        return
    warnings.warn(
        f"this run goes to {run_dir.absolute()} (a relative runs_dir is read from the working "
        f"folder), and a run of this name lies beside the recipe in {beside.resolve()}: to go "
        f"on with that one, stop (Ctrl-C) and run from {config_file.parent.resolve()}, or give "
        "an absolute runs_dir",
        stacklevel=3,
    )


def open_run_manifest(
    run_dir: Path, *, config: dict, config_file: str | Path, seeds: dict[str, Any]
) -> None:
    """Start (on a resumed run: update) `<run_dir>/manifest.json` with the config, commit,
    package versions, hardware and seeds; `run_stages` adds the stage times."""
    from radonc_llm.train.manifest import git_commit, package_versions

    _make_run_dir(run_dir, config_file=config_file)
    manifest_path = run_dir / "manifest.json"
    manifest = _read_record(manifest_path)
    previous = manifest.get("config", {})
    if previous.get("kind", config.get("kind")) != config.get("kind"):
        raise RadoncInputError(
            f"{run_dir} holds a {previous['kind']} run (from {manifest.get('config_file')}), "
            f"not a {config.get('kind')} one; give this recipe another name or runs_dir",
            file=config_file,
            field="name",
        )
    previous_file = manifest.get("config_file")
    if previous and previous != config and not _same_file(previous_file, config_file):
        warnings.warn(
            f"{run_dir} was last run from {previous_file}, now from {config_file}: the stages "
            "whose settings differ run again and their old outputs move to superseded/; give "
            "this recipe another name to keep both runs side by side",
            stacklevel=2,
        )
    manifest.update(
        {
            "config": config,
            "config_file": str(config_file),
            **git_commit(),
            "versions": package_versions(),
            "hardware": _hardware(),
            "seeds": seeds,
        }
    )
    manifest.setdefault("started_at", _now())
    write_json_atomic(manifest_path, manifest)


def _same_file(first: str | None, second: str | Path) -> bool:
    try:
        return first is not None and Path(first).resolve() == Path(second).resolve()
    except OSError:
        return False


def _make_run_dir(run_dir: Path, *, config_file: str | Path) -> None:
    blocking = file_in_the_way(run_dir)
    if blocking is not None:
        raise RadoncInputError(
            f"{blocking} is a file, not a folder", file=config_file, field="runs_dir"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass  # a read-only runs_dir fails here, not after the first stage's work
    except OSError as exc:
        raise RadoncInputError(
            f"cannot write the run folder {run_dir} ({exc.strerror})",
            file=config_file,
            field="runs_dir",
        ) from None


def close_run_manifest(run_dir: Path, data_files: list[Path]) -> None:
    """Record the hashes of the run's data files and the end time in its manifest."""
    manifest_path = run_dir / "manifest.json"
    manifest = _read_record(manifest_path)
    manifest["data_hashes"] = {
        str(path.relative_to(run_dir)): file_sha256(path) for path in data_files if path.exists()
    }
    manifest["finished_at"] = _now()
    write_json_atomic(manifest_path, manifest)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _hardware() -> dict[str, Any]:
    import os
    import platform

    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
