"""The static-cache decoder against the plain one: same tokens, masks, log-probs and finish
reasons from the same generator state, across the model families it claims to support."""

from typing import ClassVar

import pytest
import torch
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

from workers.engine.losses import token_logprobs
from workers.engine.rollout import SamplingParams, encode_prompts, sample_completions
from workers.engine.static_decoder import StaticCacheSampler, supports
from workers.engine.tiny import build_char_tokenizer, build_tiny_policy

from .model_families import family, randomised

PROMPTS = ["ab", "a bb ab", "b", "ba ba ba b"]


@pytest.fixture(scope="module")
def tiny():
    model, tok = build_tiny_policy(alphabet="ab ", hidden_size=32, num_layers=2, num_heads=2,
                                   intermediate_size=64, seed=3)
    return model.eval(), tok


def _family(cls, config_cls, **extra):
    return family(cls, config_cls, "ab ", **extra)


FAMILIES = {
    "llama-gqa": lambda: _family(LlamaForCausalLM, LlamaConfig, tie_word_embeddings=True),
    "qwen2-bias": lambda: _family(Qwen2ForCausalLM, Qwen2Config),
    "qwen3-qk-norm": lambda: _family(Qwen3ForCausalLM, Qwen3Config, head_dim=8),
    "qwen2-random-biases-and-norms": lambda: _randomised(_family(Qwen2ForCausalLM, Qwen2Config)),
    "llama-all-biases-random": lambda: _randomised(_family(
        LlamaForCausalLM, LlamaConfig, attention_bias=True, mlp_bias=True)),
}


def _randomised(model_and_tok):
    model, tok = model_and_tok
    return randomised(model), tok


def _both(model, tok, prompts, params, seed=0, sampler=None):
    ids = encode_prompts(tok, prompts, use_chat_template=True)
    common = dict(pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])
    plain = sample_completions(model, ids, params, generator=torch.Generator().manual_seed(seed),
                               **common)
    sampler = sampler or StaticCacheSampler()
    fast = sampler(model, ids, params, generator=torch.Generator().manual_seed(seed), **common)
    # a supported model really went through the static cache (no silent fallback)
    assert (sampler._buffers is not None) == supports(model)
    return plain, fast


def _assert_same(plain, fast):
    assert torch.equal(plain.prompt_ids, fast.prompt_ids)
    assert torch.equal(plain.prompt_mask, fast.prompt_mask)
    assert torch.equal(plain.completion_ids, fast.completion_ids)
    assert torch.equal(plain.completion_mask, fast.completion_mask)
    assert plain.finish_reasons == fast.finish_reasons
    assert torch.allclose(plain.sampling_logprobs, fast.sampling_logprobs, atol=1e-5)


@pytest.mark.parametrize("params", [
    SamplingParams(max_new_tokens=12, temperature=0.8),
    SamplingParams(max_new_tokens=12, greedy=True),
    SamplingParams(max_new_tokens=12, temperature=1.3, top_p=0.7),
], ids=["sampled", "greedy", "top-p"])
def test_static_decoder_matches_the_plain_decoder(tiny, params):
    plain, fast = _both(*tiny, PROMPTS * 4, params, seed=5)
    if not params.greedy:
        assert set(plain.finish_reasons) == {"stop", "length"}  # rows end at different lengths
    _assert_same(plain, fast)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_supported_family_matches(family):
    model, tok = FAMILIES[family]()
    assert supports(model)
    plain, fast = _both(model, tok, PROMPTS * 3, SamplingParams(max_new_tokens=10), seed=1)
    _assert_same(plain, fast)


def test_the_graph_computation_over_the_whole_masked_width_matches(tiny):
    """What the CUDA graphs record (attention over a 64-slot bucket of the cache, unused and
    stale slots masked), run eagerly on the CPU, twice so the second call meets the first's stale keys."""
    model, tok = tiny
    sampler = StaticCacheSampler(use_graphs=False, fixed_width=True)
    for seed in (5, 6):
        _assert_same(*_both(model, tok, PROMPTS * 4, SamplingParams(max_new_tokens=12),
                            seed=seed, sampler=sampler))


