"""`radonc-llm run configs/real_hn.yaml`: tune on one institution's patients, test on its
held-out patients and on other institutions' patients.

Stages, top to bottom (each resumable and hash-skipped by `pipeline.run_stages`):
import each public cohort -> split (the training cohort's own training patients, less a seeded
patient-level validation share; its held-out patients are the internal test; every kept case of
the other cohorts is an external test; seeded samples fit the time budget) -> task files ->
baselines and the original model on every test cohort -> fine-tune on the training cohort ->
its predictions -> the model tuned on the synthetic cohort (a finished run such as
`runs/demo/train`, or, when absent and `synthetic_model.if_missing: train`, one tuned here on a
synthetic cohort with this recipe's training settings) -> its predictions -> evaluation per test
cohort -> the institutions' fractionation habits -> report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from rich.console import Console

from radonc_llm.config import TrainConfig, read_config_file, validate_config
from radonc_llm.data.cases import TASKS, Case, read_cases, write_cases
from radonc_llm.errors import RadoncInputError
from radonc_llm.pipeline import (
    BASELINE_KINDS,
    DEFERRED,
    EvaluationSection,
    PredictSection,
    SplitSection,
    Stage,
    StudyConfig,
    baseline_stage,
    close_run_manifest,
    model_in_run,
    open_run_manifest,
    predict_stage,
    read_train_preset,
    run_stages,
    sample_cases,
    study_stages,
    train_section_error,
    train_settings,
    trained_outputs,
)
from radonc_llm.storage import read_jsonl, write_json_atomic

REFERENCE_SYSTEM = "base"
SYNTHETIC_SYSTEM = "tuned-synthetic"
# The experiment sets these fields of the training section itself.
OWNED_TRAIN_FIELDS = ("train_dir", "val_dir", "output_dir", "tasks")
SYNTHETIC_STAGES = ("export", "curate", "split", "tasks", "train")


class SyntheticModelSection(BaseModel):
    """The model tuned on the synthetic cohort only."""

    model_config = ConfigDict(extra="forbid")
    run: Path = Field(
        Path("runs/demo/train"),
        description="Training run folder of the model tuned on the synthetic cohort; "
        "`make demo` writes runs/demo/train.",
    )
    if_missing: Literal["train", "fail"] = Field(
        "train",
        description="When `run` holds no finished run: train (tune one here, on a synthetic "
        "cohort, with this recipe's training settings) or fail (stop before any work and ask "
        "for `make demo`).",
    )
    patients: int = Field(
        3000, gt=0, description="Synthetic patients generated when a model is tuned here."
    )
    seed: int = Field(0, description="Seed of that synthetic cohort and its split.")


class CrossEvaluationSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    test_sample: int | None = Field(
        150,
        gt=0,
        description="Evaluate a seeded sample of this many patients per test cohort; null = all.",
    )
    seed: int = Field(0, description="Seed of the test samples and of the bootstrap.")
    bootstrap: int = Field(2000, gt=0, description="Bootstrap resamples for the 95% CIs.")
    baselines: list[str] = Field(
        default_factory=lambda: ["majority", "nearest-regimen"],
        description="Reference systems fitted on the training patients: majority, "
        "tfidf-logreg, nearest-regimen, few-shot.",
    )

    @field_validator("baselines")
    @classmethod
    def _known_baselines(cls, value: list[str]) -> list[str]:
        unknown = [kind for kind in value if kind not in BASELINE_KINDS]
        if unknown:
            raise ValueError(f"unknown baseline(s) {unknown}; expected some of {BASELINE_KINDS}")
        return value


class CrossInstitutionConfig(BaseModel):
    """A cross-institution experiment: `radonc-llm run CONFIG.yaml` with `kind:
    cross_institution`."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["cross_institution"]
    name: str = Field(
        description="Run name; everything goes to <runs_dir>/<name>/.", pattern=r"^[\w.-]+$"
    )
    runs_dir: Path = Field(Path("runs"), description="Folder that holds the runs.")
    cohorts: dict[str, Path] = Field(
        description="Public cohort -> its table (the CSV file or the folder holding it): "
        "radcure, hnscc-mdacc, hn1. Read where it lies, never copied."
    )
    train_cohort: str = Field(
        "radcure",
        description="The cohort tuned on: its source's training patients train, its held-out "
        "patients are the internal test; every other cohort is an external test.",
    )
    validation_share: float = Field(
        0.1, gt=0, lt=0.5, description="Share of training patients kept for validation."
    )
    split_seed: int = Field(0, description="Seed of the validation carve-out.")
    tasks: list[str] = Field(
        default_factory=lambda: ["regimen", "icd10"],
        description="Tasks trained, predicted and evaluated. Modality is left out by default: "
        "every patient of these cohorts had photon therapy.",
    )
    synthetic_model: SyntheticModelSection = Field(default_factory=SyntheticModelSection)
    train_preset: Path | None = Field(
        None,
        description="A `radonc-llm train` config whose settings training starts from (its "
        "data folders, output folder and tasks are ignored); `train` overrides its fields.",
    )
    train: dict[str, Any] = Field(
        default_factory=dict,
        description="Training settings (the fields of a `radonc-llm train` config, without "
        "train_dir, val_dir, output_dir and tasks, which the experiment sets).",
    )
    predict: PredictSection = Field(default_factory=PredictSection)
    evaluation: CrossEvaluationSection = Field(default_factory=CrossEvaluationSection)

    @field_validator("cohorts")
    @classmethod
    def _known_cohorts(cls, value: dict[str, Path]) -> dict[str, Path]:
        from radonc_llm.data.importers import IMPORTERS

        if not value:
            raise ValueError(f"name at least one cohort: {', '.join(IMPORTERS)}")
        unknown = [cohort for cohort in value if cohort not in IMPORTERS]
        if unknown:
            raise ValueError(f"unknown cohort(s) {unknown}; expected some of {list(IMPORTERS)}")
        return value

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: list[str]) -> list[str]:
        unknown = [task for task in value if task not in TASKS]
        if not value or unknown or len(set(value)) != len(value):
            raise ValueError(f"expected distinct tasks from {list(TASKS)}, got {value}")
        return value

    @field_validator("train_cohort")
    @classmethod
    def _train_cohort_is_a_cohort(cls, value: str, info) -> str:
        cohorts = info.data.get("cohorts")
        if cohorts is not None and value not in cohorts:
            raise ValueError(f"'{value}' is not among the cohorts ({', '.join(cohorts)})")
        return value

    @field_validator("evaluation")
    @classmethod
    def _baselines_answer_a_task(cls, value: CrossEvaluationSection, info):
        from radonc_llm.evaluate.baselines import BASELINE_TASKS

        tasks = info.data.get("tasks") or []
        for kind in value.baselines:
            if not set(BASELINE_TASKS[kind]) & set(tasks):
                raise ValueError(f"baseline {kind} answers none of the tasks {tasks}")
        return value

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.name

    @property
    def tuned_system(self) -> str:
        return f"tuned-{self.train_cohort}"

    @property
    def test_cohorts(self) -> list[str]:
        """The training cohort (internal test) first, then the external ones."""
        return [self.train_cohort, *(c for c in self.cohorts if c != self.train_cohort)]

    def systems(self) -> list[str]:
        return [
            REFERENCE_SYSTEM,
            SYNTHETIC_SYSTEM,
            self.tuned_system,
            *self.evaluation.baselines,
        ]


