"""Agreement figures against values worked out by hand in each test."""

import math

import pytest

from webapp.feedback.agreement import (
    RawLabel, gold_accuracy, kendall_tau_b, krippendorff_alpha_ordinal, labels_per_hour, mean_kendall_tau_b,
    pairwise_agreement, reward_agreement, wilson_interval,
)


def test_pairwise_agreement_counts_same_votes_on_pairwise_tasks():
    # Task 1: annotators 1, 2 say A; 3 says B. Pairs (1,2) agree, (1,3) and (2,3) disagree.
    # Task 2: annotators 1 and 2 both tie (one of them "both bad", same sign): agree.
    labels = [
        RawLabel(1, 1, [[0], [1]]), RawLabel(1, 2, [[0], [1]]), RawLabel(1, 3, [[1], [0]]),
        RawLabel(2, 1, [[0, 1]]), RawLabel(2, 2, [[0, 1]]),
    ]
    figure = pairwise_agreement(labels)
    assert (figure.overall.hits, figure.overall.total) == (2, 4)
    assert figure.overall.value == 0.5
    # Annotator 1 takes part in (1,2), (1,3) on task 1 and (1,2) on task 2: 2 of 3 agree.
    assert figure.per_annotator[1].value == pytest.approx(2 / 3)
    # Annotator 3 only in (1,3) and (2,3): 0 of 2.
    assert figure.per_annotator[3].value == 0


def test_pairwise_agreement_compares_every_candidate_pair_of_a_ranking():
    # k = 3. Annotator 1: A > B > C. Annotator 2: A > C > B.
    # Pair (A,B): both A above -> agree. (A,C): agree. (B,C): 1 says B above, 2 says C above -> disagree.
    figure = pairwise_agreement([RawLabel(1, 1, [[0], [1], [2]]), RawLabel(1, 2, [[0], [2], [1]])])
    assert (figure.overall.hits, figure.overall.total) == (2, 3)


def test_pairwise_agreement_has_no_value_without_overlap():
    figure = pairwise_agreement([RawLabel(1, 1, [[0], [1]]), RawLabel(2, 2, [[1], [0]])])
    assert figure.overall.value is None


def test_kendall_tau_b_without_ties():
    # x = 1 2 3, y = 1 3 2: pairs (0,1) and (0,2) concordant, (1,2) discordant -> (2 - 1) / 3.
    assert kendall_tau_b([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)


def test_kendall_tau_b_with_ties():
    # x = 1 1 2, y = 1 2 3: (0,1) tied in x, (0,2) and (1,2) concordant.
    # n0 = 3, ties in x = 1, ties in y = 0: tau_b = 2 / sqrt((3 - 1) * (3 - 0)) = 2 / sqrt(6).
    assert kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))


def test_kendall_tau_b_is_undefined_when_one_side_ties_everything():
    assert kendall_tau_b([1, 1], [1, 2]) is None


def test_mean_tau_b_averages_pairs_and_skips_undefined_ones():
    # Task 1: identical strict rankings -> 1. Task 2: reversed pair -> -1. Task 3: one tie -> left out.
    labels = [
        RawLabel(1, 1, [[0], [1], [2]]), RawLabel(1, 2, [[0], [1], [2]]),
        RawLabel(2, 1, [[0], [1]]), RawLabel(2, 2, [[1], [0]]),
        RawLabel(3, 1, [[0, 1]]), RawLabel(3, 2, [[0], [1]]),
    ]
    figure = mean_kendall_tau_b(labels)
    assert figure.overall.total == 2
    assert figure.overall.value == pytest.approx(0.0)


def test_krippendorff_alpha_ordinal_on_a_two_value_example():
    # Units (1,1), (2,2), (1,2): n_1 = 3, n_2 = 3, n = 6.
    # d(1,2) = (n_1 + n_2 - (n_1 + n_2) / 2)^2 = (6 - 3)^2 = 9.
    # Observed: only unit 3 disagrees, ordered pairs (1,2),(2,1), each 9 / (m_u - 1 = 1) -> 18.
    # Expected: sum_c sum_k n_c n_k d = 2 * 3 * 3 * 9 = 162.
    # alpha = 1 - (n - 1) * 18 / 162 = 1 - 90 / 162 = 4 / 9.
    assert krippendorff_alpha_ordinal([[1, 1], [2, 2], [1, 2]]) == pytest.approx(4 / 9)


def test_krippendorff_alpha_ordinal_weighs_distance_by_ranks_between():
    # Units (1,1), (2,2), (3,2), (3,3): n_1 = 2, n_2 = 3, n_3 = 3, n = 8.
    # d(2,3) = (3 + 3 - 3)^2 = 9; d(1,2) = (2 + 3 - 2.5)^2 = 6.25; d(1,3) = (2 + 3 + 3 - 2.5)^2 = 30.25.
    # Observed: unit 3 gives 2 * 9 = 18.
    # Expected: 2 * (2*3*6.25 + 2*3*30.25 + 3*3*9) = 2 * 300 = 600.
    # alpha = 1 - 7 * 18 / 600 = 0.79.
    assert krippendorff_alpha_ordinal([[1, 1], [2, 2], [3, 2], [3, 3]]) == pytest.approx(0.79)


