import torch

from workers.engine.config import FiltersConfig
from workers.engine.filters import difficulty_mask, keep_mask, zero_spread_mask

REWARDS = torch.tensor([[1.0, 1.0, 1.0, 1.0],
                        [0.0, 1.0, 0.0, 0.0],
                        [0.0, 0.0, 0.0, 0.0],
                        [0.5, 0.5, 0.5, 0.6]])


def test_dynamic_sampling_drops_groups_without_reward_spread():
    assert zero_spread_mask(REWARDS).tolist() == [False, True, False, True]


def test_difficulty_filter_keeps_intermediate_accuracy():
    correct = REWARDS == 1.0  # accuracies 1, 0.25, 0, 0
    assert difficulty_mask(correct, 0.1, 0.9).tolist() == [False, True, False, False]
    assert difficulty_mask(correct, 0.0, 0.25).tolist() == [False, True, True, True]
    assert difficulty_mask(correct, 0.25, 1.0).tolist() == [True, True, False, False]


def test_keep_mask_combines_enabled_filters_only():
    correct = REWARDS == 1.0
    assert keep_mask(FiltersConfig(), REWARDS, correct).all()
    both = FiltersConfig(dynamic_sampling=True,
                         difficulty=FiltersConfig().difficulty.__class__(enabled=True))
    assert keep_mask(both, REWARDS, correct).tolist() == [False, True, False, False]
