"""The decode step with FlexAttention (train.decode_attention): the same rows as the plain
decoder, eager and compiled on a CPU; "auto" picks it only for a step compiled on CUDA; a flex
step that fails to compile falls back to the SDPA step."""

import logging

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from workers.engine import compiling
from workers.engine.config import ConfigError, TrainConfig
from workers.engine.data import PromptRecord
from workers.engine.rollout import SamplingParams, encode_prompts, sample_completions
from workers.engine.static_decoder import StaticCacheSampler, flex_wanted
from workers.engine.trainer import _open_session

from workers.engine.tiny import build_char_tokenizer

LONG_PROMPTS = ["ab ba " * 9, "a", "b ab " * 5, "ba"] * 2


@pytest.fixture(autouse=True)
def _no_failures_remembered(monkeypatch):
    monkeypatch.setattr(compiling, "_FAILED", set())


@pytest.fixture(scope="module")
def gqa():
    """SmolLM2's attention in small: 3 query heads per key/value head, a head size flex's
    Triton kernels take (16), tied embeddings."""
    tok = build_char_tokenizer("ab ")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                         head_dim=16, max_position_embeddings=256, tie_word_embeddings=True,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval(), tok


def _decode(sampler, model, tok, prompts, params, seed, device="cpu"):
    ids = encode_prompts(tok, prompts, use_chat_template=True)
    return sampler(model, ids, params, pad_id=tok.pad_token_id,
                   eos_ids=[model.config.vocab_size],  # never drawn: every row runs full length
                   generator=torch.Generator(device).manual_seed(seed))


def _assert_same(plain, fast, atol=1e-5):
    assert torch.equal(plain.completion_ids, fast.completion_ids)
    assert torch.equal(plain.completion_mask, fast.completion_mask)
    assert plain.finish_reasons == fast.finish_reasons
    torch.testing.assert_close(plain.sampling_logprobs, fast.sampling_logprobs, rtol=0,
                               atol=atol)


@pytest.mark.parametrize("fixed_width", [False, True], ids=["filled-slots", "64-slot-buckets"])
def test_flex_decoding_matches_the_plain_decoder_across_buckets(gqa, fixed_width):
    """Eager flex (PyTorch's reference implementation of the same score modification) over
    the filled slots, and over 64-slot buckets with stale keys from the first call past them."""
    model, tok = gqa
    sampler = StaticCacheSampler(use_graphs=False, fixed_width=fixed_width, attention="flex")
    for seed, params in ((7, SamplingParams(max_new_tokens=90, temperature=0.7)),
                         (8, SamplingParams(max_new_tokens=80, greedy=True))):
        plain = _decode(sample_completions, model, tok, LONG_PROMPTS, params, seed)
        fast = _decode(sampler, model, tok, LONG_PROMPTS, params, seed)
        assert sampler._buffers.flex
        _assert_same(plain, fast)