def load_cross_institution_config(path: str | Path) -> CrossInstitutionConfig:
    """Read and validate the recipe, its training section and the synthetic model's source,
    before any work; a problem names the file and the field."""
    path = Path(path)
    config = validate_config(CrossInstitutionConfig, read_config_file(path), file=path)
    for cohort, source in config.cohorts.items():
        if not source.exists():
            raise RadoncInputError(
                f"{source} not found: download the {cohort} table from TCIA (see the README) "
                "and give its folder here",
                file=path,
                field=f"cohorts.{cohort}",
            )
    own_train = dict(config.train)
    preset: dict[str, Any] = {}
    if config.train_preset is not None:
        preset = read_train_preset(config.train_preset, recipe=path)
        preset = {key: value for key, value in preset.items() if key not in OWNED_TRAIN_FIELDS}
        config.train = {**preset, **config.train}
    owned = [name for name in OWNED_TRAIN_FIELDS if name in config.train]
    if owned:
        raise RadoncInputError(
            "set by the experiment (tasks: the top-level `tasks`); remove it",
            file=path,
            field=f"train.{owned[0]}",
        )
    try:
        train_config(config, context={**DEFERRED, "config_file": path})
    except RadoncInputError as exc:
        raise train_section_error(
            exc, recipe=path, own_train=own_train, preset=preset, train_preset=config.train_preset
        ) from None
    if (
        not _finished_run(config.synthetic_model.run)
        and config.synthetic_model.if_missing == "fail"
    ):
        raise RadoncInputError(
            f"{config.synthetic_model.run} holds no finished training run: run `make demo` "
            "first (it writes runs/demo/train), point `run` at another run folder, or set "
            "`synthetic_model.if_missing: train` to tune one here",
            file=path,
            field="synthetic_model.run",
        )
    return config


