import pytest

from tests.engine.test_trainer import PROMPTS, Recorder
from workers.engine import PromptRecord, TrainConfig, evaluate_policy, evaluation_steps, train
from workers.engine.errors import DataError, ModelLoadError


def test_every_prompt_is_sampled_once_in_order_in_steps_of_prompts_per_step(tiny_cfg):
    recorder = Recorder()
    result = evaluate_policy(TrainConfig.from_dict(tiny_cfg()), PROMPTS, recorder)
    assert (result.steps_completed, result.total_steps, result.stopped) == (3, 3, False)
    assert sorted(recorder.rollouts) == sorted(recorder.metrics) == [1, 2, 3]
    seen = [(r["prompt_id"], r["sample_index"]) for s in (1, 2, 3) for r in recorder.rollouts[s]]
    assert seen == [(f"p{i}", j) for i in range(5) for j in range(4)]  # 5 prompts × G=4, the last step has one
    record = recorder.rollouts[3][0]
    assert record["advantage"] is None and record["trained"] is False and set(record["rewards"]) == {"regex"}
    assert record["reward"] == record["rewards"]["regex"]
    assert {"reward", "rewards/regex/mean", "accuracy", "completions/mean_length",
            "timing/rollout_s"} <= set(recorder.metrics[1])
    assert "grad_norm" not in recorder.metrics[1]  # nothing is trained
    rewards = [r["reward"] for r in recorder.rollouts[1]]
    assert recorder.metrics[1]["reward"] == pytest.approx(sum(rewards) / len(rewards))


def test_a_resumed_evaluation_draws_what_an_uninterrupted_one_would(tiny_cfg):
    config = TrainConfig.from_dict(tiny_cfg(rollout={"temperature": 1.5}))
    straight, first, rest = Recorder(), Recorder(stop_after=1), Recorder()
    evaluate_policy(config, PROMPTS, straight)
    stopped = evaluate_policy(config, PROMPTS, first)
    assert (stopped.steps_completed, stopped.stopped) == (1, True)
    resumed = evaluate_policy(config, PROMPTS, rest, start_step=1)
    assert resumed.steps_completed == 3 and sorted(rest.rollouts) == [2, 3]
    texts = {s: [r["completion_text"] for r in recorded.rollouts[s]]
             for recorded in (first, rest) for s in recorded.rollouts}
    assert texts == {s: [r["completion_text"] for r in straight.rollouts[s]] for s in (1, 2, 3)}
    assert len({t for s in texts for t in texts[s]}) > 3  # the draws are not all alike
    done = Recorder()
    assert evaluate_policy(config, PROMPTS, done, start_step=3).steps_completed == 3 and done.rollouts == {}


def test_a_trained_checkpoint_scores_better_than_the_untrained_policy(tiny_cfg, tmp_path):
    """The toy task of test_trainer: a policy trained on it answers with 'a's; the untrained
    one does not. Evaluating from the checkpoint folder (a 'path' policy) shows it."""
    policy = {"source": "tiny", "tiny": {"alphabet": "abcd", "hidden_size": 32, "num_layers": 1,
                                          "num_heads": 2, "intermediate_size": 64}}
    rollout = {"num_generations": 8, "prompts_per_step": 4, "max_new_tokens": 4}
    trained = train(TrainConfig.from_dict(tiny_cfg(policy=policy, rollout=rollout, train={
        "total_steps": 30, "checkpoint_every": 100, "device": "cpu"})), PROMPTS, output_dir=tmp_path)
    before, after = Recorder(), Recorder()
    evaluate_policy(TrainConfig.from_dict(tiny_cfg(policy=policy, rollout=rollout)), PROMPTS, before)
    evaluate_policy(TrainConfig.from_dict(tiny_cfg(policy={"source": "path", "path": str(trained.final_checkpoint)},
                                            rollout=rollout)), PROMPTS, after)

    def mean_reward(recorder):
        rewards = [r["reward"] for s in recorder.rollouts for r in recorder.rollouts[s]]
        return sum(rewards) / len(rewards)
    assert mean_reward(before) < 0.3 < 0.8 < mean_reward(after)


