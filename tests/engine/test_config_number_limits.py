"""JSON numbers the engine cannot use as floats (integers beyond 1.8e308, and NaN or infinity in
a config built in Python) are ConfigErrors naming the field, not OverflowErrors at launch or,
for a judge's criteria, in the worker."""

import math

import pytest

from workers.engine.config import TrainConfig
from workers.engine.errors import ConfigError
from workers.engine.rewards import validate_reward_params
from workers.engine.rm_trainer import RewardModelTrainConfig

HUGE = 10**400
JUDGE = {"source": "builtin", "name": "smollm2-135m-instruct"}


@pytest.mark.parametrize("value", [HUGE, math.inf, math.nan])
def test_a_float_setting_that_is_no_finite_float_is_refused_naming_it(value):
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({"optim": {"lr": value}})
    assert caught.value.field == "optim.lr"
    assert "finite number" in caught.value.message


@pytest.mark.parametrize("value", [HUGE, math.inf])
def test_a_reward_model_float_setting_beyond_a_float_is_refused_naming_it(value):
    with pytest.raises(ConfigError) as caught:
        RewardModelTrainConfig.from_dict({"margin": value})
    assert caught.value.field == "margin"


@pytest.mark.parametrize("weights", [[HUGE], [1e308, 1e308]])
def test_judged_criteria_whose_weights_overflow_are_refused_before_the_worker(weights):
    criteria = [{"name": f"c{i}", "weight": w} for i, w in enumerate(weights)]
    with pytest.raises(ConfigError) as caught:
        validate_reward_params("rubric_judge", {"judge": JUDGE, "criteria": criteria})
    assert caught.value.field == "criteria"
    assert "finite" in caught.value.message


def test_a_checklist_whose_weights_add_up_beyond_a_float_is_refused():
    criteria = [{"type": "valid_json", "weight": 1e308}, {"type": "max_length", "max_chars": 5, "weight": 1e308}]
    with pytest.raises(ConfigError, match="add up"):
        validate_reward_params("checklist", {"criteria": criteria})


@pytest.mark.parametrize("lr", [1.5, 1e39, 1e300])
def test_a_learning_rate_above_1_is_refused_before_adamw_overflows_in_the_worker(lr):
    """lr 1e39 launched, then torch's AdamW failed the run ('value cannot be converted to type
    float without overflow'); any lr above 1 only wrecks the model."""
    with pytest.raises(ConfigError, match="must be at most 1") as caught:
        TrainConfig.from_dict({"optim": {"lr": lr}})
    assert caught.value.field == "optim.lr"
    with pytest.raises(ConfigError, match="must be at most 1") as caught:
        RewardModelTrainConfig.from_dict({"lr": lr})
    assert caught.value.field == "lr"


def test_a_learning_rate_of_1_is_kept():
    assert TrainConfig.from_dict({"optim": {"lr": 1}}).optim.lr == 1.0
    assert RewardModelTrainConfig.from_dict({"lr": 1}).lr == 1.0
