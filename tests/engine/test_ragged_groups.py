"""Groups of different sizes (Knapsack RL) padded with a valid mask: the masked estimators,
filters, metrics and reward gates against the unmasked ones and against each group alone."""

import pytest
import torch

from workers.engine.advantages import (
    ADVANTAGE_ESTIMATORS,
    EPS,
    MASKED_ESTIMATORS,
    compute_advantages,
    compute_masked_advantages,
    pad_groups,
)
from workers.engine.config import DifficultyFilterConfig, FiltersConfig, RewardConfig
from workers.engine.filters import keep_mask, zero_spread_mask
from workers.engine.metrics import masked_rollout_metrics, rollout_metrics
from workers.engine.reward_gates import gate_by_group_accuracy
from workers.engine.rewards import REWARDS, RewardComponent, score_completions
from workers.engine.rollout import RolloutBatch

SIZES = [3, 6, 2, 5]
SCALES = ("group", "batch", "none")


def _rows(sizes, k=2, seed=0, binary=False):
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(sum(sizes), k, generator=g)
    return (values > 0.5).float() if binary else values


def _batch(n):
    mask = torch.ones(n, 3, dtype=torch.long)
    mask[::2, 2] = 0
    return RolloutBatch(prompt_ids=torch.zeros(n, 2, dtype=torch.long), prompt_mask=torch.ones(n, 2, dtype=torch.long),
                        completion_ids=torch.zeros(n, 3, dtype=torch.long), completion_mask=mask,
                        sampling_logprobs=torch.zeros(n, 3),
                        finish_reasons=["length" if i % 3 == 0 else "stop" for i in range(n)])


def test_pad_groups_round_trips_group_major_rows():
    rows = torch.arange(sum(SIZES) * 2).reshape(-1, 2).float()
    padded, valid = pad_groups(rows, SIZES)
    assert padded.shape == (4, 6, 2) and valid.sum(dim=1).tolist() == SIZES
    assert torch.equal(padded[valid], rows)
    assert torch.equal(padded[0, :3], rows[:3]) and torch.equal(padded[1, :6], rows[3:9])
    assert padded[0, 3:].abs().sum() == 0
    with pytest.raises(ValueError):
        pad_groups(rows, [1, 2])


def test_every_estimator_has_a_masked_variant():
    assert set(MASKED_ESTIMATORS) == set(ADVANTAGE_ESTIMATORS)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
def test_masked_equals_unmasked_when_every_slot_is_valid(name, scale):
    components = _rows([5] * 4, k=3, seed=1).reshape(4, 5, 3)
    weights = torch.tensor([1.0, 0.5, -0.25])
    valid = torch.ones(4, 5, dtype=torch.bool)
    expected = compute_advantages(name, components, weights, scale=scale)
    got = compute_masked_advantages(name, components, weights, valid, scale=scale)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", ("group", "none"))
@pytest.mark.parametrize("name", ("grpo", "rloo"))
def test_group_local_estimators_equal_each_group_on_its_own(name, scale):
    rows = _rows(SIZES, k=2, seed=2)
    weights = torch.tensor([1.0, 0.5])
    padded, valid = pad_groups(rows, SIZES)
    got = compute_masked_advantages(name, padded, weights, valid, scale=scale)
    start = 0
    for i, n in enumerate(SIZES):
        alone = compute_advantages(name, rows[start:start + n][None], weights, scale=scale)[0]
        torch.testing.assert_close(got[i, :n], alone, rtol=1e-5, atol=1e-6)
        assert torch.all(got[i, n:] == 0)
        start += n


