"""Knapsack RL end to end: a tiny policy trained with rollout.budget_allocation "knapsack"."""

import json

import pytest

from workers.engine import Callbacks, PromptRecord, TrainConfig, train

# Two prompts, both in every step: from step 2 on each has a success estimate.
PROMPTS = [PromptRecord(p, id=f"p{i}") for i, p in enumerate(["a", "b"])]
FOUR = [PromptRecord(p, id=f"p{i}") for i, p in enumerate(["a", "b", "ab", "ba"])]


class Recorder(Callbacks):
    def __init__(self, stop_after: int | None = None):
        super().__init__()
        self.metrics, self.rollouts = {}, {}
        self.stop_after = stop_after

    def on_metrics(self, step, metrics):
        self.metrics[step] = metrics

    def on_rollouts(self, step, records):
        self.rollouts[step] = records

    def should_stop(self):
        return self.stop_after is not None and len(self.metrics) >= self.stop_after


def _comparable(metrics):
    return {k: v for k, v in metrics.items() if not k.startswith(("timing/", "throughput/"))}


def _knapsack(tiny_cfg, steps=4, **sections):
    rollout = {"num_generations": 4, "prompts_per_step": 2, "max_new_tokens": 4,
               "budget_allocation": "knapsack", **sections.pop("rollout", {})}
    return TrainConfig.from_dict(tiny_cfg(
        rollout=rollout, train={"total_steps": steps, "checkpoint_every": 100, "device": "cpu", "seed": 3},
        **sections))


def _sizes(records):
    """Completions per group of one step's rollout records."""
    out: dict[int, int] = {}
    for r in records:
        out[r["group_index"]] = out.get(r["group_index"], 0) + 1
    return [out[g] for g in sorted(out)]


def test_knapsack_trains_with_group_sizes_that_follow_the_estimates(tiny_cfg, tmp_path):
    config = _knapsack(tiny_cfg, steps=5)
    recorder = Recorder()
    result = train(config, PROMPTS, recorder, output_dir=tmp_path)
    assert result.steps_completed == 5
    sizes = {step: _sizes(records) for step, records in recorder.rollouts.items()}
    assert sizes[1] == [4, 4]  # nothing sampled yet: the uniform share
    assert all(sum(s) == 2 * 4 for s in sizes.values())  # the step's budget, P x G
    assert all(2 <= n <= 16 for s in sizes.values() for n in s)
    assert any(s != [4, 4] for step, s in sizes.items() if step > 1)
    for step, metrics in recorder.metrics.items():
        assert metrics["rollout/group_size_min"] == min(sizes[step])
        assert metrics["rollout/group_size_max"] == max(sizes[step])
        assert metrics["rollout/group_size_mean"] == 4.0
        assert 0.0 <= metrics["frac_reward_zero_std"] <= 1.0
        assert metrics["loss"] == metrics["loss"]  # not NaN
    for records in recorder.rollouts.values():  # sample_index counts within each group
        seen: dict[int, list[int]] = {}
        for r in records:
            seen.setdefault(r["group_index"], []).append(r["sample_index"])
        assert all(v == list(range(len(v))) for v in seen.values())


def test_sizes_follow_the_previous_groups_success(tiny_cfg, tmp_path):
    """Step 2's sizes are knapsack_allocation of step 1's smoothed success counts."""
    from workers.engine.budget import knapsack_allocation, success_estimate

    recorder = Recorder()
    train(_knapsack(tiny_cfg, steps=2), PROMPTS, recorder, output_dir=tmp_path)
    first = recorder.rollouts[1]
    counts = {}
    for r in first:
        hits, trials = counts.get(r["prompt_id"], (0, 0))
        counts[r["prompt_id"]] = (hits + int(r["rewards"]["regex"] == 1.0), trials + 1)
    second = recorder.rollouts[2]
    order = [next(r["prompt_id"] for r in second if r["group_index"] == g) for g in range(2)]
    expected = knapsack_allocation([success_estimate(*counts[p]) for p in order], 8, 2, 16)
    assert _sizes(second) == expected


