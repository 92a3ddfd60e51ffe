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


def _signs(ranking: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The label's candidate positions, sorted, and its ``preference_sign`` of each two of
    them in ``combinations`` order: what every figure comparing two labels reads of a label,
    computed once per label rather than once per comparison."""
    tiers = tier_of(ranking)
    positions = tuple(sorted(tiers))
    return positions, _signs_over(tiers, positions)


def _signs_over(tiers: Mapping[int, int], positions: Sequence[int]) -> tuple[int, ...]:
    return tuple(preference_sign(tiers, i, j) for i, j in combinations(positions, 2))


def agreement_and_tau(labels: Iterable[RawLabel]) -> tuple[Figure, Figure]:
    """``pairwise_agreement`` and ``mean_kendall_tau_b`` in one pass over the labels."""
    pairwise, tau = Figure(), Figure()
    # Both figures of two labels depend on their two rankings alone, and a project's labels hold
    # few distinct rankings (13 of three candidates): each ranking's signs, and each two
    # rankings' comparison, are worked out once, not for every label and every two labels.
    signs: dict[tuple, tuple] = {}
    compared: dict[tuple, tuple[int, int, float | None]] = {}
    for task_labels in _by_task(labels).values():
        keyed = [(label.annotator_id, _ranking_key(label.ranking), label.ranking) for label in task_labels]
        for (a_id, a_key, a_ranking), (b_id, b_key, b_ranking) in combinations(keyed, 2):
            if (a_key, b_key) not in compared:
                a_positions, a = signs.get(a_key) or signs.setdefault(a_key, _signs(a_ranking))
                b_positions, b = signs.get(b_key) or signs.setdefault(b_key, _signs(b_ranking))
                if a_positions != b_positions:  # not from a task's import; read b at a's positions, as ever
                    b = _signs_over(tier_of(b_ranking), a_positions)
                compared[a_key, b_key] = (sum(x == y for x, y in zip(a, b, strict=True)), len(a),
                                          _tau_b_of_signs(a, b))
            agree, judgements, value = compared[a_key, b_key]
            for ratio in (pairwise.overall, pairwise.per_annotator[a_id], pairwise.per_annotator[b_id]):
                ratio.add(agree, judgements)
            if value is None:
                continue
            for ratio in (tau.overall, tau.per_annotator[a_id], tau.per_annotator[b_id]):
                ratio.add(value)
    return pairwise, tau


def _ranking_key(ranking: Sequence[Sequence[int]]) -> tuple:
    return tuple(map(tuple, ranking))


def pairwise_agreement(labels: Iterable[RawLabel]) -> Figure:
    """Share of (candidate pair, annotator pair) judgements on which two annotators agree.

    For every task, every two annotators who labelled it and every two candidates, the
    annotators agree when they order the candidates the same way (above, below or tied). For
    a pairwise task this is "did they cast the same vote", with tie and both-bad both
    counting as "no preference". An annotator's figure counts the comparisons they take part in.
    """
    return agreement_and_tau(labels)[0]


def _tau_b_of_signs(a: Sequence[int], b: Sequence[int]) -> float | None:
    """``kendall_tau_b`` of two rankings given as their signs over every two items."""
    concordant = discordant = ties_a = ties_b = 0
    for x, y in zip(a, b, strict=True):
        if x == 0:
            ties_a += 1
        if y == 0:
            ties_b += 1
        if x * y > 0:
            concordant += 1
        elif x * y < 0:
            discordant += 1
    denominator = math.sqrt((len(a) - ties_a) * (len(b) - ties_b))
    if denominator == 0:
        return None
    return (concordant - discordant) / denominator


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two rankings of the same items (lower = better, ties allowed).

    tau_b = (concordant - discordant) / sqrt((n0 - ties_x) * (n0 - ties_y)); None when either
    ranking ties everything (the denominator is zero).
    """
    if len(x) != len(y):
        raise ValueError("both rankings must rank the same items")
    pairs = list(combinations(range(len(x)), 2))
    return _tau_b_of_signs([_sign(x[i] - x[j]) for i, j in pairs], [_sign(y[i] - y[j]) for i, j in pairs])


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def mean_kendall_tau_b(labels: Iterable[RawLabel]) -> Figure:
    """Mean tau-b over every (task, annotator pair); pairs where it is undefined are left out."""
    return agreement_and_tau(labels)[1]


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
    compared: dict[tuple, tuple[int, int]] = {}  # (gold ranking, label's ranking) -> (hits, pairs)
    for label in labels:
        known = gold.get(label.task_id)
        if known is None:
            continue
        key = (_ranking_key(known), _ranking_key(label.ranking))
        if key not in compared:
            g, a = tier_of(known), tier_of(label.ranking)
            expected = [(i, j, sign) for i, j in combinations(sorted(g), 2) if (sign := preference_sign(g, i, j))]
            compared[key] = (sum(preference_sign(a, i, j) == sign for i, j, sign in expected), len(expected))
        hits, pairs = compared[key]
        if pairs:
            figure.overall.add(hits, pairs)
            figure.per_annotator[label.annotator_id].add(hits, pairs)
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
    counts: dict[Hashable, list[int]] = {}  # key -> [pairs, decided, hits]
    comparable: dict[int, list] = {}  # per task, worked out once for all of its labels
    tiers_by_ranking: dict[tuple, dict[int, int]] = {}
    for label in labels:
        if label.task_id not in comparable:
            comparable[label.task_id] = _comparable_pairs(scores.get(label.task_id) or {},
                                                          (sources or {}).get(label.task_id, {}))
        pairs = comparable[label.task_id]
        if not pairs:
            continue
        ranking = _ranking_key(label.ranking)
        tiers = tiers_by_ranking.get(ranking) or tiers_by_ranking.setdefault(ranking, tier_of(label.ranking))
        for i, j, scored in pairs:
            if i not in tiers or j not in tiers:
                continue
            human = preference_sign(tiers, i, j)
            if human == 0:
                continue
            for key, separated, i_higher in scored:
                count = counts.get(key) or counts.setdefault(key, [0, 0, 0])
                count[0] += 1
                if separated:
                    count[1] += 1
                    count[2] += i_higher == (human > 0)
    return {key: RewardAgreement(key, pairs=n, decided=decided, hits=hits)
            for key, (n, decided, hits) in counts.items()}


def _comparable_pairs(task_scores: Mapping[int, Mapping[Hashable, object]],
                      task_sources: Mapping[int, Hashable]) -> list[tuple[int, int, list]]:
    """``(i, j, [(key, the scores differ, i's is higher), ...])`` for every two scored candidates
    of a task, i < j, that one source scored, for each reward both have a finite number for."""
    valid = {position: {key: value for key, value in ((k, _score(v)) for k, v in rewards.items())
                        if value is not None}
             for position, rewards in task_scores.items()}
    pairs = []
    for i, j in combinations(sorted(valid), 2):
        if task_sources.get(i) != task_sources.get(j):
            continue
        scored = [(key, valid[i][key] != valid[j][key], valid[i][key] > valid[j][key])
                  for key in valid[i].keys() & valid[j].keys()]
        if scored:
            pairs.append((i, j, scored))
    return pairs