def test_batch_wide_parts_count_only_valid_slots():
    rows = _rows(SIZES, k=2, seed=3)
    weights = torch.tensor([1.0, 0.5])
    padded, valid = pad_groups(rows, SIZES)
    totals = rows @ weights
    groups = torch.split(totals, SIZES)
    centred = torch.cat([t - t.mean() for t in groups])
    # reinforce_pp: group-centred, then whitened over the valid completions
    expected = (centred - centred.mean()) / (centred.std() + EPS)
    got = compute_masked_advantages("reinforce_pp", padded, weights, valid, scale="group")
    torch.testing.assert_close(got[valid], expected, rtol=1e-5, atol=1e-6)
    # grpo 'batch': group-centred over the std of every valid reward
    got = compute_masked_advantages("grpo", padded, weights, valid, scale="batch")
    torch.testing.assert_close(got[valid], centred / (totals.std() + EPS), rtol=1e-5, atol=1e-6)
    # gdpo: each component normalised within its own group, weighted, whitened over valid slots
    parts = [(c - c.mean(dim=0)) / (c.std(dim=0) + EPS) for c in torch.split(rows, SIZES)]
    summed = torch.cat(parts) @ weights
    expected = (summed - summed.mean()) / (summed.std() + EPS)
    got = compute_masked_advantages("gdpo", padded, weights, valid, scale="group")
    torch.testing.assert_close(got[valid], expected, rtol=1e-5, atol=1e-6)
    assert torch.all(got[~valid] == 0)


def test_padding_values_never_matter():
    rows = _rows(SIZES, k=2, seed=4)
    weights = torch.tensor([1.0, 0.5])
    padded, valid = pad_groups(rows, SIZES)
    junk = padded.clone()
    junk[~valid] = 1e6
    for name in ADVANTAGE_ESTIMATORS:
        for scale in SCALES:
            a = compute_masked_advantages(name, padded, weights, valid, scale=scale)
            b = compute_masked_advantages(name, junk, weights, valid, scale=scale)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    filters = FiltersConfig(dynamic_sampling=True)
    assert torch.equal(keep_mask(filters, padded[..., 0], None, valid), keep_mask(filters, junk[..., 0], None, valid))


def test_masked_filters_equal_each_group_on_its_own():
    sizes = [3, 4, 2, 5]
    rows = torch.tensor([1.0, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1])  # last group: all 1
    padded, valid = pad_groups(rows, sizes)
    correct = padded == 1.0
    cfg = FiltersConfig(dynamic_sampling=True)
    expected = torch.tensor([bool(zero_spread_mask(g[None])[0]) for g in torch.split(rows, sizes)])
    assert torch.equal(keep_mask(cfg, padded, correct, valid), expected)
    assert keep_mask(cfg, padded, correct, valid).tolist() == [False, True, False, False]
    difficulty = FiltersConfig(difficulty=DifficultyFilterConfig(enabled=True, p_low=0.3, p_high=0.8))
    # accuracies 1, 0.5, 0, 1 over each group's own completions (padding is not a failure)
    assert keep_mask(difficulty, padded, correct, valid).tolist() == [False, True, False, False]
    uniform = torch.tensor([[1.0, 0, 1], [1, 1, 1]])
    all_valid = torch.ones(2, 3, dtype=torch.bool)
    for f in (cfg, difficulty):
        assert torch.equal(keep_mask(f, uniform, uniform == 1, all_valid), keep_mask(f, uniform, uniform == 1))


def test_masked_metrics_equal_the_unmasked_ones_when_every_slot_is_valid():
    components = _rows([4] * 3, k=2, seed=5, binary=True).reshape(3, 4, 2)
    weights = torch.tensor([1.0, 0.5])
    batch = _batch(12)
    expected = rollout_metrics(components, weights, ["acc", "x"], batch, "acc")
    got = masked_rollout_metrics(components, torch.ones(3, 4, dtype=torch.bool), weights, ["acc", "x"],
                                 batch, "acc")
    assert got.pop("rollout/group_size_mean") == got.pop("rollout/group_size_min") == \
        got.pop("rollout/group_size_max") == 4.0
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-7), key


