import pytest
import torch

from workers.engine.losses import token_logprobs
from workers.engine.rollout import (SamplingParams, concat_rollouts, decode_completions,
                                    encode_prompts, sample_completions)
from workers.engine.tiny import build_tiny_policy


@pytest.fixture(scope="module")
def tiny():
    model, tok = build_tiny_policy(alphabet="ab ", hidden_size=32, num_layers=2, num_heads=2,
                                   intermediate_size=64, seed=3)
    return model.eval(), tok


def sample(tiny, prompts, params, seed=0):
    model, tok = tiny
    ids = encode_prompts(tok, prompts, use_chat_template=True)
    generator = torch.Generator().manual_seed(seed)
    return sample_completions(model, ids, params, pad_id=tok.pad_token_id,
                              eos_ids=[tok.eos_token_id], generator=generator)


def test_greedy_decoding_matches_transformers_generate(tiny):
    model, tok = tiny
    prompts = ["ab", "a bb ab"]
    batch = sample(tiny, prompts, SamplingParams(max_new_tokens=6, greedy=True))
    for i, prompt in enumerate(prompts):  # unpadded, one at a time
        ids = torch.tensor([encode_prompts(tok, [prompt], use_chat_template=True)[0]])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                             do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)[0, ids.shape[1]:]
        n = batch.completion_lengths[i]
        assert batch.completion_ids[i, :n].tolist() == out[:n].tolist()


def test_sampling_logprobs_equal_the_loss_recomputation(tiny):
    model, _ = tiny
    batch = sample(tiny, ["ab", "b", "a a"] * 2, SamplingParams(max_new_tokens=5,
                                                                temperature=0.7))
    logprobs, _ = token_logprobs(model, batch.input_ids, batch.attention_mask,
                                 batch.completion_ids.shape[1], 0.7)
    masked = logprobs.detach() * batch.completion_mask
    assert torch.allclose(masked, batch.sampling_logprobs, atol=1e-5)


def test_masks_stop_at_eos_and_finish_reasons(tiny):
    _, tok = tiny
    batch = sample(tiny, ["ab"] * 32, SamplingParams(max_new_tokens=4))
    reasons = set(batch.finish_reasons)
    assert reasons == {"stop", "length"}  # random tiny model: both happen among 32 rows
    for ids, mask, reason in zip(batch.completion_ids, batch.completion_mask,
                                 batch.finish_reasons):
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()  # a prefix of ones
        assert (ids[n:] == tok.pad_token_id).all()
        eos_at = (ids[:n] == tok.eos_token_id).nonzero().flatten().tolist()
        if reason == "stop":
            assert eos_at == [n - 1]
        else:
            assert n == 4 and eos_at == []
    texts = decode_completions(tok, batch)
    assert all("<|" not in t for t in texts)


def test_same_generator_seed_repeats_and_another_differs(tiny):
    params = SamplingParams(max_new_tokens=6)
    a = sample(tiny, ["ab"] * 8, params, seed=1)
    b = sample(tiny, ["ab"] * 8, params, seed=1)
    c = sample(tiny, ["ab"] * 8, params, seed=2)
    assert torch.equal(a.completion_ids, b.completion_ids)
    assert not torch.equal(a.completion_ids, c.completion_ids)


def test_tiny_top_p_is_greedy(tiny):
    greedy = sample(tiny, ["ab", "ba"], SamplingParams(max_new_tokens=5, greedy=True))
    nucleus = sample(tiny, ["ab", "ba"], SamplingParams(max_new_tokens=5, top_p=1e-6))
    assert torch.equal(greedy.completion_ids, nucleus.completion_ids)


def test_prompt_encoding_chat_and_plain(tiny):
    _, tok = tiny
    chat = encode_prompts(tok, [[{"role": "user", "content": "ab"}]], use_chat_template=False)
    templated = encode_prompts(tok, ["ab"], use_chat_template=True)
    plain = encode_prompts(tok, ["ab"], use_chat_template=False)
    assert chat == templated
    assert tok.decode(templated[0]) == "<|user|>ab<|im_end|><|assistant|>"
    assert tok.decode(plain[0]) == "ab"


def test_concat_rollouts_keeps_rows_aligned(tiny):
    short = sample(tiny, ["a"], SamplingParams(max_new_tokens=2))
    long = sample(tiny, ["a b ab"], SamplingParams(max_new_tokens=5))
    both = concat_rollouts([short, long], pad_id=0)
    for i, part in enumerate((short, long)):
        real = both.input_ids[i][both.attention_mask[i].bool()]
        assert real.tolist() == part.input_ids[0][part.attention_mask[0].bool()].tolist()
        assert both.finish_reasons[i] == part.finish_reasons[0]


def test_categorical_draws_follow_the_probabilities_and_skip_zeros():
    from workers.engine.rollout import sample_categorical

    probs = torch.tensor([0.0, 0.5, 0.0, 0.2, 0.3, 0.0]).repeat(20000, 1)
    drawn = sample_categorical(probs, torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn, minlength=6).double() / len(drawn)
    assert counts[[0, 2, 5]].sum() == 0  # zero-probability entries are never drawn
    # 20k draws: the standard error of each frequency is below 0.004
    assert torch.allclose(counts, probs[0].double(), atol=0.015)
    unnormalised = sample_categorical(torch.tensor([[0.0, 3.0, 1.0]] * 4000),
                                      torch.Generator().manual_seed(1))
    assert abs(float((unnormalised == 1).double().mean()) - 0.75) < 0.03
    again = sample_categorical(probs, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, again)  # the generator state fixes the draws


def test_a_draw_at_the_top_of_the_range_stays_on_a_possible_token(monkeypatch):
    from workers.engine import rollout

    monkeypatch.setattr(rollout.torch, "rand", lambda shape, **kw: torch.ones(shape, **{
        k: v for k, v in kw.items() if k in ("dtype", "device")}))
    probs = torch.tensor([[0.2, 0.8, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    assert rollout.sample_categorical(probs, None).tolist() == [1, 3]
