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

import numpy as np

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


@dataclass(frozen=True)
class LabelColumns:
    """Labels as arrays, for the figures that compare labels: one row per label, in order.

    ``rankings`` holds each distinct ranking once; ``ranking_index`` points into it. Built once
    per page from the database rows (``from_rows``) or from ``RawLabel``s (``of``)."""

    task_ids: np.ndarray  # (L,) int64
    annotator_ids: np.ndarray  # (L,) int64
    ranking_index: np.ndarray  # (L,) int64, into rankings
    rankings: list  # (R,) distinct rankings, as tiers

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, int, Hashable, Sequence[Sequence[int]]]]) -> LabelColumns:
        """From ``(task id, annotator id, key, ranking)``; equal keys must mean equal rankings
        (the key saves hashing the ranking: the text it was decoded from, say)."""
        index: dict[Hashable, int] = {}
        rankings: list = []
        task_ids, annotator_ids, ranking_index = [], [], []
        for task_id, annotator_id, key, ranking in rows:
            i = index.get(key)
            if i is None:
                i = index[key] = len(rankings)
                rankings.append(ranking)
            task_ids.append(task_id)
            annotator_ids.append(annotator_id)
            ranking_index.append(i)
        return cls(np.array(task_ids, dtype=np.int64), np.array(annotator_ids, dtype=np.int64),
                   np.array(ranking_index, dtype=np.int64), rankings)

    @classmethod
    def of(cls, labels: Iterable[RawLabel] | LabelColumns) -> LabelColumns:
        if isinstance(labels, LabelColumns):
            return labels
        return cls.from_rows((label.task_id, label.annotator_id, _ranking_key(label.ranking), label.ranking)
                             for label in labels)


def _codes(values: np.ndarray) -> np.ndarray:
    """Each value's number, 0, 1, ... in the order values first appear."""
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    distinct, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(distinct))
    return rank[inverse.reshape(-1)]


