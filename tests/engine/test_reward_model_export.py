"""A Steer reward model exported as a Hugging Face sequence classifier scores as Steer does."""

import json

import pytest
import torch

from tests.engine.test_reward_model import (
    COMPLETIONS,
    CORPUS,
    PROMPTS,
    causal_lm_folder,  # noqa: F401 (the tiny Llama folder, a fixture)
)
from workers.engine.__main__ import main
from workers.engine.errors import ConfigError, ModelLoadError
from workers.engine.reward_model import build_reward_model
from workers.engine.reward_model_export import export_sequence_classifier


def _saved(folder, causal_lm_folder, *, ensemble_size=2, bias=None, backbone="causal_lm"):
    path = str(causal_lm_folder) if backbone == "causal_lm" else None
    scorer = build_reward_model(backbone=backbone, path=path, ensemble_size=ensemble_size, seed=3, max_length=48,
                                device="cpu", corpus=CORPUS)
    if bias is not None:
        with torch.no_grad():
            scorer.model.heads.bias.copy_(torch.tensor(bias))
    scorer.save(folder)
    return scorer


def _classifier_scores(folder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from workers.engine.reward_model import _causal_text

    model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    texts = [_causal_text(tokenizer, p, c) for p, c in zip(PROMPTS, COMPLETIONS)]
    encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    assert encoded["attention_mask"].sum(1).unique().numel() > 1  # the batch is padded: pooling is tested
    with torch.no_grad():
        return model(**{k: encoded[k] for k in ("input_ids", "attention_mask")}).logits.T


def test_the_exported_classifier_gives_every_member_s_reward(tmp_path, causal_lm_folder):
    scorer = _saved(tmp_path / "rm", causal_lm_folder, ensemble_size=2)
    summary = export_sequence_classifier(tmp_path / "rm", tmp_path / "hf")
    assert summary.architecture == "LlamaForSequenceClassification"
    assert summary.num_labels == 2 and summary.dropped_bias is None
    assert summary.max_abs_difference < 1e-5
    exported = _classifier_scores(tmp_path / "hf")
    torch.testing.assert_close(exported, scorer.score(PROMPTS, COMPLETIONS), atol=1e-5, rtol=1e-5)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    assert config["pad_token_id"] == scorer.tokenizer.pad_token_id


def test_a_bias_the_classifier_cannot_hold_is_recorded_and_only_shifts_the_rewards(tmp_path, causal_lm_folder):
    scorer = _saved(tmp_path / "rm", causal_lm_folder, ensemble_size=1, bias=[0.75])
    summary = export_sequence_classifier(tmp_path / "rm", tmp_path / "hf")
    assert summary.dropped_bias == [0.75]
    exported = _classifier_scores(tmp_path / "hf")
    torch.testing.assert_close(exported + 0.75, scorer.score(PROMPTS, COMPLETIONS), atol=1e-5, rtol=1e-5)
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["steer_reward_bias"] == [0.75]


def test_a_mean_pooled_reward_model_is_refused_naming_its_backbone(tmp_path, causal_lm_folder):
    _saved(tmp_path / "rm", causal_lm_folder, backbone="tiny")
    with pytest.raises(ConfigError, match="'tiny' backbone"):
        export_sequence_classifier(tmp_path / "rm", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_a_destination_holding_files_is_refused_and_left_alone(tmp_path, causal_lm_folder):
    _saved(tmp_path / "rm", causal_lm_folder)
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already exists"):
        export_sequence_classifier(tmp_path / "rm", tmp_path / "hf")
    assert [p.name for p in (tmp_path / "hf").iterdir()] == ["notes.txt"]


def test_the_cli_writes_the_classifier_and_prints_a_summary(tmp_path, causal_lm_folder, capsys):
    _saved(tmp_path / "rm", causal_lm_folder, ensemble_size=1)
    assert main(["export-rm-hf", str(tmp_path / "rm"), str(tmp_path / "hf")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["architecture"] == "LlamaForSequenceClassification" and printed["num_labels"] == 1
    assert (tmp_path / "hf" / "config.json").is_file()


def test_the_cli_answers_a_folder_that_is_no_reward_model_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["export-rm-hf", str(tmp_path / "empty"), str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "reward_model.json is missing" in err
    with pytest.raises(ModelLoadError):
        export_sequence_classifier(tmp_path / "empty", tmp_path / "hf2")


def test_an_export_that_fails_its_check_leaves_no_folder(tmp_path, causal_lm_folder, monkeypatch):
    from workers.engine import reward_model_export

    _saved(tmp_path / "rm", causal_lm_folder)
    monkeypatch.setattr(reward_model_export, "CHECK_TOLERANCE", -1.0)  # no export can pass
    with pytest.raises(ModelLoadError, match="do not use it"):
        export_sequence_classifier(tmp_path / "rm", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
