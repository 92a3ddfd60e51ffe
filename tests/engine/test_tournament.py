"""Seeded single-elimination brackets inside each group (pure, no model)."""

import random

import pytest

from workers.engine.tournament import (bracket_order, judgements_per_group, rank_rewards,
                                       rounds_survived, tournament_rewards)


def test_bracket_order_keeps_the_top_seeds_apart_until_the_final():
    assert bracket_order(1) == [0]
    assert bracket_order(2) == [0, 1]
    assert bracket_order(8) == [0, 7, 3, 4, 1, 6, 2, 5]
    order = bracket_order(16)
    assert sorted(order) == list(range(16))
    assert all(a + b == 15 for a, b in zip(order[::2], order[1::2]))  # 1 meets 16, 2 meets 15, ...
    assert 0 in order[:8] and 1 in order[8:]  # opposite halves


@pytest.mark.parametrize("slots", [0, 3, 6])
def test_bracket_order_needs_a_power_of_two(slots):
    with pytest.raises(ValueError, match="power of two"):
        bracket_order(slots)


def oracle(quality):
    """play() for a judge that always prefers the better member (quality per group)."""
    calls = []

    def play(matches):
        calls.append(list(matches))
        return [1.0 if quality[g][i] > quality[g][j] else 0.0 for g, i, j in matches]

    return play, calls


def test_the_best_member_wins_and_every_group_plays_in_the_same_calls():
    rng = random.Random(0)
    quality = [[rng.random() for _ in range(8)] for _ in range(3)]
    play, calls = oracle(quality)
    survived = rounds_survived([[0.0] * 8] * 3, play)
    assert len(calls) == 3  # three rounds, each one call holding every group's matches
    assert [len(c) for c in calls] == [12, 6, 3]  # G - 1 = 7 matches per group in all
    for q, s in zip(quality, survived):
        assert s[q.index(max(q))] == 3  # the champion survived every round
        assert sorted(s) == [0, 0, 0, 0, 1, 1, 2, 3]


def test_with_perfect_seeds_the_ranking_is_complete_and_exact():
    quality = [[0.3, 0.9, 0.1, 0.5, 0.7, 0.2]]  # six members: the top two seeds get byes
    play, calls = oracle(quality)
    rewards = tournament_rewards(quality, play)[0]
    assert sum(len(c) for c in calls) == 5  # G - 1 matches, byes cost nothing
    assert sorted(range(6), key=lambda i: -rewards[i]) == sorted(range(6), key=lambda i: -quality[0][i])
    assert max(rewards) == 1.0 and min(rewards) == 0.0


def test_byes_go_to_the_top_seeds():
    seeds = [[0.1, 0.2, 0.9, 0.8, 0.3]]  # five members in eight slots: three byes
    rounds = []

    def play(matches):
        rounds.append(list(matches))
        return [0.0] * len(matches)  # the second-named always wins

    survived = rounds_survived(seeds, play)
    assert rounds[0] == [(0, 1, 0)]  # only the two lowest seeds (0.2 vs 0.1) play in round one
    assert survived[0][2] >= 1 and survived[0][3] >= 1 and survived[0][4] >= 1  # byes advance
    assert sum(len(r) for r in rounds) == 4


def test_an_even_match_goes_to_the_higher_seed():
    survived = rounds_survived([[0.2, 0.8]], lambda matches: [0.5] * len(matches))
    assert survived == [[0, 1]]


def test_rank_rewards_share_positions_on_exact_ties():
    rewards = rank_rewards([3, 2, 1, 1, 0, 0, 0, 0], [0.0] * 8)
    assert rewards[:2] == [1.0, pytest.approx(1 - 1 / 7)]
    assert rewards[2] == rewards[3] == pytest.approx(1 - 2.5 / 7)
    assert rewards[4:] == [pytest.approx(1 - 5.5 / 7)] * 4
    # seed scores break ties in rounds survived
    rewards = rank_rewards([1, 0, 0], [0.0, 0.2, 0.7])
    assert rewards == [1.0, 0.0, 0.5]


def test_a_group_of_one_gets_the_full_reward_without_a_match():
    assert tournament_rewards([[0.0]], lambda m: pytest.fail("no match to play")) == [[1.0]]


def test_judgement_counts():
    assert judgements_per_group(8, anchored=False) == 7
    assert judgements_per_group(8, anchored=True) == 15
    assert judgements_per_group(1, anchored=True) == 1
