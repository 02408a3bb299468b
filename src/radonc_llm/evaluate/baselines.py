"""Reference systems, so that a model's number means something. Same prediction format.

- `majority`: the most frequent training answer of each task (ties: the first seen).
- `tfidf-logreg`: TF-IDF of the diagnosis note (words and word pairs) + logistic regression;
  modality and ICD-10 only (a regimen is not a class).
- `nearest-regimen`: the regimen of the most similar training case (TF-IDF cosine).
- `few-shot`: the original model, prompted with the k most similar training cases as earlier
  chat turns, then the case; runs through the same resumable prediction loop as `predict`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radonc_llm.data.cases import TASKS, Case, Note
from radonc_llm.errors import RadoncInputError
from radonc_llm.infer.backends import Answer
from radonc_llm.infer.predict import prediction_row
from radonc_llm.storage import write_jsonl_atomic
from radonc_llm.tasks.build import answer_problem, task_answer, task_target
from radonc_llm.tasks.prompts import PROMPT_VERSION, SYSTEM_PROMPT, user_message

BASELINE_TASKS: dict[str, tuple[str, ...]] = {
    "majority": TASKS,
    "tfidf-logreg": ("modality", "icd10"),
    "nearest-regimen": ("regimen",),
    "few-shot": TASKS,
}
BASELINE_KINDS: tuple[str, ...] = tuple(BASELINE_TASKS)


def majority_answers(train: Sequence[Case], cases: Sequence[Note], task: str) -> list[str]:
    counts = Counter(task_answer(case, task) for case in train)
    top = max(counts.values())
    answer = next(a for a in (task_answer(c, task) for c in train) if counts[a] == top)
    return [answer] * len(cases)


def _vectorizer(n_notes: int):
    from sklearn.feature_extraction.text import TfidfVectorizer

    # Terms seen in one training note only tell nothing about other notes: dropping them
    # halves the features and the logistic regression's time at the same accuracy (demo
    # cohort). A handful of notes keeps every term.
    min_df = 2 if n_notes >= 100 else 1
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True, min_df=min_df)


def _fit_on_notes(fit, notes: Sequence[str]):
    """`fit(notes)`, with scikit-learn's "empty vocabulary" (notes of only punctuation or
    one-letter words, which TF-IDF does not read) said as what it means for a baseline."""
    try:
        return fit(notes)
    except ValueError as exc:
        if "empty vocabulary" in str(exc):
            why = "hold no word that TF-IDF reads (words of two or more letters or digits)"
        elif "no terms remain" in str(exc):
            why = "share no word: none is in two or more of them"
        else:
            raise
        raise RadoncInputError(
            f"the {len(notes)} training diagnosis note(s) {why}, so there is nothing to learn "
            "from; use --kind majority or a training file with real notes",
            field="train",
        ) from None


def tfidf_logreg_answers(
    train: Sequence[Case], cases: Sequence[Note], task: str, *, seed: int = 0
) -> list[str]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    labels = [task_answer(case, task) for case in train]
    if len(set(labels)) == 1:
        return [labels[0]] * len(cases)
    model = make_pipeline(
        _vectorizer(len(train)), LogisticRegression(max_iter=2000, random_state=seed)
    )
    _fit_on_notes(lambda notes: model.fit(notes, labels), [c.diagnosis_text for c in train])
    return [str(label) for label in model.predict([case.diagnosis_text for case in cases])]


class NearestCases:
    """Training cases ranked by TF-IDF cosine similarity of their diagnosis notes."""

    def __init__(self, train: Sequence[Case]) -> None:
        self.train = list(train)
        self._vectorizer = _vectorizer(len(train))
        self._matrix = _fit_on_notes(
            self._vectorizer.fit_transform, [case.diagnosis_text for case in self.train]
        )

    def nearest(self, case: Note, k: int) -> list[Case]:
        """The k most similar training cases, most similar first; never the same patient."""
        similarity = self._matrix @ self._vectorizer.transform([case.diagnosis_text]).T
        scores = np.asarray(similarity.todense()).ravel()
        order = np.argsort(-scores, kind="stable")
        picked = []
        for index in order:
            candidate = self.train[index]
            if candidate.patient_id == case.patient_id or candidate.case_id == case.case_id:
                continue
            picked.append(candidate)
            if len(picked) == k:
                break
        return picked


def nearest_regimen_answers(train: Sequence[Case], cases: Sequence[Note]) -> list[str]:
    index = NearestCases(train)
    answers = []
    for case in cases:
        nearest = index.nearest(case, 1)
        if not nearest:
            raise RadoncInputError(
                f"case {case.case_id!r}: every training case is of the same patient, so "
                "nearest-regimen has no other patient's regimen to give",
                field="train",
            )
        answers.append(nearest[0].regimen)
    return answers


def few_shot_messages(case: Note, task: str, examples: Sequence[Case]) -> list[dict[str, str]]:
    """System prompt, then each example as a user/assistant exchange (most similar last),
    then the case: the same prompts as `predict`, with worked examples in front."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for example in reversed(list(examples)):
        messages.append({"role": "user", "content": user_message(task, example.diagnosis_text)})
        messages.append({"role": "assistant", "content": task_target(example, task)})
    messages.append({"role": "user", "content": user_message(task, case.diagnosis_text)})
    return messages


