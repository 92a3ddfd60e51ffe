"""Rankings as tiers of candidate positions, best first; pure functions, no database.

``[[1], [0]]`` is B over A, ``[[0, 1]]`` a tie, ``[[2], [0, 1], [3]]`` puts C first, A and B
tied second and D last. Every candidate position appears exactly once.
"""

from collections.abc import Mapping, Sequence

Ranking = list[list[int]]

# Pairwise votes, as the workspace posts them and the keys that choose them.
PAIRWISE_CHOICES = {
    "a": ([[0], [1]], False),
    "b": ([[1], [0]], False),
    "tie": ([[0, 1]], False),
    "both_bad": ([[0, 1]], True),
}


def ranking_normalise(raw, *, k: int) -> Ranking:
    """`raw` checked against k candidates, each tier sorted; ValueError says what is wrong.

    A flat list of positions (``[2, 0, 1]``) reads as one position per tier.
    """
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ValueError("the ranking must be a non-empty list of tiers (lists of candidate positions)")
    if all(isinstance(t, int) and not isinstance(t, bool) for t in raw):
        raw = [[t] for t in raw]
    tiers: Ranking = []
    for tier in raw:
        if not isinstance(tier, (list, tuple)) or not tier:
            raise ValueError("each tier of the ranking must be a non-empty list of candidate positions")
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in tier):
            raise ValueError("candidate positions in the ranking must be whole numbers")
        tiers.append(sorted(tier))
    placed = [p for tier in tiers for p in tier]
    if sorted(placed) != list(range(k)):
        raise ValueError(f"the ranking must place each of the {k} candidates (0..{k - 1}) exactly once, got {raw}")
    return tiers


def ranking_from_pairwise_choice(choice: str) -> tuple[Ranking, bool]:
    """(ranking, both_bad) for a pairwise vote: a, b, tie or both_bad."""
    try:
        ranking, both_bad = PAIRWISE_CHOICES[choice]
    except KeyError:
        raise ValueError(f"choose one of {', '.join(PAIRWISE_CHOICES)}; got {choice!r}") from None
    return [list(t) for t in ranking], both_bad


def ranking_from_ranks(ranks: Mapping[int, int], *, k: int) -> Ranking:
    """Tiers from a rank number per position (1 = best; equal numbers tie)."""
    if sorted(ranks) != list(range(k)):
        raise ValueError(f"give a rank to each of the {k} candidates")
    tiers: dict[int, list[int]] = {}
    for position, rank in ranks.items():
        tiers.setdefault(rank, []).append(position)
    return [sorted(tiers[r]) for r in sorted(tiers)]


def tier_of(ranking: Sequence[Sequence[int]]) -> dict[int, int]:
    """Position -> tier index (0 = best)."""
    return {p: i for i, tier in enumerate(ranking) for p in tier}


def preference_sign(tiers: Mapping[int, int], i: int, j: int) -> int:
    """+1 if candidate i is ranked above j, -1 if below, 0 if tied."""
    a, b = tiers[i], tiers[j]
    return (a < b) - (a > b)


def ranking_pairs(ranking: Sequence[Sequence[int]]) -> list[tuple[int, int, bool]]:
    """Every pair the ranking implies: (better, worse, False) across tiers, (i, j, True) within one."""
    pairs = []
    for t, tier in enumerate(ranking):
        for a_index, a in enumerate(tier):
            for b in tier[a_index + 1:]:
                pairs.append((a, b, True))
        for lower in ranking[t + 1:]:
            for a in tier:
                for b in lower:
                    pairs.append((a, b, False))
    return pairs
