"""What differs between compared runs: flattened settings, only the keys that differ."""

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
    # Values are shown as they were stored: 1 and true differ, and so do a number and its text.
    assert settings_differences([{"x": 1}, {"x": True}, {"x": "1"}]) == [{"key": "x", "values": ["1", "true", "1"]}]