@dataclass
class BaselineSummary:
    kind: str
    out: Path
    tasks: dict[str, dict[str, int]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    # Tasks a model answered together (few-shot): their cases/s is shared.
    answered_together: list[list[str]] = field(default_factory=list)


def _overlap_messages(train: Sequence[Case], cases: Sequence[Note]) -> list[str]:
    shared = {c.patient_id for c in train} & {c.patient_id for c in cases}
    if not shared:
        return []
    return [
        f"{len(shared)} patient(s) appear in both the training and the evaluated cases "
        f"(e.g. {sorted(shared)[:3]}): the baseline sees them in training"
    ]


def run_baseline(
    kind: str,
    train: Sequence[Case],
    cases: Sequence[Note],
    out: str | Path,
    *,
    tasks: Sequence[str] | None = None,
    k: int = 3,
    model: str = "smollm2-135m",
    decoding: str | None = None,  # few-shot: as `predict_cases`
    batch_size: int | None = None,
    dtype: str = "float32",
    processes: int = 1,
    backend: Any = None,
    seed: int = 0,
    console: Any = None,
    show_progress: bool = True,
) -> BaselineSummary:
    """Write the baseline's predictions for `cases` to `out` (the prediction file format)."""
    if kind not in BASELINE_TASKS:
        raise RadoncInputError(
            f"unknown baseline '{kind}'; expected {', '.join(BASELINE_KINDS)}", field="kind"
        )
    if not 0 <= seed < 2**32:
        # scikit-learn's random_state range; found here, not after the vectoriser has run.
        raise RadoncInputError(f"must be between 0 and 2**32 - 1, got {seed}", field="seed")
    if not train:
        raise RadoncInputError("the training file holds no cases", field="train")
    if not cases:
        raise RadoncInputError("the case file holds no cases", field="cases")
    if Path(out).is_dir():
        raise RadoncInputError("is a folder; give a prediction file (.jsonl)", file=out)
    supported = BASELINE_TASKS[kind]
    tasks = tuple(tasks) if tasks else supported
    unsupported = [task for task in tasks if task not in supported]
    if unsupported:
        raise RadoncInputError(
            f"baseline {kind} does not answer {', '.join(unsupported)} "
            f"(it answers {', '.join(supported)})",
            field="tasks",
        )
    summary = BaselineSummary(kind=kind, out=Path(out), messages=_overlap_messages(train, cases))
    if kind == "few-shot":
        return _run_few_shot(
            train,
            cases,
            out,
            summary,
            tasks=tasks,
            k=k,
            model=model,
            decoding=decoding,
            batch_size=batch_size,
            dtype=dtype,
            processes=processes,
            backend=backend,
            console=console,
            show_progress=show_progress,
        )
    run_info = {
        "model": f"baseline:{kind}",
        "backend": "baseline",
        "decoding": "none",
        "prompt_version": PROMPT_VERSION,
    }
    rows = []
    for task in tasks:
        learned = _usable_training_cases(train, task, summary.messages)
        if kind == "majority":
            answers = majority_answers(learned, cases, task)
        elif kind == "tfidf-logreg":
            answers = tfidf_logreg_answers(learned, cases, task, seed=seed)
        else:
            answers = nearest_regimen_answers(learned, cases)
        task_rows = [
            {**prediction_row(case.case_id, task, Answer(raw=answer), seconds=0.0), **run_info}
            for case, answer in zip(cases, answers, strict=True)
        ]
        summary.tasks[task] = {
            "cases": len(task_rows),
            "malformed": sum(row["malformed"] for row in task_rows),
        }
        rows.extend(task_rows)
    write_jsonl_atomic(out, rows)
    return summary


def _usable_training_cases(train: Sequence[Case], task: str, messages: list[str]) -> list[Case]:
    """The training cases whose answer for `task` can be a prediction: a placeholder regimen
    ("None Gy in nan fractions") is never predicted. Leaving some out is said in `messages`;
    leaving none is refused."""
    problems = [answer_problem(case, task) for case in train]
    usable = [case for case, problem in zip(train, problems, strict=True) if problem is None]
    left = [(case, problem) for case, problem in zip(train, problems, strict=True) if problem]
    if left:
        example = f"e.g. {left[0][0].case_id}: {left[0][1]}"
        if not usable:
            raise RadoncInputError(
                f"no training case has a usable {task} answer ({example})", field="train"
            )
        messages.append(
            f"{len(left)} training case(s) have no usable {task} answer ({example}); the "
            f"baseline learns {task} from the other {len(usable)}"
        )
    return usable


def _run_few_shot(
    train: Sequence[Case],
    cases: Sequence[Note],
    out: str | Path,
    summary: BaselineSummary,
    *,
    tasks: Sequence[str],
    k: int,
    model: str,
    decoding: str | None,
    batch_size: int | None,
    dtype: str,
    processes: int,
    backend: Any,
    console: Any,
    show_progress: bool,
) -> BaselineSummary:
    from contextlib import nullcontext

    from radonc_llm.infer.parallel import local_backend
    from radonc_llm.infer.predict import predict_cases

    if k < 1:
        raise RadoncInputError("few-shot needs k >= 1 examples", field="k")
    # The examples shown for a task are training cases whose answer to it is usable: a
    # placeholder regimen is never shown as an example.
    learned = {task: _usable_training_cases(train, task, summary.messages) for task in tasks}
    full = NearestCases(train)
    indexes = {
        task: full if len(usable) == len(train) else NearestCases(usable)
        for task, usable in learned.items()
    }
    neighbours: dict[tuple[str, int], list[Case]] = {}

    def messages_for(case: Note, task: str) -> list[dict[str, str]]:
        key = (case.case_id, id(indexes[task]))
        if key not in neighbours:
            neighbours[key] = indexes[task].nearest(case, k)
        return few_shot_messages(case, task, neighbours[key])

    if backend is not None:
        opened = nullcontext(backend)
    else:
        opened = local_backend(model, dtype=dtype, processes=processes)
    with opened as backend:
        result = predict_cases(
            backend,
            cases,
            out,
            tasks=tasks,
            decoding=decoding,
            batch_size=batch_size,
            messages_for=messages_for,
            model_label=f"few-shot(k={k}):{backend.model_name}",
            console=console,
            show_progress=show_progress,
        )
    summary.messages.extend(result.messages)
    summary.answered_together = result.answered_together
    for task, task_summary in result.tasks.items():
        summary.tasks[task] = {
            "cases": task_summary.cases,
            "predicted": task_summary.predicted,
            "malformed": task_summary.malformed,
            "already_done": task_summary.already_done,
            "cases_per_s": task_summary.cases_per_s,
        }
    return summary