def test_a_compiled_flex_step_matches_the_plain_decoder_on_a_cpu(gqa):
    """Inductor's CPU lowering of the same step (the GPU gets its decoding kernel), across
    bucket boundaries: one compilation (the step has the whole cache's shapes), no graph
    break."""
    from torch._dynamo.utils import counters

    counters.clear()
    model, tok = gqa
    sampler = StaticCacheSampler(use_graphs=False, fixed_width=True, compile=True,
                                 attention="flex")
    params = SamplingParams(max_new_tokens=70, temperature=0.8)
    plain = _decode(sample_completions, model, tok, LONG_PROMPTS[:4], params, 3)
    fast = _decode(sampler, model, tok, LONG_PROMPTS[:4], params, 3)
    _assert_same(plain, fast, atol=1e-4)
    assert not sampler._buffers.step.compile_failed()
    assert not counters["graph_break"]
    assert counters["stats"]["unique_graphs"] == 1  # the whole cache's shapes: one compilation


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_the_block_mask_reads_only_the_counted_blocks_of_the_cache(compiled):
    """Compiled, keys and values past the counted 64-slot blocks are never read: NaN there,
    with the key mask letting them through, changes nothing. Eagerly, PyTorch's reference
    reads every block, and the key mask (which, in the decoder, marks the slots past the
    current token invalid) keeps them out. Within the blocks the key mask holds; the count is
    read when the call runs, so one compiled function serves every count."""
    from workers.engine.static_decoder import _cache_block_mask, _flex_decode_attention

    gen = torch.Generator().manual_seed(0)
    n, heads, group, d, width = 5, 2, 3, 16, 256
    q = torch.randn(n, heads, group, d, generator=gen)
    k = torch.randn(n, heads, width, d, generator=gen)
    v = torch.randn(n, heads, width, d, generator=gen)
    valid = torch.rand(n, width + 1, generator=gen) > 0.3
    valid[:, 0] = True
    blocks = torch.ones((1, 1, 1), dtype=torch.int32)
    mask = _cache_block_mask(blocks, group, width)
    attend = _flex_decode_attention
    if compiled:
        attend = torch.compile(_flex_decode_attention)
    for count in (1, 3, 2):
        blocks.fill_(count)
        seen = 64 * count
        poisoned_k, poisoned_v = k.clone(), v.clone()
        poisoned_k[:, :, seen:], poisoned_v[:, :, seen:] = float("nan"), float("nan")
        mask_in_use = valid.clone()
        if not compiled:
            mask_in_use[:, seen:] = False
            poisoned_k[:, :, seen:], poisoned_v[:, :, seen:] = 1e4, 1e4
        out = attend(q, poisoned_k, poisoned_v, mask_in_use, 0.25, mask)
        additive = torch.zeros(n, seen).masked_fill_(~valid[:, :seen], float("-inf"))
        expected = torch.nn.functional.scaled_dot_product_attention(
            q, k[:, :, :seen], v[:, :, :seen], attn_mask=additive[:, None, None], scale=0.25)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("attention", "compiled", "device", "head", "wanted"), [
    ("auto", True, "cuda", 64, True),
    ("auto", True, "cuda", 128, True),
    ("auto", False, "cuda", 64, False),  # eager flex is the unfused reference: SDPA instead
    ("auto", True, "cpu", 64, False),
    ("auto", True, "cuda", 8, False),  # below Triton's 16
    ("auto", True, "cuda", 80, False),  # not a power of two
    ("sdpa", True, "cuda", 64, False),
    ("flex", False, "cpu", 8, True),  # asked for, it is used
])
def test_auto_picks_flex_for_a_step_compiled_on_cuda_only(attention, compiled, device, head,
                                                         wanted):
    assert flex_wanted(attention, compiled=compiled, device_type=device,
                       head_dim=head) is wanted


def test_the_cpu_default_keeps_sdpa(gqa):
    model, tok = gqa
    sampler = StaticCacheSampler()
    _decode(sampler, model, tok, ["ab"], SamplingParams(max_new_tokens=2), 0)
    assert sampler.attention == "auto" and not sampler._buffers.flex
    with pytest.raises(ValueError, match="'flash' is not one of"):
        StaticCacheSampler(attention="flash")


def test_a_step_compiled_without_graphs_is_the_one_that_decodes(gqa, monkeypatch):
    """On a CPU (no CUDA graphs) train.compile_decoder still compiles the step that runs: the
    bucketed one, as on a GPU, with the same rows as the plain decoder."""
    model, tok = gqa
    ran = []

    def recording_compile(fn, **options):
        def compiled(*args, **kwargs):
            ran.append(fn.__name__)
            return fn(*args, **kwargs)
        return compiled
    monkeypatch.setattr(torch, "compile", recording_compile)
    params = SamplingParams(max_new_tokens=12, temperature=0.9)
    plain = _decode(sample_completions, model, tok, LONG_PROMPTS, params, 6)
    fast = _decode(StaticCacheSampler(compile=True), model, tok, LONG_PROMPTS, params, 6)
    _assert_same(plain, fast)
    assert ran == ["step"] * 11  # every token after the prefill's, through the compiled step


def _compiler_failing_for(names, calls):
    """A torch.compile whose result raises when the function's name is in ``names``; other
    functions come back uncompiled."""
    def fake_compile(fn, **options):
        if fn.__name__ not in names:
            return fn

        def broken(*args, **kwargs):
            calls.append(fn.__name__)
            raise RuntimeError("inductor: no kernel for flex_attention")
        return broken
    return fake_compile


@pytest.mark.parametrize("failing", [("whole_cache_flex_step",), ("whole_cache_flex_step", "step")],
                         ids=["flex-fails", "both-fail"])
