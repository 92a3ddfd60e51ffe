import dataclasses
import json

import pytest

from workers.engine.config import TrainConfig, config_errors, config_field_help, default_config_dict
from workers.engine.errors import ConfigError


def test_defaults_round_trip_through_json():
    d = default_config_dict()
    again = TrainConfig.from_dict(json.loads(json.dumps(d)))
    assert again == TrainConfig()
    assert again.to_dict() == d


def test_non_default_config_round_trips(tiny_cfg):
    d = tiny_cfg(
        rewards=[{"name": "exact_answer", "weight": 2.0, "tolerance": 0.01},
                 {"name": "regex", "label": "format", "pattern": r"\d+", "flags": ["DOTALL"]},
                 {"name": "checklist", "weight": 0.5, "criteria": [
                     {"type": "contains", "text": "because", "weight": 2.0},
                     {"type": "valid_json"}]},
                 {"name": "length", "max_tokens": 64, "mode": "linear"}],
        algorithm={"estimator": "gdpo", "scale": "none", "loss_aggregation":
                   "seq_mean_token_sum_norm", "importance_level": "sequence", "beta": 0.04,
                   "num_iterations": 2},
        filters={"dynamic_sampling": True, "difficulty": {"enabled": True, "p_low": 0.2}},
        optim={"betas": [0.9, 0.95], "warmup_steps": 5})
    config = TrainConfig.from_dict(d)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.optim.betas == (0.9, 0.95)
    assert config.rewards[1].key == "format"


def test_every_field_has_help():
    helps = config_field_help()
    assert "rollout.num_generations" in helps and "policy.tiny.seed" in helps
    assert all(helps.values()), [k for k, v in helps.items() if not v]


def test_default_json_has_exactly_the_config_sections():
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert list(default_config_dict()) == names


