import json
import os
import stat

import pytest
import torch
from safetensors.torch import load_file

from workers.engine import Callbacks, PromptRecord, TrainConfig, train
from workers.engine.errors import ConfigError, DataError, ModelLoadError

PROMPTS = [PromptRecord(p, id=f"p{i}") for i, p in enumerate(["a", "b", "ab", "ba", "bb"])]

STEP_METRICS = {
    "reward", "reward_std", "rewards/regex/mean", "rewards/regex/std", "frac_reward_zero_std",
    "accuracy", "completions/mean_length", "completions/min_length", "completions/max_length",
    "completions/clipped_ratio", "kl", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean",
    "clip_ratio/region_mean", "grad_norm", "learning_rate", "filter/kept_fraction",
    "timing/rollout_s", "timing/update_s", "throughput/tokens_per_s",
}


class Recorder(Callbacks):
    def __init__(self, stop_after: int | None = None):
        super().__init__()
        self.metrics, self.rollouts, self.checkpoints, self.held_out = {}, {}, [], {}
        self.stop_after = stop_after

    def on_held_out(self, step, records):
        assert step not in self.metrics  # before the step's metrics
        self.held_out[step] = records

    def on_metrics(self, step, metrics):
        self.metrics[step] = metrics

    def on_rollouts(self, step, records):
        self.rollouts[step] = records

    def on_checkpoint(self, step, path):
        self.checkpoints.append((step, path))

    def should_stop(self):
        return self.stop_after is not None and len(self.metrics) >= self.stop_after


def test_tiny_policy_learns_a_toy_task(tiny_cfg, tmp_path):
    """Reward 1 for completions made only of 'a': random at first, learnt by RL."""
    config = TrainConfig.from_dict(tiny_cfg(
        policy={"source": "tiny", "tiny": {"alphabet": "abcd", "hidden_size": 32,
                                           "num_layers": 1, "num_heads": 2,
                                           "intermediate_size": 64}},
        rollout={"num_generations": 8, "prompts_per_step": 4, "max_new_tokens": 4},
        train={"total_steps": 30, "checkpoint_every": 100, "device": "cpu"}))
    recorder = Recorder()
    train(config, PROMPTS, recorder, output_dir=tmp_path)
    rewards = [recorder.metrics[s]["reward"] for s in range(1, 31)]
    assert sum(rewards[:3]) / 3 < 0.3
    assert sum(rewards[-5:]) / 5 > 0.8


def test_every_step_reports_the_documented_metrics(tiny_cfg, tmp_path):
    recorder = Recorder()
    result = train(TrainConfig.from_dict(tiny_cfg()), PROMPTS, recorder, output_dir=tmp_path)
    assert sorted(recorder.metrics) == [1, 2, 3]
    for metrics in recorder.metrics.values():
        assert STEP_METRICS <= set(metrics)
        assert all(isinstance(v, float) for v in metrics.values())
        assert metrics["rollout/logprob_abs_diff"] < 1e-4  # sampler and trainer agree
    assert result.steps_completed == 3 and not result.stopped


def test_rollout_records_describe_each_completion(tiny_cfg, tmp_path):
    recorder = Recorder()
    train(TrainConfig.from_dict(tiny_cfg(train={"total_steps": 1})), PROMPTS, recorder,
          output_dir=tmp_path)
    records = recorder.rollouts[1]
    assert len(records) == 2 * 4  # prompts_per_step * G
    first = records[0]
    assert set(first) >= {"prompt_id", "group_index", "sample_index", "prompt_text",
                          "completion_text", "rewards", "reward", "advantage", "length",
                          "finish_reason"}
    assert first["prompt_id"] in {p.id for p in PROMPTS}
    assert [r["sample_index"] for r in records[:4]] == [0, 1, 2, 3]
    assert first["finish_reason"] in ("stop", "length")
    for group in (0, 1):
        group_adv = [r["advantage"] for r in records if r["group_index"] == group]
        assert sum(group_adv) == pytest.approx(0.0, abs=1e-5)  # GRPO: centred per group