def test_a_flex_step_that_fails_to_compile_decodes_with_sdpa(gqa, monkeypatch, caplog, failing):
    model, tok = gqa
    params = SamplingParams(max_new_tokens=12, temperature=0.9)
    eager = _decode(StaticCacheSampler(fixed_width=True), model, tok, LONG_PROMPTS, params, 4)
    calls = []
    monkeypatch.setattr(torch, "compile", _compiler_failing_for(failing, calls))
    sampler = StaticCacheSampler(fixed_width=True, compile=True, attention="flex")
    with caplog.at_level(logging.WARNING, logger="workers.engine.compiling"):
        fallen_back = _decode(sampler, model, tok, LONG_PROMPTS, params, 4)
    _assert_same(eager, fallen_back)
    assert calls == list(failing)  # each tried once, then its fallback is used
    # The flex step's warning comes last: its fallback (the SDPA step) ran, and failed
    # first, before it was logged.
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == len(failing)
    assert "the decoder's step with FlexAttention" in messages[-1]
    assert "running the step with scaled_dot_product_attention" in messages[-1]
    if len(failing) == 2:
        assert "torch.compile of the decoder's step failed" in messages[0]
        assert "running it eagerly" in messages[0]


def test_a_block_mask_this_torch_cannot_build_leaves_the_step_with_sdpa(gqa, monkeypatch,
                                                                       caplog):
    from workers.engine import static_decoder

    def unbuildable(*args, **kwargs):
        raise TypeError("from_kv_blocks() got an unexpected keyword argument 'seq_lengths'")
    monkeypatch.setattr(static_decoder, "_cache_block_mask", unbuildable)
    model, tok = gqa
    params = SamplingParams(max_new_tokens=12, temperature=0.9)
    sampler = StaticCacheSampler(fixed_width=True, attention="flex")
    with caplog.at_level(logging.WARNING, logger="workers.engine.static_decoder"):
        fast = _decode(sampler, model, tok, LONG_PROMPTS, params, 9)
    _assert_same(_decode(sample_completions, model, tok, LONG_PROMPTS, params, 9), fast)
    assert not sampler._buffers.flex
    assert "block mask could not be built (TypeError: from_kv_blocks()" in caplog.text


def test_the_setting_reaches_the_trainer_s_sampler_and_a_bad_one_is_named(tiny_cfg, tmp_path):
    records = [PromptRecord("ab", id=0), PromptRecord("ba", id=1)]
    session, _ = _open_session(TrainConfig.from_dict(tiny_cfg()), records, tmp_path, None)
    assert session.sampler.attention == "auto"
    asked = TrainConfig.from_dict(tiny_cfg(train={"decode_attention": "sdpa"}))
    session, _ = _open_session(asked, records, tmp_path / "asked", None)
    assert session.sampler.attention == "sdpa"
    with pytest.raises(ConfigError, match="decode_attention") as caught:
        TrainConfig.from_dict(tiny_cfg(train={"decode_attention": "flash"}))
    assert "'flash' is not one of 'auto', 'sdpa', 'flex'" in str(caught.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("attention", ["flex", "sdpa"])
def test_compiled_cuda_graphs_with_either_attention_match_the_plain_decoder(gqa, attention):
    """On a GPU: the compiled step with each attention, captured per 64-slot bucket, against
    the plain decoder; flex must not have fallen back."""
    from torch._dynamo.utils import counters

    counters.clear()
    model, tok = gqa
    model = model.cuda()
    try:
        sampler = StaticCacheSampler(compile=True, attention=attention)
        for seed, params in ((7, SamplingParams(max_new_tokens=150, temperature=0.7)),
                             (8, SamplingParams(max_new_tokens=140, greedy=True))):
            plain = _decode(sample_completions, model, tok, LONG_PROMPTS, params, seed, "cuda")
            fast = _decode(sampler, model, tok, LONG_PROMPTS, params, seed, "cuda")
            _assert_same(plain, fast, atol=1e-4)
        assert sorted(sampler._buffers.graphs) == [64, 128, 192, 256]
        assert sampler._buffers.flex is (attention == "flex")
        assert not sampler._buffers.step.compile_failed()
        assert not counters["graph_break"]
    finally:
        model.cpu()
