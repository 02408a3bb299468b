"""`radonc-llm evaluate`: prediction files -> metrics.json, per_case.jsonl, manifest.json.

Set-up (read the cases and every prediction file, plain or gzip'd, counting what could not
be used), score (every case of the case file, per system and task), compare (paired tests per
task, Holm across tasks), save. A case with no usable prediction is malformed, never skipped; unreadable,
duplicated and unknown rows are counted in `inputs` (rows = scored + unreadable + duplicates +
unknown_case) and reported as messages. A file with no row to score at all (empty, UTF-16, made
for another case file) is an error, as is an --out that cannot be written, found before scoring.

Pairs compared: each `--compare SYSTEM:BASELINE`, or by default every system against the one
named `base`. Tests are one-sided: the alternative is that SYSTEM scores higher.
"""

from __future__ import annotations

import datetime as dt
import difflib
import gzip
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from radonc_llm.data import icd10
from radonc_llm.data.cases import TASKS, Case
from radonc_llm.errors import RadoncInputError
from radonc_llm.evaluate import statistics
from radonc_llm.evaluate.metrics import (
    DOSE_TOLERANCE_GY,
    EQD2_ALPHA_BETA,
    TASK_METRICS,
    TASK_TEST_SCORES,
)
from radonc_llm.infer.extract import extract_answer
from radonc_llm.storage import (
    GZIP_ERRORS,
    check_output_folder,
    file_sha256,
    jsonl_shape_hint,
    open_unpacked,
    write_json_atomic,
    write_jsonl_atomic,
)
from radonc_llm.tasks.build import answer_problem, task_answer
from radonc_llm.tasks.prompts import PROMPT_VERSION

DEFAULT_BASELINE = "base"
ALTERNATIVE = "greater"
_SHOWN = 5  # messages listed per kind of problem before "... and N more"


@dataclass
class Usable:
    """The answer a prediction file gives for one (case, task)."""

    prediction: str | None
    raw: str
    line: int


@dataclass
class PredictionFile:
    """A system's prediction file as read: usable answers and everything that was not."""

    name: str
    path: Path
    answers: dict[tuple[str, str], Usable] = field(default_factory=dict)
    rows: int = 0
    unreadable: list[tuple[int, str]] = field(default_factory=list)
    duplicates: list[tuple[int, str, str, int]] = field(default_factory=list)
    conflicting: set[tuple[str, str]] = field(default_factory=set)
    unknown_cases: list[tuple[int, str]] = field(default_factory=list)
    tasks: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    decodings: set[str] = field(default_factory=set)
    prompt_versions: set[str] = field(default_factory=set)
    missing: dict[str, int] = field(default_factory=dict)
    sha256: str = ""  # of the bytes read, hashed as they are read
    first_row: bytes = b""  # the start of the first non-blank line, to name a wrong format

    def summary(self) -> dict:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "rows": self.rows,
            # rows = scored + unreadable + duplicates + unknown_case: every row accounted for.
            "scored": len(self.answers) + len(self.conflicting),
            "unreadable": len(self.unreadable),
            "duplicates": len(self.duplicates),
            "conflicting": len(self.conflicting),
            "unknown_case": len(self.unknown_cases),
            "missing": dict(self.missing),
            "tasks_evaluated": sorted(self.tasks, key=TASKS.index),
            "models": sorted(self.models),
            "decodings": sorted(self.decodings),
            "prompt_versions": sorted(self.prompt_versions),
        }


def _answer_of(task: str, row: dict) -> tuple[str | None, str]:
    """Normalised prediction (None = malformed) and the raw text, via the task's extractor."""
    raw = row.get("raw")
    prediction = row.get("prediction")
    raw_text = raw if isinstance(raw, str) else (prediction if isinstance(prediction, str) else "")
    if row.get("malformed") is True:
        return None, raw_text
    if prediction is not None:
        return extract_answer(task, str(prediction)).prediction, raw_text
    if isinstance(raw, str):
        return extract_answer(task, raw).prediction, raw_text
    return None, raw_text


