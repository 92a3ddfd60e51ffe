"""rollout.budget_allocation, min_generations and max_generations (Knapsack RL) in the config."""

import json

import pytest

from workers.engine.config import (
    MAX_GENERATIONS,
    TrainConfig,
    check_evaluable,
    config_errors,
    config_field_help,
    default_config_dict,
    every_default_dict,
)
from workers.engine.errors import ConfigError


def _knapsack(tiny_cfg, **rollout):
    return tiny_cfg(rollout={"budget_allocation": "knapsack", **rollout})


def test_defaults_leave_the_json_as_it_was():
    assert "budget_allocation" not in default_config_dict()["rollout"]
    assert "min_generations" not in default_config_dict()["rollout"]
    assert "max_generations" not in default_config_dict()["rollout"]
    assert TrainConfig().rollout.budget_allocation == "uniform"
    assert not TrainConfig().rollout.knapsack


def test_uniform_configs_round_trip_without_the_new_keys(tiny_cfg):
    d = tiny_cfg()
    assert TrainConfig.from_dict(d).to_dict()["rollout"] == {
        **TrainConfig().to_dict()["rollout"], **d["rollout"]}
    # stated at their defaults, they are still left out: the JSON of a uniform run is unchanged
    stated = tiny_cfg(rollout={"budget_allocation": "uniform", "min_generations": 2, "max_generations": 0})
    assert TrainConfig.from_dict(stated).to_dict() == TrainConfig.from_dict(tiny_cfg()).to_dict()


def test_knapsack_round_trips(tiny_cfg):
    config = TrainConfig.from_dict(_knapsack(tiny_cfg, min_generations=3, max_generations=9))
    d = config.to_dict()
    assert d["rollout"]["budget_allocation"] == "knapsack"
    assert d["rollout"]["min_generations"] == 3 and d["rollout"]["max_generations"] == 9
    assert TrainConfig.from_dict(json.loads(json.dumps(d))) == config
    assert config.rollout.knapsack and config.rollout.max_group_size == 9


def test_max_generations_zero_is_four_times_g_capped():
    from workers.engine.config import RolloutConfig

    assert RolloutConfig(num_generations=8, budget_allocation="knapsack").max_group_size == 32
    assert RolloutConfig(num_generations=8).max_group_size == 8  # uniform: G
    big = RolloutConfig(num_generations=600, prompts_per_step=1, max_new_tokens=8,
                        budget_allocation="knapsack")
    assert big.max_group_size == MAX_GENERATIONS


def test_every_setting_is_in_the_full_defaults_and_has_help():
    full = every_default_dict()
    assert full["rollout"]["budget_allocation"] == "uniform"
    assert full["rollout"]["min_generations"] == 2 and full["rollout"]["max_generations"] == 0
    helps = config_field_help()
    assert all(helps[f"rollout.{k}"] for k in ("budget_allocation", "min_generations", "max_generations"))


@pytest.mark.parametrize("patch, field, fragment", [
    ({"rollout": {"budget_allocation": "adaptive"}}, "rollout.budget_allocation", "'knapsack'"),
    ({"rollout": {"budget_allocation": "knapsack"}, "rewards": [{"name": "length", "max_tokens": 4}]},
     "rollout.budget_allocation", "0/1 reward"),
    ({"rollout": {"budget_allocation": "knapsack", "min_generations": 1}}, "rollout.min_generations",
     "at least 2"),
    ({"rollout": {"budget_allocation": "knapsack", "min_generations": 5}}, "rollout.min_generations",
     "at most num_generations (4)"),
    ({"rollout": {"budget_allocation": "knapsack", "max_generations": 3}}, "rollout.max_generations",
     "at least num_generations (4)"),
    ({"rollout": {"budget_allocation": "knapsack", "max_generations": 2000}}, "rollout.max_generations",
     "at most 1,024"),
    ({"rollout": {"max_generations": -1}}, "rollout.max_generations", ">= 0"),
    ({"rollout": {"budget_allocation": "knapsack", "greedy": True, "num_generations": 1}},
     "rollout.budget_allocation", "greedy"),
    ({"rollout": {"budget_allocation": "knapsack"},
      "rewards": [{"name": "exact_answer"},
                  {"name": "tournament", "judge": {"source": "tiny"}}]},
     "rollout.budget_allocation", "tournament of rewards[1]"),
])
def test_bad_combinations_are_refused_on_their_field(tiny_cfg, patch, field, fragment):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(tiny_cfg(**patch))
    assert info.value.field == field
    assert fragment in info.value.message
    assert any(e.field == field for e in config_errors(tiny_cfg(**patch)))


def test_an_evaluation_refuses_knapsack(tiny_cfg):
    with pytest.raises(ConfigError) as info:
        check_evaluable(TrainConfig.from_dict(_knapsack(tiny_cfg)))
    assert info.value.field == "rollout.budget_allocation"
    check_evaluable(TrainConfig.from_dict(tiny_cfg()))  # uniform: fine
