"""The chunked LM-head log-probs and the fast update path against the plain ones."""

import pytest
import torch

from workers.engine.chunked_logprobs import fast_token_logprobs, selected_logprobs
from workers.engine.config import AlgorithmConfig, OptimConfig
from workers.engine.losses import token_logprobs
from workers.engine.rollout import left_pad
from workers.engine.tiny import build_tiny_policy
from workers.engine.update import UpdateBatch, policy_update


def _model(seed=0, tie=False):
    model, tok = build_tiny_policy(alphabet="abc", hidden_size=32, num_layers=2, num_heads=2,
                                   intermediate_size=64, seed=seed)
    if tie:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model, tok


def _batch(tok):
    ids, mask = left_pad([[3, 6, 6, 7, 8, 6], [3, 7, 6, 2, 2, 2], [6, 7, 7, 8, 6, 7],
                          [3, 7, 7, 2, 6, 2]], tok.pad_token_id, "cpu")
    ids[1, :2] = tok.pad_token_id
    mask[1, :2] = 0
    completion_mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 0]])
    mask[:, -3:] = completion_mask
    return UpdateBatch(ids, mask, completion_mask, torch.tensor([1.0, -1.0, 0.5, -0.5]))


def _sgd_update(model, tok, *, algo, fast, temperature, ref_model=None, compile_head=False):
    """One ``policy_update`` with plain SGD at lr 1: returns its metrics and each parameter's
    step, which is then the clipped gradient itself. AdamW's first step is about lr × sign(g),
    which turns float rounding in a gradient near 0 into a step of lr, so it compares paths
    only loosely (one such element differed by 1.5e-3 × lr on an AMD CPU)."""
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    metrics = policy_update(model, optimizer, _batch(tok), algo=algo, optim=OptimConfig(),
                            lr=1.0, temperature=temperature, max_new_tokens=3,
                            micro_batch_size=2, ref_model=ref_model, fast=fast,
                            compile_head=compile_head)
    return metrics, [p.detach() - b for p, b in zip(model.parameters(), before)]


def _assert_same_steps(steps, other):
    assert any(bool(s.abs().max() > 1e-3) for s in steps)  # the update moved the weights
    for s, o in zip(steps, other):
        assert torch.allclose(o, s, rtol=1e-4, atol=1e-6), (o - s).abs().max()


def _float64_head(seed):
    """hidden (23, 8), weight (11, 8) needing gradients, targets (23,): a head for gradcheck."""
    torch.manual_seed(seed)
    hidden = torch.randn(23, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 8, dtype=torch.float64, requires_grad=True)
    return hidden, weight, torch.randint(0, 11, (23,))


@pytest.mark.parametrize("chunk", [5, 64], ids=["recomputed-chunks", "one-kept-chunk"])
def test_gradient_of_the_chunked_head_is_exact(chunk):
    hidden, weight, targets = _float64_head(0)
    assert torch.autograd.gradcheck(
        lambda h, w: selected_logprobs(h, w, targets, 0.7, chunk=chunk)[0], (hidden, weight))


def test_chunked_values_and_entropy_equal_a_full_log_softmax():
    torch.manual_seed(1)
    hidden, weight = torch.randn(40, 16), torch.randn(50, 16)
    targets = torch.randint(0, 50, (40,))
    logprob, entropy = selected_logprobs(hidden, weight, targets, 1.3, chunk=7)
    full = torch.log_softmax(hidden @ weight.T / 1.3, dim=-1)
    assert torch.allclose(logprob, full.gather(1, targets[:, None]).squeeze(1), atol=1e-5)
    assert torch.allclose(entropy, -(full.exp() * full).sum(-1), atol=1e-5)


@pytest.mark.parametrize("tie", [False, True], ids=["separate-head", "tied-embeddings"])
def test_fast_token_logprobs_match_values_entropy_and_gradients(tie):
    grads = []
    for fast in (False, True):
        model, tok = _model(tie=tie)
        batch = _batch(tok)
        fn = fast_token_logprobs if fast else token_logprobs
        kwargs = {"completion_mask": batch.completion_mask} if fast else {}
        logprobs, entropy = fn(model, batch.input_ids, batch.attention_mask, 3, 0.8,
                               with_entropy=True, **kwargs)
        m = batch.completion_mask
        (-(logprobs * m * batch.advantages[:, None]).sum()).backward()
        grads.append((logprobs.detach() * m, entropy * m,
                      [p.grad.clone() for p in model.parameters()]))
    (lp0, e0, g0), (lp1, e1, g1) = grads
    assert torch.allclose(lp0, lp1, atol=1e-5) and torch.allclose(e0, e1, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g0, g1))


@pytest.mark.parametrize("algo", [AlgorithmConfig(),
                                  AlgorithmConfig(num_iterations=2, beta=0.1)],
                         ids=["mu1-beta0", "mu2-kl"])
