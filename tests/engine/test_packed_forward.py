"""The packed training forward against Hugging Face's forward: the same log-probs, entropies and
gradients for every family it claims, on rows of different prompt and completion lengths."""

import pytest
import torch
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

from workers.engine import packed_forward
from workers.engine.chunked_logprobs import fast_token_logprobs
from workers.engine.llama_layers import qkv_linears, stacked_linear
from workers.engine.losses import token_logprobs
from workers.engine.packed_forward import pack_rows
from workers.engine.rollout import left_pad
from workers.engine.tiny import build_tiny_policy

from .model_families import family, randomised

PAD = 0


def _family(cls, config_cls, **extra):
    model, tok = family(cls, config_cls, "abc ", **extra)
    return randomised(model), tok


FAMILIES = {
    "tiny-llama": lambda: build_tiny_policy(alphabet="abc ", hidden_size=32, num_layers=2,
                                            num_heads=2, intermediate_size=64, seed=2),
    "llama-gqa-tied": lambda: _family(LlamaForCausalLM, LlamaConfig, tie_word_embeddings=True),
    "llama-attention-bias": lambda: _family(LlamaForCausalLM, LlamaConfig, attention_bias=True,
                                            mlp_bias=True),
    "qwen2-bias": lambda: _family(Qwen2ForCausalLM, Qwen2Config),
    "qwen3-qk-norm": lambda: _family(Qwen3ForCausalLM, Qwen3Config, head_dim=8),
}


def _rollout_layout(tok, generator):
    """Left-padded prompts of 1..9 tokens, then completions of 0..7 tokens (prefix masks) in
    a width of 7: the layout the update receives."""
    vocab = len(tok)
    prompts = [torch.randint(3, vocab, (n,), generator=generator).tolist()
               for n in (1, 9, 4, 6, 2, 9)]
    prompt_ids, prompt_mask = left_pad(prompts, tok.pad_token_id, "cpu")
    lengths = torch.tensor([7, 3, 0, 7, 5, 1])
    completion_mask = (torch.arange(7)[None] < lengths[:, None]).long()
    completion_ids = torch.randint(3, vocab, (6, 7), generator=generator)
    completion_ids = completion_ids.masked_fill(completion_mask == 0, tok.pad_token_id)
    return (torch.cat([prompt_ids, completion_ids], 1), torch.cat([prompt_mask, completion_mask], 1),
            completion_mask)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_packed_forward_matches_hugging_face_values_entropy_and_gradients(family, monkeypatch):
    calls, layer = [], packed_forward._layer
    monkeypatch.setattr(packed_forward, "_layer", lambda *a: calls.append(1) or layer(*a))
    results = []
    for fast in (False, True):
        model, tok = FAMILIES[family]()
        model.train()
        assert packed_forward.supported(model)
        ids, mask, completion_mask = _rollout_layout(tok, torch.Generator().manual_seed(1))
        advantages = torch.tensor([1.0, -0.5, 0.3, 2.0, -1.0, 0.7])
        if fast:
            logprobs, entropy = fast_token_logprobs(model, ids, mask, 7, 0.9,
                                                    completion_mask=completion_mask,
                                                    with_entropy=True)
        else:
            logprobs, entropy = token_logprobs(model, ids, mask, 7, 0.9, with_entropy=True)
        m = completion_mask
        (-(logprobs * m * advantages[:, None]).sum()).backward()
        results.append((logprobs.detach() * m, entropy * m,
                        {name: p.grad.clone() for name, p in model.named_parameters()}))
    assert calls, "the packed forward did not run"
    (lp0, e0, g0), (lp1, e1, g1) = results
    torch.testing.assert_close(lp1, lp0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(e1, e0, atol=1e-5, rtol=1e-5)
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=1e-5, rtol=1e-4, msg=name)


def test_the_stacked_projection_has_the_exact_gradient():
    torch.manual_seed(0)
    linears = tuple(torch.nn.Linear(6, n, bias=True).double() for n in (4, 2, 2))
    x = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    params = [x, *(p for m in linears for p in m.parameters())]
    assert torch.autograd.gradcheck(lambda *_: stacked_linear(x, linears), params)
    expected = torch.cat([m(x) for m in linears], dim=-1)
    torch.testing.assert_close(stacked_linear(x, linears), expected)


def test_training_keeps_no_stacked_copy_of_the_weights():
    """The stacked q/k/v (and gate/up) matrix is rebuilt in the backward, not saved from the
    forward, so training does not hold those weights twice."""
    model, tok = FAMILIES["llama-gqa-tied"]()
    ids, mask, _ = _rollout_layout(tok, torch.Generator().manual_seed(0))
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    copies = []  # saved matrices that are not views of a parameter

    def pack(t):
        if t.dim() == 2 and t.untyped_storage().data_ptr() not in weights:
            copies.append(tuple(sorted(t.shape)))  # either orientation
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        packed_forward.packed_hidden_states(model, ids, mask)
    attn, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    stacked = {tuple(sorted((sum(m.out_features for m in qkv_linears(attn)),
                             attn.q_proj.in_features))),
               tuple(sorted((mlp.gate_proj.out_features + mlp.up_proj.out_features,
                             mlp.gate_proj.in_features)))}
    assert copies and not stacked & set(copies)


