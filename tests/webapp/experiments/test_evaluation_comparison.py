"""The rule of an evaluation's Results table (``evaluation_comparison.compare``): rows compare with
the run when sampled and scored alike, and a run of the run's own sweep, of its policy, dataset and
rewards, compares whatever it sampled, naming the settings the sweep set otherwise."""

import pytest

from tests.factories import tiny_run_config
from webapp.experiments.evaluation_comparison import (
    Comparison, Evaluated, compare, config_differences, evaluated_alike,
)
from webapp.experiments.models import RunKind
from webapp.experiments.run_config import validate_config
from webapp.experiments.sweeps import sweep_identity, sweep_keys

SWEEP = (7, "sweep:" + "a" * 24 + ":")
OTHER_SWEEP = (7, "sweep:" + "b" * 24 + ":")


def config(rewards=None, seed=None, **rollout):
    base = tiny_run_config()
    base["rollout"] = {**base["rollout"], "num_generations": 4, "temperature": 0.7, **rollout}
    if rewards is not None:
        base["rewards"] = rewards
    if seed is not None:
        base["train"] = {**base["train"], "seed": seed}
    return validate_config(RunKind.EVALUATION, base)


def evaluated(sweep=SWEEP, policy=1, dataset=1, **changes):
    return Evaluated(config=config(**changes), policy_id=policy, dataset_id=dataset, sweep=sweep)


def test_without_a_run_to_compare_with_every_row_compares():
    assert compare(None, evaluated(temperature=1.3)) == Comparison(alike=True)


def test_runs_launched_alone_compare_when_sampled_and_scored_alike_whatever_their_policy():
    reference = evaluated(sweep=None)
    assert compare(reference, evaluated(sweep=None, policy=2, seed=5)) == Comparison(alike=True)
    assert compare(reference, evaluated(sweep=None, temperature=1.3)) == Comparison(alike=False)
    assert compare(reference, evaluated(sweep=None, max_new_tokens=2)) == Comparison(alike=False)
    assert compare(reference, evaluated(sweep=None, rewards=[{"name": "exact_answer"}])) == Comparison(alike=False)


def test_a_run_of_the_same_sweep_compares_whatever_it_sampled_and_names_what_the_sweep_set():
    reference = evaluated(temperature=0.7)
    comparison = compare(reference, evaluated(temperature=1.0))
    assert comparison == Comparison(alike=True, swept=(("rollout.temperature", 1.0),))
    assert comparison.swept_text == ["rollout.temperature = 1.0"]
    two = compare(reference, evaluated(temperature=1.3, max_new_tokens=2))
    assert two.alike and two.swept_text == ["rollout.max_new_tokens = 2", "rollout.temperature = 1.3"]
    seed = compare(reference, evaluated(seed=3))  # alike anyway: named all the same
    assert seed == Comparison(alike=True, swept=(("train.seed", 3),))


def test_a_greedy_point_of_the_sweep_names_greedy_and_the_one_completion_it_takes():
    comparison = compare(evaluated(), evaluated(greedy=True, num_generations=1))
    assert comparison.alike
    assert comparison.swept_text == ["rollout.greedy = true", "rollout.num_generations = 1"]
    back = compare(evaluated(greedy=True, num_generations=1), evaluated())
    assert back.alike and back.swept_text == ["rollout.greedy = false", "rollout.num_generations = 4"]


@pytest.mark.parametrize(("other", "why"), [
    (evaluated(sweep=OTHER_SWEEP, temperature=1.0), "another sweep"),
    (evaluated(sweep=None, temperature=1.0), "launched alone"),
    (evaluated(sweep=(8, SWEEP[1]), temperature=1.0), "another user's sweep under the same key"),
    (evaluated(policy=2, temperature=1.0), "another policy"),
    (evaluated(dataset=2, temperature=1.0), "another dataset"),
])
def test_a_run_that_sampled_otherwise_outside_the_sweep_or_with_another_policy_or_dataset_is_not_comparable(
        other, why):
    assert not compare(evaluated(temperature=0.7), other).alike, why


def test_a_sweep_over_a_rewards_weight_scores_otherwise_so_its_runs_are_not_comparable_but_named():
    rewards = [{"name": "exact_answer"}, {"name": "length", "max_tokens": 3, "weight": 0.5}]
    reweighted = [{"name": "exact_answer", "weight": 2.0}, {"name": "length", "max_tokens": 3, "weight": 0.5}]
    comparison = compare(evaluated(rewards=rewards), evaluated(rewards=reweighted))
    assert comparison == Comparison(alike=False, swept=(("rewards[0].weight", 2.0),))
    resampled = compare(evaluated(rewards=rewards), evaluated(rewards=reweighted, temperature=1.0))
    assert not resampled.alike


def test_differences_are_read_as_the_engine_reads_the_configs():
    stored = config()
    older = {**stored, "rollout": {k: v for k, v in stored["rollout"].items() if k != "use_chat_template"}}
    assert config_differences(validate_config(RunKind.EVALUATION, older), stored) == ()
    assert compare(Evaluated(older, 1, 1, SWEEP), Evaluated(stored, 1, 1, SWEEP)) == Comparison(alike=True)
    assert evaluated_alike(older) == evaluated_alike(stored) and evaluated_alike(None) == ()


def test_a_run_knows_its_sweep_by_its_creation_key_and_creator():
    first, second = sweep_keys("page-key-123", 2)
    assert sweep_identity(creation_key=first, created_by_id=3) == sweep_identity(creation_key=second, created_by_id=3)
    assert sweep_identity(creation_key=first, created_by_id=3) != sweep_identity(creation_key=first, created_by_id=4)
    assert sweep_identity(creation_key=first, created_by_id=3) != sweep_identity(
        creation_key=sweep_keys("another-key-1", 2)[0], created_by_id=3)
    assert sweep_identity(creation_key=first.rsplit(":", 1)[0], created_by_id=3) is not None  # before keys held the count
    for alone in ("", "page-key-123", "sweep:not-hex:0:2", first + "x"):
        assert sweep_identity(creation_key=alone, created_by_id=3) is None
