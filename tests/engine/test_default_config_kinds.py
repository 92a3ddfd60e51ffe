"""``python -m workers.engine default-config --kind`` prints and explains the settings of DPO,
SFT and reward-model runs too: docs/api.md sends a reader there for the settings a sweep of
"that kind" can name (``dpo.beta``, ``sft.epochs``), and it listed a policy run's alone."""

import json

import pytest

from workers.engine.__main__ import main
from workers.engine.config import TrainConfig, field_help
from workers.engine.dpo_config import DPOTrainConfig
from workers.engine.rm_trainer import RewardModelTrainConfig
from workers.engine.sft_config import SFTTrainConfig

KINDS = {
    "dpo": DPOTrainConfig,
    "sft": SFTTrainConfig,
    "reward_model": RewardModelTrainConfig,
}


def _run(capsys, *argv) -> str:
    assert main(["default-config", *argv]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_printed_config_of_a_kind_is_its_default_config(capsys, kind):
    printed = json.loads(_run(capsys, "--kind", kind))
    assert KINDS[kind].from_dict(printed) == KINDS[kind]()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_explain_lists_every_setting_of_a_kind_with_its_help(capsys, kind):
    explained = _run(capsys, "--kind", kind, "--explain")
    names = [
        line.split(" = ")[0]
        for line in explained.splitlines()
        if not line.startswith(" ")
    ]
    assert names == list(field_help(KINDS[kind]))
    assert all(text in explained for text in field_help(KINDS[kind]).values())


def test_the_settings_a_dpo_or_sft_sweep_names_are_explained(capsys):
    assert "dpo.beta = 0.1" in _run(capsys, "--kind", "dpo", "--explain").splitlines()
    assert "sft.epochs = 1" in _run(capsys, "--kind", "sft", "--explain").splitlines()
    assert (
        "lr = 5e-05" in _run(capsys, "--kind", "reward_model", "--explain").splitlines()
    )


@pytest.mark.parametrize("kind", ["policy", "evaluation"])
def test_policy_and_evaluation_runs_print_the_train_config_as_without_a_kind(
    capsys, kind
):
    assert _run(capsys, "--kind", kind) == _run(capsys)
    assert _run(capsys, "--kind", kind, "--explain") == _run(capsys, "--explain")
    assert (
        TrainConfig.from_dict(json.loads(_run(capsys, "--kind", kind))) == TrainConfig()
    )


def test_an_unknown_kind_is_refused_naming_the_kinds(capsys):
    with pytest.raises(SystemExit) as refused:
        main(["default-config", "--kind", "ppo"])
    assert refused.value.code == 2
    assert "'dpo', 'sft', 'reward_model'" in capsys.readouterr().err