def test_masked_metrics_of_ragged_groups():
    sizes = [2, 4, 3]
    acc = torch.tensor([1.0, 1, 1, 0, 0, 1, 0, 0, 0])
    other = torch.arange(9).float()
    padded, valid = pad_groups(torch.stack([acc, other], dim=1), sizes)
    weights = torch.tensor([1.0, 0.0])
    m = masked_rollout_metrics(padded, valid, weights, ["acc", "other"], _batch(9), "acc")
    assert m["reward"] == pytest.approx(4 / 9)
    assert m["accuracy"] == pytest.approx(4 / 9)
    assert m["frac_reward_zero_std"] == pytest.approx(2 / 3)  # groups 1 and 3 have no spread
    per_prompt = [1.0, 0.5, 0.0]
    assert m["accuracy/prompt_variance"] == pytest.approx(sum(p * (1 - p) for p in per_prompt) / 3)
    stds = [torch.tensor(g).std().item() for g in ([1.0, 1.0], [1.0, 0, 0, 1], [0.0, 0, 0])]
    assert m["reward_std"] == pytest.approx(sum(stds) / 3)
    assert m["rewards/other/mean"] == pytest.approx(4.0)
    assert m["rewards/other/std"] == pytest.approx(other.std().item())
    assert (m["rollout/group_size_mean"], m["rollout/group_size_min"], m["rollout/group_size_max"]) == (3.0, 2.0, 4.0)


def test_gates_over_ragged_groups():
    gated = [RewardConfig(name="exact_answer"), RewardConfig(name="length", params={"max_tokens": 4},
                                                             min_group_accuracy=0.5)]
    rewards = {"exact_answer": [1.0, 0.0, 0.0, 1.0, 1.0], "length": [0.1, 0.2, 0.3, 0.4, 0.9]}
    out, extras = gate_by_group_accuracy(gated, rewards, "exact_answer", 0, group_sizes=[3, 2])
    # group 1 (accuracy 1/3) is held at its best, group 2 (accuracy 1) keeps its values
    assert out["length"] == [0.3, 0.3, 0.3, 0.4, 0.9]
    assert extras == {"rewards/length/gated_groups": 0.5}
    even = {"exact_answer": [1.0, 0.0, 1.0, 1.0], "length": [0.1, 0.2, 0.3, 0.4]}
    assert gate_by_group_accuracy(gated, even, "exact_answer", 2, group_sizes=[2, 2]) == \
        gate_by_group_accuracy(gated, even, "exact_answer", 2)


def test_score_completions_passes_group_sizes_only_when_given(monkeypatch):
    seen = []

    def spy(prompts, completions, references, **context):
        seen.append(context)
        return [0.0] * len(completions)

    monkeypatch.setitem(REWARDS, "spy", RewardComponent("spy", spy, {}, False, "test"))
    cfg = [RewardConfig.__new__(RewardConfig)]
    object.__setattr__(cfg[0], "name", "spy")
    object.__setattr__(cfg[0], "params", {})
    object.__setattr__(cfg[0], "label", None)
    score_completions(cfg, ["p"] * 4, ["c"] * 4, [None] * 4, completion_lengths=[1] * 4, group_size=2)
    score_completions(cfg, ["p"] * 4, ["c"] * 4, [None] * 4, completion_lengths=[1] * 4, group_size=2,
                      group_sizes=[3, 1])
    assert "group_sizes" not in seen[0] and seen[0]["group_size"] == 2
    assert seen[1]["group_sizes"] == [3, 1] and seen[1]["group_size"] is None


def test_a_tournament_refuses_groups_of_different_sizes():
    from workers.engine.rewards import tournament_with_metrics

    with pytest.raises(ValueError, match="different sizes"):
        tournament_with_metrics(["p"] * 3, ["a", "b", "c"], [None] * 3, judge={"source": "tiny"},
                                group_sizes=[2, 1])


def test_a_rubric_judge_probes_each_groups_prompt_once(monkeypatch):
    from workers.engine import rewards as rewards_module

    asked = []

    class FakeJudge:
        def scores(self, prompts, completions, rules):
            asked.append(list(prompts))
            return [[1.0] for _ in prompts]

    monkeypatch.setattr(rewards_module, "_load_criterion_judge", lambda *a, **k: FakeJudge())
    prompts = ["p0", "p0", "p0", "p1"]
    rewards_module.rubric_judge_with_metrics(prompts, ["c"] * 4, [None] * 4, judge={"source": "tiny"},
                                             criteria=[{"name": "ok"}], group_sizes=[3, 1])
    probes = len(rewards_module.JUDGE_PROBES)
    assert asked[1] == ["p0"] * probes + ["p1"] * probes