def test_bad_data_and_missing_models_are_refused_before_any_work(tiny_cfg, tmp_path):
    with pytest.raises(DataError, match="empty"):
        evaluate_policy(TrainConfig.from_dict(tiny_cfg()), [])
    with pytest.raises(DataError):  # exact_answer needs references
        evaluate_policy(TrainConfig.from_dict(tiny_cfg(rewards=[{"name": "exact_answer"}])), [PromptRecord("2+2?")])
    with pytest.raises(ModelLoadError, match="no model found"):
        evaluate_policy(TrainConfig.from_dict(tiny_cfg(policy={"source": "path", "path": str(tmp_path)})), PROMPTS)


@pytest.mark.parametrize("n, per_step, steps", [(1, 1, 1), (5, 2, 3), (4, 2, 2), (3, 8, 1)])
def test_evaluation_steps(n, per_step, steps):
    assert evaluation_steps(n, per_step) == steps


def test_fast_and_plain_decoders_give_the_same_evaluation(tiny_cfg):
    results = []
    for fast in (True, False):
        recorder = Recorder()
        evaluate_policy(TrainConfig.from_dict(tiny_cfg(train={"fast_path": fast, "device": "cpu", "total_steps": 3,
                                                       "checkpoint_every": 100})), PROMPTS, recorder)
        results.append([r["completion_text"] for s in (1, 2, 3) for r in recorder.rollouts[s]])
    assert results[0] == results[1]


def test_each_step_draws_from_its_own_seed(tiny_cfg):
    recorder = Recorder()
    same = [PromptRecord("ab", id=f"p{i}") for i in range(4)]
    evaluate_policy(TrainConfig.from_dict(tiny_cfg(rollout={"temperature": 1.5})), same, recorder)
    texts = {s: [r["completion_text"] for r in recorder.rollouts[s]] for s in (1, 2)}
    assert texts[1] != texts[2]  # the same prompts, other draws


def test_a_greedy_evaluation_takes_the_most_likely_token_whatever_the_seed(tiny_cfg):
    """One completion per prompt, the same for any seed or temperature, and the one the plain
    decoder gives greedily; the fast decoder agrees."""
    from workers.engine.policy import load_policy, stop_token_ids
    from workers.engine.rollout import SamplingParams, decode_completions, encode_prompts, sample_completions

    texts = []
    policy = tiny_cfg()["policy"]
    policy = {**policy, "tiny": {**policy["tiny"], "seed": 1}}  # whose greedy answers differ and are not empty
    for seed, temperature, fast in ((1, 1.0, True), (2, 1.7, True), (3, 1.0, False)):
        recorder = Recorder()
        config = TrainConfig.from_dict(tiny_cfg(policy=policy, train={"seed": seed, "fast_path": fast},
                                                rollout={"greedy": True, "num_generations": 1, "temperature": temperature}))
        evaluate_policy(config, PROMPTS, recorder)
        rows = [r for s in sorted(recorder.rollouts) for r in recorder.rollouts[s]]
        assert [r["sample_index"] for r in rows] == [0] * len(PROMPTS)
        texts.append([r["completion_text"] for r in rows])
    assert texts[0] == texts[1] == texts[2]
    assert len(set(texts[0])) > 1 and all(texts[0])

    model, tokenizer = load_policy(config.policy, device="cpu")
    ids = encode_prompts(tokenizer, [p.prompt if isinstance(p, PromptRecord) else p["prompt"] for p in PROMPTS],
                         use_chat_template=config.rollout.use_chat_template)
    batch = sample_completions(model.eval(), ids, SamplingParams(max_new_tokens=config.rollout.max_new_tokens,
                                                                 greedy=True),
                               pad_id=tokenizer.pad_token_id, eos_ids=stop_token_ids(model, tokenizer))
    assert decode_completions(tokenizer, batch) == texts[0]