def pairs_within(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every two rows of a group, as ``(first, second, group)`` arrays of row indices.

    ``groups`` (N,) numbers each row's group (any integers). The pairs come group by group,
    groups in the order they first appear, and within a group as ``combinations`` of its rows
    in row order yields them: the order a loop over a dict of lists would visit them, so sums
    over the pairs add in the same order."""
    codes = _codes(np.asarray(groups))
    order = np.argsort(codes, kind="stable")  # rows grouped, groups by first appearance, rows in order
    sizes = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    parts = []
    for m in np.unique(sizes[sizes >= 2]):
        chosen = np.flatnonzero(sizes == m)
        i, j = np.triu_indices(int(m), 1)  # (C,) each: combinations(range(m), 2), in its order
        base = starts[chosen][:, None]  # (G, 1)
        parts.append(((base + i).ravel(), (base + j).ravel(), np.repeat(chosen, len(i)),
                      np.tile(np.arange(len(i)), len(chosen))))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    first, second, group, combo = (np.concatenate(p) for p in zip(*parts, strict=True))
    by_group = np.lexsort((combo, group))
    return order[first[by_group]], order[second[by_group]], group[by_group]


def _in_order(values: np.ndarray) -> float:
    """The sum of ``values`` added one by one from 0.0, as a Python loop would (``np.sum``
    adds pairwise, which rounds differently)."""
    if not len(values):
        return 0.0
    return float(np.bincount(np.zeros(len(values), dtype=np.int64), weights=values)[0])


def _per_annotator(figure: Figure, annotators: np.ndarray, hits: np.ndarray, totals: np.ndarray) -> None:
    """Add each comparison (P,) to its two annotators (P, 2) in ``figure``, each annotator's in
    comparison order, the annotators in the order they first take part."""
    ids = annotators.reshape(-1)  # (2P,): first, second, first, second, ...
    if not len(ids):
        return
    codes = _codes(ids)
    distinct = np.empty(codes.max() + 1, dtype=np.int64)
    distinct[codes] = ids
    summed_hits = np.bincount(codes, weights=np.repeat(hits, 2).astype(np.float64))
    summed_totals = np.bincount(codes, weights=np.repeat(totals, 2).astype(np.float64))
    for code, annotator_id in enumerate(distinct.tolist()):
        figure.per_annotator[annotator_id] = Ratio(hits=float(summed_hits[code]), total=int(summed_totals[code]))


def agreement_and_tau(labels: Iterable[RawLabel] | LabelColumns) -> tuple[Figure, Figure]:
    """``pairwise_agreement`` and ``mean_kendall_tau_b`` in one pass over the labels."""
    columns = LabelColumns.of(labels)
    first, second, _ = pairs_within(columns.task_ids)  # (P,) each: every two labels of a task
    a, b = columns.ranking_index[first], columns.ranking_index[second]
    # Both figures of two labels depend on their two rankings alone, and a project's labels hold
    # few distinct rankings (13 of three candidates): each two rankings are compared once.
    distinct, which = np.unique(a * len(columns.rankings) + b, return_inverse=True)
    which = which.reshape(-1)
    signs: dict[int, tuple] = {}
    agree, judgements, taus = [], [], []
    for code in distinct.tolist():
        x, y = divmod(code, len(columns.rankings))
        hits, n, value = _compare(columns.rankings[x], columns.rankings[y], signs, x, y)
        agree.append(hits)
        judgements.append(n)
        taus.append(np.nan if value is None else value)
    agree_p = np.array(agree, dtype=np.int64)[which] if len(which) else np.zeros(0, dtype=np.int64)  # (P,)
    judgements_p = np.array(judgements, dtype=np.int64)[which] if len(which) else np.zeros(0, dtype=np.int64)
    tau_p = np.array(taus, dtype=np.float64)[which] if len(which) else np.zeros(0)
    annotators = np.stack([columns.annotator_ids[first], columns.annotator_ids[second]], axis=1)  # (P, 2)

    pairwise, tau = Figure(), Figure()
    pairwise.overall = Ratio(hits=float(agree_p.sum()), total=int(judgements_p.sum()))
    _per_annotator(pairwise, annotators, agree_p, judgements_p)
    defined = ~np.isnan(tau_p)  # pairs where tau-b is undefined are left out
    tau.overall = Ratio(hits=_in_order(tau_p[defined]), total=int(defined.sum()))
    _per_annotator(tau, annotators[defined], tau_p[defined], np.ones(int(defined.sum()), dtype=np.int64))
    return pairwise, tau


def _compare(a_ranking, b_ranking, signs: dict, a_key, b_key) -> tuple[int, int, float | None]:
    """(candidate pairs two rankings order alike, candidate pairs, their tau-b)."""
    a_positions, a = signs.get(a_key) or signs.setdefault(a_key, _signs(a_ranking))
    b_positions, b = signs.get(b_key) or signs.setdefault(b_key, _signs(b_ranking))
    if a_positions != b_positions:  # not from a task's import; read b at a's positions, as ever
        b = _signs_over(tier_of(b_ranking), a_positions)
    return sum(x == y for x, y in zip(a, b, strict=True)), len(a), _tau_b_of_signs(a, b)


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
    units = [list(u) for u in units]
    values = np.array([v for u in units for v in u], dtype=np.float64)
    return alpha_ordinal_by_unit(np.repeat(np.arange(len(units)), [len(u) for u in units]), values)[0]


def alpha_ordinal_by_unit(units: np.ndarray, values: np.ndarray) -> tuple[float | None, int]:
    """``krippendorff_alpha_ordinal`` of values (N,) given with the unit each rates (N,), and
    how many units are pairable. Units come in the order they first appear, a unit's values in
    row order, and the sums add in the order ``krippendorff_alpha_ordinal`` of those lists
    would: the same figure to the last bit."""
    codes = _codes(np.asarray(units))
    sizes = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)  # (U,) values per unit
    pairable = sizes[codes] >= 2 if len(codes) else np.zeros(0, dtype=bool)  # (N,)
    n, pairable_units = int(pairable.sum()), int((sizes >= 2).sum())
    if n < 2:
        return None, pairable_units
    distinct, index, counts = np.unique(values[pairable], return_inverse=True, return_counts=True)  # (V,)
    cumulative = np.concatenate([[0], np.cumsum(counts)])
    position = np.arange(len(distinct))
    lo, hi = np.minimum.outer(position, position), np.maximum.outer(position, position)  # (V, V)
    distance = (cumulative[hi + 1] - cumulative[lo] - (counts[:, None] + counts[None, :]) / 2) ** 2

    value_index = np.full(len(values), -1, dtype=np.int64)
    value_index[pairable] = index.reshape(-1)
    first, second, unit = pairs_within(codes)  # (P,) every two values of a unit
    per_unit = np.bincount(unit, weights=distance[value_index[first], value_index[second]], minlength=len(sizes))
    m = sizes[sizes >= 2]
    observed = _in_order(per_unit[sizes >= 2] * 2 / (m - 1))
    expected = _in_order((np.outer(counts, counts) * distance).ravel())
    if expected == 0:
        return None, pairable_units
    return 1 - (n - 1) * observed / expected, pairable_units


def gold_accuracy(labels: Iterable[RawLabel] | LabelColumns, gold: Mapping[int, Sequence[Sequence[int]]]) -> Figure:
    """Share of the candidate pairs a gold ranking orders strictly that the annotator ordered the same way.

    ``gold`` maps task id -> known ranking; labels on other tasks are ignored. A tie where the
    gold ranking has an order counts as a miss.
    """
    figure = Figure()
    columns = LabelColumns.of(labels)
    compared: dict[tuple, tuple[int, int]] = {}  # (gold ranking, label's ranking) -> (hits, pairs)
    on_gold = np.flatnonzero(np.isin(columns.task_ids, np.fromiter(gold, dtype=np.int64, count=len(gold))))
    for task_id, annotator_id, index in zip(columns.task_ids[on_gold].tolist(),
                                            columns.annotator_ids[on_gold].tolist(),
                                            columns.ranking_index[on_gold].tolist(), strict=True):
        known = gold[task_id]
        if known is None:
            continue
        ranking = columns.rankings[index]
        key = (_ranking_key(known), index)
        if key not in compared:
            g, a = tier_of(known), tier_of(ranking)
            expected = [(i, j, sign) for i, j in combinations(sorted(g), 2) if (sign := preference_sign(g, i, j))]
            compared[key] = (sum(preference_sign(a, i, j) == sign for i, j, sign in expected), len(expected))
        hits, pairs = compared[key]
        if pairs:
            figure.overall.add(hits, pairs)
            figure.per_annotator[annotator_id].add(hits, pairs)
    return figure


def labels_per_hour(count: int, time_spent_ms: int) -> float | None:
    """Labels per hour of time spent on them (the workspace's measured time), None without time."""
    if time_spent_ms <= 0:
        return None
    return count * 3_600_000 / time_spent_ms


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


def reward_agreement(labels: Iterable[RawLabel] | LabelColumns,
                     scores: Mapping[int, Mapping[int, Mapping[Hashable, object]]],
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
    columns = LabelColumns.of(labels)
    pairs = _scored_pairs(scores, sources or {})
    keys = pairs.pop("keys")
    if not len(pairs["task"]) or not len(columns.task_ids):
        return {}
    # Every label against every scored pair of its task: label (M,), pair (M,)
    start = np.searchsorted(pairs["task"], columns.task_ids, side="left")  # pairs are by task
    count = np.searchsorted(pairs["task"], columns.task_ids, side="right") - start  # (L,)
    label = np.repeat(np.arange(len(count)), count)
    pair = np.repeat(start, count) + np.arange(len(label)) - np.repeat(np.cumsum(count) - count, count)
    signs = _sign_table(columns.rankings, int(max(pairs["i"].max(), pairs["j"].max())) + 1)  # (R, K, K)
    human = signs[columns.ranking_index[label], pairs["i"][pair], pairs["j"][pair]]  # (M,); 2: not ranked
    ordered = (human != 0) & (human != _UNRANKED)
    pair, human = pair[ordered], human[ordered]
    separated = pairs["separated"][pair]
    key = pairs["key"][pair]
    n = np.bincount(key, minlength=len(keys))
    decided = np.bincount(key[separated], minlength=len(keys))
    hits = np.bincount(key[separated & (pairs["i_higher"][pair] == (human > 0))], minlength=len(keys))
    return {k: RewardAgreement(k, pairs=int(n[c]), decided=int(decided[c]), hits=int(hits[c]))
            for c, k in enumerate(keys) if n[c]}


_UNRANKED = 2


def _sign_table(rankings: Sequence[Sequence[Sequence[int]]], k: int) -> np.ndarray:
    """``preference_sign`` of each ranking (R,) for each two positions below k: (R, k, k) int8,
    ``_UNRANKED`` where the ranking does not place one of them."""
    table = np.full((len(rankings), k, k), _UNRANKED, dtype=np.int8)
    for r, ranking in enumerate(rankings):
        placed = [(p, t) for p, t in tier_of(ranking).items() if 0 <= p < k]
        if placed:
            positions, tiers = (np.array(c) for c in zip(*placed, strict=True))
            table[r][np.ix_(positions, positions)] = np.sign(tiers[None, :] - tiers[:, None])
    return table


def _scored_pairs(scores: Mapping[int, Mapping[int, Mapping[Hashable, object]]],
                  sources: Mapping[int, Mapping[int, Hashable]]) -> dict:
    """Every two candidates of a task, i < j, one source scored, for each reward both have a
    finite number for, as arrays sorted by task: ``task``, ``i``, ``j``, ``key`` (an index into
    ``keys``), ``separated`` (the scores differ), ``i_higher`` (i's is higher)."""
    keys: dict[Hashable, int] = {}
    source_codes: dict[Hashable, int] = {}
    unhashable: list = []  # (code, source) compared by ==: a source read from metadata may be a list
    rows = []  # (task, source, key, position, value)
    for task_id, task_scores in scores.items():
        task_sources = sources.get(task_id, {})
        for position, rewards in task_scores.items():
            source = task_sources.get(position)
            try:
                code = source_codes.setdefault(source, len(source_codes) + len(unhashable))
            except TypeError:
                code = next((c for c, s in unhashable if s == source), None)
                if code is None:
                    code = len(source_codes) + len(unhashable)
                    unhashable.append((code, source))
            for k, v in rewards.items():
                value = _score(v)
                if value is not None:
                    rows.append((task_id, code, keys.setdefault(k, len(keys)), position, value))
    empty = np.zeros(0, dtype=np.int64)
    if not rows:
        return {"keys": list(keys), "task": empty, "i": empty, "j": empty, "key": empty,
                "separated": empty.astype(bool), "i_higher": empty.astype(bool)}
    task, source, key, position = (np.array(c, dtype=np.int64) for c in list(zip(*rows, strict=True))[:4])
    value = np.array([r[4] for r in rows], dtype=np.float64)
    order = np.lexsort((position, key, source, task))
    task, source, key, position, value = task[order], source[order], key[order], position[order], value[order]
    new_group = np.concatenate([[True], (task[1:] != task[:-1]) | (source[1:] != source[:-1]) | (key[1:] != key[:-1])])
    first, second, _ = pairs_within(np.cumsum(new_group))
    return {"keys": list(keys), "task": task[first], "i": position[first], "j": position[second], "key": key[first],
            "separated": value[first] != value[second], "i_higher": value[first] > value[second]}
