"""Validation of a run's config JSON against the engine's typed configs."""

import math
from typing import Any

from webapp.core.json_input import (
    UnstorableText,
    json_error,
    storable_json,
    storable_text_check,
)
from webapp.experiments.errors import RunError
from webapp.experiments.models import RunKind


def parse_config_json(raw: str | bytes | dict | None) -> dict[str, Any]:
    """Parse config text into a dict, with the line and column of a syntax error."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):  # decoded already: its strings were not checked as text's are
        try:
            storable_text_check(raw)
        except UnstorableText as exc:
            raise RunError(str(exc), field="config") from None
        return raw
    if not isinstance(raw, str | bytes):  # a JSON body's list, number or boolean
        raise RunError(f"must be a JSON object, got {_json_type(raw)}", field="config")
    try:
        value = storable_json(raw)
    except ValueError as exc:
        raise RunError(json_error(exc), field="config") from exc
    if not isinstance(value, dict):
        raise RunError(f"must be a JSON object, got {_json_type(value)}", field="config")
    return value


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {list: "an array", str: "a string"}.get(type(value), type(value).__name__)


def validate_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config normalised by the engine's dataclasses, or RunError naming the bad field."""
    from workers.engine.errors import ConfigError

    try:
        if kind in (RunKind.POLICY, RunKind.EVALUATION):
            from workers.engine.config import TrainConfig, check_evaluable, check_trainable

            if kind == RunKind.POLICY:
                check_trainable(config)
                return TrainConfig.from_dict(config).to_dict()
            validated = TrainConfig.from_dict(greedy_takes_one(config))
            check_evaluable(validated)
            return validated.to_dict()
        if kind == RunKind.REWARD_MODEL:
            from workers.engine.rm_trainer import RewardModelTrainConfig

            config = dict(config)
            data = preference_data_section(config.pop("data", None))
            trainer = RewardModelTrainConfig.from_dict(config)
            if "strength_margins" in data and trainer.loss != "bradley_terry":
                raise RunError(f"strength_margins are Bradley-Terry margins; the {trainer.loss} loss has none",
                               field="config.data.strength_margins")
            return {**trainer.to_dict(), "data": data}
        if kind == RunKind.DPO:
            from workers.engine.dpo_config import DPOTrainConfig

            config = dict(config)
            data = dpo_data_section(config.pop("data", None))
            return {**DPOTrainConfig.from_dict(config).to_dict(), "data": data}
        if kind == RunKind.SFT:
            from workers.engine.sft_config import SFTTrainConfig

            config = dict(config)
            data = sft_data_section(config.pop("data", None))
            return {**SFTTrainConfig.from_dict(config).to_dict(), "data": data}
    except ConfigError as exc:
        raise RunError(exc.message, field=f"config.{exc.field}") from exc
    # External runs are driven by a trainer outside Steer; their config is recorded as given.
    return config


def greedy_takes_one(config: dict[str, Any]) -> dict[str, Any]:
    """An evaluation that decodes greedily and names no group size gets one completion per
    prompt (more would all be the same); a size it names is left for the engine to check."""
    rollout = config.get("rollout")
    if isinstance(rollout, dict) and rollout.get("greedy") is True and "num_generations" not in rollout:
        return {**config, "rollout": {**rollout, "num_generations": 1}}
    return config


PREFERENCE_SOURCES = ("labels", "pairs")


def preference_data_section(data) -> dict[str, Any]:
    """The `data` section of a reward-model run: the project's preference labels (default) or an
    imported set of pairs, ``{"source": "pairs", "pair_set": <id>}``. The launch fixes labels at
    the newest one (``"through_label": <id>``), as a DPO run's: a run a worker starts again
    trains on the same labels, and the run says which labels its model learned from."""
    if data is None:
        return {"source": "labels"}
    if not isinstance(data, dict) or data.get("source") not in PREFERENCE_SOURCES:
        raise RunError('must be {"source": "labels"} or {"source": "pairs", "pair_set": <id>}', field="config.data")
    if data["source"] == "labels":
        labels = dict(data)
        margins = labels.pop("strength_margins", None)
        section = _labels_section(labels)
        return section if margins is None else {**section, "strength_margins": strength_margins(margins)}
    pair_set = data.get("pair_set")
    if set(data) != {"source", "pair_set"} or isinstance(pair_set, bool) or not isinstance(pair_set, int):
        raise RunError('imported pairs are named by id: {"source": "pairs", "pair_set": 3}', field="config.data")
    return {"source": "pairs", "pair_set": pair_set}