def _unknown_task(task: object) -> str:
    """Why a task name is not one of TASKS, with the likely intended name when there is one."""
    reason = f"unknown task {task!r} (tasks: {', '.join(TASKS)})"
    if isinstance(task, str):
        folded = "".join(task.split()).casefold().replace("-", "").replace("_", "")
        close = [t for t in TASKS if t == folded] or difflib.get_close_matches(folded, TASKS, n=1)
        if close:
            reason += f"; did you mean {close[0]!r}?"
    return reason


def read_prediction_file(name: str, path: str | Path, case_ids: set[str]) -> PredictionFile:
    """Read a prediction file without stopping at bad rows; every problem is counted.

    A gzip'd file (`preds.jsonl.gz`, found by its first bytes, not its name) is unpacked as
    it is read; its sha256 is that of the file as stored, as `sha256sum` gives it."""
    path = Path(path)
    if path.is_dir():
        raise RadoncInputError("is a folder, not a prediction file", file=path, field=name)
    if not path.is_file():
        raise RadoncInputError("prediction file not found", file=path, field=name)
    result = PredictionFile(name=name, path=path)
    try:
        _read_rows(path, case_ids, result)
    except GZIP_ERRORS as exc:
        # EOFError: a gzip stream cut short (a copy that stopped part way).
        raise RadoncInputError(
            f"damaged gzip file ({str(exc) or 'it ends before its data does'})",
            file=path,
            field=name,
        ) from None
    except OSError as exc:
        raise RadoncInputError(
            f"cannot read the prediction file ({exc.strerror or exc})", file=path, field=name
        ) from None
    for task in result.tasks:
        result.missing[task] = sum(
            1
            for case_id in case_ids
            if (case_id, task) not in result.answers and (case_id, task) not in result.conflicting
        )
    return result


