"""What differs between runs compared on a run's page: their settings, flattened to dotted keys."""

from __future__ import annotations

import json
from typing import Any

from webapp.experiments.models import RunKind
from webapp.experiments.run_config import with_engine_defaults

MISSING = "—"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted key: leaf value} of a JSON value: ``{"a": {"b": 1}, "r": [{"n": 2}]}`` gives
    ``{"a.b": 1, "r[0].n": 2}``; an empty dict or list is a leaf of its own."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, inner in enumerate(value):
            out.update(flatten(inner, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def settings_differences(settings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The keys whose values are not the same in every one of ``settings`` (one dict per run,
    in the runs' order), sorted, each as {"key", "values": [shown value per run]}; a string is
    shown as it is, any other value as JSON, and a key a run lacks as an em dash."""
    flat = [flatten(s) for s in settings]
    keys = sorted({k for f in flat for k in f})
    out = []
    for key in keys:
        stored = {json.dumps(f[key], sort_keys=True) if key in f else None for f in flat}  # 1 is not "1"
        if len(stored) > 1:
            shown = [_shown(f[key]) if key in f else MISSING for f in flat]
            if len(set(shown)) < len(stored):  # 1 against "1": the strings in quotes, so the cells differ
                shown = [json.dumps(f[key]) if key in f else MISSING for f in flat]
            out.append({"key": key, "values": shown})
    return out


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run_settings(run) -> dict[str, Any]:
    """What a run was launched with, for comparison: its config's sections, and its policy and
    datasets by name under capitalised keys (which sort first and match no config section)."""
    config = run.config if isinstance(run.config, dict) else {}
    if run.kind in (RunKind.POLICY, RunKind.EVALUATION):  # a setting added since, or 2 against 2.0, is no difference
        config = with_engine_defaults(config)
    named = {"Policy": run.policy if run.policy_id else None, "Dataset": run.dataset if run.dataset_id else None,
             "Held-out prompts": run.eval_dataset if run.eval_dataset_id else None}
    return {**config, **{key: obj.name for key, obj in named.items() if obj is not None}}