def strength_margins(margins) -> list[float]:
    """A reward-model run's Bradley-Terry margin for labels of strength 1, 2 and 3 (slightly
    better, better, much better), as Llama 2's reward model: three numbers, each at least 0 and at
    most ``MAX_PAIR_MARGIN``, as an imported pair's margin."""
    from workers.engine.config import MARGIN_TOO_LARGE, MAX_PAIR_MARGIN

    if (not isinstance(margins, list) or len(margins) != 3
            or any(isinstance(m, bool) or not isinstance(m, int | float) or not math.isfinite(m) or m < 0
                   for m in margins)):
        raise RunError("strength_margins must be three numbers of at least 0, the margins of labels "
                       "slightly better, better and much better, e.g. [0.33, 0.67, 1.0]",
                       field="config.data.strength_margins")
    if too_large := [m for m in margins if m > MAX_PAIR_MARGIN]:
        raise RunError(f"each of strength_margins {MARGIN_TOO_LARGE}, got {too_large[0]:g}",
                       field="config.data.strength_margins")
    return [float(m) for m in margins]


def dpo_data_section(data) -> dict[str, Any]:
    """The `data` section of a DPO run: a set of pairs of the project, ``{"source": "pairs",
    "pair_set": <id>}``, or its annotators' labels, ``{"source": "labels"}`` (every decisive pair of
    every label's ranking). The launch fixes labels at the newest one (``"through_label": <id>``),
    so a resumed run trains on the same pairs however many labels come in meanwhile."""
    usage = ('name the preference data to train on: {"source": "labels"} (the project\'s labels) or '
             '{"source": "pairs", "pair_set": <id of one of the project\'s pair sets>}')
    if not isinstance(data, dict) or data.get("source") not in PREFERENCE_SOURCES:
        raise RunError(usage, field="config.data")
    if data["source"] == "labels":
        return _labels_section(data)
    pair_set = data.get("pair_set")
    if set(data) != {"source", "pair_set"} or isinstance(pair_set, bool) or not isinstance(pair_set, int):
        raise RunError(usage, field="config.data")
    return {"source": "pairs", "pair_set": pair_set}


def sft_data_section(data) -> dict[str, Any]:
    """The `data` section of an SFT run: the annotators' labels, ``{"source": "labels"}`` (each
    label's top-ranked answers), a set of pairs of the project, ``{"source": "pairs", "pair_set":
    <id>}`` (the chosen answers), or a prompt dataset of the project whose rows all have a
    reference, ``{"source": "dataset", "dataset": <id>}`` (the reference is the completion). The
    launch fixes labels at the newest one (``"through_label": <id>``), as a DPO run's."""
    usage = ('name the examples to train on: {"source": "labels"} (the top-ranked answers of the project\'s '
             'labels), {"source": "pairs", "pair_set": <id>} (a pair set\'s chosen answers) or '
             '{"source": "dataset", "dataset": <id>} (a prompt dataset whose rows have a reference)')
    if not isinstance(data, dict) or data.get("source") not in (*PREFERENCE_SOURCES, "dataset"):
        raise RunError(usage, field="config.data")
    if data["source"] == "labels":
        return _labels_section(data)
    key = "pair_set" if data["source"] == "pairs" else "dataset"
    value = data.get(key)
    if set(data) != {"source", key} or isinstance(value, bool) or not isinstance(value, int):
        raise RunError(usage, field="config.data")
    return {"source": data["source"], key: value}


def _labels_section(data: dict) -> dict[str, Any]:
    through = data.get("through_label")
    if set(data) - {"source", "through_label"} or (
            "through_label" in data and (isinstance(through, bool) or not isinstance(through, int) or through < 0)):
        raise RunError('labels take at most "through_label": the id of the newest label to train on',
                       field="config.data")
    return dict(data)


def with_engine_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A policy or evaluation run's stored config read as the engine reads it today: settings
    added since it was stored filled with their defaults, numbers typed (2.0 is 2). A config the
    engine's rules now refuse is returned as stored."""
    from workers.engine.config import TrainConfig
    from workers.engine.errors import ConfigError

    try:
        return TrainConfig.from_dict(config).to_dict()
    except (ConfigError, TypeError, ValueError, AttributeError, KeyError):
        return config
