"""A device name torch would refuse (or misread) when the worker starts is refused with the config."""

import pytest

from workers.engine.config import TrainConfig
from workers.engine.errors import ConfigError
from workers.engine.rm_trainer import RewardModelTrainConfig

BAD = ["cuda:x", "cuda:", "cuda:01", "cuda: 1", "cuda:128", "cuda:99999999999", "cuda:١", "gpu"]


@pytest.mark.parametrize("device", BAD)
def test_a_policy_run_device_torch_cannot_use_is_refused(device):
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({"train": {"device": device}})
    assert caught.value.field == "train.device"
    assert "cuda:N" in caught.value.message


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:7", "cuda:127"])
def test_a_policy_run_device_torch_reads_is_kept(device):
    assert TrainConfig.from_dict({"train": {"device": device}}).train.device == device


@pytest.mark.parametrize("device", [*BAD, "auto"])
def test_a_reward_model_run_device_torch_cannot_use_is_refused(device):
    with pytest.raises(ConfigError) as caught:
        RewardModelTrainConfig.from_dict({"device": device})
    assert caught.value.field == "device"


@pytest.mark.parametrize("device", [None, "cpu", "cuda", "cuda:3", "mps"])
def test_a_reward_model_run_device_torch_reads_is_kept(device):
    assert RewardModelTrainConfig.from_dict({"device": device}).device == device
