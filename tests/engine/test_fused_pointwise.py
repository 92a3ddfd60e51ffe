"""train.compile_layers: the update's RMSNorms, q/k/v split with RoPE, and SwiGLU as compiled
kernels, forward and backward (fused_pointwise), give the eager layer's log-probs, entropies,
gradients and updated weights, and are not compiled again for a narrower micro-batch; the
hand-written gradients are the exact ones; a compilation that fails, in the forward or the
backward, runs the same arithmetic eagerly with a warning."""

import copy
import logging
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

from workers.engine import compiling, fused_pointwise, packed_forward
from workers.engine.chunked_logprobs import fast_token_logprobs
from workers.engine.config import AlgorithmConfig, ConfigError, OptimConfig, TrainConfig
from workers.engine.llama_layers import apply_rope, attention_inputs
from workers.engine.update import UpdateBatch, policy_update

from .model_families import family, randomised
from .test_packed_forward import _rollout_layout

# the compiled functions each family's update runs: Qwen3 normalises q and k per head between
# the split and RoPE, so it takes RoPE alone compiled instead of the split with RoPE
NORM_MLP = ("rms_norm_forward", "rms_norm_backward", "swiglu_forward", "swiglu_backward")
NAMES = ("qkv_rope_forward", "qkv_rope_backward", *NORM_MLP)
QWEN3_NAMES = ("rope_forward", "rope_backward", *NORM_MLP)
BACKWARDS = ("qkv_rope_backward", "rms_norm_backward", "swiglu_backward")


@pytest.fixture(autouse=True)
def _fresh_compilations(monkeypatch):
    """No compilation remembered as failed, and this file's compiled functions its own: a test
    that makes them fail leaves nothing fallen back for the others."""
    monkeypatch.setattr(compiling, "_FAILED", set())
    monkeypatch.setattr(fused_pointwise, "_COMPILED", {})


def test_rope_forward_and_its_hand_written_gradient_are_apply_rope_s():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    cos, sin = (torch.randn(1, 5, 1, 8, dtype=torch.float64, generator=generator) for _ in "cs")
    grad = torch.randn(2, 5, 3, 8, dtype=torch.float64, generator=generator)
    expected = apply_rope(x, cos, sin)
    (expected_grad,) = torch.autograd.grad(expected, x, grad)
    torch.testing.assert_close(fused_pointwise.rope_forward(x, cos, sin), expected)
    torch.testing.assert_close(fused_pointwise.rope_backward(grad, cos, sin), expected_grad)


def test_swiglu_forward_and_its_hand_written_gradient_are_silu_times_up_s():
    generator = torch.Generator().manual_seed(1)
    gate_up = torch.randn(3, 4, 14, dtype=torch.float64, generator=generator, requires_grad=True)
    grad = torch.randn(3, 4, 7, dtype=torch.float64, generator=generator)
    gate, up = gate_up.chunk(2, dim=-1)
    expected = F.silu(gate) * up
    (expected_grad,) = torch.autograd.grad(expected, gate_up, grad)
    torch.testing.assert_close(fused_pointwise.swiglu_forward(gate_up), expected)
    torch.testing.assert_close(fused_pointwise.swiglu_backward(grad, gate_up), expected_grad)


def test_qkv_rope_forward_and_its_hand_written_gradient_are_attention_inputs_s():
    """The split of the stacked projection into q, k, v with RoPE on q and k, and the gradient
    back into the projection, against the eager training path's autograd (grouped heads)."""
    generator = torch.Generator().manual_seed(2)
    q_heads, kv_heads, d = 6, 2, 8
    attn = SimpleNamespace(head_dim=d, q_proj=SimpleNamespace(out_features=q_heads * d),
                           k_proj=SimpleNamespace(out_features=kv_heads * d),
                           v_proj=SimpleNamespace(out_features=kv_heads * d))
    qkv = torch.randn(2, 5, (q_heads + 2 * kv_heads) * d, dtype=torch.float64,
                      generator=generator, requires_grad=True)
    cos, sin = (torch.randn(1, 5, 1, d, dtype=torch.float64, generator=generator) for _ in "cs")
    grads = [torch.randn(2, 5, h, d, dtype=torch.float64, generator=generator)
             for h in (q_heads, kv_heads, kv_heads)]
    expected = attention_inputs(attn, qkv, cos, sin)
    (expected_grad,) = torch.autograd.grad(expected, qkv, grads)
    got = fused_pointwise.qkv_rope_forward(qkv, cos, sin, q_heads, kv_heads)
    for part, want in zip(got, expected, strict=True):
        assert part.is_contiguous()
        torch.testing.assert_close(part, want)
    torch.testing.assert_close(fused_pointwise.qkv_rope_backward(*grads, cos, sin), expected_grad)


