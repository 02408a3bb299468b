"""Batch planning: consecutive batches of sorted prompts, the cheapest split exactly."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from radonc_llm.infer.predict import plan_batches


def _cost(lengths, batches, batch_cost):
    return sum(len(rows) * lengths[rows.start] + batch_cost for rows in batches)


def _all_splits(count, max_rows):
    for cuts in itertools.product((False, True), repeat=count - 1):
        bounds = [0, *(i + 1 for i, cut in enumerate(cuts) if cut), count]
        batches = [range(a, b) for a, b in itertools.pairwise(bounds)]
        if all(len(rows) <= max_rows for rows in batches):
            yield batches


@given(
    st.lists(st.integers(1, 400), min_size=1, max_size=9),
    st.integers(1, 5),
    st.sampled_from([0.0, 10.0, 150.0, 2000.0]),
)
def test_plan_is_the_cheapest_split(lengths, max_rows, batch_cost):
    lengths = sorted(lengths, reverse=True)
    plan = plan_batches(lengths, max_rows, batch_cost)
    assert [i for rows in plan for i in rows] == list(range(len(lengths)))  # each once, in order
    assert all(1 <= len(rows) <= max_rows for rows in plan)
    cheapest = min(_cost(lengths, b, batch_cost) for b in _all_splits(len(lengths), max_rows))
    assert _cost(lengths, plan, batch_cost) == pytest.approx(cheapest)


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