def train_config(config: CrossInstitutionConfig, *, context: dict | None = None) -> TrainConfig:
    tasks_dir = config.run_dir / "tasks"
    raw = {
        **config.train,
        "tasks": list(config.tasks),
        "train_dir": tasks_dir / "train",
        "val_dir": tasks_dir / "val",
        "output_dir": config.run_dir / "train",
    }
    return validate_config(TrainConfig, raw, context=context)


def _finished_run(path: Path) -> bool:
    from radonc_llm.models.registry import is_run_dir

    return is_run_dir(path)


def synthetic_model_dir(config: CrossInstitutionConfig) -> Path:
    """The synthetic model used: the configured run, or the one this recipe tunes."""
    if _finished_run(config.synthetic_model.run) or config.synthetic_model.if_missing == "fail":
        return config.synthetic_model.run
    return config.run_dir / "synthetic" / "train"


# -- the stages -------------------------------------------------------------------------------


def import_stage(cohort: str, source: Path, out_dir: Path, *, console: Console) -> Stage:
    """Import one cohort into `<out_dir>/<cohort>.jsonl` with its exclusion ledger and counts."""

    def run(out: Path) -> None:
        from radonc_llm.data.importers import import_cohort
        from radonc_llm.data.importers.result import import_table, write_import

        result = import_cohort(cohort, source)
        write_import(result, out / f"{cohort}.jsonl")
        write_json_atomic(
            out / f"{cohort}.import.json",
            {
                "cohort": cohort,
                "source": str(source),
                "input_rows": result.input_rows,
                "kept": len(result.cases),
                "excluded": len(result.ledger),
                "reasons": _counts(entry.reason for entry in result.ledger),
                "institution": result.cases[0].institution if result.cases else None,  # type: ignore[attr-defined]
            },
        )
        console.print(import_table(result))

    return Stage(
        f"import_{cohort}", out_dir.name, [source], {"cohort": cohort}, run,
        outputs=[f"{cohort}.jsonl", f"{cohort}.excluded.jsonl", f"{cohort}.import.json"],
    )  # fmt: skip


def _counts(items) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(items).most_common())