def test_graph_buckets_across_64_slot_boundaries_match(tiny, monkeypatch):
    """The graphs' computation again, over decodes that run the whole way across several
    64-slot buckets (the stop id is one the model cannot draw): each token attends over its
    bucket only, and the tail past it (stale keys of the first call included) never counts.
    Grouped key/value heads, so the bucketed cache is sliced per head."""
    model, tok = FAMILIES["llama-gqa"]()
    sampler = StaticCacheSampler(use_graphs=False, fixed_width=True)
    widths = []
    step = StaticCacheSampler._step
    monkeypatch.setattr(StaticCacheSampler, "_step",
                        lambda self, *a, attend_to: widths.append(attend_to)
                        or step(self, *a, attend_to=attend_to))
    ids = encode_prompts(tok, ["ab ba " * 9, "a", "b ab " * 5, "ba"] * 2, use_chat_template=True)
    common = dict(pad_id=tok.pad_token_id, eos_ids=[model.config.vocab_size])
    for seed, params in ((7, SamplingParams(max_new_tokens=150, temperature=0.7)),
                         (8, SamplingParams(max_new_tokens=140, greedy=True))):
        plain, fast = (decode(model, ids, params, generator=torch.Generator().manual_seed(seed),
                              **common) for decode in (sample_completions, sampler))
        assert fast.completion_mask.all()  # every row ran to the end
        _assert_same(plain, fast)
    assert sorted(set(widths)) == [64, 128, 192, 256]  # prompt width 57, 57 + 149 = 206


class _RecordedGraph:
    """A CPU stand-in for ``torch.cuda.CUDAGraph``. While capturing, the decoder's step runs as
    usual (a superset of what a real capture does, which only records) and is recorded; each
    replay runs the recorded step again and writes into the captured output, as a replayed
    graph does. Enough to check what the host does around capture and replay: which slot the
    warm-up and capture write, when capture happens relative to the token's state, which
    graph a token replays, and that a reused cache keeps its graphs."""

    capturing: ClassVar[list] = []  # graphs being captured, innermost last

    def __init__(self):
        self.recorded = []

    def replay(self):
        for step, args, kwargs, out in self.recorded:
            out.copy_(step(*args, **kwargs))


def _fake_cuda_graphs(monkeypatch):
    """Route the decoder's CUDA-graph calls to ``_RecordedGraph`` on the CPU."""
    import contextlib

    class Stream:
        def __init__(self, *args, **kwargs):
            pass

        def wait_stream(self, other):
            pass

    @contextlib.contextmanager
    def graph(g, *args, **kwargs):
        _RecordedGraph.capturing.append(g)
        try:
            yield
        finally:
            _RecordedGraph.capturing.pop()

    step = StaticCacheSampler._step

    def recording_step(self, model, b, attend_to):
        out = step(self, model, b, attend_to=attend_to)
        if _RecordedGraph.capturing:
            out = out.clone()
            _RecordedGraph.capturing[-1].recorded.append(
                (step, (self, model, b), {"attend_to": attend_to}, out))
        return out
    monkeypatch.setattr(StaticCacheSampler, "_step", recording_step)
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a, **k: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "graph", graph)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _RecordedGraph)


def test_graph_capture_and_replay_around_the_decode_loop(monkeypatch):
    """The host side of the CUDA-graph path, on the CPU (see ``_RecordedGraph``): buckets
    captured mid-decode when first needed, a later call that starts in a higher bucket, a
    shorter call that reuses the cache and its graphs, a row with an empty prompt (no valid
    key during warm-up), and a longer call that re-allocates and captures again."""
    _fake_cuda_graphs(monkeypatch)
    model, tok = FAMILIES["llama-gqa"]()
    sampler = StaticCacheSampler(use_graphs=True)
    common = dict(pad_id=tok.pad_token_id, eos_ids=[model.config.vocab_size])

    def both(ids, params, seed):
        plain, fast = (decode(model, ids, params, generator=torch.Generator().manual_seed(seed),
                              **common) for decode in (sample_completions, sampler))
        _assert_same(plain, fast)
        return sampler._buffers

    ids = encode_prompts(tok, ["ab ba " * 9, "a", "b ab " * 5, "ba"] * 2, use_chat_template=True)
    first = both(ids, SamplingParams(max_new_tokens=150, temperature=0.7), 7)
    assert sorted(first.graphs) == [64, 128, 192, 256]
    graphs = dict(first.graphs)
    longer = encode_prompts(tok, ["ab ba " * 14, "a", "b", "ba"] * 2, use_chat_template=True)
    assert both(longer, SamplingParams(max_new_tokens=100, temperature=0.9), 9) is first
    short = [[], [5, 6, 7], [6], [7, 7, 5, 6]] * 2  # an empty prompt: NaN only in warm-up
    assert both(short, SamplingParams(max_new_tokens=70, greedy=True), 10) is first
    assert first.graphs == graphs  # reused, not captured again
    wider = both(ids, SamplingParams(max_new_tokens=230, temperature=0.7), 11)
    assert wider is not first and max(wider.graphs) == 320


