"""Build a blinded review study: cases x sources -> items -> per-reviewer queues.

Each item is one case's diagnosis with one regimen from one source: a model named on the
command line (`--predictions NAME=PATH`) or the reference regimen itself as a control
(source `reference`). Reviewers never see the source: items and queue entries get opaque
random ids, and each reviewer's queue is shuffled with its own recorded seed, keeping a
case's items apart (`spread_shuffle`). With `overlap=k` every item goes to k different
reviewers, always to the least-loaded ones, so queue lengths differ by at most one.

The study definition (`study.json`) is self-contained: texts, sources, seeds and queues, plus
SHA-256 hashes of the input files. The database is loaded from it (`db.load_study`).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from radonc_llm.data.cases import Case
from radonc_llm.errors import RadoncInputError
from radonc_llm.review.models import (
    CASE_ID_MAX,
    REFERENCE_SOURCE,
    USERNAME_MAX,
    USERNAME_PATTERN,
)
from radonc_llm.review.settings import STUDY_FILE
from radonc_llm.storage import file_sha256, iter_jsonl, write_json_atomic

STUDY_FORMAT = "radonc-review-study/1"
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CASE_GAP = 5


class PredictionRow(BaseModel):
    """One line of a prediction file written by `radonc-llm predict` (extra keys allowed)."""

    model_config = ConfigDict(extra="allow")

    case_id: str = Field(min_length=1)
    task: Literal["regimen", "modality", "icd10"]
    prediction: str | None
    # Null when the model gave no text at all (as `evaluate` reads it): shown as no answer.
    raw: str | None
    malformed: bool


class StudyItem(BaseModel):
    item_id: str
    case_id: str
    source: str
    diagnosis_text: str
    regimen_text: str


class QueueEntry(BaseModel):
    public_id: str
    item_id: str


class InputFile(BaseModel):
    path: str
    sha256: str


class StudyDefinition(BaseModel):
    """What `study.json` holds. `study_id` hashes everything except `created_at`."""

    format: Literal["radonc-review-study/1"] = STUDY_FORMAT
    study_id: str
    created_at: datetime
    seed: int
    overlap: int
    sources: list[str]
    inputs: dict[str, InputFile] = Field(
        default_factory=dict, description="'cases' and one entry per prediction source."
    )
    reviewers: list[str]
    reviewer_seeds: dict[str, int]
    items: list[StudyItem]
    queues: dict[str, list[QueueEntry]]

    @model_validator(mode="after")
    def _queues_name_known_items(self) -> StudyDefinition:
        # An edited or damaged study.json: refused here, by name, not deep in the load.
        item_ids = Counter(item.item_id for item in self.items)
        twice = [item_id for item_id, count in item_ids.items() if count > 1]
        if twice:
            raise ValueError(f"item '{twice[0]}' is listed {item_ids[twice[0]]} times")
        unknown_sources = sorted({item.source for item in self.items} - set(self.sources))
        if unknown_sources:
            raise ValueError(f"items of source '{unknown_sources[0]}', which is not in sources")
        public_ids: set[str] = set()
        for reviewer, queue in self.queues.items():
            if reviewer not in self.reviewers:
                raise ValueError(f"a queue for '{reviewer}', who is not among the reviewers")
            seen: set[str] = set()
            for position, entry in enumerate(queue, start=1):
                where = f"queue of '{reviewer}', entry {position}"
                if entry.item_id not in item_ids:
                    raise ValueError(f"{where}: item '{entry.item_id}' is not a study item")
                if entry.item_id in seen:
                    raise ValueError(f"{where}: item '{entry.item_id}' is in this queue twice")
                if entry.public_id in public_ids:
                    raise ValueError(f"{where}: id '{entry.public_id}' is used twice")
                seen.add(entry.item_id)
                public_ids.add(entry.public_id)
        return self


def parse_reviewers(value: str) -> list[str]:
    """`--reviewers 3` -> reviewer1..reviewer3; `--reviewers alice,bob` -> those usernames."""
    value = value.strip()
    if value.isdigit():
        count = int(value)
        if count < 1:
            raise RadoncInputError("need at least one reviewer", field="reviewers")
        return [f"reviewer{number}" for number in range(1, count + 1)]
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise RadoncInputError("give a number or comma-separated usernames", field="reviewers")
    for name in names:
        if len(name) > USERNAME_MAX or not re.fullmatch(USERNAME_PATTERN, name):
            hint = "; separate usernames with commas" if " " in name else ""
            raise RadoncInputError(
                f"'{name}' is not a valid username: 1 to {USERNAME_MAX} ASCII letters, digits, "
                f"'_', '.' or '-', starting with a letter or digit{hint}",
                field="reviewers",
            )
    twice = [name for name, count in Counter(names).items() if count > 1]
    if twice:
        raise RadoncInputError(f"reviewer '{twice[0]}' is named twice", field="reviewers")
    return names


def parse_prediction_specs(specs: list[str]) -> dict[str, Path]:
    """Parse `NAME=PATH` options; names are unique and `reference` is reserved."""
    sources: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip()
        if not sep or not name or not path:
            raise RadoncInputError(f"'{spec}' is not NAME=PATH", field="predictions")
        if not SOURCE_NAME.match(name):
            raise RadoncInputError(
                f"source name '{name}' may use letters, digits, '_', '.', '-'", field="predictions"
            )
        if name == REFERENCE_SOURCE:
            raise RadoncInputError(
                f"'{REFERENCE_SOURCE}' is reserved for the reference-regimen control",
                field="predictions",
            )
        if name in sources:
            raise RadoncInputError(f"source '{name}' is given twice", field="predictions")
        sources[name] = Path(path)
    return sources


def read_regimen_predictions(
    path: str | Path, *, case_ids: set[str] | None = None
) -> dict[str, str]:
    """Map case_id -> the model's regimen text from a prediction file's regimen rows.

    Reviewers judge what the model said: the normalised `prediction` when there is one (not
    blank), otherwise the model's `raw` text (a malformed answer is shown, not hidden). Rows of the
    other tasks are read for validity and otherwise ignored. With `case_ids`, a regimen row
    for any other case is an error naming how many there are and the first one's line.
    """
    texts: dict[str, str] = {}
    first_line: dict[str, int] = {}
    unknown: list[tuple[int, str]] = []
    other_tasks: Counter[str] = Counter()
    for line, obj in iter_jsonl(path):
        try:
            row = PredictionRow.model_validate(obj)
        except ValidationError as exc:
            raise RadoncInputError.from_validation_error(exc, file=path, row=line) from None
        if row.task != "regimen":
            other_tasks[row.task] += 1
            continue
        if row.case_id in texts:
            raise RadoncInputError(
                f"second regimen row for case '{row.case_id}' (first on line "
                f"{first_line[row.case_id]})",
                file=path,
                row=line,
                field="case_id",
            )
        first_line[row.case_id] = line
        # Surrounding whitespace goes: raw output often ends in a newline that reference
        # regimens never have, and the page (pre-wrap) would show it, hinting at the source.
        texts[row.case_id] = (row.prediction or "").strip() or (row.raw or "").strip()
        if case_ids is not None and row.case_id not in case_ids:
            unknown.append((line, row.case_id))
    if not texts:
        held = ", ".join(f"{count} of task {task}" for task, count in sorted(other_tasks.items()))
        raise RadoncInputError(
            (f"has no regimen rows, only {held}" if held else "has no prediction rows at all")
            + "; the review shows regimen answers: predict the regimen task into this file",
            file=path,
        )
    if unknown:
        line, case_id = unknown[0]
        raise RadoncInputError(
            f"{len(unknown)} regimen row(s) for cases not in the case file; the first is "
            f"for '{case_id}'",
            file=path,
            row=line,
            field="case_id",
        )
    return texts


def _opaque_ids(rng: np.random.Generator, count: int, nbytes: int) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        token = rng.bytes(nbytes).hex()
        if token not in seen:
            seen.add(token)
            ids.append(token)
    return ids


def spread_shuffle(
    item_ids: list[str], case_of: dict[str, str], rng: np.random.Generator
) -> list[str]:
    """A random order in which a case's items are at least CASE_GAP items apart, if possible.

    Two answers for one case side by side would invite comparing them instead of judging
    each on its own. Greedy scheduling: among the shuffled items whose case is not among
    the last CASE_GAP placed, take one of the case with the most items left (ties: shuffled
    order); when none fits, take the next item anyway.
    """
    pending = [item_ids[index] for index in rng.permutation(len(item_ids)).tolist()]
    left = Counter(case_of[item] for item in item_ids)
    gap = min(CASE_GAP, len(left) - 1)
    order: list[str] = []
    while pending:
        recent = {case_of[item] for item in order[len(order) - gap :]} if gap > 0 else set()
        fits = [i for i, item in enumerate(pending) if case_of[item] not in recent] or [0]
        pick = max(fits, key=lambda i: (left[case_of[pending[i]]], -i))
        left[case_of[pending[pick]]] -= 1
        order.append(pending.pop(pick))
    return order


def _refuse_nul(text: str, case_id: str, *, file: str | Path, field: str) -> None:
    # PostgreSQL text cannot hold NUL: refuse it here instead of failing in the load.
    if "\x00" in text:
        raise RadoncInputError(
            f"case '{case_id}' has a NUL character (\\x00) in its text", file=file, field=field
        )


def build_study(
    cases: list[Case],
    predictions: dict[str, dict[str, str]],
    *,
    reviewers: list[str],
    overlap: int = 1,
    seed: int = 0,
    include_reference: bool = True,
    sample: int | None = None,
    inputs: dict[str, InputFile] | None = None,
    prediction_files: dict[str, Path] | None = None,
) -> StudyDefinition:
    """Assign every (case, source) item to `overlap` reviewers and shuffle each queue.

    Every sampled case must have a regimen in every prediction source and every prediction
    must belong to a known case: nothing is dropped silently. `prediction_files` only
    names the files in error messages.
    """
    if not reviewers:
        raise RadoncInputError("need at least one reviewer", field="reviewers")
    if not 1 <= overlap <= len(reviewers):
        raise RadoncInputError(
            f"overlap {overlap} must be between 1 and the number of reviewers ({len(reviewers)})",
            field="overlap",
        )
    if not predictions and not include_reference:
        raise RadoncInputError("nothing to review: no predictions and no reference control")
    if not cases:
        raise RadoncInputError("no cases to review", field="cases")
    files = prediction_files or {}
    cases_file = inputs["cases"].path if inputs and "cases" in inputs else "cases"
    case_ids = {case.case_id for case in cases}
    for name, texts in predictions.items():
        unknown = sorted(set(texts) - case_ids)
        if unknown:
            raise RadoncInputError(
                f"{len(unknown)} regimen prediction(s) for cases not in the case file, "
                f"e.g. '{unknown[0]}'",
                file=files.get(name, name),
                field="case_id",
            )
        missing = sorted(case_ids - set(texts))
        if missing:
            raise RadoncInputError(
                f"no regimen prediction for {len(missing)} case(s), e.g. '{missing[0]}'",
                file=files.get(name, name),
                field="case_id",
            )

    rng = np.random.default_rng(seed)
    chosen = list(cases)
    if sample is not None:
        if not 1 <= sample <= len(cases):
            raise RadoncInputError(
                f"sample {sample} must be between 1 and the number of cases ({len(cases)})",
                field="sample",
            )
        picks = sorted(rng.choice(len(cases), size=sample, replace=False).tolist())
        chosen = [cases[index] for index in picks]

    sources = ([REFERENCE_SOURCE] if include_reference else []) + sorted(predictions)
    items: list[StudyItem] = []
    item_ids = _opaque_ids(rng, len(chosen) * len(sources), 6)
    for case in chosen:
        # PostgreSQL refuses a longer one at load time (SQLite would keep it): same on both.
        if len(case.case_id) > CASE_ID_MAX:
            raise RadoncInputError(
                f"case_id '{case.case_id[:40]}...' has {len(case.case_id)} characters; the "
                f"review keeps case ids of at most {CASE_ID_MAX}",
                file=cases_file,
                field="case_id",
            )
        _refuse_nul(case.diagnosis_text, case.case_id, file=cases_file, field="diagnosis_text")
        for source in sources:
            if source == REFERENCE_SOURCE:
                text = case.regimen.strip()
                _refuse_nul(text, case.case_id, file=cases_file, field="regimen")
            else:
                text = predictions[source][case.case_id]
                _refuse_nul(text, case.case_id, file=files.get(source, source), field="prediction")
            items.append(
                StudyItem(
                    item_id=item_ids[len(items)],
                    case_id=case.case_id,
                    source=source,
                    diagnosis_text=case.diagnosis_text,
                    regimen_text=text,
                )
            )

    # Balanced assignment: each item (in random order) goes to the `overlap` reviewers with
    # the fewest items so far; ties are broken by a random reviewer order.
    loads = dict.fromkeys(reviewers, 0)
    assigned: dict[str, list[str]] = {name: [] for name in reviewers}
    for index in rng.permutation(len(items)).tolist():
        tiebreak = rng.permutation(len(reviewers)).tolist()
        order = sorted(range(len(reviewers)), key=lambda r: (loads[reviewers[r]], tiebreak[r]))
        for r in order[:overlap]:
            loads[reviewers[r]] += 1
            assigned[reviewers[r]].append(items[index].item_id)

    idle = [name for name in reviewers if not assigned[name]]
    if idle:
        warnings.warn(
            f"{len(idle)} of {len(reviewers)} reviewers get no item ({', '.join(idle)}): "
            f"{len(items)} items x overlap {overlap} is fewer than the reviewers; review more "
            "cases, raise --overlap or name fewer reviewers",
            stacklevel=2,
        )
    reviewer_seeds = {name: int(rng.integers(0, 2**31 - 1)) for name in reviewers}
    public_ids = iter(_opaque_ids(rng, sum(loads.values()), 8))
    case_of = {item.item_id: item.case_id for item in items}
    queues: dict[str, list[QueueEntry]] = {}
    for name in reviewers:
        queue = spread_shuffle(
            sorted(assigned[name]), case_of, np.random.default_rng(reviewer_seeds[name])
        )
        queues[name] = [QueueEntry(public_id=next(public_ids), item_id=item) for item in queue]

    draft = StudyDefinition(
        study_id="",
        created_at=datetime.now(UTC),
        seed=seed,
        overlap=overlap,
        sources=sources,
        inputs=inputs or {},
        reviewers=list(reviewers),
        reviewer_seeds=reviewer_seeds,
        items=items,
        queues=queues,
    )
    content = draft.model_dump(mode="json", exclude={"study_id", "created_at"})
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return draft.model_copy(update={"study_id": f"study-{digest[:16]}"})


def create_study(
    cases_path: str | Path,
    prediction_files: dict[str, Path],
    *,
    reviewers: list[str],
    overlap: int = 1,
    seed: int = 0,
    include_reference: bool = True,
    sample: int | None = None,
) -> StudyDefinition:
    """Read the case file and prediction files, then `build_study`."""
    from radonc_llm.data.cases import read_cases

    cases = read_cases(cases_path)
    case_ids = {case.case_id for case in cases}
    predictions = {
        name: read_regimen_predictions(path, case_ids=case_ids)
        for name, path in prediction_files.items()
    }
    inputs = {"cases": InputFile(path=str(cases_path), sha256=file_sha256(cases_path))}
    for name, path in prediction_files.items():
        inputs[name] = InputFile(path=str(path), sha256=file_sha256(path))
    return build_study(
        cases,
        predictions,
        reviewers=reviewers,
        overlap=overlap,
        seed=seed,
        include_reference=include_reference,
        sample=sample,
        inputs=inputs,
        prediction_files=prediction_files,
    )


def write_study(study: StudyDefinition, study_dir: str | Path) -> Path:
    path = Path(study_dir) / STUDY_FILE
    try:
        write_json_atomic(path, study.model_dump(mode="json"))
    except OSError as exc:
        raise RadoncInputError(f"cannot write the study ({exc.strerror})", file=path) from None
    return path


def read_study(study_dir: str | Path) -> StudyDefinition:
    if Path(study_dir).is_file():
        raise RadoncInputError(
            f"is a file; give the study folder (the one holding {STUDY_FILE})", file=study_dir
        )
    path = Path(study_dir) / STUDY_FILE
    if not path.exists():
        raise RadoncInputError(
            "no study.json here; create one with `radonc-llm review create-study`", file=path
        )
    try:
        return StudyDefinition.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise RadoncInputError(f"cannot read the study ({exc.strerror})", file=path) from None
    except ValidationError as exc:
        raise RadoncInputError.from_validation_error(exc, file=path) from None