def split_cohorts(
    config: CrossInstitutionConfig,
    cohort_cases: dict[str, list[Case]],
    out: Path,
    *,
    imports: Mapping[str, Mapping] | None = None,
) -> dict:
    """Write train/val (training cohort), test_<cohort>.jsonl (every test patient) and
    eval_<cohort>.jsonl (the seeded sample evaluated); returns the summary (split.json).
    `imports`: each cohort's import summary (<cohort>.import.json), for the messages."""
    from radonc_llm.data.split import split_cases

    for cohort in config.cohorts:
        if not cohort_cases[cohort]:
            raise RadoncInputError(
                _no_case_kept(cohort, (imports or {}).get(cohort)),
                file=config.cohorts[cohort],
                field=f"cohorts.{cohort}",
            )
    own = cohort_cases[config.train_cohort]
    by_split: dict[str | None, list[Case]] = {}
    for case in own:
        by_split.setdefault(case.split, []).append(case)
    if not by_split.get("train") or not by_split.get("test"):
        counts = ", ".join(
            f"{len(by_split.get(name, []))} in its {name} split" for name in ("train", "test")
        )
        raise RadoncInputError(
            f"cohort {config.train_cohort} has no source training/test split to train and test "
            f"on ({len(own)} kept case(s): {counts}); choose a cohort whose import sets one "
            "(radcure: its challenge split)",
            field="train_cohort",
        )
    share = config.validation_share
    carved = split_cases(
        by_split["train"], fractions=(1 - share, share, 0.0), seed=config.split_seed
    )
    if not carved["val"]:
        patients = len({case.patient_id for case in by_split["train"]})
        raise RadoncInputError(
            f"validation_share {share:g} of {config.train_cohort}'s {patients} training "
            "patient(s) leaves no validation patient; raise validation_share or use a cohort "
            "with more training patients",
            field="validation_share",
        )
    write_cases(out / "train.jsonl", carved["train"])
    write_cases(out / "val.jsonl", carved["val"])
    unused = [
        case for name, cases in by_split.items() if name not in ("train", "test") for case in cases
    ]
    summary: dict[str, Any] = {
        "train_cohort": config.train_cohort,
        "seed": config.split_seed,
        "validation_share": share,
        "train": _split_counts(carved["train"]),
        "val": _split_counts(carved["val"]),
        "unused": {
            **_split_counts(unused),
            "why": "not in the source's training or test split",
            "source_split": _counts(str(getattr(c, "source_split", None)) for c in unused),
        },
        "tests": {},
    }
    for cohort in config.test_cohorts:
        tests = by_split["test"] if cohort == config.train_cohort else cohort_cases[cohort]
        tests = [case.model_copy(update={"split": "test"}) for case in tests]
        write_cases(out / f"test_{cohort}.jsonl", tests)
        sample_cases(
            out / f"test_{cohort}.jsonl",
            out / f"eval_{cohort}.jsonl",
            size=config.evaluation.test_sample,
            seed=config.evaluation.seed,
        )
        summary["tests"][cohort] = {
            "role": "internal" if cohort == config.train_cohort else "external",
            **_split_counts(tests),
            "evaluated": len(read_cases(out / f"eval_{cohort}.jsonl")),
        }
    write_json_atomic(out / "split.json", summary)
    return summary


def _no_case_kept(cohort: str, imported: Mapping | None) -> str:
    """Why a cohort has nothing to test or train on: its rows and where each one went."""
    if not imported:
        return f"cohort {cohort} kept no case; see cohorts/{cohort}.excluded.jsonl"
    rows = sum((imported.get("input_rows") or {}).values())
    reasons = ", ".join(f"{reason} {n}" for reason, n in (imported.get("reasons") or {}).items())
    where = (
        f"all {rows} row(s) of its table(s) are in the exclusion ledger "
        f"cohorts/{cohort}.excluded.jsonl ({reasons})"
        if rows
        else "its table(s) hold no data row"
    )
    return f"cohort {cohort} kept no case: {where}; fix the table or remove {cohort} from cohorts"


def _split_counts(cases: list[Case]) -> dict[str, int]:
    return {"cases": len(cases), "patients": len({case.patient_id for case in cases})}


def _in_folder(stage: Stage, folder: str, name: str) -> Stage:
    return dataclasses.replace(stage, folder=folder, name=name)


