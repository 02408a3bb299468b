"""Batch planning: consecutive batches of sorted prompts, the cheapest split exactly."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from radonc_llm.infer.predict import AUTO_BATCH_ROWS, batch_rows, plan_batches


def _cost(lengths, batches, batch_cost):
    return sum(len(rows) * lengths[rows.start] + batch_cost for rows in batches)


def _fits(lengths, rows, max_rows, max_chars):
    within_chars = (
        max_chars is None or len(rows) == 1 or len(rows) * lengths[rows.start] <= max_chars
    )
    return len(rows) <= max_rows and within_chars


def _all_splits(lengths, max_rows, max_chars=None):
    count = len(lengths)
    for cuts in itertools.product((False, True), repeat=count - 1):
        bounds = [0, *(i + 1 for i, cut in enumerate(cuts) if cut), count]
        batches = [range(a, b) for a, b in itertools.pairwise(bounds)]
        if all(_fits(lengths, rows, max_rows, max_chars) for rows in batches):
            yield batches


@given(
    st.lists(st.integers(1, 400), min_size=1, max_size=9),
    st.integers(1, 5),
    st.sampled_from([0.0, 10.0, 150.0, 2000.0]),
    st.sampled_from([None, 300, 800]),
)
def test_plan_is_the_cheapest_split(lengths, max_rows, batch_cost, max_chars):
    lengths = sorted(lengths, reverse=True)
    plan = plan_batches(lengths, max_rows, batch_cost, max_chars=max_chars)
    assert [i for rows in plan for i in rows] == list(range(len(lengths)))  # each once, in order
    assert all(_fits(lengths, rows, max_rows, max_chars) for rows in plan)
    splits = _all_splits(lengths, max_rows, max_chars)
    cheapest = min(_cost(lengths, b, batch_cost) for b in splits)
    assert _cost(lengths, plan, batch_cost) == pytest.approx(cheapest)


def test_long_notes_run_a_few_at_a_time():
    lengths = [7_000] * 10 + [500] * 20
    plan = plan_batches(lengths, 16, 0.0, max_chars=32_000)
    assert sorted(len(rows) for rows in plan) == [2, 4, 4, 4, 16]  # 32,000 // 7,000 = 4
    assert [len(rows) for rows in plan_batches([50_000, 40_000], 16, 0.0, max_chars=32_000)] == [
        1,
        1,
    ]


def test_a_long_tail_gets_its_own_small_batch():
    lengths = [400, 390, *([100] * 30)]
    plan = plan_batches(lengths, 16, 200.0)
    assert plan[0] == range(0, 2) and len(plan) == 3
    # Batches cost so much that filling them beats avoiding padding.
    assert [len(rows) for rows in plan_batches(lengths, 16, 10_000.0)] == [16, 16]


def test_empty_and_unsorted_input():
    assert plan_batches([], 8, 10.0) == []
    with pytest.raises(ValueError, match="sorted"):
        plan_batches([1, 2], 8, 10.0)


def test_batch_rows_by_default_more_where_answers_are_decoded():
    scored, decoded = AUTO_BATCH_ROWS["scored"], AUTO_BATCH_ROWS["decoded"]
    assert scored < decoded
    assert batch_rows(["modality"], "constrained", None) == scored
    assert batch_rows(["icd10"], "constrained", None) == decoded  # the trie walk decodes
    assert batch_rows(["regimen"], "constrained", None) == decoded
    assert batch_rows(["modality", "icd10", "regimen"], "constrained", None) == decoded
    assert batch_rows(["modality"], "free", None) == decoded
    assert batch_rows(["modality", "regimen"], "constrained", 5) == 5  # the user's choice wins
