"""SFT, DPO and reward-model runs poll a stop inside a step (``stopping.check_stop``): between
an SFT/DPO step's micro-batches and DPO's reference batches, and within a reward model's
held-out evaluation. A step stopped before its optimizer step is abandoned; a resumed run
repeats the uninterrupted one."""

import pytest

from tests.engine.test_dpo import TOY as PAIRS
from tests.engine.test_dpo import tiny_dpo
from tests.engine.test_rm_trainer import keyword_records, tiny_config
from tests.engine.test_sft import TOY as EXAMPLES
from tests.engine.test_sft import tiny_sft
from workers.engine import dpo, rm_trainer, sft, stopping
from workers.engine.reward_model import RewardModelScorer


@pytest.fixture(autouse=True)
def poll_every_check(monkeypatch):
    monkeypatch.setattr(stopping, "POLL_INTERVAL_S", 0.0)


def counted(monkeypatch, module, name):
    """Count the calls of ``module.name`` (one forward each)."""
    calls = {"n": 0}
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def assert_same_history(history, straight, keys):
    """The stopped run's steps and its resumed run's, together, are the uninterrupted run's."""
    assert [step for step, _ in history] == [step for step, _ in straight]
    for (step, m), (_, m_straight) in zip(history, straight, strict=True):
        for key in keys:
            assert m[key] == pytest.approx(m_straight[key], rel=1e-5, abs=1e-6), (
                step,
                key,
            )


def test_an_sft_stop_between_micro_batches_abandons_the_step_and_resumes_exactly(
    tmp_path, monkeypatch
):
    """Two micro-batches a step: the stop comes after step 2's first. Old behaviour: step 2 ran
    to its end (4 forwards) and was recorded."""
    config = tiny_sft(checkpoint_every=100)
    straight = []
    sft.train_sft(
        config,
        EXAMPLES,
        output_dir=tmp_path / "straight",
        on_metrics=lambda s, m: straight.append((s, m)),
    )
    forwards = counted(monkeypatch, sft, "batch_token_losses")
    first = []
    stopped = sft.train_sft(
        config,
        EXAMPLES,
        output_dir=tmp_path / "run",
        on_metrics=lambda s, m: first.append((s, m)),
        should_stop=lambda: forwards["n"] >= 3,
    )
    assert forwards["n"] == 3
    assert (stopped.stopped, stopped.steps_completed, [s for s, _ in first]) == (
        True,
        1,
        [1],
    )
    assert stopped.final_checkpoint.name == "step-1"
    rest = []
    resumed = sft.train_sft(
        config,
        EXAMPLES,
        output_dir=tmp_path / "run",
        on_metrics=lambda s, m: rest.append((s, m)),
    )
    assert resumed.resumed_from == 1
    assert_same_history(
        first + rest,
        straight,
        ("loss", "mean_token_accuracy", "num_tokens", "grad_norm"),
    )


def test_a_dpo_stop_between_micro_batches_abandons_the_step_and_resumes_exactly(
    tmp_path, monkeypatch
):
    """8 pairs: 4 reference batches, then 2 micro-batches a step; the stop comes after step 2's
    first. Old behaviour: step 2 ran to its end and was recorded."""
    config = tiny_dpo(checkpoint_every=100)
    straight = []
    dpo.train_dpo(
        config,
        PAIRS,
        output_dir=tmp_path / "straight",
        on_metrics=lambda s, m: straight.append((s, m)),
    )
    forwards = counted(monkeypatch, dpo, "sequence_logps")
    first = []
    stopped = dpo.train_dpo(
        config,
        PAIRS,
        output_dir=tmp_path / "run",
        on_metrics=lambda s, m: first.append((s, m)),
        should_stop=lambda: forwards["n"] >= 4 + 2 + 1,
    )
    assert forwards["n"] == 7
    assert (stopped.stopped, stopped.steps_completed, [s for s, _ in first]) == (
        True,
        1,
        [1],
    )
    assert stopped.final_checkpoint.name == "step-1"
    rest = []
    resumed = dpo.train_dpo(
        config,
        PAIRS,
        output_dir=tmp_path / "run",
        on_metrics=lambda s, m: rest.append((s, m)),
    )
    assert resumed.resumed_from == 1
    assert_same_history(
        first + rest, straight, ("loss", "rewards/margins", "logps/chosen", "grad_norm")
    )


def test_a_dpo_stop_during_the_reference_pass_ends_the_run_before_any_step(
    tmp_path, monkeypatch
):
    """Old behaviour: the whole reference pass (4 batches) ran before the first should_stop."""
    forwards = counted(monkeypatch, dpo, "sequence_logps")
    steps = []
    result = dpo.train_dpo(
        tiny_dpo(),
        PAIRS,
        output_dir=tmp_path,
        on_metrics=lambda s, m: steps.append(s),
        should_stop=lambda: forwards["n"] >= 2,
    )
    assert forwards["n"] == 2
    assert (result.stopped, result.steps_completed, result.final_checkpoint, steps) == (
        True,
        0,
        None,
        [],
    )
    assert not (
        tmp_path / dpo.REFERENCE_FILE
    ).exists()  # a later attempt computes it whole


def test_a_reward_model_stop_during_its_evaluation_reports_the_step_without_eval_figures(
    tmp_path, monkeypatch
):
    """Old behaviour: the epoch's held-out evaluation ran to its end and its figures were reported."""
    evaluating, chunks = {"on": False}, {"n": 0}
    real_evaluate, real_rewards = rm_trainer._evaluate, RewardModelScorer.rewards

    def evaluate(*args, **kwargs):
        evaluating["on"] = True
        return real_evaluate(*args, **kwargs)

    def rewards(self, *args, **kwargs):
        chunks["n"] += evaluating["on"]
        return real_rewards(self, *args, **kwargs)

    monkeypatch.setattr(rm_trainer, "_evaluate", evaluate)
    monkeypatch.setattr(RewardModelScorer, "rewards", rewards)
    reported = {}
    result = rm_trainer.train_reward_model(
        tiny_config(epochs=2),
        keyword_records(40),
        output_dir=tmp_path,
        on_metrics=lambda s, m: reported.__setitem__(s, m),
        should_stop=lambda: chunks["n"] >= 1,
    )
    steps_per_epoch = 4  # 30 training records in batches of 8
    assert chunks["n"] == 1
    assert (result.stopped, result.steps, sorted(reported)) == (
        True,
        steps_per_epoch,
        [1, 2, 3, 4],
    )
    assert not any(k.startswith("eval/") for k in reported[steps_per_epoch])
    assert (tmp_path / "reward_model.json").is_file()  # a stopped run still saves
