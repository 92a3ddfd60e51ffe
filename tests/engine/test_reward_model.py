"""Reward-model backbones, ensembles of heads, and the saved folder."""

import json

import pytest
import torch

from workers.engine.errors import ConfigError, ModelLoadError
from workers.engine.reward_model import (
    MANIFEST_NAME,
    build_reward_model,
    build_tiny_encoder,
    load_reward_model,
    packaged_minilm_path,
)

torch.set_num_threads(1)

CORPUS = ["write a poem about the sea", "the sea is blue and wide", "waves crash on rocks", "a dull reply"]
PROMPTS = ["write a poem about the sea", "write a poem about the sea", [{"role": "user", "content": "hi"}]]
COMPLETIONS = ["the sea is blue and wide", "a dull reply", "waves crash on rocks and the sea is wide"]


def tiny_scorer(ensemble_size=3, seed=0):
    return build_reward_model(backbone="tiny", ensemble_size=ensemble_size, seed=seed, max_length=32,
                              device="cpu", corpus=CORPUS)  # fmt: skip


@pytest.fixture(scope="module")
def causal_lm_folder(tmp_path_factory):
    """A 1-layer random Llama with a word-level tokenizer and a chat template, saved locally."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    _, tokenizer = build_tiny_encoder(CORPUS + ["user assistant :"], seed=0, max_length=64)
    tokenizer.chat_template = "{% for m in messages %}{{ m.role }} : {{ m.content }} {% endfor %}"
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_ensemble_scores_have_shape_members_by_completions():
    scores = tiny_scorer(ensemble_size=3).score(PROMPTS, COMPLETIONS)
    assert scores.shape == (3, 3)
    assert torch.isfinite(scores).all()


def test_members_start_from_different_heads():
    scores = tiny_scorer(ensemble_size=2).score(PROMPTS, COMPLETIONS)
    assert not torch.allclose(scores[0], scores[1])


def test_same_seed_gives_the_same_model():
    assert torch.equal(tiny_scorer(seed=4).score(PROMPTS, COMPLETIONS), tiny_scorer(seed=4).score(PROMPTS, COMPLETIONS))


def test_mean_pooling_ignores_padding():
    scorer = tiny_scorer()
    alone = scorer.score(PROMPTS[:1], COMPLETIONS[:1])
    padded = scorer.score(PROMPTS, COMPLETIONS)[:, :1]  # batched with a longer text
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)


def test_save_then_load_gives_identical_scores(tmp_path):
    scorer = tiny_scorer(ensemble_size=3)
    before = scorer.score(PROMPTS, COMPLETIONS)
    scorer.save(tmp_path / "rm", training_config={"lr": 0.1}, metrics={"eval/accuracy": 0.9, "bad": float("nan")})
    loaded = load_reward_model(tmp_path / "rm", device="cpu")
    assert torch.equal(loaded.score(PROMPTS, COMPLETIONS), before)
    manifest = json.loads((tmp_path / "rm" / MANIFEST_NAME).read_text())
    assert manifest["backbone"] == "tiny" and manifest["ensemble_size"] == 3
    assert manifest["training_config"] == {"lr": 0.1}
    assert manifest["metrics"] == {"eval/accuracy": 0.9, "bad": None}  # NaN is not JSON


def test_reward_aggregates_the_members():
    scorer = tiny_scorer(ensemble_size=3)
    scores = scorer.score(PROMPTS, COMPLETIONS)
    torch.testing.assert_close(scorer.reward(PROMPTS, COMPLETIONS, aggregate="mean"), scores.mean(0))
    torch.testing.assert_close(scorer.reward(PROMPTS, COMPLETIONS, aggregate="min"), scores.min(0).values)
    mean, var = scores.mean(0), ((scores - scores.mean(0)) ** 2).mean(0)
    expected = mean - 0.5 * var.sqrt()
    torch.testing.assert_close(scorer.reward(PROMPTS, COMPLETIONS, aggregate="mean_minus_std", std_coef=0.5), expected)


def test_causal_lm_reads_the_last_real_token_whatever_the_padding(causal_lm_folder):
    scorer = build_reward_model(backbone="causal_lm", path=str(causal_lm_folder), ensemble_size=2, max_length=64,
                                device="cpu")  # fmt: skip
    alone = scorer.score(PROMPTS[:1], COMPLETIONS[:1])
    batched = scorer.score(PROMPTS, COMPLETIONS)
    assert batched.shape == (2, 3)
    torch.testing.assert_close(alone, batched[:, :1], atol=1e-5, rtol=1e-5)


def test_causal_lm_saves_and_loads(causal_lm_folder, tmp_path):
    scorer = build_reward_model(backbone="causal_lm", path=str(causal_lm_folder), ensemble_size=2, max_length=64,
                                device="cpu")  # fmt: skip
    before = scorer.score(PROMPTS, COMPLETIONS)
    scorer.save(tmp_path / "rm")
    assert torch.equal(load_reward_model(tmp_path / "rm", device="cpu").score(PROMPTS, COMPLETIONS), before)


def test_causal_lm_without_a_path_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        build_reward_model(backbone="causal_lm", device="cpu")
    assert caught.value.field == "path"


def test_missing_backbone_folder_is_a_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        build_reward_model(backbone="causal_lm", path=str(tmp_path / "nowhere"), device="cpu")


def test_loading_a_folder_without_manifest_is_a_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="not a reward model folder"):
        load_reward_model(tmp_path)


def test_loading_a_foreign_manifest_is_a_load_error(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelLoadError, match="manifest"):
        load_reward_model(tmp_path)


@pytest.mark.slow
def test_packaged_minilm_loads_offline_and_scores(tmp_path):
    assert (packaged_minilm_path() / "model.safetensors").is_file()
    scorer = build_reward_model(backbone="minilm", ensemble_size=2, max_length=128, device="cpu")
    assert scorer.model.backbone.config.hidden_size == 384
    scores = scorer.score(PROMPTS, COMPLETIONS)
    assert scores.shape == (2, 3) and torch.isfinite(scores).all()
    torch.testing.assert_close(scorer.score(PROMPTS[:1], COMPLETIONS[:1]), scores[:, :1], atol=1e-5, rtol=1e-5)


def test_a_saved_tiny_policy_serves_as_causal_lm_backbone(tmp_path):
    tiny = pytest.importorskip("workers.engine.tiny")
    model, tokenizer = tiny.build_tiny_policy(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    model.save_pretrained(tmp_path / "policy")
    tokenizer.save_pretrained(tmp_path / "policy")
    scorer = build_reward_model(backbone="causal_lm", path=str(tmp_path / "policy"), ensemble_size=2, max_length=128,
                                device="cpu")  # fmt: skip
    batched = scorer.score(PROMPTS, COMPLETIONS)  # the chat prompt goes through the policy's template
    assert batched.shape == (2, 3)
    torch.testing.assert_close(scorer.score(PROMPTS[2:], COMPLETIONS[2:]), batched[:, 2:], atol=1e-5, rtol=1e-5)