def test_rms_norm_forward_and_its_hand_written_gradients_are_f_rms_norm_s():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(3, 4, 16, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(16, dtype=torch.float64, generator=generator, requires_grad=True)
    grad = torch.randn(3, 4, 16, dtype=torch.float64, generator=generator)
    expected = F.rms_norm(x, (16,), weight, 1e-5)
    expected_x, expected_weight = torch.autograd.grad(expected, (x, weight), grad)
    torch.testing.assert_close(fused_pointwise.rms_norm_forward(x, weight, 1e-5), expected)
    grad_x, grad_weight = fused_pointwise.rms_norm_backward(grad, x, weight, 1e-5)
    torch.testing.assert_close(grad_x, expected_x)
    torch.testing.assert_close(grad_weight, expected_weight)


def _llama():
    """SmolLM2's layout in small: grouped heads, tied embeddings, SiLU MLP."""
    return family(LlamaForCausalLM, LlamaConfig, "abc ", tie_word_embeddings=True)


def _qwen3():
    """Qwen3: q and k normalised per head before RoPE (the other way into the RoPE)."""
    model, tok = family(Qwen3ForCausalLM, Qwen3Config, "abc ", head_dim=8)
    return randomised(model), tok


def _rollout_rows(tok, seed=1):
    """The update's layout (test_packed_forward's): left-padded prompts, prefix-masked
    completions, rows of different lengths."""
    return _rollout_layout(tok, torch.Generator().manual_seed(seed))


def _logprobs_and_grads(model, ids, mask, completion_mask, compiled):
    model.zero_grad(set_to_none=True)
    advantages = torch.tensor([1.0, -0.5, 0.3, 2.0, -1.0, 0.7], device=ids.device)[:len(ids)]
    with packed_forward.compiled_layers(compiled):
        logprobs, entropy = fast_token_logprobs(model, ids, mask, 7, 0.9,
                                                completion_mask=completion_mask,
                                                with_entropy=True)
        (-(logprobs * completion_mask * advantages[:, None]).sum()).backward()
    return (logprobs.detach(), entropy.detach(),
            {name: p.grad.clone() for name, p in model.named_parameters()})


@pytest.mark.parametrize(("build", "names"), [(_llama, NAMES), (_qwen3, QWEN3_NAMES)],
                         ids=["llama-gqa", "qwen3-qk-norm"])
def test_compiled_layers_give_the_eager_log_probs_entropies_and_gradients(build, names,
                                                                          monkeypatch):
    model, tok = build()
    model.train()
    ids, mask, completion_mask = _rollout_rows(tok)
    lp0, e0, g0 = _logprobs_and_grads(model, ids, mask, completion_mask, compiled=False)
    used = []
    compiled_of = fused_pointwise.compiled
    monkeypatch.setattr(fused_pointwise, "compiled",
                        lambda name: used.append(name) or compiled_of(name))
    lp1, e1, g1 = _logprobs_and_grads(model, ids, mask, completion_mask, compiled=True)
    # again, on a narrower micro-batch: the same compiled functions (dynamic shapes), and not
    # compiled again (a recompilation would raise, fall back and fail the check below)
    with torch._dynamo.config.patch(error_on_recompile=True):
        _logprobs_and_grads(model, ids[:3, 3:], mask[:3, 3:], completion_mask[:3], compiled=True)
    layers = model.config.num_hidden_layers
    assert sorted(set(used)) == sorted(names)
    assert used.count(names[0]) == used.count("swiglu_backward") == 2 * layers
    # two per layer and the final one, in both passes
    assert used.count("rms_norm_forward") == used.count("rms_norm_backward") == 2 * (2 * layers + 1)
    assert not any(fused_pointwise._COMPILED[name].compile_failed() for name in names)
    assert not packed_forward._COMPILED.get()  # the setting ends with its block
    torch.testing.assert_close(lp1, lp0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(e1, e0, atol=1e-5, rtol=1e-5)
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=1e-5, rtol=1e-4, msg=name)


def test_an_update_with_compiled_layers_moves_the_weights_as_the_eager_one(monkeypatch):
    base, tok = _llama()
    ids, mask, completion_mask = _rollout_rows(tok, seed=2)
    batch = UpdateBatch(ids, mask, completion_mask,
                        advantages=torch.tensor([1.0, -0.5, 0.3, 2.0, -1.0, 0.7]))
    seen, layer = [], packed_forward._layer
    monkeypatch.setattr(packed_forward, "_layer", lambda *a: seen.append(a[-1]) or layer(*a))
    weights = []
    for compile_layers in (False, True):
        model = copy.deepcopy(base)
        # SGD: AdamW would turn a rounding-sized gradient into an lr-sized step
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
        metrics = policy_update(model, optimizer, batch, algo=AlgorithmConfig(),
                                optim=OptimConfig(lr=1e-2), lr=1e-2, temperature=0.9,
                                max_new_tokens=7, micro_batch_size=4, fast=True,
                                compile_layers=compile_layers)
        weights.append((metrics, dict(model.named_parameters())))
    (m0, w0), (m1, w1) = weights
    assert set(seen) == {False, True}
    assert m1["loss"] == pytest.approx(m0["loss"], abs=1e-6)
    for name in w0:
        torch.testing.assert_close(w1[name], w0[name], atol=1e-6, rtol=1e-5, msg=name)


def _failing_for(names, calls):
    real = torch.compile

    def fake_compile(fn, **options):
        if fn.__name__ not in names:
            return real(fn, **options)

        def broken(*args, **kwargs):
            calls.append(fn.__name__)
            raise RuntimeError("InductorError: CppCompileError: C++ compile error\nmore")
        return broken
    return fake_compile


@pytest.mark.parametrize("failing", [NAMES, BACKWARDS],
                         ids=["all", "backward-only"])
def test_a_compilation_that_fails_runs_the_same_arithmetic_eagerly(monkeypatch, caplog, failing):
    model, tok = _llama()
    model.train()
    ids, mask, completion_mask = _rollout_rows(tok)
    lp0, _, g0 = _logprobs_and_grads(model, ids, mask, completion_mask, compiled=False)
    calls = []
    monkeypatch.setattr(torch, "compile", _failing_for(failing, calls))
    with caplog.at_level(logging.WARNING, logger="workers.engine.compiling"):
        lp1, _, g1 = _logprobs_and_grads(model, ids, mask, completion_mask, compiled=True)
        _logprobs_and_grads(model, ids, mask, completion_mask, compiled=True)
    assert sorted(calls) == sorted(failing)  # each tried once, then run eagerly
    messages = sorted(r.getMessage() for r in caplog.records)
    assert messages == sorted(f"torch.compile of the update's {name} failed (RuntimeError: "
                              "InductorError: CppCompileError: C++ compile error); running it "
                              "eagerly" for name in failing)
    torch.testing.assert_close(lp1, lp0, atol=1e-5, rtol=1e-5)
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=1e-5, rtol=1e-4, msg=name)


