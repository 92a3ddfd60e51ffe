"""Runs found by their settings and metrics, as MLflow's ``search_runs`` filter writes it:
``config.optim.lr < 1e-5 and metrics.reward >= 0.8``.

A condition names a setting of the run's config as stored (dotted, ``rewards[0].weight`` for a list
item, as the compare table shows it; ``params.`` reads as ``config.``) or a metric's latest value
(its value at its highest step, the runs list's metric column). Numbers compare as numbers (1e-5
is 0.00001) with ``= != < <= > >=``; a text or true/false setting with ``=`` and ``!=``. A run
without the setting or the metric matches no condition on it, ``!=`` included.
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass
from typing import Any

from webapp.experiments.run_compare import flatten

MAX_CONDITIONS = 10
OPERATORS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
             ">=": operator.ge}
LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}  # "!=" is an exclude
EXAMPLE = "config.optim.lr < 1e-5 and metrics.reward >= 0.8"
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_BARE = re.compile(r"^([^\s<>=!]+)\s*(?:<=|>=|!=|=|<|>)\s*\S")  # a name without config. or metrics.
_CONDITION = re.compile(r"^(config|params|metrics)\.([^\s<>=!]+)\s*(<=|>=|!=|=|<|>)\s*(.+)$", re.IGNORECASE)


class RunSearchError(ValueError):
    """A search the user wrote that cannot be read; the message names the part at fault."""


@dataclass(frozen=True)
class Condition:
    source: str  # "config" or "metrics"
    name: str  # a dotted setting, or a metric key
    op: str  # one of OPERATORS
    value: float | str | bool


def _value(raw: str) -> float | str | bool:
    """A number, unless quoted; true or false; else the text itself (quotes taken off)."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        number = float(raw)
    except ValueError:
        return raw
    return number if math.isfinite(number) else raw


def conditions_parse(text: str) -> list[Condition]:
    """The conditions of ``text`` (joined by ``and``, in any case); RunSearchError names a bad one."""
    text = text.strip()
    if not text:
        return []
    parts = _AND.split(text)
    if len(parts) > MAX_CONDITIONS:
        raise RunSearchError(f"{len(parts)} conditions; at most {MAX_CONDITIONS}.")
    conditions = []
    for part in parts:
        match = _CONDITION.match(part.strip())
        bare = _BARE.match(part.strip()) if match is None else None
        if bare is not None:
            name = bare.group(1)
            raise RunSearchError(f"“{part.strip()}”: say whether {name} is a setting or a metric: "
                                 f"config.{name} or metrics.{name}.")
        if match is None:
            raise RunSearchError(f"“{part.strip()}” is not a condition: write a setting or a metric, an operator "
                                 f"(= != < <= > >=) and a value, e.g. {EXAMPLE}.")
        source, name, op, raw = match.groups()
        source = "metrics" if source.lower() == "metrics" else "config"
        value = _value(raw.strip())
        if source == "metrics" and not isinstance(value, float):
            raise RunSearchError(f"“{part.strip()}”: a metric compares with a number, not “{raw.strip()}”.")
        if not isinstance(value, float) and op not in ("=", "!="):
            raise RunSearchError(f"“{part.strip()}”: {op} compares numbers; a text or true/false compares "
                                 "with = or !=.")
        conditions.append(Condition(source=source, name=name, op=op, value=value))
    return conditions


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def config_matches(config: Any, conditions: list[Condition]) -> bool:
    """True when the stored ``config`` meets every config condition (metric ones are the query's)."""
    settings = flatten(config if isinstance(config, dict) else {})
    for condition in conditions:
        if condition.source != "config":
            continue
        if condition.name not in settings:
            return False
        stored = settings[condition.name]
        if isinstance(condition.value, float):
            number = _number(stored)  # a text setting that reads as a number is found in quotes: = "1e-5"
            if number is None or not OPERATORS[condition.op](number, condition.value):
                return False
        elif isinstance(condition.value, bool):
            if not isinstance(stored, bool) or not OPERATORS[condition.op](stored, condition.value):
                return False
        elif not OPERATORS[condition.op](stored if isinstance(stored, str) else json.dumps(stored), condition.value):
            return False
    return True
