"""``python -m workers.engine default-config`` prints every setting, not only those a stored
config keeps at their default (the Knapsack RL keys were missing from it)."""

import dataclasses
import json

from workers.engine.__main__ import main
from workers.engine.config import RewardConfig, TrainConfig


def _dotted_fields(cls, prefix=""):
    """Every setting's dotted name, read from the config dataclasses themselves, so a field
    added later is checked without being listed here. The rewards list is checked apart: its
    components' fields depend on the component."""
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        if f.name == "rewards" and not prefix:
            yield name
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            yield name
            yield from _dotted_fields(type(default), f"{name}.")
        else:
            yield name


def _lookup(tree, dotted):
    for part in dotted.split("."):
        assert isinstance(tree, dict) and part in tree, f"default-config lacks {dotted}"
        tree = tree[part]
    return tree


def _printed(capsys) -> dict:
    assert main(["default-config"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_config_field_is_printed(capsys):
    printed = _printed(capsys)
    names = list(_dotted_fields(TrainConfig))
    assert "rollout.budget_allocation" in names  # the walk reaches the fields at issue
    assert "filters.difficulty.enabled" in names  # and nested sections
    for name in names:
        _lookup(printed, name)


def test_the_knapsack_keys_are_printed_at_their_defaults(capsys):
    rollout = _printed(capsys)["rollout"]
    assert rollout["budget_allocation"] == "uniform"
    assert rollout["min_generations"] == 2
    assert rollout["max_generations"] == 0


def test_the_printed_config_is_the_default_config(capsys):
    printed = _printed(capsys)
    assert TrainConfig.from_dict(printed) == TrainConfig()
    for reward in printed["rewards"]:
        assert RewardConfig.from_dict(reward).name == reward["name"]
