"""Inter-annotator agreement: pure functions of raw labels, no database.

A label here is ``(task_id, annotator_id, ranking)`` with the ranking as tiers of candidate
positions (see ``ranking.py``). Every figure comes with the counts it was computed from so a
page can say "n/a" instead of dividing by zero.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from webapp.feedback.ranking import preference_sign, tier_of

Z_95 = 1.959964


@dataclass(frozen=True)
class RawLabel:
    task_id: int
    annotator_id: int
    ranking: list[list[int]]


@dataclass
class Ratio:
    """hits / total, kept as counts."""

    hits: float = 0.0
    total: int = 0

    def add(self, hits: float, total: int = 1) -> None:
        self.hits += hits
        self.total += total

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None


@dataclass
class Figure:
    """One statistic for the whole project and for each annotator."""

    overall: Ratio = field(default_factory=Ratio)
    per_annotator: dict[int, Ratio] = field(default_factory=lambda: defaultdict(Ratio))


def _by_task(labels: Iterable[RawLabel]) -> dict[int, list[RawLabel]]:
    tasks: dict[int, list[RawLabel]] = defaultdict(list)
    for label in labels:
        tasks[label.task_id].append(label)
    return tasks


def pairwise_agreement(labels: Iterable[RawLabel]) -> Figure:
    """Share of (candidate pair, annotator pair) judgements on which two annotators agree.

    For every task, every two annotators who labelled it and every two candidates, the
    annotators agree when they order the candidates the same way (above, below or tied). For
    a pairwise task this is "did they cast the same vote", with tie and both-bad both
    counting as "no preference". An annotator's figure counts the comparisons they take part in.
    """
    figure = Figure()
    for task_labels in _by_task(labels).values():
        tiers = [(label.annotator_id, tier_of(label.ranking)) for label in task_labels]
        for (a_id, a), (b_id, b) in combinations(tiers, 2):
            for i, j in combinations(sorted(a), 2):
                agree = float(preference_sign(a, i, j) == preference_sign(b, i, j))
                figure.overall.add(agree)
                figure.per_annotator[a_id].add(agree)
                figure.per_annotator[b_id].add(agree)
    return figure


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two rankings of the same items (lower = better, ties allowed).

    tau_b = (concordant - discordant) / sqrt((n0 - ties_x) * (n0 - ties_y)); None when either
    ranking ties everything (the denominator is zero).
    """
    if len(x) != len(y):
        raise ValueError("both rankings must rank the same items")
    concordant = discordant = ties_x = ties_y = 0
    n0 = 0
    for i, j in combinations(range(len(x)), 2):
        n0 += 1
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0:
            ties_x += 1
        if dy == 0:
            ties_y += 1
        if dx * dy > 0:
            concordant += 1
        elif dx * dy < 0:
            discordant += 1
    denominator = math.sqrt((n0 - ties_x) * (n0 - ties_y))
    if denominator == 0:
        return None
    return (concordant - discordant) / denominator


def mean_kendall_tau_b(labels: Iterable[RawLabel]) -> Figure:
    """Mean tau-b over every (task, annotator pair); pairs where it is undefined are left out."""
    figure = Figure()
    for task_labels in _by_task(labels).values():
        for a, b in combinations(task_labels, 2):
            ta, tb = tier_of(a.ranking), tier_of(b.ranking)
            positions = sorted(ta)
            tau = kendall_tau_b([ta[p] for p in positions], [tb[p] for p in positions])
            if tau is None:
                continue
            figure.overall.add(tau)
            figure.per_annotator[a.annotator_id].add(tau)
            figure.per_annotator[b.annotator_id].add(tau)
    return figure


def krippendorff_alpha_ordinal(units: Iterable[Sequence[float]]) -> float | None:
    """Krippendorff's alpha with the ordinal metric.

    ``units`` holds, for each thing rated (here: one criterion on one candidate of one task),
    the values the annotators gave it. Units with fewer than two values are not pairable and
    are left out. alpha = 1 - (n - 1) * sum_u sum_{i != j} d(v_i, v_j) / (m_u - 1)
    / sum_c sum_k n_c n_k d(c, k), with the ordinal distance
    d(c, k) = (sum_{g from c to k} n_g - (n_c + n_k) / 2) ** 2 over the values that occur.
    None when there is nothing to compare or no variation at all.
    """
    pairable = [list(u) for u in units if len(u) >= 2]
    counts: dict[float, int] = defaultdict(int)
    for unit in pairable:
        for value in unit:
            counts[value] += 1
    n = sum(counts.values())
    if n < 2:
        return None
    values = sorted(counts)
    index = {v: i for i, v in enumerate(values)}
    cumulative = [0]
    for v in values:
        cumulative.append(cumulative[-1] + counts[v])

    def distance(c: float, k: float) -> float:
        lo, hi = sorted((index[c], index[k]))
        between = cumulative[hi + 1] - cumulative[lo]
        return (between - (counts[c] + counts[k]) / 2) ** 2

    observed = 0.0
    for unit in pairable:
        m = len(unit)
        observed += sum(distance(a, b) for a, b in combinations(unit, 2)) * 2 / (m - 1)
    expected = sum(counts[c] * counts[k] * distance(c, k) for c in values for k in values)
    if expected == 0:
        return None
    return 1 - (n - 1) * observed / expected