@pytest.mark.parametrize("patch, field, fragment", [
    ({"rollout": {"num_generations": 1}}, "rollout.num_generations", "at least 2"),
    ({"rollout": {"greedy": True}}, "rollout.num_generations", "must be 1 with greedy"),
    ({"algorithm": {"clip_eps_low_incorrect": 1.0}}, "algorithm.clip_eps_low_incorrect", "[0, 1)"),
    ({"algorithm": {"clip_eps_high_incorrect": -0.1}}, "algorithm.clip_eps_high_incorrect", ">= 0"),
    ({"algorithm": {"clip_eps_high_incorrect": 0.5}, "rewards": [{"name": "length", "max_tokens": 4}]},
     "algorithm.clip_eps_high_incorrect", "0/1 reward"),
    ({"rollout": {"greedy": True, "num_generations": 0}}, "rollout.num_generations", "must be 1"),
    ({"algorithm": {"estimator": "ppo"}}, "algorithm.estimator", "'grpo'"),
    ({"algorithm": {"clip_eps_low": 1.5}}, "algorithm.clip_eps_low", "[0, 1)"),
    ({"algorithm": {"num_iterationz": 2}}, "algorithm.num_iterationz", "unknown key"),
    ({"bogus": {}}, "bogus", "unknown key"),
    ({"rollout": {"temperature": 0}}, "rollout.temperature", "> 0"),
    ({"train": {"seed": 2**32}}, "train.seed", "2**32 - 1"),  # numpy refused it mid-run
    ({"train": {"seed": -1}}, "train.seed", "[0, 4294967295]"),
    ({"policy": {"tiny": {"seed": 10**30}}}, "policy.tiny.seed", "2**32 - 1"),
    ({"rollout": {"max_new_tokens": "many"}}, "rollout.max_new_tokens", "whole number"),
    ({"rollout": {"use_chat_template": 1}}, "rollout.use_chat_template", "true or false"),
    ({"filters": {"difficulty": {"p_low": 0.9, "p_high": 0.1}}}, "filters.difficulty.p_low",
     "p_low <= p_high"),
    ({"optim": {"betas": [0.9]}}, "optim.betas", "2 values"),
    ({"policy": {"source": "path"}}, "policy.path", "required"),
    ({"policy": {"name": "gpt-5"}}, "policy.name", "smollm2-135m-instruct"),
    ({"policy": {"tiny": {"hidden_size": 30, "num_heads": 4}}}, "policy.tiny.num_heads",
     "divide"),
    ({"eval": {"k": 8, "num_samples": 4}}, "eval.k", "num_samples"),
    ({"rewards": []}, "rewards", "at least one"),
    ({"rewards": [{"name": "nope"}]}, "rewards[0].name", "exact_answer"),
    ({"rewards": [{"name": "regex"}]}, "rewards[0].pattern", "needs"),
    ({"rewards": [{"name": "regex", "pattern": "("}]}, "rewards[0].pattern", "valid"),
    ({"rewards": [{"name": "regex", "pattern": "(a+)+$"}]}, "rewards[0].pattern",
     "exponential"),
    ({"rewards": [{"name": "regex", "pattern": "a" * 600}]}, "rewards[0].pattern", "limit"),
    ({"rewards": [{"name": "exact_answer", "tolerence": 1}]}, "rewards[0].tolerence",
     "unknown parameter"),
    ({"rewards": [{"name": "exact_answer"}, {"name": "exact_answer"}]}, "rewards[1].label",
     "distinct"),
    ({"rewards": [{"name": "checklist", "criteria": [{"type": "eval"}]}]},
     "rewards[0].criteria[0].type", "contains"),
    ({"rewards": [{"name": "reward_model", "path": "x", "aggregation": "max"}]},
     "rewards[0].aggregation", "mean_minus_std"),
    ({"rewards": [{"name": "length", "max_tokens": 10}],
      "filters": {"difficulty": {"enabled": True}}}, "filters.difficulty.enabled", "0/1"),
    # sizes beyond any real run: refused at launch, before a worker fills its memory
    ({"rollout": {"num_generations": 1e10}}, "rollout.num_generations",
     "at most 1,024 (got 10,000,000,000)"),
    ({"rollout": {"prompts_per_step": 10**6}}, "rollout.prompts_per_step", "at most 8,192"),
    ({"rollout": {"prompts_per_step": 512, "num_generations": 256}}, "rollout.num_generations",
     "131,072 completions a step; at most 65,536"),
    ({"rollout": {"max_new_tokens": 10**6}}, "rollout.max_new_tokens", "at most 131,072"),
    ({"rollout": {"prompts_per_step": 1024, "num_generations": 64, "max_new_tokens": 8192}},
     "rollout.max_new_tokens", "536,870,912 tokens; at most 268,435,456"),
    ({"train": {"total_steps": 10**8}}, "train.total_steps", "at most 10,000,000"),
    ({"train": {"micro_batch_size": 10**6}}, "train.micro_batch_size", "at most 65,536"),
    ({"algorithm": {"num_iterations": 1000}}, "algorithm.num_iterations", "at most 64"),
    ({"filters": {"max_refill_rounds": 10**9}}, "filters.max_refill_rounds", "at most 100"),
    ({"policy": {"tiny": {"num_layers": 1000}}}, "policy.tiny.num_layers", "at most 64"),
    ({"policy": {"tiny": {"hidden_size": 2**20, "num_heads": 4}}}, "policy.tiny.hidden_size",
     "at most 8,192"),
    ({"eval": {"num_samples": 5000}}, "eval.num_samples", "at most 1,024"),
    ({"eval": {"max_new_tokens": 10**6}}, "eval.max_new_tokens", "at most 131,072"),
])
def test_bad_values_name_the_dotted_field(patch, field, fragment):
    d = default_config_dict()
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(d)
    assert info.value.field == field
    assert fragment in info.value.message


def test_accuracy_reward_prefers_exact_answer():
    config = TrainConfig.from_dict({"rewards": [
        {"name": "contains", "text": "x"}, {"name": "exact_answer", "label": "correct"}]})
    assert config.accuracy_reward == "correct"
    only_length = TrainConfig.from_dict({"rewards": [{"name": "length", "max_tokens": 4}]})
    assert only_length.accuracy_reward is None


def test_config_errors_lists_every_independent_problem():
    config = default_config_dict()
    config["rollout"]["num_generations"] = 1
    config["optim"]["lr"] = -1.0
    config["rewards"] = [{"name": "nope"}, {"name": "exact_answer", "weight": "heavy"}]
    config["typo"] = {}
    found = {e.field: e.message for e in config_errors(config)}
    assert set(found) == {"typo", "rollout.num_generations", "optim.lr", "rewards[0].name", "rewards[1].weight"}
    assert "must be at least 2" in found["rollout.num_generations"]
    assert config["rollout"]["num_generations"] == 1, "the caller's dict is left as it was"
    assert config_errors(default_config_dict()) == []


def test_greedy_decoding_is_one_completion_per_prompt_and_cannot_train():
    from workers.engine.config import check_trainable

    greedy = TrainConfig.from_dict({"rollout": {"greedy": True, "num_generations": 1}})
    assert greedy.rollout.greedy and greedy.rollout.num_generations == 1
    with pytest.raises(ConfigError) as info:
        check_trainable(greedy)
    assert info.value.field == "rollout.greedy" and "evaluation runs" in info.value.message
    check_trainable(TrainConfig())  # sampling trains