def test_resumed_knapsack_run_repeats_an_uninterrupted_one(tiny_cfg, tmp_path):
    config = _knapsack(tiny_cfg, steps=6, filters={"dynamic_sampling": True, "max_refill_rounds": 1},
                       algorithm={"estimator": "rloo"})
    config = TrainConfig.from_dict({**config.to_dict(), "train": {**config.to_dict()["train"],
                                                                  "checkpoint_every": 2}})
    straight = Recorder()
    train(config, FOUR, straight, output_dir=tmp_path / "straight")
    first = Recorder(stop_after=3)
    assert train(config, FOUR, first, output_dir=tmp_path / "resumed").stopped
    state = json.loads((tmp_path / "resumed" / "checkpoints" / "step-3" / "trainer_state.json").read_text())
    assert state["prompt_success"] and all(len(row) == 3 for row in state["prompt_success"])
    second = Recorder()
    resumed = train(config, FOUR, second, output_dir=tmp_path / "resumed")
    assert resumed.resumed_from == 3
    combined = {**first.metrics, **second.metrics}
    assert sorted(combined) == sorted(straight.metrics) == list(range(1, 7))
    for step in range(1, 7):
        assert _comparable(combined[step]) == _comparable(straight.metrics[step]), step
    assert any(_sizes(straight.rollouts[s]) != [4, 4] for s in range(4, 7))  # sizes were allocated


def test_resume_without_the_saved_estimates_would_differ(tiny_cfg, tmp_path):
    """The estimates in trainer_state matter: dropping them, the resumed run's next step is
    uniform again where the uninterrupted one was not."""
    config = _knapsack(tiny_cfg, steps=5)
    config = TrainConfig.from_dict({**config.to_dict(), "train": {**config.to_dict()["train"],
                                                                  "checkpoint_every": 1}})
    straight = Recorder()
    train(config, PROMPTS, straight, output_dir=tmp_path / "straight")
    step = next(s for s in range(2, 6) if _sizes(straight.rollouts[s]) != [4, 4])
    train(config, PROMPTS, Recorder(stop_after=step - 1), output_dir=tmp_path / "resumed")
    path = tmp_path / "resumed" / "checkpoints" / f"step-{step - 1}" / "trainer_state.json"
    state = json.loads(path.read_text())
    del state["prompt_success"]
    path.write_text(json.dumps(state))
    second = Recorder()
    train(config, PROMPTS, second, output_dir=tmp_path / "resumed")
    assert _sizes(second.rollouts[step]) == [4, 4] != _sizes(straight.rollouts[step])


def test_knapsack_bounded_to_g_matches_the_uniform_run(tiny_cfg, tmp_path):
    """min_generations = max_generations = G: every group has G completions, and the masked
    path (padding, masked estimators and metrics) gives the uniform run's numbers."""
    for estimator in ("grpo", "gdpo"):
        uniform, bounded = Recorder(), Recorder()
        train(TrainConfig.from_dict(tiny_cfg(algorithm={"estimator": estimator},
                                             train={"total_steps": 3, "device": "cpu", "seed": 3})),
              PROMPTS, uniform, output_dir=tmp_path / f"u-{estimator}")
        train(_knapsack(tiny_cfg, steps=3, rollout={"min_generations": 4, "max_generations": 4},
                        algorithm={"estimator": estimator}),
              PROMPTS, bounded, output_dir=tmp_path / f"k-{estimator}")
        for step in (1, 2, 3):
            a, b = _comparable(uniform.metrics[step]), _comparable(bounded.metrics[step])
            assert b.pop("rollout/group_size_min") == b.pop("rollout/group_size_max") == 4
            assert b.pop("rollout/group_size_mean") == 4
            assert a.keys() == b.keys()
            for key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (estimator, step, key)
            assert [r["completion_text"] for r in uniform.rollouts[step]] == \
                   [r["completion_text"] for r in bounded.rollouts[step]]


def test_uniform_history_is_unchanged_by_the_knob(tiny_cfg, tmp_path):
    """budget_allocation 'uniform' stated or omitted: the same run, bit for bit, with no
    group-size metrics and no estimates in its checkpoints."""
    histories = []
    for i, rollout in enumerate(({}, {"budget_allocation": "uniform", "min_generations": 3,
                                      "max_generations": 12})):
        recorder = Recorder()
        config = TrainConfig.from_dict(tiny_cfg(rollout=rollout, train={"total_steps": 3, "checkpoint_every": 3,
                                                                         "device": "cpu", "seed": 3}))
        train(config, PROMPTS, recorder, output_dir=tmp_path / str(i))
        histories.append([(s, _comparable(m)) for s, m in sorted(recorder.metrics.items())])
        assert not any(k.startswith("rollout/group_size") for m in recorder.metrics.values() for k in m)
        assert all(_sizes(r) == [4, 4] for r in recorder.rollouts.values())
        state = json.loads((tmp_path / str(i) / "checkpoints" / "step-3" / "trainer_state.json").read_text())
        assert "prompt_success" not in state
    assert histories[0] == histories[1]