def synthetic_training_stages(config: CrossInstitutionConfig, *, console: Console) -> list[Stage]:
    """The main study's own stages, up to training, on a synthetic cohort under `synthetic/`."""
    synthetic = config.synthetic_model
    study = StudyConfig(
        name="synthetic",
        runs_dir=config.run_dir,
        export={"synthetic": {"patients": synthetic.patients, "seed": synthetic.seed}},
        split=SplitSection(seed=synthetic.seed),
        train={**config.train, "tasks": list(config.tasks)},
        predict=config.predict,
        evaluation=EvaluationSection(test_sample=None, baselines=[]),
    )
    return [
        _in_folder(stage, f"synthetic/{stage.folder}", f"synthetic_{stage.name}")
        for stage in study_stages(study, console=console)
        if stage.name in SYNTHETIC_STAGES
    ]


def cross_institution_stages(config: CrossInstitutionConfig, *, console: Console) -> list[Stage]:
    run_dir = config.run_dir
    cohorts_dir, split_dir, tasks_dir = run_dir / "cohorts", run_dir / "split", run_dir / "tasks"
    train_dir = run_dir / "train"
    tasks = tuple(config.tasks)
    stages = [
        import_stage(cohort, source, cohorts_dir, console=console)
        for cohort, source in config.cohorts.items()
    ]

    def run_split(out: Path) -> None:
        import json

        cohort_cases = {c: read_cases(cohorts_dir / f"{c}.jsonl") for c in config.cohorts}
        imports = {
            c: json.loads((cohorts_dir / f"{c}.import.json").read_text(encoding="utf-8"))
            for c in config.cohorts
        }
        summary = split_cohorts(config, cohort_cases, out, imports=imports)
        console.print(
            f"train {summary['train']['cases']}, validation {summary['val']['cases']}, "
            + ", ".join(
                f"{c} test {t['evaluated']} of {t['cases']}" for c, t in summary["tests"].items()
            )
        )

    def run_tasks(out: Path) -> None:
        from radonc_llm.tasks.build import write_task_datasets

        for name in ("train", "val"):
            split_file = split_dir / f"{name}.jsonl"
            write_task_datasets(read_cases(split_file), out / name, tasks=tasks, source=split_file)

    def run_schemes(out: Path) -> None:
        from radonc_llm.evaluate.cross_institution import institution_schemes

        write_json_atomic(
            out / "schemes.json",
            {
                c: institution_schemes(read_cases(cohorts_dir / f"{c}.jsonl"))
                for c in config.cohorts
            },
        )

    cohort_files = [cohorts_dir / f"{c}.jsonl" for c in config.cohorts]
    split_settings = {
        "train_cohort": config.train_cohort, "validation_share": config.validation_share,
        "seed": config.split_seed, "test_sample": config.evaluation.test_sample,
        "sample_seed": config.evaluation.seed,
    }  # fmt: skip
    stages += [
        Stage("split", "split", cohort_files, split_settings, run_split,
              outputs=["train.jsonl", "val.jsonl", "split.json",
                       *(f"{kind}_{c}.jsonl" for c in config.test_cohorts for kind in ("test", "eval"))]),
        Stage("tasks", "tasks", [split_dir / "train.jsonl", split_dir / "val.jsonl"],
              {"prompt_version": _prompt_version(), "tasks": list(tasks)}, run_tasks,
              outputs=["train", "val"]),
        Stage("schemes", "schemes", cohort_files, {}, run_schemes, outputs=["schemes.json"]),
    ]  # fmt: skip

    base_model = train_config(config, context=DEFERRED).model

    def predictions(system: str, model: str, extra: tuple[Path, ...] = ()) -> list[Stage]:
        return [
            _in_folder(
                predict_stage(
                    "predict", model, split_dir / f"eval_{cohort}.jsonl",
                    run_dir / "predict" / cohort / f"{system}.jsonl", settings=config.predict,
                    console=console, system=system, extra_inputs=extra, tasks=tasks,
                    recorded_model=model_in_run(Path(model), run_dir),
                ),
                f"predict/{cohort}", f"predict_{system}_{cohort}",
            )
            for cohort in config.test_cohorts
        ]  # fmt: skip

    from radonc_llm.evaluate.baselines import BASELINE_TASKS

    for kind in config.evaluation.baselines:
        for cohort in config.test_cohorts:
            stage = baseline_stage(
                kind, split_dir / "train.jsonl", split_dir / f"eval_{cohort}.jsonl",
                run_dir / "predict" / cohort / f"{kind}.jsonl", model=base_model,
                settings=config.predict, seed=config.evaluation.seed, console=console,
                tasks=tuple(t for t in tasks if t in BASELINE_TASKS[kind]),
            )  # fmt: skip
            stages.append(_in_folder(stage, f"predict/{cohort}", f"baseline_{kind}_{cohort}"))
    stages += predictions(REFERENCE_SYSTEM, base_model)

    def run_train(out: Path) -> None:
        from radonc_llm.train.loop import train

        train(train_config(config), resume=True)

    stages.append(
        Stage("train", "train", [tasks_dir / "train", tasks_dir / "val"],
              {**train_settings(config.train), "tasks": list(tasks)}, run_train, outputs=["."],
              expected=trained_outputs(train_config(config, context=DEFERRED)),
              older_settings=[{**config.train, "tasks": list(tasks)}])
    )  # fmt: skip
    stages += predictions(config.tuned_system, str(train_dir), (train_dir / "adapter",))

    synthetic_dir = synthetic_model_dir(config)
    if not _finished_run(config.synthetic_model.run):
        stages += synthetic_training_stages(config, console=console)
    stages += predictions(SYNTHETIC_SYSTEM, str(synthetic_dir), (synthetic_dir / "adapter",))

    models = {REFERENCE_SYSTEM: base_model, config.tuned_system: str(train_dir),
              SYNTHETIC_SYSTEM: str(synthetic_dir)}  # fmt: skip
    for cohort in config.test_cohorts:
        stages.append(_evaluate_stage(config, cohort, models=models, console=console))
    stages.append(_institutions_stage(config))

    def run_report(out: Path) -> None:
        from radonc_llm.evaluate.cross_institution_report import write_cross_institution_report

        write_cross_institution_report(run_dir, out)

    stages.append(
        Stage("report", "report",
              [run_dir / "evaluate", run_dir / "schemes", split_dir / "split.json",
               run_dir / "institutions",
               train_dir / "metrics.jsonl", *(cohorts_dir / f"{c}.import.json" for c in config.cohorts)],
              {}, run_report, outputs=["report.html", "report.md", "figures"])
    )  # fmt: skip
    return stages