def test_rows_are_packed_to_the_front_and_trimmed_to_the_longest():
    ids = torch.tensor([[0, 0, 5, 6, 7, 0],
                        [8, 9, 5, 6, 7, 4],
                        [0, 3, 0, 6, 0, 0]])  # a hole in the middle keeps its order too
    mask = (ids != 0).long()
    packed, rank = pack_rows(ids, mask)
    assert packed.tolist() == [[5, 6, 7, 0, 0, 0], [8, 9, 5, 6, 7, 4], [3, 6, 0, 0, 0, 0]]
    assert rank[1].tolist() == [0, 1, 2, 3, 4, 5]
    assert rank[0, 2:5].tolist() == [0, 1, 2] and rank[2, [1, 3]].tolist() == [0, 1]
    short, _ = pack_rows(ids[[0, 2]], mask[[0, 2]])
    assert short.shape == (2, 3)  # trailing padding of the whole batch is not computed


def test_long_rows_keep_their_order_when_packed():
    """The sort that packs a row must be stable: long rows are where an unstable one reorders."""
    generator = torch.Generator().manual_seed(0)
    mask = (torch.rand(3, 5000, generator=generator) < 0.7).long()
    ids = torch.arange(1, 5001).repeat(3, 1) * mask
    packed, _ = pack_rows(ids, mask)
    for row in range(3):
        real = ids[row][mask[row].bool()]
        assert torch.equal(packed[row, :len(real)], real)


def test_an_empty_prompt_leaves_out_the_token_nothing_predicts():
    model, tok = FAMILIES["llama-gqa-tied"]()
    ids, mask, completion_mask = _rollout_layout(tok, torch.Generator().manual_seed(3))
    prompt_width = ids.shape[1] - 7
    ids[0, :prompt_width], mask[0, :prompt_width] = tok.pad_token_id, 0  # row 0: no prompt
    plain, _ = token_logprobs(model, ids, mask, 7, 1.0)
    fast, _ = fast_token_logprobs(model, ids, mask, 7, 1.0, completion_mask=completion_mask)
    assert fast[0, 0] == 0  # the first token has no real token before it
    torch.testing.assert_close(fast[0, 1:], plain[0, 1:].detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast[1:] * completion_mask[1:],
                               plain[1:].detach() * completion_mask[1:], atol=1e-5, rtol=1e-5)


def test_a_batch_of_padding_alone_gives_zeros():
    model, tok = FAMILIES["tiny-llama"]()
    ids = torch.full((2, 6), tok.pad_token_id)
    zeros = torch.zeros(2, 3, dtype=torch.long)
    logprobs, entropy = fast_token_logprobs(model, ids, torch.zeros_like(ids), 3, 1.0,
                                            completion_mask=zeros, with_entropy=True)
    assert not logprobs.any() and not entropy.any()


def test_a_hole_in_a_row_reads_as_if_its_tokens_were_not_there():
    model, tok = FAMILIES["qwen2-bias"]()
    ids, mask, completion_mask = _rollout_layout(tok, torch.Generator().manual_seed(4))
    row, width = 3, ids.shape[1]  # row 3: a 6-token prompt, 7 completion tokens
    holed_mask = mask[row:row + 1].clone()
    holed_mask[0, width - 7 + 2] = 0  # the third completion token is not there
    fast, _ = fast_token_logprobs(model, ids[row:row + 1], holed_mask, 7, 1.0,
                                  completion_mask=holed_mask[:, -7:])
    kept = holed_mask[0].bool()
    without, _ = token_logprobs(model, ids[row:row + 1, kept], holed_mask[:, kept], 6, 1.0)
    torch.testing.assert_close(fast[0, [0, 1, 3, 4, 5, 6]], without[0].detach(), atol=1e-5,
                               rtol=1e-5)
    assert fast[0, 2] == 0


def test_packed_hidden_states_do_not_depend_on_the_padding_around_a_row():
    model, tok = FAMILIES["llama-gqa-tied"]()
    model.eval()
    row = [5, 3, 7, 4, 6]
    alone = packed_forward.packed_hidden_states(model, torch.tensor([row]),
                                                torch.ones(1, 5, dtype=torch.long)).hidden
    ids, mask = left_pad([row, row + [3, 3, 3, 3]], tok.pad_token_id, "cpu")
    padded = packed_forward.packed_hidden_states(model, ids, mask).hidden
    torch.testing.assert_close(padded[0, :5], alone[0], atol=1e-6, rtol=1e-5)


def test_models_with_attention_dropout_keep_hugging_face_s_forward():
    model, _ = _family(LlamaForCausalLM, LlamaConfig, attention_dropout=0.1)
    assert not packed_forward.supported(model)  # dropout in train mode: HF's forward runs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bfloat16_packed_training_runs_on_flash_attention():
    """No silent fall-back to the math kernel: with only FlashAttention allowed, the packed
    forward and backward (grouped heads, bf16) must run."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model, tok = FAMILIES["llama-gqa-tied"]()
    model = model.to("cuda", torch.bfloat16).train()
    ids, mask, completion_mask = (x.cuda() for x in
                                  _rollout_layout(tok, torch.Generator().manual_seed(2)))
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        logprobs, _ = fast_token_logprobs(model, ids, mask, 7, 1.0,
                                          completion_mask=completion_mask)
        (logprobs * completion_mask).sum().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bfloat16_packed_forward_on_gpu_agrees_with_hugging_face():
    model, tok = FAMILIES["llama-gqa-tied"]()
    model = model.to("cuda", torch.bfloat16).train()
    ids, mask, completion_mask = (x.cuda() for x in
                                  _rollout_layout(tok, torch.Generator().manual_seed(2)))
    from workers.engine.update import training_attention

    with training_attention(ids.device):
        plain, _ = token_logprobs(model, ids, mask, 7, 1.0)
        fast, _ = fast_token_logprobs(model, ids, mask, 7, 1.0, completion_mask=completion_mask)
    diff = (plain.float() - fast).abs() * completion_mask
    assert float(diff.max()) < 0.1  # bf16 rounding only
