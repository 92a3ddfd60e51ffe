"""Validation of a run's config JSON against the engine's typed configs."""

import json
from typing import Any

from webapp.experiments.errors import RunError
from webapp.experiments.models import RunKind


def parse_config_json(raw: str | bytes | dict | None) -> dict[str, Any]:
    """Parse config text into a dict, with the line and column of a syntax error."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RunError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", field="config") from exc
    if not isinstance(value, dict):
        raise RunError(f"must be a JSON object, got {type(value).__name__}", field="config")
    return value


def validate_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config normalised by the engine's dataclasses, or RunError naming the bad field."""
    from workers.engine.errors import ConfigError

    try:
        if kind in (RunKind.POLICY, RunKind.EVALUATION):
            from workers.engine.config import TrainConfig

            return TrainConfig.from_dict(config).to_dict()
        if kind == RunKind.REWARD_MODEL:
            from workers.engine.rm_trainer import RewardModelTrainConfig

            return RewardModelTrainConfig.from_dict(config).to_dict()
    except ConfigError as exc:
        raise RunError(exc.message, field=f"config.{exc.field}") from exc
    # External runs are driven by a trainer outside Steer; their config is recorded as given.
    return config
