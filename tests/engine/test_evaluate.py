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


def scripted(monkeypatch, texts):
    """Decoded completions taken from ``texts`` in order, whatever the tiny model sampled."""
    from workers.engine import evaluate

    queue = iter(texts)
    monkeypatch.setattr(evaluate, "decode_completions",
                        lambda tokenizer, batch: [next(queue) for _ in batch.completion_lengths])


def test_each_held_out_prompt_gets_its_greedy_answer_and_its_samples_tally(monkeypatch):
    model, tok = build_tiny_policy(alphabet="ab", hidden_size=32, num_layers=1, num_heads=2,
                                   intermediate_size=64)
    records = [PromptRecord("a", reference="1"), PromptRecord("b", reference="2"),
               PromptRecord("ab", reference="7")]
    greedy = ["The answer is 1.", "3", "\\boxed{7}"]  # right, wrong, right
    sampled = ["1", "1", "0", "0",  "2", "0", "0", "0",  "0", "0", "0", "0"]  # 2, 1 and 0 of 4 right
    scripted(monkeypatch, greedy + sampled)
    result = evaluate_held_out(model, tok, records, num_samples=4, k=2, max_new_tokens=3, batch_rows=5)
    assert [(a.index, a.completion, a.correct, a.samples_correct, a.samples) for a in result.answers] == [
        (0, "The answer is 1.", True, 2, 4), (1, "3", False, 1, 4), (2, "\\boxed{7}", True, 0, 4)]
    assert result.metrics["greedy_pass@1"] == pytest.approx(2 / 3)
    assert result.metrics["pass@2"] == pytest.approx((pass_at_k(4, 2, 2) + pass_at_k(4, 1, 2) + 0) / 3)
    assert all(1 <= a.length <= 3 and a.finish_reason in ("stop", "length") for a in result.answers)