def test_attention_output_in_a_transposed_layout_is_handled(tiny, monkeypatch):
    """CUDA's memory-efficient SDPA returns (B, M, H, K) transposed to (B, H, M, K), not
    contiguous; the decoder must not assume the CPU kernel's contiguous output."""
    import workers.engine.static_decoder as decoder

    sdpa = decoder.F.scaled_dot_product_attention

    def transposed_layout(*args, **kwargs):
        out = sdpa(*args, **kwargs)
        return out.transpose(1, 2).contiguous().transpose(1, 2)
    monkeypatch.setattr(decoder.F, "scaled_dot_product_attention", transposed_layout)
    model, tok = FAMILIES["llama-gqa"]()  # grouped heads reshape the output
    plain, fast = _both(model, tok, PROMPTS * 2, SamplingParams(max_new_tokens=6), seed=4,
                        sampler=StaticCacheSampler(use_graphs=False, fixed_width=True))
    _assert_same(plain, fast)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_reordered_o_proj_copy_follows_weight_updates(monkeypatch, family):
    """In CUDA's output layout the decode step reads o_proj through a reordered copy of its
    weight (or the weight itself, where the orders agree); an optimiser step between decodes
    must reach it too. Every family: grouped heads, biases (o_proj's too), q/k norms."""
    import workers.engine.static_decoder as decoder

    sdpa = decoder.F.scaled_dot_product_attention
    monkeypatch.setattr(decoder.F, "scaled_dot_product_attention", lambda *a, **k: sdpa(
        *a, **k).transpose(1, 2).contiguous().transpose(1, 2))
    model, tok = FAMILIES[family]()
    sampler = StaticCacheSampler(use_graphs=False, fixed_width=True)
    params = SamplingParams(max_new_tokens=8, temperature=0.9)
    _assert_same(*_both(model, tok, PROMPTS * 2, params, seed=3, sampler=sampler))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.add_(torch.randn_like(layer.self_attn.o_proj.weight))
    _assert_same(*_both(model, tok, PROMPTS * 2, params, seed=3, sampler=sampler))


def test_all_rows_stopping_between_checks_trims_to_the_plain_width(tiny):
    model, tok = tiny
    # check_every longer than the whole decode: the loop never notices early; the result is
    # trimmed to where the plain decoder stopped.
    plain, fast = _both(model, tok, ["ab"] * 8, SamplingParams(max_new_tokens=80,
                                                                temperature=10.0),
                        seed=0, sampler=StaticCacheSampler(check_every=1000))
    assert plain.completion_ids.shape[1] < 80  # every row emitted EOS
    _assert_same(plain, fast)


def test_the_cache_is_reused_and_sees_updated_weights(tiny):
    model, tok = build_tiny_policy(alphabet="ab ", hidden_size=32, num_layers=2, num_heads=2,
                                   intermediate_size=64, seed=4)
    model.eval()
    sampler = StaticCacheSampler()
    params = SamplingParams(max_new_tokens=8, greedy=True)
    _assert_same(*_both(model, tok, PROMPTS, params, sampler=sampler))
    buffers = sampler._buffers
    _assert_same(*_both(model, tok, ["a", "b", "ab", "ba"], params, sampler=sampler))
    assert sampler._buffers is buffers  # same rows, width bucket: no new allocation
    with torch.no_grad():  # an optimiser step changes weights in place
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    _assert_same(*_both(model, tok, PROMPTS, params, sampler=sampler))


def test_a_reused_cache_sees_updated_biases():
    model, tok = FAMILIES["llama-all-biases-random"]()
    sampler = StaticCacheSampler()
    params = SamplingParams(max_new_tokens=8, greedy=True)
    _assert_same(*_both(model, tok, PROMPTS, params, sampler=sampler))
    with torch.no_grad():  # an optimiser step moves the biases too
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.add_(torch.randn_like(p))
    _assert_same(*_both(model, tok, PROMPTS, params, sampler=sampler))


def test_sampled_logprobs_equal_the_loss_recomputation(tiny):
    model, tok = tiny
    _, fast = _both(model, tok, PROMPTS * 2, SamplingParams(max_new_tokens=6, temperature=0.7))
    logprobs, _ = token_logprobs(model, fast.input_ids, fast.attention_mask,
                                 fast.completion_ids.shape[1], 0.7)
    assert torch.allclose(logprobs.detach() * fast.completion_mask, fast.sampling_logprobs,
                          atol=1e-5)