def gold_accuracy(labels: Iterable[RawLabel], gold: Mapping[int, Sequence[Sequence[int]]]) -> Figure:
    """Share of the candidate pairs a gold ranking orders strictly that the annotator ordered the same way.

    ``gold`` maps task id -> known ranking; labels on other tasks are ignored. A tie where the
    gold ranking has an order counts as a miss.
    """
    figure = Figure()
    for label in labels:
        known = gold.get(label.task_id)
        if known is None:
            continue
        g, a = tier_of(known), tier_of(label.ranking)
        for i, j in combinations(sorted(g), 2):
            expected = preference_sign(g, i, j)
            if expected == 0:
                continue
            hit = float(preference_sign(a, i, j) == expected)
            figure.overall.add(hit)
            figure.per_annotator[label.annotator_id].add(hit)
    return figure


def labels_per_hour(count: int, time_spent_ms: int) -> float | None:
    """Labels per hour of time spent on them (the workspace's measured time), None without time."""
    if time_spent_ms <= 0:
        return None
    return count * 3_600_000 / time_spent_ms


def score_units(scores: Iterable[tuple[Hashable, float]]) -> list[list[float]]:
    """Group (unit key, value) pairs into the value lists krippendorff_alpha_ordinal takes."""
    units: dict[Hashable, list[float]] = defaultdict(list)
    for key, value in scores:
        units[key].append(value)
    return list(units.values())


def wilson_interval(p: float, n: int) -> tuple[float, float] | None:
    """The Wilson score interval (95 %) of a proportion ``p`` observed over ``n`` trials; None
    when n is 0."""
    if n <= 0:
        return None
    centre = (p + Z_95 ** 2 / (2 * n)) / (1 + Z_95 ** 2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + Z_95 ** 2 / (4 * n * n)) / (1 + Z_95 ** 2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class RewardAgreement:
    """How one reward orders the candidate pairs that annotators put in order."""

    key: Hashable  # a reward's name, or a marker the caller chose for the total
    pairs: int = 0  # pairs a label orders strictly, both candidates scored by this reward
    decided: int = 0  # of those, the pairs the reward separates (different values)
    hits: int = 0  # of those, the pairs it orders as the label does

    @property
    def agreement(self) -> float | None:
        return self.hits / self.decided if self.decided else None

    @property
    def coverage(self) -> float | None:
        return self.decided / self.pairs if self.pairs else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.agreement is None else wilson_interval(self.agreement, self.decided)


def _score(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def reward_agreement(labels: Iterable[RawLabel], scores: Mapping[int, Mapping[int, Mapping[Hashable, object]]],
                     sources: Mapping[int, Mapping[int, Hashable]] | None = None) -> dict[Hashable, RewardAgreement]:
    """Each reward's agreement with the annotators, by reward key.

    ``scores`` maps task id -> candidate position -> {reward key: value} (candidates without
    scores are absent); ``sources``, in the same shape, says who scored each candidate (a run),
    and only two candidates one source scored are compared: two runs may weigh or even define a
    reward of the same name differently. For every label and every two candidates the label
    orders strictly (ties and both-bad say nothing about order), a reward that scored both
    either separates them (a hit when the higher-scored one is the one ranked above) or ties
    them. Agreement is hits / separated pairs; how often it separates them is reported beside
    it, since a 0/1 reward ties most pairs and is judged only on the rest.
    """
    out: dict[Hashable, RewardAgreement] = {}
    for label in labels:
        task_scores = scores.get(label.task_id)
        if not task_scores:
            continue
        task_sources = (sources or {}).get(label.task_id, {})
        tiers = tier_of(label.ranking)
        for i, j in combinations(sorted(p for p in tiers if p in task_scores), 2):
            human = preference_sign(tiers, i, j)
            if human == 0 or task_sources.get(i) != task_sources.get(j):
                continue
            for key in task_scores[i].keys() & task_scores[j].keys():
                a, b = _score(task_scores[i][key]), _score(task_scores[j][key])
                if a is None or b is None:
                    continue
                figure = out.setdefault(key, RewardAgreement(key))
                figure.pairs += 1
                if a != b:
                    figure.decided += 1
                    figure.hits += int((a > b) == (human > 0))
    return out