def _evaluate_stage(
    config: CrossInstitutionConfig, cohort: str, *, models: dict[str, str], console: Console
) -> Stage:
    run_dir = config.run_dir
    cases_file = run_dir / "split" / f"eval_{cohort}.jsonl"
    systems = {name: run_dir / "predict" / cohort / f"{name}.jsonl" for name in config.systems()}
    schemes_file = run_dir / "schemes" / "schemes.json"

    def run(out: Path) -> None:
        import json

        from radonc_llm.evaluate.cross_institution import habit_shares, transfer_metrics
        from radonc_llm.evaluate.run import evaluate_predictions

        cases = read_cases(cases_file)
        result = evaluate_predictions(
            cases, systems, out, n_resamples=config.evaluation.bootstrap,
            seed=config.evaluation.seed, cases_file=cases_file,
        )  # fmt: skip
        for message in result.messages:
            if "not evaluated for this system" not in message:  # baselines answer some tasks
                console.print(f"[yellow]note:[/] {message}")
        per_case = read_jsonl(out / "per_case.jsonl")
        schemes = json.loads(schemes_file.read_text(encoding="utf-8"))
        regimens: dict[str, dict[str, str | None]] = {}
        for row in per_case:
            if row["task"] == "regimen":
                regimens.setdefault(row["system"], {})[str(row["case_id"])] = row["prediction"]
        settings = {"n_resamples": config.evaluation.bootstrap, "seed": config.evaluation.seed}
        write_json_atomic(
            out / "transfer.json",
            {
                "cohort": cohort,
                "role": "internal" if cohort == config.train_cohort else "external",
                "train_cohort": config.train_cohort,
                "reference_system": REFERENCE_SYSTEM,
                "models": models,
                "n_cases": len(cases),
                **transfer_metrics(
                    cases, per_case, systems=list(systems), reference=REFERENCE_SYSTEM, **settings
                ),
                "habits": habit_shares(
                    cases, regimens,
                    training_habit=schemes[config.train_cohort]["habit"],
                    local_habit=schemes[cohort]["habit"],
                ),
            },
        )  # fmt: skip

    return Stage(
        f"evaluate_{cohort}", f"evaluate/{cohort}", [cases_file, schemes_file, *systems.values()],
        {**config.evaluation.model_dump(), "train_cohort": config.train_cohort, "models": models},
        run, outputs=["metrics.json", "per_case.jsonl", "manifest.json", "transfer.json"],
    )  # fmt: skip