def test_krippendorff_alpha_ordinal_matches_krippendorffs_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units,
    # missing values; the paper gives ordinal alpha = 0.815.
    rows = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[row[u] for row in rows if row[u] is not None] for u in range(12)]
    assert krippendorff_alpha_ordinal(units) == pytest.approx(0.815, abs=5e-4)


def test_krippendorff_alpha_is_one_for_perfect_agreement_and_none_without_variation():
    assert krippendorff_alpha_ordinal([[1, 1], [3, 3], [5, 5]]) == pytest.approx(1.0)
    assert krippendorff_alpha_ordinal([[2, 2], [2, 2]]) is None
    assert krippendorff_alpha_ordinal([[1], [2]]) is None


def test_gold_accuracy_counts_strictly_ordered_gold_pairs():
    # Gold for task 7: C > A > B (positions 2, 0, 1) -> pairs (0,1): A above, (0,2): C above, (1,2): C above.
    # Annotator 1: C > A = B: (0,1) tied -> miss, (0,2) hit, (1,2) hit -> 2 of 3.
    # Annotator 2 on pairwise gold task 8 (B over A) votes A -> 0 of 1. Task 9 has no gold: ignored.
    gold = {7: [[2], [0], [1]], 8: [[1], [0]]}
    labels = [RawLabel(7, 1, [[2], [0, 1]]), RawLabel(8, 2, [[0], [1]]), RawLabel(9, 2, [[0], [1]])]
    figure = gold_accuracy(labels, gold)
    assert figure.per_annotator[1].value == pytest.approx(2 / 3)
    assert figure.per_annotator[2].value == 0
    assert (figure.overall.hits, figure.overall.total) == (2, 4)


def test_labels_per_hour_uses_time_spent():
    # 30 labels in 15 minutes = 120 per hour.
    assert labels_per_hour(30, 15 * 60 * 1000) == pytest.approx(120)
    assert labels_per_hour(3, 0) is None


def test_reward_agreement_counts_the_pairs_people_ordered_that_the_reward_separates():
    scores = {
        1: {0: {"rm": 0.9, "exact": 1.0}, 1: {"rm": 0.1, "exact": 1.0}, 2: {"rm": 0.5, "exact": 0.0}},
        2: {0: {"rm": 0.2}, 1: {"rm": 0.7}},
        3: {0: {"rm": 0.3}, 1: {"rm": 0.4}},  # only a tie was cast here
    }
    labels = [
        RawLabel(1, 1, [[0], [2], [1]]),  # A > C > B
        RawLabel(2, 1, [[0], [1]]),  # A > B, where the reward says B
        RawLabel(2, 2, [[1], [0]]),  # another annotator: B > A, as the reward says
        RawLabel(3, 1, [[0, 1]]),  # a tie says nothing about order
        RawLabel(4, 1, [[0], [1]]),  # a task without scores (imported)
    ]
    figures = reward_agreement(labels, scores)
    rm, exact = figures["rm"], figures["exact"]
    # task 1: (A,B) hit, (A,C) hit, (B,C) C above B and 0.5 > 0.1: hit; task 2: a miss, then a hit
    assert (rm.pairs, rm.decided, rm.hits) == (5, 5, 4) and rm.agreement == 0.8
    # exact ties A and B (both 1); A > C hit; C > B but exact says B (1) > C (0): miss
    assert (exact.pairs, exact.decided, exact.hits) == (3, 2, 1)
    assert exact.coverage == pytest.approx(2 / 3) and exact.agreement == 0.5
    low, high = rm.interval
    assert low < 0.8 < high


def test_reward_agreement_skips_values_that_are_not_numbers():
    scores = {1: {0: {"a": float("nan"), "b": True, "c": "1"}, 1: {"a": 1.0, "b": False, "c": "0"}}}
    assert reward_agreement([RawLabel(1, 1, [[0], [1]])], scores) == {}


def test_wilson_interval_matches_the_published_formula():
    assert wilson_interval(0.5, 0) is None
    low, high = wilson_interval(0.8, 10)  # Wilson 95 % for 8/10: 0.490 to 0.943
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    assert wilson_interval(1.0, 5)[1] == 1.0 and wilson_interval(0.0, 5)[0] == 0.0


def test_reward_agreement_compares_only_candidates_one_source_scored():
    scores = {1: {0: {"r": 1.0}, 1: {"r": 0.0}, 2: {"r": 0.5}}}
    sources = {1: {0: "run a", 1: "run b", 2: "run a"}}
    labels = [RawLabel(1, 1, [[0], [1], [2]])]  # A > B > C
    figure = reward_agreement(labels, scores, sources)["r"]
    assert (figure.pairs, figure.hits) == (1, 1)  # only A and C, both scored by run a
