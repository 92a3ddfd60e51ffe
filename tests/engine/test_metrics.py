"""Per-step rollout metrics: accuracy and how much the groups can still teach."""

import pytest
import torch

from tests.engine.test_trainer import PROMPTS, Recorder
from workers.engine import TrainConfig, train
from workers.engine.metrics import rollout_metrics
from workers.engine.rollout import RolloutBatch


def batch_of(n: int) -> RolloutBatch:
    ones = torch.ones(n, 3, dtype=torch.long)
    return RolloutBatch(ones, ones, ones, ones, torch.zeros(n, 3), ["stop"] * n)


def test_prompt_variance_is_the_mean_of_p_times_1_minus_p_over_groups():
    correct = torch.tensor([[1.0, 1.0, 1.0, 1.0],   # p = 1: nothing left to learn
                            [0.0, 0.0, 0.0, 0.0],   # p = 0: nothing to learn from
                            [1.0, 0.0, 1.0, 0.0],   # p = 1/2: 1/4
                            [1.0, 0.0, 0.0, 0.0]])  # p = 1/4: 3/16
    metrics = rollout_metrics(correct[..., None], torch.tensor([1.0]), ["exact_answer"], batch_of(16),
                              "exact_answer")
    assert metrics["accuracy"] == pytest.approx(7 / 16)
    assert metrics["accuracy/prompt_variance"] == pytest.approx((0 + 0 + 1 / 4 + 3 / 16) / 4)


def test_without_an_accuracy_reward_there_is_no_accuracy():
    metrics = rollout_metrics(torch.rand(2, 4, 1), torch.tensor([1.0]), ["reward_model"], batch_of(8), None)
    assert "accuracy" not in metrics and "accuracy/prompt_variance" not in metrics


def test_a_weight_0_reward_is_logged_and_changes_nothing_the_run_learns(tiny_cfg, tmp_path):
    """A held-out reward: scored and charted beside the others, never trained on."""
    base = [{"name": "regex", "pattern": "a+", "mode": "fullmatch"}]
    watched = base + [{"name": "contains", "text": "b", "weight": 0.0, "label": "held_out"}]
    runs = {}
    for name, rewards in (("base", base), ("watched", watched)):
        recorder = Recorder()
        train(TrainConfig.from_dict(tiny_cfg(rewards=rewards, train={"total_steps": 2})), PROMPTS, recorder,
              output_dir=tmp_path / name)
        runs[name] = recorder.metrics
    for step in (1, 2):
        assert "rewards/held_out/mean" in runs["watched"][step]
        for key in ("reward", "loss", "grad_norm", "accuracy"):
            assert runs["watched"][step][key] == pytest.approx(runs["base"][step][key], abs=1e-6), (step, key)