def test_fast_and_plain_policy_updates_agree(algo, monkeypatch):
    from workers.engine import update

    calls = []
    monkeypatch.setattr(update, "fast_token_logprobs",
                        lambda *a, **k: calls.append(1) or fast_token_logprobs(*a, **k))
    out = []
    for fast in (False, True):
        model, tok = _model()
        ref, _ = _model(seed=1) if algo.beta else (None, None)
        out.append(_sgd_update(model, tok, algo=algo, ref_model=ref, fast=fast,
                               temperature=1.0))
        assert bool(calls) == fast  # only the fast update went through the chunked head
    (m0, d0), (m1, d1) = out
    assert m0.keys() == m1.keys()
    for key in m0:
        assert m1[key] == pytest.approx(m0[key], rel=1e-4, abs=1e-6), key
    _assert_same_steps(d0, d1)


def test_training_attention_keeps_cuda_updates_off_cudnn_sdpa():
    from workers.engine.update import training_attention

    before = torch.backends.cuda.cudnn_sdp_enabled()
    with training_attention(torch.device("cuda")):  # sets flags only; no GPU needed
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.mem_efficient_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled() == before
    with training_attention(torch.device("cpu")):
        assert torch.backends.cuda.cudnn_sdp_enabled() == before


@pytest.mark.parametrize("chunk", [5, 64], ids=["recomputed-chunks", "one-kept-chunk"])
def test_without_entropy_the_head_gives_the_same_logprobs_and_gradient(chunk):
    hidden, weight, targets = _float64_head(2)
    grads = []
    for with_entropy in (True, False):
        logprob, entropy = selected_logprobs(hidden, weight, targets, 0.7, chunk=chunk,
                                             with_entropy=with_entropy)
        assert (entropy is None) == (not with_entropy)
        grads.append((logprob.detach(), *torch.autograd.grad(logprob.sum(), (hidden, weight))))
    assert all(torch.allclose(a, b) for a, b in zip(*grads))
    assert torch.autograd.gradcheck(
        lambda h, w: selected_logprobs(h, w, targets, 0.7, chunk=chunk,
                                       with_entropy=False)[0], (hidden, weight))


@pytest.mark.parametrize(("with_entropy", "rows"), [(True, 40), (False, 40), (True, 36),
                                                    (True, 0)],
                         ids=["with-entropy", "logprobs-only", "one-row-last-chunk", "empty"])
def test_the_compiled_head_matches_the_eager_head(with_entropy, rows):
    """``compiled=True`` (torch.compile of each chunk's soft-max arithmetic) against the eager
    head: values, entropy and both gradients, over several chunks (the last one a single row
    in one case) and a temperature, and an empty selection."""
    torch.manual_seed(3)
    hidden, weight = torch.randn(rows, 16), torch.randn(50, 16)
    targets, upstream = torch.randint(0, 50, (rows,)), torch.randn(rows)
    out = []
    for compiled in (False, True):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        logprob, entropy = selected_logprobs(h, w, targets, 0.8, chunk=7,
                                             with_entropy=with_entropy, compiled=compiled)
        (logprob * upstream).sum().backward()
        out.append((logprob.detach(), entropy, h.grad, w.grad))
    for eager, compiled in zip(*out):
        if eager is None:
            assert compiled is None
        else:  # the reductions' order depends on the CPU's vector width: rounding only
            assert torch.allclose(eager, compiled, atol=1e-4, rtol=1e-5)


def test_an_update_with_the_compiled_head_equals_the_eager_fast_update(monkeypatch):
    from workers.engine import chunked_logprobs

    used = []
    compiled = chunked_logprobs._compiled
    monkeypatch.setattr(chunked_logprobs, "_compiled",
                        lambda name: used.append(name) or compiled(name))
    out = []
    for compile_head in (False, True):
        model, tok = _model()
        out.append(_sgd_update(model, tok, algo=AlgorithmConfig(), fast=True, temperature=0.9,
                               compile_head=compile_head))
    assert {"stats", "grad"} <= set(used)  # the compiled head ran, forward and backward
    (m0, d0), (m1, d1) = out
    for key in m0:
        assert m1[key] == pytest.approx(m0[key], rel=1e-4, abs=1e-6), key
    _assert_same_steps(d0, d1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_compiled_head_matches_the_eager_head_in_bfloat16_on_gpu():
    """The compiled head on CUDA (Triton kernels reading bf16 logits) against the eager one,
    on a SmolLM2-sized vocabulary and more than one chunk."""
    torch.manual_seed(4)
    hidden = torch.randn(3000, 576, device="cuda", dtype=torch.bfloat16)
    weight = torch.randn(49152, 576, device="cuda", dtype=torch.bfloat16) * 0.05
    targets = torch.randint(0, 49152, (3000,), device="cuda")
    upstream = torch.randn(3000, device="cuda")
    out = []
    for compiled in (False, True):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        logprob, entropy = selected_logprobs(h, w, targets, 1.0, with_entropy=True,
                                             compiled=compiled)
        (logprob * upstream).sum().backward()
        out.append((logprob.detach(), entropy, h.grad.float(), w.grad.float()))
    (lp0, e0, gh0, gw0), (lp1, e1, gh1, gw1) = out
    assert torch.allclose(lp0, lp1, atol=1e-3) and torch.allclose(e0, e1, atol=1e-3)
    for a, b in ((gh0, gh1), (gw0, gw1)):
        assert float((a - b).norm() / a.norm()) < 1e-2
