"""The array implementations in agreement.py give exactly the figures of plain loops over the
labels (the implementation they replaced, kept here as the reference), on random labels with
ties, tasks of 1 to 4 candidates, mixed sizes within a task and annotators overlapping.

Exact equality, not approx: the sums of floats (tau-b, alpha) add in the order the loops add."""

import math
import random
from collections import defaultdict
from itertools import combinations

import pytest

from webapp.feedback.agreement import (
    RawLabel,
    agreement_and_tau,
    gold_accuracy,
    krippendorff_alpha_ordinal,
    reward_agreement,
)
from webapp.feedback.ranking import preference_sign, tier_of

# ---------------------------------------------------------------- the reference, plainly


def signs_at(ranking, positions):
    tiers = tier_of(ranking)
    return [preference_sign(tiers, i, j) for i, j in combinations(positions, 2)]


def tau_b(a, b):
    concordant = sum(x * y > 0 for x, y in zip(a, b, strict=True))
    discordant = sum(x * y < 0 for x, y in zip(a, b, strict=True))
    denominator = math.sqrt((len(a) - a.count(0)) * (len(b) - b.count(0)))
    return None if denominator == 0 else (concordant - discordant) / denominator


def reference_agreement_and_tau(labels):
    """{None: overall, annotator: theirs} of [hits, total] for agreement and for tau-b."""
    agreement, tau = defaultdict(lambda: [0.0, 0]), defaultdict(lambda: [0.0, 0])
    by_task = defaultdict(list)
    for label in labels:
        by_task[label.task_id].append(label)
    for task_labels in by_task.values():
        for x, y in combinations(task_labels, 2):
            positions = sorted(tier_of(x.ranking))
            a, b = signs_at(x.ranking, positions), signs_at(y.ranking, positions)
            value = tau_b(a, b)
            for who in (None, x.annotator_id, y.annotator_id):
                agreement[who][0] += sum(s == t for s, t in zip(a, b, strict=True))
                agreement[who][1] += len(a)
                if value is not None:
                    tau[who][0] += value
                    tau[who][1] += 1
    return dict(agreement), dict(tau)


def reference_alpha(units):
    pairable = [u for u in units if len(u) >= 2]
    counts = defaultdict(int)
    for unit in pairable:
        for v in unit:
            counts[v] += 1
    n = sum(counts.values())
    if n < 2:
        return None
    values = sorted(counts)

    def distance(c, k):
        lo, hi = sorted((values.index(c), values.index(k)))
        return (
            sum(counts[v] for v in values[lo : hi + 1]) - (counts[c] + counts[k]) / 2
        ) ** 2

    observed = 0.0
    for unit in pairable:
        observed += (
            sum(distance(a, b) for a, b in combinations(unit, 2)) * 2 / (len(unit) - 1)
        )
    expected = sum(
        counts[c] * counts[k] * distance(c, k) for c in values for k in values
    )
    return None if expected == 0 else 1 - (n - 1) * observed / expected


def reference_reward_agreement(labels, scores, sources):
    counts = defaultdict(lambda: [0, 0, 0])

    def finite(v):
        return (
            not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        )

    for label in labels:
        task_scores, task_sources = (
            scores.get(label.task_id, {}),
            sources.get(label.task_id, {}),
        )
        tiers = tier_of(label.ranking)
        for i, j in combinations(sorted(task_scores), 2):
            if (
                task_sources.get(i) != task_sources.get(j)
                or i not in tiers
                or j not in tiers
            ):
                continue
            human = preference_sign(tiers, i, j)
            if human == 0:
                continue
            for key in task_scores[i].keys() & task_scores[j].keys():
                a, b = task_scores[i][key], task_scores[j][key]
                if finite(a) and finite(b):
                    counts[key][0] += 1
                    counts[key][1] += a != b
                    counts[key][2] += a != b and (a > b) == (human > 0)
    return {k: tuple(v) for k, v in counts.items()}


