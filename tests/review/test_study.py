"""Building a blinded study: assignment, blinding, seeds, and bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from radonc_llm.errors import RadoncInputError
from radonc_llm.review.study import (
    create_study,
    parse_prediction_specs,
    parse_reviewers,
    read_regimen_predictions,
    read_study,
    write_study,
)
from tests.review.conftest import write_jsonl


def test_every_item_goes_to_overlap_reviewers_with_balanced_queues(cases_file, prediction_files):
    study = create_study(
        cases_file, prediction_files, reviewers=["r1", "r2", "r3", "r4"], overlap=2, seed=3
    )
    assert study.sources == ["reference", "base", "finetuned"]
    assert len(study.items) == 6 * 3
    per_item = Counter(entry.item_id for queue in study.queues.values() for entry in queue)
    assert set(per_item.values()) == {2} and len(per_item) == 18
    for queue in study.queues.values():
        assert len({entry.item_id for entry in queue}) == len(queue)  # no item twice
    lengths = [len(queue) for queue in study.queues.values()]
    assert max(lengths) - min(lengths) <= 1 and sum(lengths) == 36
    public_ids = [entry.public_id for queue in study.queues.values() for entry in queue]
    assert len(set(public_ids)) == len(public_ids)
    # Opaque ids say nothing about the case or the source.
    for item in study.items:
        assert item.case_id not in item.item_id and item.source not in item.item_id


def test_texts_come_from_the_right_source(cases_file, prediction_files):
    study = create_study(cases_file, prediction_files, reviewers=["a"], seed=0)
    text = {(item.case_id, item.source): item.regimen_text for item in study.items}
    assert text[("case1", "reference")] == "70 Gy/28 fx"
    assert text[("case1", "base")] == "31 Gy/10 fx"
    assert text[("case1", "finetuned")] == "70 Gy/28 fx"
    # A malformed answer (prediction null) is shown as the model's raw text.
    assert text[("case2", "base")] == "garbled <b>output</b>"


def sequence(study, reviewer: str) -> list[tuple[str, str]]:
    key = {item.item_id: (item.case_id, item.source) for item in study.items}
    return [key[entry.item_id] for entry in study.queues[reviewer]]


def test_queues_are_reproducible_from_the_seed(cases_file, prediction_files, tmp_path):
    first = create_study(cases_file, prediction_files, reviewers=["a", "b"], overlap=2, seed=11)
    again = create_study(cases_file, prediction_files, reviewers=["a", "b"], overlap=2, seed=11)
    other = create_study(cases_file, prediction_files, reviewers=["a", "b"], overlap=2, seed=12)
    assert first.study_id == again.study_id and first.queues == again.queues
    assert first.study_id != other.study_id
    assert sequence(first, "a") != sequence(other, "a")
    # Both reviewers see the same 18 items, in different orders.
    assert sequence(first, "a") != sequence(first, "b")
    assert sorted(sequence(first, "a")) == sorted(sequence(first, "b"))
    # A case's three answers are never side by side (6 cases: at least 5 items apart).
    for reviewer in ("a", "b"):
        cases = [case for case, _ in sequence(first, reviewer)]
        for position, case in enumerate(cases):
            assert case not in cases[position + 1 : position + 6]
    assert set(first.reviewer_seeds) == {"a", "b"}
    write_study(first, tmp_path / "s")
    assert read_study(tmp_path / "s") == first


def test_sample_and_no_control(cases_file, prediction_files):
    study = create_study(
        cases_file,
        {"base": prediction_files["base"]},
        reviewers=["a"],
        sample=4,
        include_reference=False,
    )
    assert study.sources == ["base"]
    assert len({item.case_id for item in study.items}) == 4


def test_reviewer_and_source_options():
    assert parse_reviewers("3") == ["reviewer1", "reviewer2", "reviewer3"]
    assert parse_reviewers("alice, bob") == ["alice", "bob"]
    with pytest.raises(RadoncInputError, match="named twice"):
        parse_reviewers("a,a")
    with pytest.raises(RadoncInputError, match="not a valid username"):
        parse_reviewers("a,<b>")
    assert parse_prediction_specs(["base=x.jsonl"]) == {"base": Path("x.jsonl")}
    with pytest.raises(RadoncInputError, match="reserved"):
        parse_prediction_specs(["reference=x.jsonl"])
    with pytest.raises(RadoncInputError, match="NAME=PATH"):
        parse_prediction_specs(["x.jsonl"])
    with pytest.raises(RadoncInputError, match="given twice"):
        parse_prediction_specs(["a=x", "a=y"])


def bad_row(tmp_path: Path, row: dict, *, before: list[dict] | None = None) -> Path:
    good = {
        "case_id": "case1",
        "task": "regimen",
        "prediction": "x",
        "raw": "x",
        "malformed": False,
    }
    return write_jsonl(tmp_path / "bad.jsonl", (before or [good]) + [row])


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        (
            {"task": "regimen", "prediction": "x", "raw": "x", "malformed": False},
            "case_id",
            "required",
        ),
        (
            {"case_id": "c", "task": "dose", "prediction": "x", "raw": "x", "malformed": False},
            "task",
            "regimen",
        ),
        (
            {"case_id": "c", "task": "regimen", "prediction": 5, "raw": "x", "malformed": False},
            "prediction",
            "string",
        ),
        (
            {"case_id": "c", "task": "regimen", "prediction": None, "malformed": True},
            "raw",
            "required",
        ),
        (
            {
                "case_id": "case1",
                "task": "regimen",
                "prediction": "y",
                "raw": "y",
                "malformed": False,
            },
            "case_id",
            "line 1",
        ),
    ],
)
def test_bad_prediction_rows_name_file_line_and_field(tmp_path, row, field, reason):
    path = bad_row(tmp_path, row)
    with pytest.raises(RadoncInputError) as caught:
        read_regimen_predictions(path)
    assert caught.value.file == str(path) and caught.value.row == 2
    assert caught.value.field == field and reason in caught.value.reason


def test_missing_and_unknown_cases_are_errors(cases_file, prediction_files, tmp_path):
    rows = [json.loads(line) for line in prediction_files["base"].read_text().splitlines()]
    missing = write_jsonl(tmp_path / "missing.jsonl", [r for r in rows if r["case_id"] != "case3"])
    with pytest.raises(RadoncInputError, match="no regimen prediction for 1 case.*case3") as caught:
        create_study(cases_file, {"base": missing}, reviewers=["a"])
    assert caught.value.file == str(missing)
    extra = write_jsonl(
        tmp_path / "extra.jsonl",
        rows
        + [
            {
                "case_id": "ghost",
                "task": "regimen",
                "prediction": "x",
                "raw": "x",
                "malformed": False,
            }
        ],
    )
    with pytest.raises(RadoncInputError, match="not in the case file.*ghost"):
        create_study(cases_file, {"base": extra}, reviewers=["a"])
    with pytest.raises(RadoncInputError, match="overlap 3") as caught:
        create_study(cases_file, prediction_files, reviewers=["a", "b"], overlap=3)
    assert caught.value.field == "overlap"
