"""Steer's training engine: RL for LLMs with torch and transformers, free of Django and Celery.

    from workers.engine import train, TrainConfig, Callbacks, PromptRecord
    result = train(TrainConfig.from_dict(cfg), prompts, callbacks, output_dir=Path(...))

Names are imported lazily, so ``from workers.engine import TrainConfig`` (config validation
in the web app) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "train": "trainer", "Callbacks": "trainer", "TrainResult": "trainer",
    "evaluate_policy": "evaluation_run", "evaluation_steps": "config",
    "EvaluationResult": "evaluation_run",
    "PromptRecord": "data",
    "train_dpo": "dpo", "PreferencePair": "dpo", "DPOResult": "dpo", "DPOTrainConfig": "dpo_config",
    "train_sft": "sft", "SFTExample": "sft", "SFTResult": "sft", "SFTTrainConfig": "sft_config",
    "TrainConfig": "config", "default_config_dict": "config", "config_field_help": "config",
    "ConfigError": "errors", "DataError": "errors", "ModelLoadError": "errors",
    "EngineError": "errors",
    "build_tiny_policy": "tiny", "load_policy": "policy",
    "evaluate_pass_at_k": "evaluate", "pass_at_k": "evaluate",
    "REWARDS": "rewards", "ADVANTAGE_ESTIMATORS": "advantages",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .advantages import ADVANTAGE_ESTIMATORS
    from .config import TrainConfig, config_field_help, default_config_dict, evaluation_steps
    from .data import PromptRecord
    from .dpo import DPOResult, PreferencePair, train_dpo
    from .dpo_config import DPOTrainConfig
    from .errors import ConfigError, DataError, EngineError, ModelLoadError
    from .evaluate import evaluate_pass_at_k, pass_at_k
    from .evaluation_run import EvaluationResult, evaluate_policy
    from .policy import load_policy
    from .rewards import REWARDS
    from .sft import SFTExample, SFTResult, train_sft
    from .sft_config import SFTTrainConfig
    from .tiny import build_tiny_policy
    from .trainer import Callbacks, TrainResult, train
