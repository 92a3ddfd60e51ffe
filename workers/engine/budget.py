"""Knapsack RL: how many completions each prompt of a sampling round gets.

Knapsack RL (Li et al. 2025, "Unlocking Exploration of LLMs via Optimizing Budget Allocation",
arXiv 2509.25849) keeps a step's total rollouts (prompts x num_generations) but moves them
from prompts the policy has saturated (a group all right or all wrong: zero spread, zero
gradient) to prompts whose group is likely to have spread. Each prompt is an item whose value
depends on how many rollouts it gets; the round's budget is the knapsack's capacity.

Pure functions, no torch; the trainer keeps each prompt's success counts and calls
``knapsack_allocation`` once per sampling round (``rollout.budget_allocation`` "knapsack").
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def success_estimate(successes: int, trials: int) -> float:
    """A prompt's success rate from its last group, smoothed: p̂ = (s + 0.5) / (n + 1).

    The half-success prior keeps an all-wrong group (0 of n) and an all-right one (n of n) off
    exactly 0 and 1, where every allocation is worth nothing and the prompt could never win
    rollouts back; the more trials, the closer p̂ comes to them."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    return (successes + 0.5) / (trials + 1)


def allocation_value(n: int, p: float) -> float:
    """The value of giving ``n`` rollouts to a prompt of success rate ``p``:
    P(non-zero gradient) x information gain = (1 - pⁿ - (1 - p)ⁿ) · p · (1 - p)².

    [R] Reconstructed from the paper's description (the probability that a group of n has both
    a success and a failure, times a gain that favours prompts the policy still mostly fails);
    check the exact gain term against arXiv 2509.25849 before relying on it. Kept as this one
    function so it can be swapped. It is concave in n: the increment from n to n + 1 is
    (p·(1 - p)ⁿ + (1 - p)·pⁿ) · p · (1 - p)², which shrinks as n grows, so the greedy allocation
    of ``knapsack_allocation`` is optimal for it (a replacement must keep that property).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return (1.0 - p ** n - (1.0 - p) ** n) * p * (1.0 - p) ** 2


def _greedy(estimates: Sequence[float], budget: int, min_n: int, max_n: int) -> list[int]:
    """Start every prompt at min_n, then give the remaining units one by one to the prompt
    whose value grows most (ties: the lower index). Optimal for a value concave in n."""
    sizes = [min_n] * len(estimates)
    left = budget - min_n * len(estimates)
    heap = [(-(allocation_value(min_n + 1, p) - allocation_value(min_n, p)), i)
            for i, p in enumerate(estimates) if min_n < max_n]
    heapq.heapify(heap)
    while left > 0:
        _, i = heapq.heappop(heap)
        sizes[i] += 1
        left -= 1
        if sizes[i] < max_n:
            p, n = estimates[i], sizes[i]
            heapq.heappush(heap, (-(allocation_value(n + 1, p) - allocation_value(n, p)), i))
    return sizes


def knapsack_allocation(estimates: Sequence[float | None], budget: int, min_n: int,
                        max_n: int) -> list[int]:
    """Rollouts per prompt: sizes summing to exactly ``budget``, each in [min_n, max_n],
    maximising Σ allocation_value(sizes[i], estimates[i]).

    ``estimates`` are success rates in [0, 1] (``success_estimate``) or None for a prompt never
    sampled yet. Such a prompt is left out of the knapsack: it gets the uniform share,
    budget // len(estimates) (num_generations when budget is prompts x num_generations), and the
    rest of the budget is allocated among the others; when every prompt is unseen the allocation
    is uniform (a remainder, which a round's budget never has, goes one each to the first
    prompts). Should the seen prompts be unable to take the rest within [min_n, max_n] (possible
    only with a remainder), the unseen ones take the difference, one each by index.

    Greedy marginal-gain allocation from min_n is exactly optimal because the value is concave
    in n; ties go to the lower index, so the result is deterministic.
    Raises ValueError when budget is outside [len·min_n, len·max_n] or min_n > max_n.
    """
    count = len(estimates)
    if min_n < 0 or min_n > max_n:
        raise ValueError(f"need 0 <= min_n <= max_n, got {min_n} and {max_n}")
    if not count * min_n <= budget <= count * max_n:
        raise ValueError(f"a budget of {budget} cannot give {count} prompts between {min_n} and "
                         f"{max_n} rollouts each (it must be in [{count * min_n}, {count * max_n}])")
    for p in estimates:
        if p is not None and not 0.0 <= p <= 1.0:
            raise ValueError(f"estimates must be in [0, 1] or None, got {p}")
    if count == 0:
        return []
    share, remainder = divmod(budget, count)
    seen = [i for i, p in enumerate(estimates) if p is not None]
    unseen = [i for i, p in enumerate(estimates) if p is None]
    sizes = [share] * count
    if not seen:
        for i in range(remainder):
            sizes[i] += 1
        return sizes
    rest = budget - share * len(unseen)
    taken = min(max(rest, len(seen) * min_n), len(seen) * max_n)
    for i, n in zip(seen, _greedy([estimates[i] for i in seen], taken, min_n, max_n), strict=True):
        sizes[i] = n
    extra = rest - taken  # > 0 only when the seen prompts are full; unseen ones have room then
    for i in unseen:
        step = min(extra, max_n - sizes[i])
        sizes[i] += step
        extra -= step
    if extra:  # unreachable within the checked bounds; kept as a guard against a silent miscount
        raise ValueError(f"could not place {extra} rollouts")
    return sizes