def _read_rows(path: Path, case_ids: set[str], result: PredictionFile) -> None:
    first_line: dict[tuple[str, str], int] = {}
    digest = hashlib.sha256()
    with open_unpacked(path) as handle:
        compressed = isinstance(handle, gzip.GzipFile)  # its digest is the stored file's
        if handle.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            raise RadoncInputError(
                "is UTF-16 encoded (as some Windows tools save text); save it as UTF-8",
                file=path,
                field=result.name,
            )
        handle.seek(0)
        for number, raw_line in enumerate(handle, start=1):
            digest.update(raw_line)
            if not raw_line.strip():
                continue
            if not result.rows:
                result.first_row = raw_line[:200]
            result.rows += 1
            try:
                # A BOM that an editor put in front of the first row is not part of it.
                row = json.loads(raw_line.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError:
                result.unreadable.append((number, "not valid UTF-8"))
                continue
            except json.JSONDecodeError as exc:
                result.unreadable.append((number, f"not valid JSON ({exc.msg})"))
                continue
            if not isinstance(row, dict):
                result.unreadable.append((number, "not a JSON object"))
                continue
            case_id, task = row.get("case_id"), row.get("task")
            if case_id is None or task is None:
                result.unreadable.append((number, "no case_id or no task"))
                continue
            if not isinstance(task, str) or task not in TASKS:
                result.unreadable.append((number, _unknown_task(task)))
                continue
            wrong_type = [
                name
                for name in ("prediction", "raw")
                if row.get(name) is not None and not isinstance(row[name], str)
            ]
            if wrong_type:
                name = wrong_type[0]
                result.unreadable.append(
                    (number, f"{name!r} is {type(row[name]).__name__}, expected text or null")
                )
                continue
            case_id = str(case_id)
            if case_id not in case_ids:
                result.unknown_cases.append((number, case_id))
                continue
            for attribute, key in (
                ("models", "model"),
                ("decodings", "decoding"),
                ("prompt_versions", "prompt_version"),
            ):
                if row.get(key) is not None:
                    getattr(result, attribute).add(str(row[key]))
            result.tasks.add(task)
            key = (case_id, task)
            prediction, raw_text = _answer_of(task, row)
            if key in result.answers or key in result.conflicting:
                result.duplicates.append((number, case_id, task, first_line[key]))
                earlier = result.answers.get(key)
                if earlier is not None and earlier.prediction != prediction:
                    # Two different answers to one question: neither can be trusted.
                    result.conflicting.add(key)
                    del result.answers[key]
                continue
            first_line[key] = number
            result.answers[key] = Usable(prediction=prediction, raw=raw_text, line=number)
    result.sha256 = file_sha256(path) if compressed else digest.hexdigest()


def nothing_usable_reason(file: PredictionFile) -> str | None:
    """Why a prediction file gives no answer to score at all (None when it gives one)."""
    if file.tasks:
        return None
    if not file.rows:
        return "holds no prediction rows (empty file)"
    parts = []
    if file.unknown_cases:
        examples = ", ".join(
            repr(c) for c in list(dict.fromkeys(c for _, c in file.unknown_cases))[:3]
        )
        parts.append(
            f"{len(file.unknown_cases)} for case ids not in the case file (e.g. {examples}); "
            "is --cases the file these predictions were made for?"
        )
    if file.unreadable:
        line, why = file.unreadable[0]
        parts.append(f"{len(file.unreadable)} unreadable (first: line {line}: {why})")
    hint = jsonl_shape_hint(file.first_row, "a prediction file") if file.unreadable else None
    if hint:
        parts.append(hint)
    return f"none of its {file.rows} row(s) can be scored: " + "; ".join(parts)


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_SHOWN])
    return shown + (f"; ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def file_messages(file: PredictionFile, n_cases: int) -> list[str]:
    """What a reader must know about a prediction file, one line per kind of problem."""
    head = f"{file.name} ({file.path})"
    out = []
    if file.unreadable:
        out.append(
            f"{head}: {len(file.unreadable)} unreadable row(s) ignored: "
            + _listing([f"line {n}: {why}" for n, why in file.unreadable])
        )
    if file.unknown_cases:
        out.append(
            f"{head}: {len(file.unknown_cases)} row(s) for cases not in the case file ignored: "
            + _listing([f"line {n}: {cid!r}" for n, cid in file.unknown_cases])
        )
    if file.duplicates:
        out.append(
            f"{head}: {len(file.duplicates)} duplicate row(s): "
            + _listing([f"line {n} repeats {c}/{t} (line {f})" for n, c, t, f in file.duplicates])
            + "; identical answers counted once"
        )
    if file.conflicting:
        out.append(
            f"{head}: {len(file.conflicting)} (case, task) pair(s) with conflicting answers "
            "scored as malformed: " + _listing([f"{c}/{t}" for c, t in sorted(file.conflicting)])
        )
    for task in TASKS:
        if task not in file.tasks:
            out.append(f"{head}: no {task} predictions; {task} not evaluated for this system")
        elif file.missing.get(task):
            out.append(
                f"{head}: {file.missing[task]} of {n_cases} case(s) have no {task} prediction; "
                "scored as malformed"
            )
    if len(file.models) > 1 or len(file.decodings) > 1 or len(file.prompt_versions) > 1:
        out.append(
            f"{head}: rows from more than one system (models {sorted(file.models)}, decodings "
            f"{sorted(file.decodings)}, prompt versions {sorted(file.prompt_versions)})"
        )
    stale = file.prompt_versions - {PROMPT_VERSION}
    if stale:
        out.append(f"{head}: made with prompt version {sorted(stale)}, current is {PROMPT_VERSION}")
    return out


def parse_prediction_args(values: Sequence[str]) -> dict[str, Path]:
    """`NAME=PATH` options -> {name: path}; names unique, at least one."""
    systems: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise RadoncInputError(
                f"expected NAME=PATH, got {value!r} (e.g. base=preds/base.jsonl)",
                field="predictions",
            )
        if ":" in name or not name.isprintable():
            raise RadoncInputError(
                f"system name {name!r} may not hold ':' (it separates SYSTEM:BASELINE in "
                "--compare) or control characters",
                field="predictions",
            )
        if name in systems:
            raise RadoncInputError(f"system name {name!r} given twice", field="predictions")
        systems[name] = Path(path)
    if not systems:
        raise RadoncInputError("give at least one --predictions NAME=PATH", field="predictions")
    return systems


def parse_compare_args(
    values: Sequence[str] | None, systems: Sequence[str]
) -> list[tuple[str, str]]:
    """`SYSTEM:BASELINE` options, or by default every system against `base`."""
    if not values:
        if DEFAULT_BASELINE not in systems:
            return []
        return [(name, DEFAULT_BASELINE) for name in systems if name != DEFAULT_BASELINE]
    pairs = []
    for value in values:
        system, sep, baseline = (part.strip() for part in value.partition(":"))
        unknown = [name for name in (system, baseline) if name not in systems]
        if not sep or not system or not baseline:
            why = "a name is missing on one side of ':'" if sep else "no ':' in it"
        elif unknown:
            why = f"{unknown[0]!r} is not a system given with --predictions"
        elif system == baseline:
            why = "a system cannot be compared with itself"
        else:
            pairs.append((system, baseline))
            continue
        raise RadoncInputError(
            f"{why}, got {value!r}; expected SYSTEM:BASELINE, two different names from: "
            f"{', '.join(systems)} (e.g. {systems[-1]}:{systems[0]})",
            field="compare",
        )
    return list(dict.fromkeys(pairs))


def compare_systems(
    per_case: dict[str, dict[str, list[dict]]], pairs: Sequence[tuple[str, str]]
) -> list[dict]:
    """Paired one-sided tests per task, with Holm's correction across the tasks of each
    (system, baseline, test) family."""
    comparisons: list[dict] = []
    for system, baseline in pairs:
        for task in TASKS:
            if task not in per_case.get(system, {}) or task not in per_case.get(baseline, {}):
                continue
            metric, score_field, binary = TASK_TEST_SCORES[task]
            x = [row[score_field] for row in per_case[system][task]]
            y = [row[score_field] for row in per_case[baseline][task]]
            tests = [statistics.wilcoxon_signed_rank(x, y, alternative=ALTERNATIVE)]
            if binary:
                tests.append(statistics.mcnemar_exact(x, y, alternative=ALTERNATIVE))
            for result in tests:
                comparisons.append(
                    {
                        "task": task,
                        "metric": metric,
                        "system": system,
                        "baseline": baseline,
                        "test": result.test,
                        "alternative": result.alternative,
                        "statistic": result.statistic,
                        "p_value": result.p_value,
                        "p_holm": None,
                        "effect_size": result.effect_size,
                        "n": result.n,
                        "n_nonzero": result.n_nonzero,
                        "method": result.method,
                        "mean_system": result.mean_system,
                        "mean_baseline": result.mean_baseline,
                        "effect_size_name": "matched-pairs rank-biserial",
                        "holm_family": f"{system} vs {baseline}, {result.test}, across tasks",
                    }
                )
    families: dict[str, list[dict]] = {}
    for row in comparisons:
        families.setdefault(row["holm_family"], []).append(row)
    for rows in families.values():
        for row, adjusted in zip(rows, statistics.holm([r["p_value"] for r in rows]), strict=True):
            row["p_holm"] = adjusted
            # A task without a comparable case is no test: the family holds the tests run.
            row["holm_family_size"] = len(rows)
    return comparisons


def reference_messages(cases: Sequence[Case]) -> list[str]:
    """A reference ICD-10 code that is a category or subcategory ("C50.9"), not a billable
    code, can never be matched exactly by a constrained answer (always billable): say so."""
    partial = [case.case_id for case in cases if not icd10.is_billable(case.icd10)]
    if not partial:
        return []
    shown = ", ".join(partial[:_SHOWN]) + (
        f" and {len(partial) - _SHOWN} more" if len(partial) > _SHOWN else ""
    )
    return [
        f"{len(partial)} reference ICD-10 code(s) are not billable codes ({shown}): an answer "
        "can match them at category level only, and constrained decoding never exactly"
    ]


def unusable_reference_messages(cases: Sequence[Case], scored: dict[str, list[Case]]) -> list[str]:
    """One line per task whose reference answer some cases lack (a placeholder regimen)."""
    out = []
    for task, task_cases in scored.items():
        kept = {case.case_id for case in task_cases}
        left = [case for case in cases if case.case_id not in kept]
        if left:
            shown = ", ".join(
                f"{case.case_id} ({answer_problem(case, task)})" for case in left[:_SHOWN]
            )
            more = f" and {len(left) - _SHOWN} more" if len(left) > _SHOWN else ""
            outcome = (
                f"{task} is scored on the other {len(task_cases)}"
                if task_cases
                else f"{task} is not scored nor compared for any system, and leaves the Holm "
                "correction's families"
            )
            out.append(
                f"{len(left)} case(s) have no usable {task} reference ({shown}{more}): {outcome}"
            )
    return out


def uncompared_messages(
    per_case: dict[str, dict[str, list[dict]]], pairs: Sequence[tuple[str, str]]
) -> list[str]:
    """One line per pair and task that one side evaluated and the other did not."""
    out = []
    for system, baseline in pairs:
        for task in TASKS:
            lacking = [name for name in (system, baseline) if task not in per_case.get(name, {})]
            if len(lacking) == 1:
                out.append(
                    f"{system} vs {baseline}: {task} not compared ({lacking[0]} has no "
                    f"{task} predictions)"
                )
    return out


def decoding_messages(
    files: dict[str, PredictionFile], pairs: Sequence[tuple[str, str]]
) -> list[str]:
    """A pair of systems decoded differently: a constrained ICD-10 answer is the code alone,
    a free one the model's whole text, so their ROUGE-1 measures different texts."""
    out = []
    for system, baseline in pairs:
        # Baselines record no model decoding ("none"): only models' decodings differ so.
        decodings = {
            name: files[name].decodings & {"constrained", "free"}
            for name in (system, baseline)
            if name in files
        }
        kinds = {frozenset(found) for found in decodings.values() if found}
        if len(kinds) > 1:
            said = ", ".join(f"{name} {'/'.join(sorted(d))}" for name, d in decodings.items())
            out.append(
                f"{system} vs {baseline}: decoded differently ({said}); an ICD-10 answer's "
                "ROUGE-1 reads the code alone when constrained and the whole text when free, so "
                "compare their accuracies, not their ICD-10 ROUGE-1"
            )
    return out


def same_content_messages(files: dict[str, PredictionFile]) -> list[str]:
    """Two systems read from byte-identical files: their comparison tests nothing."""
    by_hash: dict[str, list[str]] = {}
    for name, file in files.items():
        by_hash.setdefault(file.sha256, []).append(name)
    return [
        f"systems {', '.join(names)} read byte-identical prediction files "
        f"({', '.join(str(files[n].path) for n in names)}): every paired difference is zero"
        for names in by_hash.values()
        if len(names) > 1
    ]


@dataclass
class Evaluation:
    metrics: dict
    messages: list[str]
    out: Path


def evaluate_predictions(
    cases: Sequence[Case],
    predictions: dict[str, str | Path],
    out: str | Path,
    *,
    compare: Sequence[tuple[str, str]] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    cases_file: str | Path | None = None,
) -> Evaluation:
    """Score every system on every case, compare pairs, write metrics.json and per_case.jsonl."""
    started = dt.datetime.now(dt.UTC)
    if not cases:
        raise RadoncInputError("the case file holds no cases", file=cases_file)
    if n_resamples < 1:
        raise RadoncInputError("needs at least 1 bootstrap resample", field="bootstrap")
    if seed < 0:
        raise RadoncInputError(f"must be 0 or more (a NumPy seed), got {seed}", field="seed")
    case_ids = {case.case_id for case in cases}
    if len(case_ids) < len(cases):
        # read_cases refuses these; cases built in code must not be scored twice either.
        twice = [cid for cid, count in Counter(c.case_id for c in cases).items() if count > 1]
        raise RadoncInputError(
            f"{len(twice)} duplicate case_id(s) ({', '.join(map(repr, twice[:_SHOWN]))}): "
            "each case is scored once, so each needs its own id",
            file=cases_file,
            field="case_id",
        )
    out = Path(out)
    check_output_folder(out)
    messages: list[str] = []
    files = {name: read_prediction_file(name, path, case_ids) for name, path in predictions.items()}
    for name, file in files.items():
        reason = nothing_usable_reason(file)
        if reason is not None:
            raise RadoncInputError(reason, file=file.path, field=name)
    for file in files.values():
        messages.extend(file_messages(file, len(cases)))
    messages.extend(same_content_messages(files))
    if len(cases) < 2:
        messages.append("only 1 case: no bootstrap 95% CIs (they need at least 2 cases)")
    messages.extend(reference_messages(cases))
    # A case whose reference answer is a placeholder ("None Gy in nan fractions") has nothing
    # to score against: it leaves that task's scoring, the same for every system, and is named.
    scored = {
        task: [case for case in cases if answer_problem(case, task) is None] for task in TASKS
    }
    messages.extend(unusable_reference_messages(cases, scored))
    pairs = list(compare) if compare is not None else parse_compare_args(None, list(files))
    if compare is None and not pairs and len(files) > 1:
        messages.append(
            f"no system is named {DEFAULT_BASELINE!r} and no --compare was given: "
            "no statistical comparisons"
        )

    systems: dict[str, dict] = {}
    per_case: dict[str, dict[str, list[dict]]] = {}
    per_case_rows: list[dict] = []
    for name, file in files.items():
        systems[name] = {}
        per_case[name] = {}
        for task in TASKS:
            task_cases = scored[task]
            if task not in file.tasks or not task_cases:
                continue
            references = [task_answer(case, task) for case in task_cases]
            usable = [file.answers.get((case.case_id, task)) for case in task_cases]
            predicted = [u.prediction if u is not None else None for u in usable]
            raws = [u.raw if u is not None else "" for u in usable]
            block, rows = TASK_METRICS[task](
                references, predicted, raws, n_resamples=n_resamples, seed=seed
            )
            systems[name][task] = block
            per_case[name][task] = rows
            for case, reference, prediction, raw, row in zip(
                task_cases, references, predicted, raws, rows, strict=True
            ):
                per_case_rows.append(
                    {
                        "system": name,
                        "case_id": case.case_id,
                        "task": task,
                        "reference": reference,
                        "prediction": prediction,
                        "raw": raw,
                        **row,
                    }
                )
    comparisons = compare_systems(per_case, pairs)
    messages.extend(uncompared_messages(per_case, pairs))
    messages.extend(decoding_messages(files, pairs))
    metrics = {
        "systems": systems,
        "comparisons": comparisons,
        "inputs": {name: file.summary() for name, file in files.items()},
        "n_cases": len(cases),
        "settings": {
            "prompt_version": PROMPT_VERSION,
            "bootstrap": {
                "resamples": n_resamples,
                "confidence": 0.95,
                "seed": seed,
                "method": "percentile, cases resampled with replacement",
            },
            "tests": {
                "alternative": f"{ALTERNATIVE}: the system scores higher than the baseline",
                "wilcoxon_zero_method": statistics.ZERO_METHOD,
                "wilcoxon_zero_differences": statistics.ZERO_METHOD_NOTE,
                "per_case_scores": {
                    task: f"{score} ({metric})"
                    for task, (metric, score, _) in TASK_TEST_SCORES.items()
                },
                "mcnemar": "exact binomial test on discordant pairs (classification tasks)",
                "effect_size": "matched-pairs rank-biserial correlation",
                "multiplicity": "Holm across tasks within each (system, baseline, test); a "
                "family holds the tasks both systems were scored on (holm_family_size)",
            },
            "rouge": "rouge-score F-measure, no stemming; modality and icd10 on the raw answer",
            "eqd2_alpha_beta": EQD2_ALPHA_BETA,
            "dose_tolerance_gy": DOSE_TOLERANCE_GY,
        },
        "messages": messages,
    }
    versions = {}
    for package in ("radonc-llm", "scikit-learn", "scipy", "rouge-score", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    manifest = {
        "command": "evaluate",
        "cases_file": str(cases_file) if cases_file else None,
        "cases_sha256": file_sha256(cases_file) if cases_file else None,
        "predictions": {name: file.summary()["sha256"] for name, file in files.items()},
        "compare": [f"{a}:{b}" for a, b in pairs],
        "seed": seed,
        "versions": versions,
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "metrics.json", metrics)
        write_jsonl_atomic(out / "per_case.jsonl", per_case_rows)
        write_json_atomic(out / "manifest.json", manifest)
    except OSError as exc:
        # Permission, disk full, a read-only mount: checked up front, but they can still happen.
        raise RadoncInputError(
            f"cannot write the results ({exc.strerror or exc})", file=exc.filename or out
        ) from None
    return Evaluation(metrics=metrics, messages=messages, out=out)


# Metrics shown in the terminal per task; metrics.json holds all of them.
TABLE_METRICS: dict[str, tuple[str, ...]] = {
    "modality": ("accuracy", "macro_f1", "weighted_f1", "rouge1_f", "malformed_rate"),
    "icd10": (
        "exact_accuracy",
        "category_accuracy",
        "chapter_accuracy",
        "macro_f1",
        "rouge1_f",
        "malformed_rate",
    ),
    "regimen": (
        "rouge1_f",
        "rougeL_f",
        "exact_match",
        "dose_match",
        "fractions_match",
        "concurrent_match",
        "eqd2_abs_error",
    ),
}


def _cell(block: dict, metric: str) -> str:
    value = block.get(metric)
    if value is None:
        return "-"
    interval = (block.get("ci95") or {}).get(metric)
    text = f"{value:.3f}"
    return f"{text} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else text


def summary_tables(metrics: dict) -> list:
    """Rich tables: one per task (systems x metrics, with 95% CIs) and one of comparisons."""
    from rich.markup import escape
    from rich.table import Table

    # System names are the user's words: "[b]" in one is text, not rich markup.
    tables = []
    for task in TASKS:
        names = [name for name, blocks in metrics["systems"].items() if task in blocks]
        if not names:
            continue
        # A task's n: its cases with a usable reference (every system scores the same ones).
        n = metrics["systems"][names[0]][task].get("n", metrics["n_cases"])
        table = Table(title=f"{task} (n = {n}; value [95% CI])")
        table.add_column("system")
        for metric in TABLE_METRICS[task]:
            table.add_column(metric, justify="right")
        for name in names:
            block = metrics["systems"][name][task]
            table.add_row(escape(name), *(_cell(block, metric) for metric in TABLE_METRICS[task]))
        tables.append(table)
    if metrics["comparisons"]:
        table = Table(title="Paired comparisons (one-sided: system > baseline; Holm across tasks)")
        for column in (
            "task",
            "metric",
            "system",
            "baseline",
            "test",
            "statistic",
            "p",
            "p (Holm)",
            "rank-biserial",
            "n",
        ):
            table.add_column(
                column,
                justify="left"
                if column in ("task", "metric", "system", "baseline", "test")
                else "right",
            )
        for row in metrics["comparisons"]:
            table.add_row(
                row["task"],
                row["metric"],
                escape(row["system"]),
                escape(row["baseline"]),
                row["test"],
                f"{row['statistic']:g}",
                f"{row['p_value']:.4g}",
                f"{row['p_holm']:.4g}",
                f"{row['effect_size']:+.3f}",
                str(row["n"]),
            )
        tables.append(table)
    return tables