def _institutions_stage(config: CrossInstitutionConfig) -> Stage:
    """Each system on each external cohort against itself on the internal test cohort:
    unpaired tests (different patients), in institutions/institutions.json."""
    run_dir = config.run_dir
    cohort_files = {
        cohort: (run_dir / "split" / f"eval_{cohort}.jsonl",
                 run_dir / "evaluate" / cohort / "per_case.jsonl")
        for cohort in config.test_cohorts
    }  # fmt: skip

    def run(out: Path) -> None:
        from radonc_llm.evaluate.cross_institution import institution_gaps

        evaluated = {
            cohort: (read_cases(cases_file), read_jsonl(per_case))
            for cohort, (cases_file, per_case) in cohort_files.items()
        }
        internal = evaluated.pop(config.train_cohort)
        write_json_atomic(
            out / "institutions.json",
            {
                "internal_cohort": config.train_cohort,
                "external_cohorts": list(evaluated),
                "tests": {
                    "share": "Fisher's exact test, two-sided; difference CI: Newcombe hybrid score",
                    "score": "Mann-Whitney U test, two-sided; effect: rank-biserial correlation",
                    "why": "an external and the internal test cohort hold different patients: "
                    "the comparison is unpaired",
                    "multiplicity": "Holm across the metrics of each (system, cohort)",
                },
                "comparisons": institution_gaps(internal, evaluated, systems=config.systems()),
            },
        )

    return Stage(
        "institutions", "institutions", [path for pair in cohort_files.values() for path in pair],
        {"train_cohort": config.train_cohort, "systems": config.systems()}, run,
        outputs=["institutions.json"],
    )  # fmt: skip


def _prompt_version() -> str:
    from radonc_llm.tasks.prompts import PROMPT_VERSION

    return PROMPT_VERSION


def run_cross_institution(config_path: str | Path, *, console: Console) -> Path:
    """Run (or resume) every stage of a cross-institution recipe; returns the run folder."""
    config = load_cross_institution_config(config_path)
    run_dir = config.run_dir
    open_run_manifest(
        run_dir,
        config=config.model_dump(mode="json"),
        config_file=config_path,
        seeds={
            "split": config.split_seed,
            "train": train_config(config, context=DEFERRED).seed,
            "synthetic": config.synthetic_model.seed,
            "evaluation": config.evaluation.seed,
        },
    )
    run_stages(run_dir, cross_institution_stages(config, console=console), console=console)
    close_run_manifest(
        run_dir,
        [
            *sorted((run_dir / "cohorts").glob("*.jsonl")),
            *sorted((run_dir / "split").glob("*.jsonl")),
        ],
    )
    from radonc_llm.evaluate.cross_institution_report import console_tables

    for table in console_tables(run_dir):
        console.print(table)
    return run_dir
