"""Seeded single-elimination tournaments inside each group: ArenaRL's relative ranking.

ArenaRL ("Scaling RL for Open-Ended Agents via Tournament-based Relative Ranking") replaces a
pointwise score per completion, which compresses a group's scores into a narrow, noisy band,
by pairwise judgements inside the group. A full round robin costs G(G-1)/2 judgements per
group; a seeded single-elimination bracket costs G - 1 (plus G to seed it) and ranks almost as
well, because strong seeds meet late.

Here a group's completions are seeded by a score (their win probability against an anchor, or
equal), placed in the standard bracket (seed 1 meets seed G in the first round, byes go to the
top seeds when G is not a power of two), and play round by round. Every round's matches of
every group go to the judge in one call. The ranking is by rounds survived, then by seed
score; exact ties share their mean position ("fractional ranking"), and the reward is
``1 - position / (G - 1)``: 1 for the winner, 0 for a sole last place.

Pure functions of their inputs and the ``play`` callable; no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# play([(group, i, j), ...]) -> P(member i of the group beats member j), one per match.
Play = Callable[[list[tuple[int, int, int]]], list[float]]


def bracket_order(slots: int) -> list[int]:
    """Seed numbers (0 = top seed) in bracket order for ``slots`` (a power of two): adjacent
    pairs meet in the first round, and seeds 0 and 1 can only meet in the final.
    bracket_order(8) == [0, 7, 3, 4, 1, 6, 2, 5]."""
    if slots < 1 or slots & (slots - 1):
        raise ValueError(f"slots must be a power of two, got {slots}")
    order = [0]
    while len(order) < slots:
        size = 2 * len(order)
        order = [seed for s in order for seed in (s, size - 1 - s)]
    return order


def _slots_for(members: int) -> int:
    slots = 1
    while slots < members:
        slots *= 2
    return slots


def rounds_survived(seed_scores: Sequence[Sequence[float]], play: Play) -> list[list[int]]:
    """Run one bracket per group; for each member, how many rounds it advanced (byes count).

    ``seed_scores[g][i]`` seeds member i of group g (higher is seeded first; equal scores keep
    the members' order). A match goes to the first-named player when ``play`` gives it >= 0.5.
    """
    fields: list[list[int | None]] = []
    survived = [[0] * len(scores) for scores in seed_scores]
    for scores in seed_scores:
        seeded = sorted(range(len(scores)), key=lambda i, s=scores: (-s[i], i))
        fields.append([seeded[s] if s < len(seeded) else None
                       for s in bracket_order(_slots_for(len(seeded)))] if seeded else [])
    while any(len(field) > 1 for field in fields):
        matches = [(g, field[k], field[k + 1]) for g, field in enumerate(fields) if len(field) > 1
                   for k in range(0, len(field), 2)
                   if field[k] is not None and field[k + 1] is not None]
        outcomes = iter(play(matches) if matches else [])
        for g, field in enumerate(fields):
            if len(field) <= 1:
                continue
            winners: list[int | None] = []
            for k in range(0, len(field), 2):
                a, b = field[k], field[k + 1]
                winner = b if a is None else a if b is None else (a if next(outcomes) >= 0.5 else b)
                survived[g][winner] += 1
                winners.append(winner)
            fields[g] = winners
    return survived


def rank_rewards(survived: Sequence[int], seed_scores: Sequence[float]) -> list[float]:
    """One group's rewards in [0, 1] from rounds survived, then seed score: ``1 - position /
    (G - 1)``, with exact ties sharing their mean position; a group of one gets 1."""
    n = len(survived)
    if n == 1:
        return [1.0]
    keys = [(survived[i], seed_scores[i]) for i in range(n)]
    order = sorted(range(n), key=lambda i: keys[i], reverse=True)
    position = [0.0] * n
    start = 0
    while start < n:
        end = start
        while end + 1 < n and keys[order[end + 1]] == keys[order[start]]:
            end += 1
        for k in range(start, end + 1):
            position[order[k]] = (start + end) / 2
        start = end + 1
    return [1.0 - p / (n - 1) for p in position]


def tournament_rewards(seed_scores: Sequence[Sequence[float]], play: Play) -> list[list[float]]:
    """Each group's rewards: a bracket per group, then ``rank_rewards``."""
    survived = rounds_survived(seed_scores, play)
    return [rank_rewards(s, scores) for s, scores in zip(survived, seed_scores, strict=True)]


def judgements_per_group(members: int, *, anchored: bool) -> int:
    """Pairwise judgements one group costs: G - 1 matches, plus G against the anchor."""
    return max(members - 1, 0) + (members if anchored else 0)
