"""What differs between compared runs: flattened settings, only the keys that differ."""

import pytest

from webapp.experiments.run_compare import MISSING, flatten, settings_differences


def test_flatten_gives_dotted_keys_with_list_indices_and_keeps_empty_containers():
    assert flatten({"a": {"b": 1, "c": {}}, "r": [{"n": 2}, 3], "e": []}) == {
        "a.b": 1, "a.c": {}, "r[0].n": 2, "r[1]": 3, "e": []}
    assert flatten({}) == {"": {}}


def test_only_keys_whose_values_differ_are_listed_in_order_of_the_runs():
    runs = [
        {"Policy": "base", "algorithm": {"beta": 0.0, "estimator": "grpo"}, "rewards": [{"name": "exact_answer"}]},
        {"Policy": "base", "algorithm": {"beta": 0.04, "estimator": "grpo"},
         "rewards": [{"name": "exact_answer"}, {"name": "length", "max_tokens": 3}]},
    ]
    assert settings_differences(runs) == [
        {"key": "algorithm.beta", "values": ["0.0", "0.04"]},
        {"key": "rewards[1].max_tokens", "values": [MISSING, "3"]},
        {"key": "rewards[1].name", "values": [MISSING, "length"]},
    ]
    assert settings_differences([runs[0], runs[0]]) == []
    # Values compare as they were stored: 1 and true differ, and so do a number and its text.
    assert settings_differences([{"x": 1}, {"x": True}]) == [{"key": "x", "values": ["1", "true"]}]
    assert settings_differences([{"x": 1}, {"x": "1"}]) == [{"key": "x", "values": ["1", '"1"']}]
    assert settings_differences([{"x": None}, {"x": "null"}]) == [{"key": "x", "values": ["null", '"null"']}]


@pytest.mark.django_db
def test_runs_launched_before_a_setting_existed_differ_only_in_what_they_set():
    """A policy run's config is read with the engine's defaults filled in and its numbers typed."""
    from tests.factories import make_project, make_run
    from webapp.experiments.models import RunKind
    from webapp.experiments.run_compare import run_settings
    from workers.engine.config import default_config_dict

    project = make_project()
    new = default_config_dict()
    old = default_config_dict()
    del old["algorithm"]["clip_eps_low_incorrect"], old["rollout"]["greedy"]
    old["train"]["total_steps"] = float(old["train"]["total_steps"])  # 2.0 reads as 2
    new["optim"]["lr"] = 2 * new["optim"]["lr"]
    runs = [make_run(project, kind=RunKind.POLICY, config=c) for c in (old, new)]
    assert [row["key"] for row in settings_differences([run_settings(r) for r in runs])] == ["optim.lr"]
    external = [make_run(project, kind=RunKind.EXTERNAL, config=c) for c in ({"lr": 1}, {"lr": 1.0})]
    assert settings_differences([run_settings(r) for r in external]) == [{"key": "lr", "values": ["1", "1.0"]}]
