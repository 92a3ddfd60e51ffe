"""GRPO-λ gating: a component counts only in groups whose accuracy reaches its threshold."""

import pytest
import torch

from tests.engine.test_trainer import PROMPTS, Recorder
from workers.engine import TrainConfig, train
from workers.engine.advantages import compute_advantages
from workers.engine.config import RewardConfig
from workers.engine.errors import ConfigError
from workers.engine.reward_gates import gate_by_group_accuracy

ACCURACY = RewardConfig(name="exact_answer")
LENGTH = RewardConfig(name="length", params={"max_tokens": 4}, min_group_accuracy=0.5)


def test_a_group_under_the_threshold_gets_its_best_value_and_others_are_untouched():
    rewards = {"exact_answer": [1, 0, 0, 0, 1, 1, 0, 1],  # group accuracies 0.25 and 0.75
               "length": [0.0, 1.0, 0.0, 0.5, 0.0, 1.0, 1.0, 0.0]}
    gated, extras = gate_by_group_accuracy([ACCURACY, LENGTH], rewards, "exact_answer", 4)
    assert gated["length"] == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    assert gated["exact_answer"] == rewards["exact_answer"]
    assert extras == {"rewards/length/gated_groups": 0.5}
    assert rewards["length"] == [0.0, 1.0, 0.0, 0.5, 0.0, 1.0, 1.0, 0.0]  # the input is left as it was


def test_the_threshold_is_inclusive_and_nothing_gated_returns_no_metric():
    rewards = {"exact_answer": [1, 1, 0, 0], "length": [0.0, 1.0, 0.0, 1.0]}
    gated, extras = gate_by_group_accuracy([ACCURACY, LENGTH], rewards, "exact_answer", 4)
    assert gated["length"] == [0.0, 1.0, 0.0, 1.0] and extras == {"rewards/length/gated_groups": 0.0}
    plain = RewardConfig(name="length", params={"max_tokens": 4})
    assert gate_by_group_accuracy([ACCURACY, plain], rewards, "exact_answer", 4) == (rewards, {})


@pytest.mark.parametrize("estimator", ["grpo", "rloo", "reinforce_pp", "gdpo"])
def test_a_gated_group_learns_accuracy_alone(estimator):
    """In the failing group the advantages are those of accuracy alone, up to the batch-wide
    scale of the whitening estimators; without the gate they are not."""
    accuracy = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    length = [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    gated, _ = gate_by_group_accuracy([ACCURACY, LENGTH], {"exact_answer": accuracy, "length": length},
                                      "exact_answer", 4)

    def advantages(components, weights):
        return compute_advantages(estimator, torch.tensor(components).T.reshape(2, 4, len(components)),
                                  torch.tensor(weights), scale="group")

    with_gate = advantages([accuracy, gated["length"]], [1.0, 0.5])[0]
    alone = advantages([accuracy], [1.0])[0]
    factor = with_gate.norm() / alone.norm()
    assert torch.allclose(with_gate, alone * factor, atol=1e-5)
    if estimator in ("grpo", "rloo"):  # group-scaled: exactly the same
        assert torch.allclose(factor, torch.tensor(1.0), atol=1e-5)
    ungated = advantages([accuracy, length], [1.0, 0.5])[0]
    assert not torch.allclose(ungated, alone * (ungated.norm() / alone.norm()), atol=1e-3)


def test_the_config_reads_and_writes_the_threshold():
    reward = RewardConfig.from_dict({"name": "length", "max_tokens": 64, "min_group_accuracy": 0.75})
    assert reward.min_group_accuracy == 0.75 and reward.params == {"max_tokens": 64}
    assert RewardConfig.from_dict(reward.to_dict()) == reward


@pytest.mark.parametrize("rewards, field, words", [
    ([{"name": "length", "max_tokens": 8, "min_group_accuracy": 0.5}],
     "rewards[0].min_group_accuracy", "needs a 0/1 reward"),
    ([{"name": "exact_answer", "min_group_accuracy": 0.5}], "rewards[0].min_group_accuracy", "accuracy reward itself"),
    ([{"name": "exact_answer"}, {"name": "length", "max_tokens": 8, "min_group_accuracy": 0}],
     "rewards[1].min_group_accuracy", "must be in (0, 1]"),
    ([{"name": "exact_answer"}, {"name": "length", "max_tokens": 8, "min_group_accuracy": "high"}],
     "rewards[1].min_group_accuracy", ""),
])
def test_a_bad_threshold_is_named(tiny_cfg, rewards, field, words):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(tiny_cfg(rewards=rewards))
    assert info.value.field == field and words in info.value.message


def test_a_run_trains_on_gated_values_and_reports_the_scored_ones(tiny_cfg, tmp_path):
    """Advantages of a group under the threshold are those of accuracy alone; metrics and the
    recorded trajectories keep the length reward each completion actually scored."""
    rewards = [{"name": "regex", "pattern": "a+", "mode": "fullmatch"},
               {"name": "length", "max_tokens": 2, "weight": 0.5, "min_group_accuracy": 0.75}]
    recorder = Recorder()
    train(TrainConfig.from_dict(tiny_cfg(rewards=rewards, train={"total_steps": 2, "log_rollouts_fraction": 1.0})),
          PROMPTS, recorder, output_dir=tmp_path)
    gated_groups = 0
    for step, metrics in recorder.metrics.items():
        assert 0.0 <= metrics["rewards/length/gated_groups"] <= 1.0
        by_group = {}
        for r in recorder.rollouts[step]:
            assert r["rewards"]["length"] == float(r["length"] <= 2)  # as scored, never held
            by_group.setdefault(r["group_index"], []).append(r)
        for group in by_group.values():
            if not group[0]["trained"] or sum(r["rewards"]["regex"] for r in group) / len(group) >= 0.75:
                continue
            gated_groups += 1
            accuracy = torch.tensor([[r["rewards"]["regex"] for r in group]])
            alone = compute_advantages("grpo", accuracy[..., None], torch.tensor([1.0]), scale="group")[0]
            assert [r["advantage"] for r in group] == pytest.approx(alone.tolist(), abs=1e-5)
    assert gated_groups > 0  # the random tiny policy fails most groups


@pytest.mark.parametrize("rewards, expected", [
    ([{"name": "contains", "text": "x", "weight": 0.0, "label": "held_out"}, {"name": "regex", "pattern": "a"}],
     "regex"),  # a weight-0 monitor does not define accuracy when a trained-on 0/1 reward does
    ([{"name": "regex", "pattern": "a"}, {"name": "exact_answer", "weight": 0.0}], "exact_answer"),
    ([{"name": "contains", "text": "x", "weight": 0.0}, {"name": "length", "max_tokens": 4}], "contains"),
    ([{"name": "length", "max_tokens": 4}], None),
])
def test_the_accuracy_reward_is_exact_answer_else_a_trained_on_0_1_reward(tiny_cfg, rewards, expected):
    assert TrainConfig.from_dict(tiny_cfg(rewards=rewards)).accuracy_reward == expected
