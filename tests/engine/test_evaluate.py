from itertools import combinations
from math import comb

import pytest

from workers.engine.data import PromptRecord
from workers.engine.evaluate import evaluate_held_out, evaluate_pass_at_k, pass_at_k
from workers.engine.tiny import build_tiny_policy


@pytest.mark.parametrize("n, c, k", [(5, 0, 1), (5, 5, 3), (5, 2, 1), (5, 2, 2), (10, 3, 4),
                                     (4, 1, 4), (8, 7, 2)])
def test_pass_at_k_matches_the_combinatorial_formula(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_is_the_chance_a_random_k_subset_holds_a_success():
    outcomes = [1, 0, 0, 1, 0]  # n = 5, c = 2
    subsets = list(combinations(outcomes, 3))
    assert pass_at_k(5, 2, 3) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_pass_at_1_is_the_success_rate():
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_evaluate_reports_greedy_and_sampled_scores():
    model, tok = build_tiny_policy(alphabet="ab", hidden_size=32, num_layers=1, num_heads=2,
                                   intermediate_size=64)
    records = [PromptRecord("a", reference="a"), PromptRecord("b", reference="b")]
    result = evaluate_pass_at_k(model, tok, records, num_samples=4, k=2, max_new_tokens=3)
    assert set(result) == {"greedy_pass@1", "pass@2"}
    assert all(0.0 <= v <= 1.0 for v in result.values())
    again = evaluate_pass_at_k(model, tok, records, num_samples=4, k=2, max_new_tokens=3)
    assert again == result  # seeded


def test_each_held_out_prompt_gets_its_greedy_answer_and_its_samples_tally():
    model, tok = build_tiny_policy(alphabet="ab", hidden_size=32, num_layers=1, num_heads=2,
                                   intermediate_size=64)
    records = [PromptRecord("a", reference="a"), PromptRecord("b", reference="bb"), PromptRecord("ab", reference="b")]
    result = evaluate_held_out(model, tok, records, num_samples=4, k=2, max_new_tokens=3)
    assert [a.index for a in result.answers] == [0, 1, 2]
    assert result.metrics["greedy_pass@1"] == pytest.approx(sum(a.correct for a in result.answers) / 3)
    for a in result.answers:
        assert a.samples == 4 and 0 <= a.samples_correct <= 4 and 1 <= a.length <= 3
        assert a.finish_reason in ("stop", "length")
        assert a.correct == (a.completion.strip() == records[a.index].reference)
    # pass@k is built from the same tallies
    assert result.metrics["pass@2"] == pytest.approx(
        sum(pass_at_k(4, a.samples_correct, 2) for a in result.answers) / 3)
    assert evaluate_pass_at_k(model, tok, records, num_samples=4, k=2, max_new_tokens=3) == result.metrics