def test_bfloat16_decoding_agrees_with_teacher_forcing(tiny):
    model, tok = build_tiny_policy(alphabet="ab ", hidden_size=32, num_layers=2, num_heads=2,
                                   intermediate_size=64, seed=3)
    model = model.to(torch.bfloat16).eval()
    _, fast = _both(model, tok, PROMPTS * 2, SamplingParams(max_new_tokens=6))
    logprobs, _ = token_logprobs(model, fast.input_ids, fast.attention_mask,
                                 fast.completion_ids.shape[1], 1.0)
    diff = (logprobs.detach() - fast.sampling_logprobs).abs() * fast.completion_mask
    assert float(diff.max()) < 0.1  # bf16 rounding only


def test_unsupported_models_fall_back_to_the_plain_decoder():
    tok = build_char_tokenizer("ab ")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2,
                                       n_positions=64, eos_token_id=tok.eos_token_id)).eval()
    assert not supports(model)
    plain, fast = _both(model, tok, PROMPTS, SamplingParams(max_new_tokens=5), seed=3)
    _assert_same(plain, fast)


def test_sliding_window_models_are_not_claimed():
    model, _ = _family(Qwen2ForCausalLM, Qwen2Config, use_sliding_window=True, sliding_window=8)
    assert not supports(model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("compile_step", [False, True], ids=["graph", "compiled-graph"])
def test_cuda_graph_decoding_matches_the_plain_decoder_on_gpu(compile_step):
    model, tok = FAMILIES["llama-gqa"]()
    model = model.cuda().eval()
    ids = encode_prompts(tok, PROMPTS * 4, use_chat_template=True)
    common = dict(pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])
    sampler = StaticCacheSampler(compile=compile_step)
    for params, seed in ((SamplingParams(max_new_tokens=12, greedy=True), 0),
                         (SamplingParams(max_new_tokens=12, temperature=0.9), 1),
                         (SamplingParams(max_new_tokens=12, temperature=0.9), 2)):
        batches = [decode(model, ids, params, generator=torch.Generator("cuda").manual_seed(seed),
                          **common) for decode in (sample_completions, sampler)]
        assert sampler._buffers.graphs  # decoded through captured graphs
        plain, fast = batches
        assert torch.equal(plain.completion_ids, fast.completion_ids)
        assert torch.equal(plain.completion_mask, fast.completion_mask)
        assert torch.allclose(plain.sampling_logprobs, fast.sampling_logprobs, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("compile_step", [False, True], ids=["graphs", "compiled-graphs"])
def test_cuda_graphs_across_64_slot_buckets_match_the_plain_decoder(compile_step):
    """One graph per 64-slot bucket, captured mid-decode when first needed, replayed in any
    order on the second call; compiled, the bucket width turns dynamic after one recompile."""
    from torch._dynamo.utils import counters

    counters.clear()
    model, tok = FAMILIES["llama-gqa"]()
    model = model.cuda().eval()
    ids = encode_prompts(tok, ["ab ba " * 9, "a", "b ab " * 5, "ba"] * 2, use_chat_template=True)
    common = dict(pad_id=tok.pad_token_id, eos_ids=[model.config.vocab_size])
    sampler = StaticCacheSampler(compile=compile_step)
    for seed, params in ((7, SamplingParams(max_new_tokens=150, temperature=0.7)),
                         (8, SamplingParams(max_new_tokens=140, greedy=True))):
        plain, fast = (decode(model, ids, params,
                              generator=torch.Generator("cuda").manual_seed(seed), **common)
                       for decode in (sample_completions, sampler))
        assert fast.completion_mask.all()
        assert torch.equal(plain.completion_ids, fast.completion_ids)
        assert torch.allclose(plain.sampling_logprobs, fast.sampling_logprobs, atol=1e-4)
    assert sorted(sampler._buffers.graphs) == [64, 128, 192, 256]
    assert not counters["graph_break"]  # the compiled step is one graph (not forced)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bfloat16_cuda_graph_decoding_agrees_with_teacher_forcing():
    model, tok = FAMILIES["llama-gqa"]()
    model = model.to("cuda", torch.bfloat16).eval()
    ids = encode_prompts(tok, PROMPTS * 8, use_chat_template=True)
    fast = StaticCacheSampler()(model, ids, SamplingParams(max_new_tokens=16),
                                pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id],
                                generator=torch.Generator("cuda").manual_seed(0))
    logprobs, _ = token_logprobs(model, fast.input_ids, fast.attention_mask,
                                 fast.completion_ids.shape[1], 1.0)
    diff = (logprobs.detach() - fast.sampling_logprobs).abs() * fast.completion_mask
    assert float(diff.max()) < 0.1  # bf16 rounding only
