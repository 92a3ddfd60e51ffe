"""Estimators against values computed here by hand (plain Python), plus their properties."""

import math
import statistics

import pytest
import torch

from workers.engine.advantages import ADVANTAGE_ESTIMATORS, EPS, compute_advantages

REWARDS = [[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0]]  # (n=3, G=4)


def one_component(rows):
    return torch.tensor(rows).unsqueeze(-1), torch.tensor([1.0])


def test_grpo_group_scale_matches_hand_computation():
    adv = compute_advantages("grpo", *one_component(REWARDS), scale="group")
    for i, row in enumerate(REWARDS):
        mean, std = statistics.mean(row), statistics.stdev(row)  # unbiased, as torch.std
        expected = [(r - mean) / (std + EPS) for r in row]
        assert adv[i].tolist() == pytest.approx(expected, abs=1e-6)
    # the second group: mean 0.25, std 0.5 -> winner 0.75 / 0.5001
    assert adv[1, 3].item() == pytest.approx(0.75 / (0.5 + EPS), abs=1e-6)


def test_grpo_batch_and_none_scales():
    flat = [r for row in REWARDS for r in row]
    batch_std = statistics.stdev(flat)
    batch = compute_advantages("grpo", *one_component(REWARDS), scale="batch")
    none = compute_advantages("grpo", *one_component(REWARDS), scale="none")
    for i, row in enumerate(REWARDS):
        mean = statistics.mean(row)
        assert none[i].tolist() == pytest.approx([r - mean for r in row], abs=1e-6)
        assert batch[i].tolist() == pytest.approx([(r - mean) / (batch_std + EPS) for r in row],
                                                  abs=1e-6)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_grpo_advantages_sum_to_zero_per_group(scale):
    rewards = torch.rand(5, 6, 1, generator=torch.Generator().manual_seed(1))
    adv = compute_advantages("grpo", rewards, torch.tensor([1.0]), scale=scale)
    assert torch.allclose(adv.sum(dim=1), torch.zeros(5), atol=1e-5)


def test_zero_spread_group_gets_zero_advantage():
    for name in ("grpo", "rloo"):
        adv = compute_advantages(name, *one_component(REWARDS), scale="group")
        assert adv[2].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_rloo_leave_one_out_baseline():
    adv = compute_advantages("rloo", *one_component(REWARDS), scale="none")
    for i, row in enumerate(REWARDS):
        expected = [r - (sum(row) - r) / (len(row) - 1) for r in row]
        assert adv[i].tolist() == pytest.approx(expected, abs=1e-6)


def test_reinforce_pp_whitens_group_centred_rewards_over_the_batch():
    adv = compute_advantages("reinforce_pp", *one_component(REWARDS), scale="group")
    centred = [r - statistics.mean(row) for row in REWARDS for r in row]
    mean, std = statistics.mean(centred), statistics.stdev(centred)
    expected = [(c - mean) / (std + EPS) for c in centred]
    assert adv.flatten().tolist() == pytest.approx(expected, abs=1e-5)


def test_weights_combine_components_before_grpo():
    comps = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # one group of 2, two components
    adv = compute_advantages("grpo", comps, torch.tensor([3.0, 1.0]), scale="none")
    assert adv.tolist() == [[1.0, -1.0]]  # totals 3 and 1, mean 2


def test_gdpo_hand_computed():
    # two groups of G=2, two 0/1 components
    comps = torch.tensor([[[0.0, 0.0], [0.0, 1.0]],
                          [[0.0, 0.0], [1.0, 1.0]]])
    adv = compute_advantages("gdpo", comps, torch.tensor([1.0, 1.0]), scale="group")
    s = math.sqrt(0.5)  # unbiased std of {0, 1}
    z = 0.5 / (s + EPS)  # one component's normalised value
    raw = [-z, z, -2 * z, 2 * z]  # group 1: only component 2 varies; group 2: both vary
    mean, std = statistics.mean(raw), statistics.stdev(raw)
    expected = [(r - mean) / (std + EPS) for r in raw]
    assert adv.flatten().tolist() == pytest.approx(expected, abs=1e-5)


def test_gdpo_separates_reward_combinations_that_grpo_collapses():
    """GDPO paper's point: totals {0, 1} and {0, 2} give GRPO identical advantages, although
    the second group's winner satisfied both rewards."""
    comps = torch.tensor([[[0.0, 0.0], [0.0, 1.0]],
                          [[0.0, 0.0], [1.0, 1.0]]])
    weights = torch.tensor([1.0, 1.0])
    grpo = compute_advantages("grpo", comps, weights, scale="group")
    gdpo = compute_advantages("gdpo", comps, weights, scale="group")
    assert torch.allclose(grpo[0], grpo[1], atol=1e-3)  # equal up to the eps in 1/(std+eps)
    assert (gdpo[1] - gdpo[0]).abs().max() > 0.3
    assert gdpo[1, 1] > gdpo[0, 1] > 0


def test_registry_names_match_config_choices():
    from workers.engine.config import ESTIMATORS

    assert set(ADVANTAGE_ESTIMATORS) == set(ESTIMATORS)
