"""A stop asked in the middle of a step ends the run within that step (polled through
``stopping.check_stop``), leaves nothing of the step recorded, and changes nothing when no stop
is asked."""

import pytest

from tests.engine.test_trainer import Recorder
from workers.engine import (
    PromptRecord,
    TrainConfig,
    evaluate_policy,
    rollout,
    static_decoder,
    stopping,
    train,
)
from workers.engine.stopping import StopCheck, StopRequested, check_stop, stoppable

PROMPTS = [
    PromptRecord(p, id=f"p{i}") for i, p in enumerate(["a", "b", "ab", "ba", "bb"])
]
MAX_NEW_TOKENS = 24


@pytest.fixture
def draws(monkeypatch):
    """Counts the decoders' token draws (one per forward of the decode loop); polls every check."""
    count = {"n": 0}
    real = rollout.draw_tokens

    def counted(*args, **kwargs):
        count["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(rollout, "draw_tokens", counted)
    monkeypatch.setattr(static_decoder, "draw_tokens", counted)
    monkeypatch.setattr(stopping, "POLL_INTERVAL_S", 0.0)
    return count


def long_rollouts(tiny_cfg, **sections):
    """The default tiny alphabet (about 100 tokens), so few rows end early, and 24 new tokens."""
    return TrainConfig.from_dict(
        tiny_cfg(
            policy={
                "source": "tiny",
                "tiny": {
                    "hidden_size": 32,
                    "num_layers": 1,
                    "num_heads": 2,
                    "intermediate_size": 64,
                    "seed": 0,
                },
            },
            rollout={
                "num_generations": 4,
                "prompts_per_step": 2,
                "max_new_tokens": MAX_NEW_TOKENS,
            },
            **sections,
        )
    )


class StopAtDraw(Recorder):
    """should_stop says yes once the decoders have drawn ``n`` tokens after step ``after``'s
    metrics were reported (0: from the start)."""

    def __init__(self, draws, n, *, after: int = 0):
        super().__init__()
        self.draws, self.n, self.after = draws, n, after
        self.from_draw = draws["n"] if after == 0 else None

    def on_metrics(self, step, metrics):
        super().on_metrics(step, metrics)
        if step == self.after:
            self.from_draw = self.draws["n"]

    def should_stop(self):
        return self.from_draw is not None and self.draws["n"] >= self.from_draw + self.n


def test_check_stop_outside_a_stoppable_block_does_nothing():
    check_stop()


def test_a_poll_asks_at_most_once_per_interval():
    asked = []
    stop = StopCheck(lambda: asked.append(1) or True, interval_s=3600)
    with stoppable(stop):
        check_stop()
    assert asked == []
    assert stop() and asked == [1]  # between steps it always asks
    stop.interval_s = 0
    with pytest.raises(StopRequested), stoppable(stop):
        check_stop()


def test_a_stop_during_the_rollout_abandons_the_step_before_it_ends(
    tiny_cfg, tmp_path, draws
):
    """Old behaviour: should_stop was only asked between steps, so step 1 ran to its end (its
    rollout drew up to 24 tokens, then the update) and was recorded."""
    recorder = StopAtDraw(draws, 3)
    result = train(long_rollouts(tiny_cfg), PROMPTS, recorder, output_dir=tmp_path)
    assert draws["n"] == 3  # the next poll, before the 4th token, ended it
    assert (result.stopped, result.steps_completed) == (True, 0)
    assert (
        recorder.metrics == {}
        and recorder.rollouts == {}
        and recorder.checkpoints == []
    )


def test_a_step_abandoned_mid_rollout_resumes_as_an_uninterrupted_run(
    tiny_cfg, tmp_path, draws
):
    """Step 1 is done and saved; step 2 is stopped during its rollout and recorded nowhere. The
    next attempt resumes from step 1's checkpoint and repeats the uninterrupted run's steps."""
    config = long_rollouts(tiny_cfg, train={"total_steps": 3, "checkpoint_every": 100})
    straight = Recorder()
    train(config, PROMPTS, straight, output_dir=tmp_path / "straight")
    first = StopAtDraw(draws, 2, after=1)
    stopped = train(config, PROMPTS, first, output_dir=tmp_path / "run")
    assert draws["n"] == first.from_draw + 2  # within step 2's rollout
    assert (stopped.stopped, stopped.steps_completed, sorted(first.metrics)) == (
        True,
        1,
        [1],
    )
    assert [step for step, _ in first.checkpoints] == [1]
    rest = Recorder()
    resumed = train(config, PROMPTS, rest, output_dir=tmp_path / "run")
    assert (resumed.resumed_from, sorted(rest.metrics)) == (1, [2, 3])
    for step in (2, 3):
        assert comparable(rest.metrics[step]) == comparable(straight.metrics[step])
        assert rest.rollouts[step] == straight.rollouts[step]


def comparable(metrics):
    return {
        k: v for k, v in metrics.items() if not k.startswith(("timing/", "throughput/"))
    }


def test_polling_every_token_changes_nothing(tiny_cfg, tmp_path, draws, monkeypatch):
    """A run asked at every token (interval 0) and never told to stop is the unpolled run bit for bit."""
    config = long_rollouts(
        tiny_cfg,
        train={"total_steps": 2},
        eval={"every_steps": 1, "num_samples": 2, "k": 1},
        rewards=[{"name": "exact_answer"}],
    )
    held_out = [PromptRecord("a", reference="aa", id="h")]
    prompts = [PromptRecord(p.prompt, reference="a", id=p.id) for p in PROMPTS]
    asked, polled = [], Recorder()
    polled.should_stop = lambda: asked.append(1) and False
    train(
        config, prompts, polled, output_dir=tmp_path / "polled", eval_prompts=held_out
    )
    assert (
        len(asked) > 2 * MAX_NEW_TOKENS
    )  # asked within the steps, not just before each
    monkeypatch.setattr(stopping, "POLL_INTERVAL_S", 3600.0)
    plain = Recorder()
    train(config, prompts, plain, output_dir=tmp_path / "plain", eval_prompts=held_out)
    assert {s: comparable(m) for s, m in polled.metrics.items()} == {
        s: comparable(m) for s, m in plain.metrics.items()
    }
    assert polled.rollouts == plain.rollouts and polled.held_out == plain.held_out


def test_a_stop_during_the_held_out_evaluation_ends_it_within_a_batch(
    tiny_cfg, tmp_path, draws, monkeypatch
):
    """The step is done and recorded without its eval/ figures, as with a stop between batches;
    the evaluation's single greedy batch is left at the poll that answered yes."""
    from workers.engine import trainer

    config = long_rollouts(
        tiny_cfg,
        train={"total_steps": 2},
        rewards=[{"name": "exact_answer"}],
        eval={"every_steps": 1, "num_samples": 2, "k": 1},
    )
    prompts = [PromptRecord(p.prompt, reference="a", id=p.id) for p in PROMPTS]
    recorder = StopAtDraw(draws, 2, after=-1)  # armed when the evaluation starts
    real_evaluate = trainer._evaluate

    def evaluate(*args, **kwargs):
        recorder.from_draw = draws["n"]
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(trainer, "_evaluate", evaluate)
    result = train(
        config,
        prompts,
        recorder,
        output_dir=tmp_path,
        eval_prompts=[PromptRecord("a", reference="aa")],
    )
    assert draws["n"] == recorder.from_draw + 2
    assert (result.stopped, result.steps_completed, sorted(recorder.metrics)) == (
        True,
        1,
        [1],
    )
    assert (
        not any(k.startswith("eval/") for k in recorder.metrics[1])
        and recorder.held_out == {}
    )
    assert (tmp_path / "checkpoints" / "step-1").is_dir()


def test_a_stop_during_an_evaluation_runs_sampling_reports_nothing_of_that_step(
    tiny_cfg, draws
):
    """Old behaviour: the evaluation run's step 1 was sampled, scored and reported in full."""
    recorder = StopAtDraw(draws, 3)
    result = evaluate_policy(long_rollouts(tiny_cfg), PROMPTS, recorder)
    assert draws["n"] == 3
    assert (result.stopped, result.steps_completed) == (True, 0)
    assert recorder.metrics == {} and recorder.rollouts == {}


def test_a_knapsack_step_abandoned_in_a_refill_round_leaves_the_saved_estimates_alone(
    tiny_cfg, tmp_path, monkeypatch
):
    """Step 2's first round is scored (updating Knapsack RL's per-prompt estimates), then the stop
    comes in its refill round: the checkpoint saved on stopping (step 1's) holds step 1's
    estimates, not the abandoned round's, so the resumed run allocates as the uninterrupted one."""
    from workers.engine import trainer

    monkeypatch.setattr(stopping, "POLL_INTERVAL_S", 0.0)
    config = TrainConfig.from_dict(
        tiny_cfg(
            rollout={
                "num_generations": 4,
                "prompts_per_step": 2,
                "max_new_tokens": 4,
                "budget_allocation": "knapsack",
            },
            filters={"dynamic_sampling": True, "max_refill_rounds": 2},
            train={
                "total_steps": 3,
                "checkpoint_every": 100,
                "device": "cpu",
                "seed": 3,
            },
        )
    )
    straight = Recorder()
    train(config, PROMPTS, straight, output_dir=tmp_path / "straight")
    rounds_of_step_2 = []
    real_round = trainer._sample_round

    def sample_round(s, indices, step, round_):
        out = real_round(s, indices, step, round_)
        if step == 2:
            rounds_of_step_2.append(round_)
        return out

    monkeypatch.setattr(trainer, "_sample_round", sample_round)
    first = Recorder()
    first.should_stop = lambda: bool(rounds_of_step_2)
    result = train(config, PROMPTS, first, output_dir=tmp_path / "run")
    assert rounds_of_step_2 == [0]  # stopped inside the refill round
    assert (result.stopped, sorted(first.metrics)) == (True, [1])
    assert [step for step, _ in first.checkpoints] == [1]
    monkeypatch.setattr(trainer, "_sample_round", real_round)
    rest = Recorder()
    train(config, PROMPTS, rest, output_dir=tmp_path / "run")
    for step in (2, 3):
        assert comparable(rest.metrics[step]) == comparable(straight.metrics[step])