def test_a_model_whose_mlp_is_not_silu_keeps_its_own_activation(monkeypatch):
    model, tok = family(LlamaForCausalLM, LlamaConfig, "abc ", hidden_act="gelu")
    assert not fused_pointwise.fuses_mlp(model.model.layers[0].mlp)
    assert fused_pointwise.fuses_mlp(_llama()[0].model.layers[0].mlp)
    used = []
    monkeypatch.setattr(fused_pointwise, "swiglu", lambda x: used.append(x))
    ids, mask, completion_mask = _rollout_rows(tok)
    eager, _, _ = _logprobs_and_grads(model, ids, mask, completion_mask, compiled=False)
    compiled, _, _ = _logprobs_and_grads(model, ids, mask, completion_mask, compiled=True)
    assert not used
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)


def test_compile_layers_is_unset_by_default_and_takes_true_false_or_null():
    assert TrainConfig().train.compile_layers is None
    for value in (True, False, None):
        config = TrainConfig.from_dict({"train": {"compile_layers": value}})
        assert config.train.compile_layers is value
    with pytest.raises(ConfigError) as raised:
        TrainConfig.from_dict({"train": {"compile_layers": "yes"}})
    assert raised.value.field == "train.compile_layers"


@pytest.mark.parametrize(("setting", "wanted"), [(None, False), (True, True), (False, False)])
def test_the_trainer_s_update_gets_the_setting_unset_off_on_a_cpu(tiny_cfg, tmp_path, monkeypatch,
                                                                 setting, wanted):
    from workers.engine import trainer
    from workers.engine.data import PromptRecord

    asked, update = [], trainer.policy_update

    def recording(*args, compile_layers, **kwargs):
        asked.append(compile_layers)
        return update(*args, compile_layers=False, **kwargs)  # the values are tested above
    monkeypatch.setattr(trainer, "policy_update", recording)
    config = TrainConfig.from_dict(tiny_cfg(train={"total_steps": 1, "compile_layers": setting}))
    trainer.train(config, [PromptRecord("ab", id=0), PromptRecord("ba", id=1)], None,
                  output_dir=tmp_path)
    assert asked and set(asked) == {wanted}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_compiled_layers_in_bfloat16_match_the_eager_ones_within_rounding():
    """On a GPU, with Triton's kernels: bf16 log-probs and gradients within bf16 rounding of
    the eager layer's (which rounds each intermediate), and nothing fallen back."""
    model, tok = _llama()
    model = model.to("cuda", torch.bfloat16).train()
    ids, mask, completion_mask = (t.cuda() for t in _rollout_rows(tok))
    lp0, _, g0 = _logprobs_and_grads(model, ids, mask, completion_mask, compiled=False)
    lp1, _, g1 = _logprobs_and_grads(model, ids, mask, completion_mask, compiled=True)
    assert not any(fused_pointwise._COMPILED[name].compile_failed() for name in NAMES)
    torch.testing.assert_close(lp1, lp0, atol=0.05, rtol=0.02)
    flat0 = torch.cat([g.float().flatten() for g in g0.values()])
    flat1 = torch.cat([g1[name].float().flatten() for name in g0])
    assert float((flat1 - flat0).norm() / flat0.norm()) < 0.02