def reference_gold(labels, gold):
    counts = defaultdict(lambda: [0, 0])
    for label in labels:
        known = gold.get(label.task_id)
        if known is None:
            continue
        g, a = tier_of(known), tier_of(label.ranking)
        expected = [
            (i, j) for i, j in combinations(sorted(g), 2) if preference_sign(g, i, j)
        ]
        if expected:
            for who in (None, label.annotator_id):
                counts[who][0] += sum(
                    preference_sign(a, i, j) == preference_sign(g, i, j)
                    for i, j in expected
                )
                counts[who][1] += len(expected)
    return dict(counts)


# ---------------------------------------------------------------- random data


def random_ranking(rng, k):
    order = rng.sample(range(k), k)
    ranking = [[order[0]]]
    for p in order[1:]:
        if rng.random() < 0.3:
            ranking[-1] = sorted(ranking[-1] + [p])
        else:
            ranking.append([p])
    return ranking


def random_labels(rng):
    labels = []
    for task_id in range(rng.randint(0, 40)):
        k = rng.choice([1, 2, 3, 4])
        for annotator_id in rng.sample(range(8), rng.randint(1, 5)):
            size = (
                k if rng.random() < 0.95 else rng.choice([2, 3, 4])
            )  # a label that places other candidates
            labels.append(RawLabel(task_id, annotator_id, random_ranking(rng, size)))
    rng.shuffle(labels)
    return labels


def figures(figure):
    return {
        None: [figure.overall.hits, figure.overall.total],
        **{who: [r.hits, r.total] for who, r in figure.per_annotator.items()},
    }


SEEDS = range(200)


@pytest.mark.parametrize("seed", SEEDS)
def test_agreement_and_tau_equal_the_plain_loops_exactly(seed):
    labels = random_labels(random.Random(seed))
    try:
        expected = reference_agreement_and_tau(labels)
    except (
        KeyError
    ):  # a label that does not place a candidate another label of its task places
        with pytest.raises(KeyError):
            agreement_and_tau(labels)
        return
    pairwise, tau = agreement_and_tau(labels)
    assert (figures(pairwise), figures(tau)) == (
        expected[0] or {None: [0.0, 0]},
        expected[1] or {None: [0.0, 0]},
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_krippendorff_alpha_equals_the_plain_loops_exactly(seed):
    rng = random.Random(seed)
    scale = rng.choice([[0, 1], [1, 2, 3, 4, 5], list(range(11)), [0.5, 1.5, 2.25]])
    units = [
        [rng.choice(scale) for _ in range(rng.choice([0, 1, 2, 2, 3, 3, 4, 5]))]
        for _ in range(rng.randint(0, 40))
    ]
    assert krippendorff_alpha_ordinal(units) == reference_alpha(units)


@pytest.mark.parametrize("seed", SEEDS)
def test_reward_agreement_and_gold_accuracy_equal_the_plain_loops(seed):
    rng = random.Random(seed)
    labels = random_labels(rng)
    scores = {
        t: {
            p: {
                key: rng.choice([0.0, 1.0, 0.5, 2, float("nan"), True, "1"])
                for key in rng.sample(
                    ["exact", "format", ("total",)], rng.randint(0, 3)
                )
            }
            for p in rng.sample(range(4), rng.randint(0, 4))
        }
        for t in range(40)
        if rng.random() < 0.8
    }
    sources = {
        t: {p: rng.choice([1, 2, "task", [1]]) for p in range(4) if rng.random() < 0.8}
        for t in range(40)
        if rng.random() < 0.5
    }
    found = {
        k: (r.pairs, r.decided, r.hits)
        for k, r in reward_agreement(labels, scores, sources).items()
    }
    assert found == reference_reward_agreement(labels, scores, sources)

    gold = {
        t: rng.choice([[[0], [1]], [[1], [0], [2]], [[0, 1]], [[2], [0, 1], [3]], None])
        for t in range(40)
        if rng.random() < 0.4
    }
    try:
        expected = reference_gold(labels, gold)
    except KeyError:
        with pytest.raises(KeyError):
            gold_accuracy(labels, gold)
        return
    assert figures(gold_accuracy(labels, gold)) == (expected or {None: [0.0, 0]})
