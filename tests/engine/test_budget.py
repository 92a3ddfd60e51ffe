"""Knapsack RL's per-prompt rollout budget (workers/engine/budget.py)."""

import itertools
import random

import pytest

from workers.engine.budget import (
    allocation_value,
    knapsack_allocation,
    success_estimate,
)


def test_success_estimate_is_smoothed_off_zero_and_one():
    assert success_estimate(0, 8) == pytest.approx(0.5 / 9)
    assert success_estimate(8, 8) == pytest.approx(8.5 / 9)
    assert success_estimate(3, 4) == pytest.approx(0.7)
    assert success_estimate(0, 0) == 0.5
    assert 0 < success_estimate(0, 100) < success_estimate(0, 2) < 0.5


@pytest.mark.parametrize("s, n", [(-1, 4), (5, 4), (0, -1)])
def test_success_estimate_refuses_impossible_counts(s, n):
    with pytest.raises(ValueError):
        success_estimate(s, n)


def test_allocation_value_at_known_points():
    # (1 - p^n - (1-p)^n) p (1-p)^2
    assert allocation_value(2, 0.5) == pytest.approx((1 - 0.25 - 0.25) * 0.5 * 0.25)
    assert allocation_value(4, 0.25) == pytest.approx((1 - 0.25**4 - 0.75**4) * 0.25 * 0.75**2)
    assert allocation_value(1, 0.3) == pytest.approx(0.0)  # one completion never has spread
    assert allocation_value(8, 0.0) == 0.0 and allocation_value(8, 1.0) == 0.0


def test_allocation_value_is_concave_in_n():
    for p in (0.01, 0.1, 0.3, 0.5, 0.7, 0.95):
        gains = [allocation_value(n + 1, p) - allocation_value(n, p) for n in range(1, 40)]
        assert all(a >= b - 1e-15 for a, b in itertools.pairwise(gains))


@pytest.mark.parametrize("n, p", [(-1, 0.5), (2, -0.1), (2, 1.5)])
def test_allocation_value_refuses_bad_arguments(n, p):
    with pytest.raises(ValueError):
        allocation_value(n, p)


def _total(sizes, estimates):
    return sum(allocation_value(n, p) for n, p in zip(sizes, estimates))


def _brute_force(estimates, budget, min_n, max_n):
    best = None
    for sizes in itertools.product(range(min_n, max_n + 1), repeat=len(estimates)):
        if sum(sizes) == budget:
            value = _total(sizes, estimates)
            if best is None or value > best:
                best = value
    return best


@pytest.mark.parametrize("seed", range(60))
def test_greedy_equals_exhaustive_search(seed):
    rng = random.Random(seed)
    count = rng.randint(1, 4)
    min_n = rng.randint(2, 3)
    max_n = rng.randint(min_n, 9)
    estimates = [success_estimate(s, t) for t in [rng.randint(1, 8) for _ in range(count)]
                 for s in [rng.randint(0, t)]]
    budget = rng.randint(count * min_n, count * max_n)
    sizes = knapsack_allocation(estimates, budget, min_n, max_n)
    assert sum(sizes) == budget
    assert all(min_n <= n <= max_n for n in sizes)
    assert _total(sizes, estimates) == pytest.approx(_brute_force(estimates, budget, min_n, max_n),
                                                     rel=1e-12, abs=1e-15)


def test_sums_to_budget_within_bounds_on_a_large_case():
    rng = random.Random(7)
    estimates = [rng.random() for _ in range(64)]
    sizes = knapsack_allocation(estimates, 64 * 8, 2, 32)
    assert sum(sizes) == 64 * 8 and min(sizes) >= 2 and max(sizes) <= 32


def test_hard_prompts_get_more_than_easy_ones():
    easy, hard, middle = success_estimate(8, 8), success_estimate(0, 8), success_estimate(4, 8)
    sizes = knapsack_allocation([easy, hard, middle, easy], 32, 2, 32)
    assert sizes[1] > sizes[0] and sizes[1] > sizes[3]
    assert sizes[0] == sizes[3] == 2  # the saturated ones keep the minimum
    assert sum(sizes) == 32


def test_ties_go_to_the_lower_index():
    sizes = knapsack_allocation([0.5, 0.5, 0.5], 7, 2, 8)
    assert sizes == [3, 2, 2]
    assert knapsack_allocation([0.5, 0.5, 0.5], 7, 2, 8) == sizes


def test_unseen_prompts_get_the_uniform_share_and_stay_out_of_the_knapsack():
    estimates = [None, success_estimate(0, 8), None, success_estimate(8, 8)]
    sizes = knapsack_allocation(estimates, 4 * 8, 2, 32)
    assert sizes[0] == sizes[2] == 8
    assert sizes[1] + sizes[3] == 16 and sizes[1] > sizes[3] == 2


def test_all_unseen_is_uniform():
    assert knapsack_allocation([None] * 5, 5 * 6, 2, 24) == [6] * 5
    assert knapsack_allocation([None] * 3, 8, 2, 4) == [3, 3, 2]


def test_unseen_take_what_the_seen_cannot_hold():
    # share 2 (8 // 3) leaves 4 for one seen prompt that holds at most 3: the unseen one more
    sizes = knapsack_allocation([0.5, None, None], 8, 2, 3)
    assert sum(sizes) == 8 and all(2 <= n <= 3 for n in sizes)


def test_empty_is_empty():
    assert knapsack_allocation([], 0, 2, 8) == []


@pytest.mark.parametrize("estimates, budget, min_n, max_n", [
    ([0.5, 0.5], 3, 2, 8),     # under len * min_n
    ([0.5, 0.5], 17, 2, 8),    # over len * max_n
    ([0.5], 4, 5, 3),          # min_n > max_n
    ([1.5], 4, 2, 8),          # estimate out of [0, 1]
])
def test_errors(estimates, budget, min_n, max_n):
    with pytest.raises(ValueError):
        knapsack_allocation(estimates, budget, min_n, max_n)
