import pytest
import torch

from workers.engine.config import RewardConfig
from workers.engine.rewards import (REWARDS, aggregate_ensemble, answers_match,
                                    ensemble_disagreement, extract_answer, score_completions)


def call(name, completions, references=None, **params):
    refs = references if references is not None else [None] * len(completions)
    return REWARDS[name].fn([""] * len(completions), completions, refs, **params)


@pytest.mark.parametrize("text, answer", [
    (r"so the total is \boxed{42}.", "42"),
    (r"\boxed{\frac{1}{2}} done", r"\frac{1}{2}"),
    (r"nested \boxed{x^{2}} ok", "x^{2}"),
    ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72"),
    ("The answer is 7 apples.", "7 apples."),
    ("Answer: Paris", "Paris"),
    ("3 plus 4 is 7, so he has 7", "7"),
    ("no digits here", None),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize("predicted, reference, ok", [
    ("7", "7", True), ("7.0", "7", True), ("1,000", "1000", True), ("$1,000", "1000", True),
    ("7 apples.", "7", True), ("8", "7", False), ("0.5", r"\frac{1}{2}", True),
    ("3/4", "0.75", True), ("50%", "50", True), ("Paris", " paris. ", True),
    ("Lyon", "Paris", False), ("7", "He has 3 + 4 apples.\n#### 7", True), (None, "7", False),
    ("7", None, False),
])
def test_answers_match(predicted, reference, ok):
    assert answers_match(predicted, reference) is ok


def test_exact_answer_tolerance():
    assert call("exact_answer", ["it is 3.14159"], ["3.1416"]) == [0.0]
    assert call("exact_answer", ["it is 3.14159"], ["3.1416"], tolerance=1e-3) == [1.0]
    assert call("exact_answer", ["x is 7", "x is 8"], ["7", "7"]) == [1.0, 0.0]


def test_regex_search_and_fullmatch():
    texts = ["<think>a</think> 5", "5", "  5\n"]
    assert call("regex", texts, pattern=r"\d") == [1.0, 1.0, 1.0]
    assert call("regex", texts, pattern=r"\d", mode="fullmatch") == [0.0, 1.0, 1.0]
    assert call("regex", ["ABC"], pattern="abc", flags=["IGNORECASE"]) == [1.0]


def test_criteria_components():
    texts = ['{"a": 1}', "```json\n[1, 2]\n```", "not json", "Because BECAUSE"]
    assert call("valid_json", texts) == [1.0, 1.0, 0.0, 0.0]
    assert call("contains", texts, text="because") == [0.0, 0.0, 0.0, 0.0]
    assert call("contains", texts, text="because", case_sensitive=False) == [0, 0, 0, 1]
    assert call("not_contains", texts, text="json") == [1.0, 0.0, 0.0, 1.0]
    assert call("max_length", texts, max_chars=8) == [1.0, 0.0, 1.0, 0.0]


def test_checklist_is_weighted_fraction_of_criteria():
    cfg = RewardConfig.from_dict({"name": "checklist", "criteria": [
        {"type": "contains", "text": "yes", "weight": 3},
        {"type": "valid_json", "weight": 1}]})
    got = call("checklist", ['"yes"', "yes", "{}", "no"], **cfg.params)
    assert got == pytest.approx([1.0, 0.75, 0.25, 0.0])


def test_length_truncate_and_linear():
    lengths = [5, 10, 11, 15, 30]
    assert REWARDS["length"].fn([], [""] * 5, None, max_tokens=10,
                                completion_lengths=lengths) == [1, 1, 0, 0, 0]
    linear = REWARDS["length"].fn([], [""] * 5, None, max_tokens=10, mode="linear", window=10,
                                  completion_lengths=lengths)
    assert linear == pytest.approx([1.0, 1.0, 0.9, 0.5, 0.0])


def test_score_completions_uses_labels_and_passes_lengths():
    configs = [RewardConfig.from_dict({"name": "exact_answer"}),
               RewardConfig.from_dict({"name": "length", "label": "short", "max_tokens": 3})]
    values, extras = score_completions(configs, ["q", "q"], ["7", "so 8"], ["7", "7"],
                                       completion_lengths=[2, 4])
    assert values == {"exact_answer": [1.0, 0.0], "short": [1.0, 0.0]}
    assert extras == {}


def test_ensemble_aggregation_by_hand():
    scores = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, -2.0]])  # (K=2, N=3)
    assert aggregate_ensemble(scores, "mean").tolist() == [2.0, 0.0, 0.0]
    assert aggregate_ensemble(scores, "min").tolist() == [1.0, 0.0, -2.0]
    # population std over members: 1, 0, 2
    assert aggregate_ensemble(scores, "mean_minus_std", 0.5).tolist() == [1.5, 0.0, -1.0]
    assert ensemble_disagreement(scores) == pytest.approx(1.0)


def test_reward_model_component_scores_a_saved_model(tmp_path):
    from workers.engine.reward_model import build_reward_model

    scorer = build_reward_model(backbone="tiny", ensemble_size=3, seed=0, max_length=32,
                                corpus=["the cat sat", "a dog ran"])
    scorer.save(tmp_path / "rm")
    cfg = RewardConfig.from_dict({"name": "reward_model", "path": str(tmp_path / "rm"),
                                  "aggregation": "mean_minus_std", "lambda": 1.0})
    prompts, completions = ["the cat", "a dog"], ["sat", "ran far"]
    values, extras = score_completions([cfg], prompts, completions, [None, None],
                                       completion_lengths=[1, 2])
    raw = scorer.score(prompts, completions)
    expected = raw.mean(0) - raw.std(0, unbiased=False)
    assert values["reward_model"] == pytest.approx(expected.tolist(), abs=1e-5)
    assert extras["rewards/reward_model/disagreement"] == pytest.approx(
        raw.std(0, unbiased=False).mean().item(), abs=1e-6)
