"""Engine tests run on CPU, one thread (the machine is shared), offline, without progress bars."""

import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
torch.set_num_threads(1)

try:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
except ImportError:  # pragma: no cover
    pass


def tiny_config_dict(**sections) -> dict:
    """A TrainConfig dict for the tiny random policy: fast, CPU, no checkpoints unless asked."""
    config = {
        "policy": {"source": "tiny", "tiny": {"alphabet": "ab", "hidden_size": 32,
                                              "num_layers": 1, "num_heads": 2,
                                              "intermediate_size": 64, "seed": 0}},
        "rollout": {"num_generations": 4, "prompts_per_step": 2, "max_new_tokens": 4},
        "rewards": [{"name": "regex", "pattern": "a+", "mode": "fullmatch"}],
        "optim": {"lr": 1e-2},
        "train": {"total_steps": 3, "checkpoint_every": 100, "device": "cpu", "seed": 0},
    }
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(name), dict):
            config[name] = {**config[name], **value}
        else:
            config[name] = value
    return config


@pytest.fixture
def tiny_cfg():
    return tiny_config_dict