def test_checkpoint_is_complete_and_loads_with_plain_transformers(tiny_cfg, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recorder = Recorder()
    config = TrainConfig.from_dict(tiny_cfg(train={"total_steps": 3, "checkpoint_every": 1,
                                                   "keep_checkpoints": 2}))
    result = train(config, PROMPTS, recorder, output_dir=tmp_path)
    assert [s for s, _ in recorder.checkpoints] == [1, 2, 3]
    folders = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert folders == ["step-2", "step-3"]  # pruned to keep_checkpoints, no temp leftovers
    final = result.final_checkpoint
    assert final == tmp_path / "checkpoints" / "step-3"
    for name in ("optimizer.pt", "rng_state.pt", "train_config.json", "trainer_state.json"):
        assert (final / name).is_file()
    assert TrainConfig.from_dict(json.loads((final / "train_config.json").read_text())) == config
    model = AutoModelForCausalLM.from_pretrained(final)
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert model.config.vocab_size == len(tokenizer)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(final.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert {stat.S_IMODE(p.stat().st_mode) for p in final.iterdir() if p.is_file()} == {0o666 & ~umask}


def _weights(path):
    return load_file(path / "model.safetensors")


def test_resume_after_stop_is_bit_identical(tiny_cfg, tmp_path):
    config = TrainConfig.from_dict(tiny_cfg(
        rollout={"num_generations": 4, "prompts_per_step": 2, "max_new_tokens": 4},
        algorithm={"beta": 0.05, "num_iterations": 2, "estimator": "rloo"},
        filters={"dynamic_sampling": True, "max_refill_rounds": 1},
        optim={"lr": 1e-2, "warmup_steps": 3},
        train={"total_steps": 6, "checkpoint_every": 2, "device": "cpu", "seed": 7}))
    straight = Recorder()
    full = train(config, PROMPTS, straight, output_dir=tmp_path / "straight")

    first = Recorder(stop_after=3)
    stopped = train(config, PROMPTS, first, output_dir=tmp_path / "resumed")
    assert stopped.stopped and stopped.steps_completed == 3
    assert (tmp_path / "resumed" / "checkpoints" / "step-3").is_dir()  # saved on stop
    second = Recorder()
    resumed = train(config, PROMPTS, second, output_dir=tmp_path / "resumed")
    assert resumed.resumed_from == 3 and sorted(second.metrics) == [4, 5, 6]

    def comparable(metrics):
        return {k: v for k, v in metrics.items()
                if not k.startswith(("timing/", "throughput/"))}

    combined = {**first.metrics, **second.metrics}
    for step in range(1, 7):
        assert comparable(combined[step]) == comparable(straight.metrics[step]), step
    a, b = _weights(full.final_checkpoint), _weights(resumed.final_checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bfloat16_resume_carries_on_from_the_master_weights(tiny_cfg, tmp_path):
    """A bfloat16 policy trains through float32 master weights (optim.master_weights); a
    resumed run restores them from the optimiser state, not from the checkpoint's rounded
    weights, and so repeats the straight run exactly."""
    config = TrainConfig.from_dict(tiny_cfg(
        policy={**tiny_cfg()["policy"], "dtype": "bfloat16"},
        optim={"lr": 3e-3},
        train={"total_steps": 4, "checkpoint_every": 2, "device": "cpu", "seed": 3}))
    straight = Recorder()
    full = train(config, PROMPTS, straight, output_dir=tmp_path / "straight")
    train(config, PROMPTS, Recorder(stop_after=2), output_dir=tmp_path / "resumed")
    second = Recorder()
    resumed = train(config, PROMPTS, second, output_dir=tmp_path / "resumed")
    assert resumed.resumed_from == 2 and sorted(second.metrics) == [3, 4]
    assert second.metrics[4]["grad_norm"] == straight.metrics[4]["grad_norm"]
    a, b = _weights(full.final_checkpoint), _weights(resumed.final_checkpoint)
    assert all(t.dtype == torch.bfloat16 for t in a.values())
    saved = torch.load(full.final_checkpoint / "optimizer.pt", weights_only=True)
    assert all(m.dtype == torch.float32 for m in saved["master_weights"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fast_path_trains_like_the_plain_path(tiny_cfg, tmp_path, monkeypatch):
    """train.fast_path (static-cache decoder, chunked head) changes no result beyond rounding:
    the same completions, rewards and metrics, and weights within float tolerance."""
    from workers.engine import static_decoder, update

    calls = {"decode": 0, "head": 0}

    def counting(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped
    monkeypatch.setattr(static_decoder.StaticCacheSampler, "_decode",
                        counting("decode", static_decoder.StaticCacheSampler._decode))
    monkeypatch.setattr(update, "fast_token_logprobs",
                        counting("head", update.fast_token_logprobs))
    runs, used = {}, {}
    for fast in (False, True):
        config = TrainConfig.from_dict(tiny_cfg(
            policy={"source": "tiny", "tiny": {"alphabet": "abcd", "hidden_size": 32,
                                               "num_layers": 2, "num_heads": 2,
                                               "intermediate_size": 64}},
            rollout={"num_generations": 4, "prompts_per_step": 2, "max_new_tokens": 6},
            algorithm={"beta": 0.05, "num_iterations": 2},
            train={"total_steps": 4, "checkpoint_every": 100, "device": "cpu",
                   "fast_path": fast, "micro_batch_size": 3}))
        recorder = Recorder()
        before = dict(calls)
        result = train(config, PROMPTS, recorder, output_dir=tmp_path / str(fast))
        runs[fast] = (recorder, _weights(result.final_checkpoint))
        used[fast] = {k: calls[k] - before[k] for k in calls}
    assert used[False] == {"decode": 0, "head": 0}  # the plain run never touched the fast path
    assert used[True]["decode"] >= 4 and used[True]["head"] >= 4  # the fast run used both
    (plain, w_plain), (fast, w_fast) = runs[False], runs[True]
    for step in range(1, 5):
        texts = [[r["completion_text"] for r in rec.rollouts[step]] for rec in (plain, fast)]
        assert texts[0] == texts[1], step
        for key, value in plain.metrics[step].items():
            if not key.startswith(("timing/", "throughput/")):
                assert fast.metrics[step][key] == pytest.approx(value, rel=1e-3, abs=1e-5), key
    assert all(torch.allclose(w_plain[k], w_fast[k], atol=1e-4) for k in w_plain)


def test_dynamic_sampling_refills_then_skips_an_untrainable_step(tiny_cfg, tmp_path):
    # every completion scores 1: no group has spread, so every round is dropped
    config = TrainConfig.from_dict(tiny_cfg(
        rewards=[{"name": "not_contains", "text": "zzz"}],
        filters={"dynamic_sampling": True, "max_refill_rounds": 2},
        train={"total_steps": 1}))
    recorder = Recorder()
    train(config, PROMPTS, recorder, output_dir=tmp_path)
    metrics = recorder.metrics[1]
    assert metrics["filter/kept_fraction"] == 0.0
    assert metrics["frac_reward_zero_std"] == 1.0
    assert metrics["grad_norm"] == 0.0
    assert len(recorder.rollouts[1]) == 3 * 2 * 4  # 3 rounds of 2 groups of 4
    assert not any(r["trained"] for r in recorder.rollouts[1])


def test_periodic_eval_adds_pass_at_k(tiny_cfg, tmp_path):
    config = TrainConfig.from_dict(tiny_cfg(
        rewards=[{"name": "exact_answer"}], eval={"every_steps": 1, "num_samples": 2, "k": 2},
        train={"total_steps": 1}))
    prompts = [PromptRecord("a", reference="aa")]
    recorder = Recorder()
    train(config, prompts, recorder, output_dir=tmp_path, eval_prompts=prompts)
    assert {"eval/greedy_pass@1", "eval/pass@2"} <= set(recorder.metrics[1])
    [answer] = recorder.held_out[1]
    assert answer["index"] == 0 and answer["reference"] == "aa" and answer["samples"] == 2
    assert float(answer["correct"]) == recorder.metrics[1]["eval/greedy_pass@1"]


def test_held_out_prompts_are_scored_by_the_runs_own_accuracy_reward(tiny_cfg, tmp_path, monkeypatch):
    """A run rewarded by a regex needs no references: its held-out answers are scored by it."""
    from workers.engine import evaluate

    answers = iter([["aa", "ab"], ["a", "a", "b", "b"]])  # greedy, then 2 samples of each prompt
    monkeypatch.setattr(evaluate, "decode_completions", lambda tokenizer, batch: next(answers))
    config = TrainConfig.from_dict(tiny_cfg(eval={"every_steps": 1, "num_samples": 2, "k": 1},
                                            train={"total_steps": 1}))
    assert config.held_out_reward.name == "regex"
    recorder = Recorder()
    train(config, PROMPTS, recorder, output_dir=tmp_path, eval_prompts=[PromptRecord("a"), PromptRecord("b")])
    assert [(r["completion_text"], r["correct"], r["samples_correct"]) for r in recorder.held_out[1]] == [
        ("aa", True, 2), ("ab", False, 0)]
    assert recorder.metrics[1]["eval/greedy_pass@1"] == 0.5 and recorder.metrics[1]["eval/pass@1"] == 0.5


def test_held_out_prompts_scored_by_exact_answer_need_references(tiny_cfg, tmp_path, no_model_loading):
    config = TrainConfig.from_dict(tiny_cfg(eval={"every_steps": 1, "num_samples": 2, "k": 1},
                                            rewards=[{"name": "length", "max_tokens": 3}]))
    assert config.held_out_reward.name == "exact_answer"  # no 0/1 reward of its own
    with pytest.raises(DataError, match="no reference answer"):
        train(config, PROMPTS, output_dir=tmp_path, eval_prompts=[PromptRecord("a")])


class StopAtCall(Recorder):
    """should_stop answers yes from its ``n``-th call on (the loop asks before each step, an
    evaluation before each batch)."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.calls = n, 0

    def should_stop(self):
        self.calls += 1
        return self.calls >= self.n


def test_a_stop_asked_during_an_evaluation_ends_it_and_the_run_after_that_step(tiny_cfg, tmp_path):
    """should_stop is asked between evaluation batches: the step is recorded without its
    eval/ figures, and the loop stops before the next step."""
    config = TrainConfig.from_dict(tiny_cfg(
        rewards=[{"name": "exact_answer"}], eval={"every_steps": 1, "num_samples": 2, "k": 2},
        train={"total_steps": 3}))
    prompts = [PromptRecord("a", reference="aa")]
    recorder = StopAtCall(5)  # step 1, its two eval batches, step 2, then stop in its eval
    result = train(config, prompts, recorder, output_dir=tmp_path, eval_prompts=prompts)
    assert (result.stopped, result.steps_completed, sorted(recorder.metrics)) == (True, 2, [1, 2])
    assert "eval/pass@2" in recorder.metrics[1] and not any(k.startswith("eval/") for k in recorder.metrics[2])
    assert sorted(recorder.held_out) == [1]  # an evaluation cut short reports no answers
    assert (tmp_path / "checkpoints" / "step-2").is_dir()  # the step is done and saved


def test_a_stop_asked_during_the_last_steps_evaluation_is_a_stop(tiny_cfg, tmp_path):
    config = TrainConfig.from_dict(tiny_cfg(
        rewards=[{"name": "exact_answer"}], eval={"every_steps": 2, "num_samples": 2, "k": 2},
        train={"total_steps": 2}))
    prompts = [PromptRecord("a", reference="aa")]
    result = train(config, prompts, StopAtCall(3), output_dir=tmp_path, eval_prompts=prompts)  # step 1 (no eval: every 2), step 2, its eval
    assert (result.stopped, result.steps_completed) == (True, 2)


def test_periodic_eval_also_measures_the_last_step(tiny_cfg, tmp_path):
    config = TrainConfig.from_dict(tiny_cfg(
        rewards=[{"name": "exact_answer"}], eval={"every_steps": 2, "num_samples": 2, "k": 2},
        train={"total_steps": 3}))
    prompts = [PromptRecord("a", reference="aa")]
    recorder = Recorder()
    train(config, prompts, recorder, output_dir=tmp_path, eval_prompts=prompts)
    assert [s for s in sorted(recorder.metrics) if "eval/pass@2" in recorder.metrics[s]] == [2, 3]
    assert sorted(recorder.held_out) == [2, 3]


# --- errors before any work ----------------------------------------------------------------

@pytest.fixture
def no_model_loading(monkeypatch):
    """Fail the test if a model load starts: errors must come first."""
    import workers.engine.trainer as trainer

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(trainer, "load_policy", refuse)
    monkeypatch.setattr(trainer, "load_policy_checkpoint", refuse)


def test_empty_dataset_is_refused_before_work(tiny_cfg, tmp_path, no_model_loading):
    with pytest.raises(DataError, match="empty"):
        train(TrainConfig.from_dict(tiny_cfg()), [], output_dir=tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_missing_references_for_exact_answer_are_refused(tiny_cfg, tmp_path, no_model_loading):
    config = TrainConfig.from_dict(tiny_cfg(rewards=[{"name": "exact_answer"}]))
    with pytest.raises(DataError, match="reference"):
        train(config, [PromptRecord("what is 1+1?")], output_dir=tmp_path)


def test_missing_model_path_is_refused_before_work(tmp_path, no_model_loading):
    config = TrainConfig.from_dict({"policy": {"source": "path", "path": str(tmp_path / "no")}})
    with pytest.raises(ModelLoadError, match=str(tmp_path / "no")):
        train(config, [PromptRecord("q", reference="1")], output_dir=tmp_path)


def test_missing_reward_model_is_refused_before_work(tiny_cfg, tmp_path, no_model_loading):
    config = TrainConfig.from_dict(tiny_cfg(rewards=[{"name": "reward_model",
                                                      "path": str(tmp_path / "rm")}]))
    with pytest.raises(ModelLoadError, match="rewards\\[0\\]"):
        train(config, PROMPTS, output_dir=tmp_path)


def test_missing_judge_model_is_refused_before_work(tiny_cfg, tmp_path, no_model_loading):
    config = TrainConfig.from_dict(tiny_cfg(rewards=[{
        "name": "tournament", "judge": {"source": "path", "path": str(tmp_path / "judge")}}]))
    with pytest.raises(ModelLoadError, match="rewards\\[0\\].judge"):
        train(config, PROMPTS, output_dir=tmp_path)


def test_a_tournament_judged_by_a_language_model_trains(tiny_cfg, tmp_path):
    """ArenaRL end to end: a tiny judge ranks each group, every step, on the trainer's groups."""
    judge = {"source": "tiny", "tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                        "intermediate_size": 64, "max_position_embeddings": 1024}}
    config = TrainConfig.from_dict(tiny_cfg(
        rewards=[{"name": "tournament", "judge": judge, "anchor": "none"}],
        train={"total_steps": 2}))
    recorder = Recorder()
    train(config, PROMPTS, recorder, output_dir=tmp_path)
    for step in (1, 2):
        metrics = recorder.metrics[step]
        assert metrics["rewards/tournament/judgements"] == 2 * 3  # 2 groups of 4: 3 matches each
        assert 0.0 <= metrics["rewards/tournament/judge_consistency"] <= 1.0
        assert metrics["grad_norm"] > 0  # distinct ranks inside every group: something to learn
        for group in (0, 1):
            values = sorted(r["rewards"]["tournament"] for r in recorder.rollouts[step]
                            if r["group_index"] == group)
            assert values == pytest.approx([1 / 6, 1 / 6, 2 / 3, 1.0])  # out in round 1, 2, final, winner


def test_a_rubric_judged_by_a_language_model_trains(tiny_cfg, tmp_path):
    judge = {"source": "tiny", "tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                        "intermediate_size": 64, "max_position_embeddings": 1024}}
    config = TrainConfig.from_dict(tiny_cfg(
        rewards=[{"name": "rubric_judge", "judge": judge,
                  "criteria": [{"name": "Correct", "weight": 2}, {"name": "Brief"}]}],
        train={"total_steps": 1}))
    recorder = Recorder()
    train(config, PROMPTS, recorder, output_dir=tmp_path)
    metrics = recorder.metrics[1]
    assert {"rewards/rubric_judge/criteria/Correct", "rewards/rubric_judge/criteria/Brief",
            "rewards/rubric_judge/master_key"} <= set(metrics)
    assert all(0.0 < r["rewards"]["rubric_judge"] < 1.0 for r in recorder.rollouts[1])


class MostAs:
    """A judge that prefers the completion with more 'a's, surely and in both orders."""

    def compare(self, prompts, firsts, seconds):
        from workers.engine.judges import Verdicts

        better = [1.0 if a.count("a") > b.count("a") else 0.0 if a.count("a") < b.count("a") else 0.5
                  for a, b in zip(firsts, seconds)]
        return Verdicts(better, [True] * len(better))


def test_the_tournament_winner_of_each_group_is_the_one_its_judge_prefers(tiny_cfg, tmp_path, monkeypatch):
    from workers.engine import rewards as rewards_module

    monkeypatch.setattr(rewards_module, "_load_judge", lambda *a: MostAs())
    config = TrainConfig.from_dict(tiny_cfg(
        rewards=[{"name": "tournament", "judge": {"source": "tiny"}, "anchor": "none"}],
        rollout={"num_generations": 4, "prompts_per_step": 2, "max_new_tokens": 6},
        train={"total_steps": 2}))
    recorder = Recorder()
    train(config, PROMPTS, recorder, output_dir=tmp_path)
    winners = 0
    for records in recorder.rollouts.values():
        for group in (0, 1):
            rows = [r for r in records if r["group_index"] == group]
            most = max(r["completion_text"].count("a") for r in rows)
            best = [r for r in rows if r["completion_text"].count("a") == most]
            if len(best) == 1:  # a sole best always wins its bracket
                assert best[0]["rewards"]["tournament"] == 1.0
                winners += 1
            for r in rows:  # and no completion with fewer a's than the winner's ranks above it
                assert r["rewards"]["tournament"] <= max(b["rewards"]["tournament"] for b in best)
    assert winners >= 1


@pytest.mark.parametrize("patch, field", [
    ({"rewards": [{"name": "answer_checker"}]}, "rewards[0].name"),
    ({"rollout": {"num_generations": 1}}, "rollout.num_generations"),
])
def test_bad_config_is_refused_when_read(tiny_cfg, patch, field):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(tiny_cfg(**patch))
    assert info.value.field == field


def test_a_greedy_config_is_refused_before_any_work(tiny_cfg, tmp_path):
    config = TrainConfig.from_dict(tiny_cfg(rollout={"greedy": True, "num_generations": 1}))
    with pytest.raises(ConfigError) as info:
        train(config, PROMPTS, output_dir=tmp_path)
    assert info.value.field == "rollout.greedy"
    assert not any(tmp_path.iterdir())  # no checkpoint folder, nothing loaded


def test_dispo_clips_reach_the_update_through_the_accuracy_reward(tiny_cfg, tmp_path, monkeypatch):
    """The trainer hands the update, for every completion it trains on, whether the 0/1 reward
    counted it correct; the update turns that into each row's clips."""
    from workers.engine import update

    seen = []
    original = update.clips_per_row

    def spy(algo, correct):
        seen.append(correct.tolist())
        return original(algo, correct)
    monkeypatch.setattr(update, "clips_per_row", spy)
    config = TrainConfig.from_dict(tiny_cfg(algorithm={"clip_eps_low_incorrect": 0.05, "num_iterations": 2},
                                            train={"total_steps": 3, "log_rollouts_fraction": 1.0}))
    recorder = Recorder()
    train(config, PROMPTS, recorder, output_dir=tmp_path)
    expected = [[r["rewards"]["regex"] == 1.0 for r in recorder.rollouts[step] if r["trained"]]
                for step in sorted(recorder.rollouts)]
    assert seen == [e for e in expected if e]
    assert any(any(e) for e in seen) and any(not all(e) for e in seen)  # both kinds were trained on
