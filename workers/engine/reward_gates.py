"""Reward components that count only in groups that already answer well (GRPO-λ).

GRPO-λ ("Stable RL for Efficient Reasoning") applies a length penalty only when a group's
correctness is high: a group that still mostly fails learns accuracy alone, and the penalty
starts shaping length once accuracy is there, which keeps length penalties from trading
accuracy for brevity. Here any component with ``min_group_accuracy`` is gated that way: in a
group whose accuracy is below it, every completion gets the group's best value of the
component. A value constant within a group adds nothing to group-centred advantages (grpo,
rloo, reinforce_pp) and is zero after gdpo's per-component normalisation, so the component is
simply off there; and for a penalty such as ``length`` (1 within budget) the best value means
no penalty. The held values are what advantages and group filters see; metrics and recorded
trajectories keep the values each completion scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def gate_by_group_accuracy(reward_configs: Sequence, rewards: Mapping[str, list[float]],
                           accuracy_key: str | None, group_size: int,
                           group_sizes: Sequence[int] | None = None
                           ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """``rewards`` ({key: N values}, N = groups × group_size, groups contiguous) with gated
    components held at their group's best value in groups under their threshold, and
    {"rewards/<key>/gated_groups": fraction of groups held} for each gated component.
    ``group_sizes``: groups of these sizes instead (Knapsack RL; ``group_size`` is then unused)."""
    if group_sizes is not None:
        return _gate_ragged(reward_configs, rewards, accuracy_key, list(group_sizes))
    gated = [cfg for cfg in reward_configs if cfg.min_group_accuracy is not None]
    if not gated:
        return dict(rewards), {}
    if accuracy_key is None:  # the config's checks refuse this; kept for direct callers
        raise ValueError("min_group_accuracy needs a 0/1 accuracy reward")
    accuracy = rewards[accuracy_key]
    if len(accuracy) % group_size:
        raise ValueError(f"{len(accuracy)} rewards do not form groups of {group_size}")
    starts = range(0, len(accuracy), group_size)
    group_accuracy = [sum(v == 1.0 for v in accuracy[s:s + group_size]) / group_size for s in starts]
    out = dict(rewards)
    extras: dict[str, float] = {}
    for cfg in gated:
        values = list(rewards[cfg.key])
        held = 0
        for start, acc in zip(starts, group_accuracy, strict=True):
            if acc < cfg.min_group_accuracy:
                best = max(values[start:start + group_size])
                values[start:start + group_size] = [best] * group_size
                held += 1
        out[cfg.key] = values
        extras[f"rewards/{cfg.key}/gated_groups"] = held / len(group_accuracy) if group_accuracy else 0.0
    return out, extras


def _gate_ragged(reward_configs: Sequence, rewards: Mapping[str, list[float]],
                 accuracy_key: str | None, sizes: list[int]
                 ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """gate_by_group_accuracy over contiguous groups of the given sizes: each group's accuracy
    over its own completions."""
    gated = [cfg for cfg in reward_configs if cfg.min_group_accuracy is not None]
    if not gated:
        return dict(rewards), {}
    if accuracy_key is None:
        raise ValueError("min_group_accuracy needs a 0/1 accuracy reward")
    accuracy = rewards[accuracy_key]
    if sum(sizes) != len(accuracy):
        raise ValueError(f"{len(accuracy)} rewards do not form groups of sizes summing to {sum(sizes)}")
    spans, start = [], 0
    for size in sizes:
        spans.append((start, size))
        start += size
    group_accuracy = [sum(v == 1.0 for v in accuracy[s:s + n]) / n for s, n in spans]
    out = dict(rewards)
    extras: dict[str, float] = {}
    for cfg in gated:
        values = list(rewards[cfg.key])
        held = 0
        for (s, n), acc in zip(spans, group_accuracy, strict=True):
            if acc < cfg.min_group_accuracy:
                values[s:s + n] = [max(values[s:s + n])] * n
                held += 1
        out[cfg.key] = values
        extras[f"rewards/{cfg.key}/gated_groups"] = held / len(spans) if spans else 0.0
    return out, extras
