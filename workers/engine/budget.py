"""Knapsack RL: how many completions each prompt of a sampling round gets.

Knapsack RL (Li et al. 2025, "Unlocking Exploration of LLMs via Optimizing Budget Allocation",
arXiv 2509.25849) keeps a step's total rollouts (prompts x num_generations) but moves them
from prompts the policy has saturated (a group all right or all wrong: zero spread, zero
gradient) to prompts whose group is likely to have spread. Each prompt is an item whose value
depends on how many rollouts it gets; the round's budget is the knapsack's capacity.

Pure functions, no torch; the trainer keeps each prompt's success counts and calls
``knapsack_allocation`` once per sampling round (``rollout.budget_allocation`` "knapsack").

Checked against the authors' implementation, github.com/liziniu/KnapsackRL at commit 05eeb92
(``verl/trainer/ppo/exploration_utils.py``: ``sampling_budget_by_knapsack``, ``solve_by_dp``;
``verl/utils/dataset/rl_dataset.py``: the success rates; ``examples/knapsack_trainer/
run_knapsack_grpo_7b.sh``: min_n 2, max_n 128). The paper's own text was not reachable here,
only its abstract and summaries, which agree (InfoGain(p) ≈ p(1 - p)², solved by dynamic
programming). The same as theirs: the value (``allocation_value``), each prompt with 0 < p < 1
held in [min_n, max_n], and an exact optimiser (a DP there; the greedy here is exact too, the
value being concave in n). Different here, so not the authors' rule:

* p: theirs is the raw success rate of the prompt's latest group (of its last 16 rewards when
  the group has fewer; a prompt with fewer than 8 rewards so far counts as unseen and gets n).
  Here p̂ = (s + 0.5) / (n + 1) of the latest group, and every sampled prompt counts as seen.
* all-right and all-wrong prompts (p = 1, p = 0): theirs stay out of the knapsack with min_n
  each (``positive_n``, ``negative_n``); when the mixed prompts' estimated need,
  Σ min(max_n, log 0.1 / log max(p, 1 - p)) (about the n at which a group has spread with
  probability 0.9), is below the rest of the budget, the surplus goes in equal shares to the
  p = 0 prompts (else to the other prompts outside the knapsack) and only the need is solved
  by the DP; with no mixed prompt at all the whole rest goes to the p = 0 prompts. Here the
  smoothed p̂ keeps them in the knapsack with a small value, so an all-wrong prompt wins
  rollouts by marginal gain like any other and no rest is spread apart: with 8/8, 0/8, 4/8,
  8/8 right and a budget of 32 in [2, 32], [2, 20, 8, 2] here, [2, 23, 5, 2] by theirs.
* their DP scores a prompt given nothing beyond min_n as 0 rather than value(min_n, p), which
  tilts it towards giving each mixed prompt at least one more; the greedy maximises
  Σ value(nᵢ, pᵢ) itself.
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

    [R] P(the group of n has both a success and a failure) times the paper's information gain
    InfoGain(p) ≈ p · (1 - p)², which favours prompts the policy still mostly fails: the same
    expression as the authors' ``solve_by_dp`` (liziniu/KnapsackRL at 05eeb92, value_gain at
    k + min_n rollouts), checked there since the paper's text was not reachable (its summaries
    give the same gain term). Kept as this one function so it can be swapped. It is concave in n: the increment from n to n + 1 is
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
