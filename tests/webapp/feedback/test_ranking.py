import pytest

from webapp.feedback.ranking import (
    ranking_from_pairwise_choice, ranking_from_ranks, ranking_normalise, ranking_pairs,
)


def test_normalise_accepts_tiers_and_flat_lists():
    assert ranking_normalise([[1], [2, 0]], k=3) == [[1], [0, 2]]
    assert ranking_normalise([2, 0, 1], k=3) == [[2], [0], [1]]


@pytest.mark.parametrize("bad", [[], [[0]], [[0], [0, 1]], [[0], [2]], [["0"], [1]], [[True], [1]], "01", [[], [0, 1]]])
def test_normalise_refuses_rankings_that_do_not_place_each_candidate_once(bad):
    with pytest.raises(ValueError):
        ranking_normalise(bad, k=2)


def test_pairwise_choices_map_to_rankings():
    assert ranking_from_pairwise_choice("a") == ([[0], [1]], False)
    assert ranking_from_pairwise_choice("b") == ([[1], [0]], False)
    assert ranking_from_pairwise_choice("tie") == ([[0, 1]], False)
    assert ranking_from_pairwise_choice("both_bad") == ([[0, 1]], True)
    with pytest.raises(ValueError):
        ranking_from_pairwise_choice("c")


def test_rank_numbers_with_equal_values_make_ties():
    assert ranking_from_ranks({0: 2, 1: 1, 2: 2, 3: 4}, k=4) == [[1], [0, 2], [3]]


def test_ranking_pairs_lists_ordered_and_tied_pairs():
    assert ranking_pairs([[2], [0, 1]]) == [(2, 0, False), (2, 1, False), (0, 1, True)]
