"""Preference pairs from a run's own rewards (TRPA's rule-defined preference levels).

"Trust Region Preference Approximation" turns rule-based rewards into preference levels and
learns from pairs across levels instead of from the raw scores. Here a run's completions of
one prompt (one group of one step) are levelled by a rule, the run's total reward or one of
its reward components (exact_answer, a checklist, a format regex, ...), and every two
completions whose levels differ by more than ``min_gap`` make a pair, the higher level chosen.
The widest gaps come first, up to ``max_pairs_per_group`` a group. The pairs train a reward
model like imported ones. Pure: no database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

TOTAL = "reward"


@dataclass(frozen=True)
class Completion:
    group: tuple[int, int]  # (step, group index)
    sample: int
    prompt: Any  # a string or chat messages, as the engine takes it
    text: str
    reward: float
    rewards: dict[str, float]


def level_of(completion: Completion, rule: str) -> float | None:
    """The completion's level under the rule; None when it has no such reward."""
    if rule == TOTAL:
        return completion.reward
    value = completion.rewards.get(rule)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def rule_pairs(completions: Iterable[Completion], *, rule: str = TOTAL, min_gap: float = 0.0,
               max_pairs_per_group: int = 4) -> list[dict]:
    """[{prompt, chosen, rejected}] across levels within each group, widest gaps first."""
    groups: dict[tuple[int, int], list[tuple[float, Completion]]] = {}
    for c in completions:
        level = level_of(c, rule)
        if level is not None and c.text.strip():
            groups.setdefault(c.group, []).append((level, c))
    pairs = []
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda item: item[1].sample)
        candidates = [(hi_level - lo_level, hi, lo)
                      for hi_level, hi in members for lo_level, lo in members
                      if hi_level - lo_level > min_gap and hi.text != lo.text]
        candidates.sort(key=lambda item: (-item[0], item[1].sample, item[2].sample))
        seen: set[tuple[str, str]] = set()
        taken = 0
        for _gap, hi, lo in candidates:
            if taken == max_pairs_per_group:
                break
            if (hi.text, lo.text) in seen:
                continue
            seen.add((hi.text, lo.text))
            pairs.append({"prompt": hi.prompt, "chosen": hi.text, "rejected": lo.text})
            taken += 1
    return pairs


def rules_available(completions: Sequence[Completion]) -> list[str]:
    """The rules these completions can be levelled by: the total, then every component seen."""
    keys = sorted({k for c in completions for k in c.rewards})
    return [TOTAL, *keys]
