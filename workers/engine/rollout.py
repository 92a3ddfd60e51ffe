"""Rollouts: G sampled completions per prompt, with their tokens, log-probs and masks.

``sample_completions`` is a plain batched decoder over a KV cache: one prefill of the
left-padded prompts, then one token per step for every row. The faster decoder
(``static_decoder.StaticCacheSampler``: static cache, CUDA graphs) implements the same
``Sampler`` protocol, draws through the same ``draw_tokens`` and returns the same
``RolloutBatch``.

Log-probs are those of the sampled tokens under the temperature-scaled distribution
(``log_softmax(logits / temperature)``), which is exactly what the loss recomputes; top-p
only narrows which tokens can be drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import DynamicCache

from .stopping import check_stop

Prompt = str | list[dict]


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    greedy: bool = False


@dataclass
class RolloutBatch:
    """N sampled rows (prompt-major when G completions per prompt: row = prompt * G + j).

    prompt_ids        (N, P) long, left-padded with pad_id
    prompt_mask       (N, P) long, 1 on real prompt tokens
    completion_ids    (N, T) long, right-padded with pad_id after the EOS
    completion_mask   (N, T) long, 1 on generated tokens (the EOS included)
    sampling_logprobs (N, T) float32, log-prob of each sampled token; 0 where masked
    finish_reasons    N strings: 'stop' (EOS emitted) or 'length' (max_new_tokens reached)
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    sampling_logprobs: torch.Tensor
    finish_reasons: list[str]

    @property
    def input_ids(self) -> torch.Tensor:  # (N, P + T)
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:  # (N, P + T)
        return torch.cat([self.prompt_mask, self.completion_mask], dim=1)

    @property
    def completion_lengths(self) -> list[int]:
        return self.completion_mask.sum(dim=1).tolist()

    def __len__(self) -> int:
        return self.prompt_ids.shape[0]

    def select(self, rows: Sequence[int]) -> RolloutBatch:
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.prompt_ids.device)
        return RolloutBatch(self.prompt_ids[index], self.prompt_mask[index],
                            self.completion_ids[index], self.completion_mask[index],
                            self.sampling_logprobs[index],
                            [self.finish_reasons[i] for i in rows])


class Sampler(Protocol):
    def __call__(self, model, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, *,
                 pad_id: int, eos_ids: Sequence[int], generator: torch.Generator | None
                 ) -> RolloutBatch: ...


def encode_prompts(tokenizer, prompts: Sequence[Prompt], *, use_chat_template: bool
                   ) -> list[list[int]]:
    """Token ids of each prompt. Chat prompts (lists of {role, content}) always go through
    the chat template with a generation prompt; plain text does when ``use_chat_template`` and
    the tokenizer has a template, else it is encoded as is."""
    has_template = getattr(tokenizer, "chat_template", None) is not None
    out = []
    for prompt in prompts:
        if isinstance(prompt, str) and not (use_chat_template and has_template):
            out.append(tokenizer(prompt)["input_ids"])
            continue
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        text = tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=True)
        out.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return out


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int, device
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), both (N, max_len), sequences aligned to the right."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        if len(seq):
            ids[i, width - len(seq):] = torch.as_tensor(list(seq), dtype=torch.long)
            mask[i, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions counting real tokens only, so left padding does not shift RoPE. (N, L)"""
    return (mask.cumsum(dim=-1) - 1).clamp(min=0)


def _top_p_filter(logprobs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Probabilities (N, V) restricted to the smallest set whose mass reaches top_p."""
    probs = logprobs.exp()
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


def draw_tokens(logits: torch.Tensor, params: SamplingParams,
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row from next-token ``logits`` (N, V), and its log-prob under
    ``log_softmax(logits / temperature)``: (token (N,) long, logp (N,) float32). Every decoder
    draws through this function, so the same logits and generator state give the same
    tokens."""
    if params.temperature != 1.0:  # dividing by 1 is exact; skip the pass
        logprobs = torch.log_softmax(logits.float() / params.temperature, dim=-1)
    else:  # bf16 logits are widened inside the kernel, not copied to float32 first
        logprobs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)  # (N, V)
    if params.greedy:
        token = logprobs.argmax(dim=-1)
    else:
        token = sample_categorical(_top_p_filter(logprobs, params.top_p), generator)
    return token, logprobs.gather(1, token[:, None]).squeeze(1)


DRAW_BLOCK = 512  # rows wider than 4 blocks are drawn block by block (sample_categorical)


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of ``probs`` (N, V), drawn with probability proportional to its
    entry, by inverting the cumulative sum (float64) at one uniform draw per row.

    Exact like ``torch.multinomial``, which instead draws V exponentials per row (the
    costliest part of CPU decoding for a 49k vocabulary); zero entries are never drawn.

    A row wider than ``4 * DRAW_BLOCK`` is inverted in two levels: the float64 sums of its
    512-wide blocks are scanned to find the block holding the draw, then that block alone.
    Same uniform, same arithmetic up to rounding (the index differs from one full scan's only
    when the draw falls within float64 rounding of a boundary), but no (N, V) float64 scan:
    at (256, 49,152) the full scan cost 186 us a token on an H200 and 67 ms on a 2-core CPU,
    against 33 ms for the two levels (bench/decode_kernels.py)."""
    n, vocab = probs.shape
    u = torch.rand((n, 1), generator=generator, device=probs.device, dtype=torch.float64)
    if vocab <= 4 * DRAW_BLOCK:
        cdf = probs.cumsum(dim=-1, dtype=torch.float64)
        return _invert(cdf, u * cdf[:, -1:]).squeeze(1)
    pad = (-vocab) % DRAW_BLOCK
    blocks = (torch.nn.functional.pad(probs, (0, pad)) if pad else probs).view(
        n, -1, DRAW_BLOCK)
    block_cdf = blocks.sum(dim=-1, dtype=torch.float64).cumsum(dim=-1)  # (N, B)
    target = u * block_cdf[:, -1:]
    block = _invert(block_cdf, target)  # (N, 1): a block whose sum is positive
    before = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp(min=0)), 0.0)
    inside = blocks.gather(1, block[:, :, None].expand(n, 1, DRAW_BLOCK)).squeeze(1)
    # The offset into the block, not the block's entries plus ``before``: a tiny entry added
    # to a large ``before`` would round away, and a zero entry could be drawn.
    offset = _invert(inside.cumsum(dim=-1, dtype=torch.float64), target - before)
    return (block * DRAW_BLOCK + offset).squeeze(1)


def _invert(cdf: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N, 1): the first index whose cumulative sum in ``cdf`` (N, K, non-decreasing) exceeds
    ``x`` (N, 1), so an entry with zero mass is never chosen. ``x`` can round up to the row's
    total: then the first index reaching the total (the last entry with positive mass), found
    by a binary search rather than another pass over the row."""
    index = torch.searchsorted(cdf, x, right=True)
    last = torch.searchsorted(cdf, cdf[:, -1:].contiguous(), right=False)
    return torch.minimum(index, last)


@torch.no_grad()
def sample_completions(model, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, *,
                       pad_id: int, eos_ids: Sequence[int],
                       generator: torch.Generator | None = None) -> RolloutBatch:
    """Sample one completion per row of ``prompt_ids`` (repeat a prompt G times for a group).

    Draws with ``generator`` only, so the same generator state gives the same completions.
    """
    device = next(model.parameters()).device
    ids, mask = left_pad(prompt_ids, pad_id, device)
    n = ids.shape[0]
    positions = position_ids_from_mask(mask)
    cache = DynamicCache(config=model.config)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    next_position = positions[:, -1:] + 1
    eos = torch.as_tensor(list(eos_ids), device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    tokens, logps, live = [], [], []
    for step in range(params.max_new_tokens):
        check_stop()  # a cancel need not wait for the whole batch's tokens
        token, logp = draw_tokens(logits, params, generator)
        live.append(~done)
        tokens.append(torch.where(done, pad_id, token))
        logps.append(torch.where(done, 0.0, logp))
        done = done | torch.isin(token, eos)
        if bool(done.all()) or step == params.max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
        logits = model(input_ids=tokens[-1][:, None], attention_mask=mask,
                       position_ids=next_position, past_key_values=cache,
                       use_cache=True).logits[:, -1]
        next_position = next_position + 1
    completion_mask = torch.stack(live, dim=1).long()
    stopped = torch.isin(torch.stack(tokens, dim=1), eos) & completion_mask.bool()
    return RolloutBatch(
        prompt_ids=ids[:, :ids.shape[1]], prompt_mask=mask[:, :ids.shape[1]],
        completion_ids=torch.stack(tokens, dim=1), completion_mask=completion_mask,
        sampling_logprobs=torch.stack(logps, dim=1),
        finish_reasons=["stop" if s else "length" for s in stopped.any(dim=1).tolist()])


def decode_completions(tokenizer, batch: RolloutBatch) -> list[str]:
    """Completion texts without special tokens (the EOS is dropped). The completion mask of
    a row is a prefix of ones, so each row is its first ``length`` ids."""
    rows = batch.completion_ids.tolist()
    return tokenizer.batch_decode([row[:n] for row, n in zip(rows, batch.completion_lengths)],
                                  skip_special_tokens=True)


def concat_rollouts(batches: Sequence[RolloutBatch], pad_id: int) -> RolloutBatch:
    """Stack batches of different widths: prompts re-padded on the left, completions on the
    right, so every row keeps its alignment."""
    if len(batches) == 1:
        return batches[0]
    p = max(b.prompt_ids.shape[1] for b in batches)
    t = max(b.completion_ids.shape[1] for b in batches)

    def pad(x: torch.Tensor, width: int, value, left: bool) -> torch.Tensor:
        extra = width - x.shape[1]
        return torch.nn.functional.pad(x, (extra, 0) if left else (0, extra), value=value)

    return RolloutBatch(
        prompt_ids=torch.cat([pad(b.prompt_ids, p, pad_id, True) for b in batches]),
        prompt_mask=torch.cat([pad(b.prompt_mask, p, 0, True) for b in batches]),
        completion_ids=torch.cat([pad(b.completion_ids, t, pad_id, False) for b in batches]),
        completion_mask=torch.cat([pad(b.completion_mask, t, 0, False) for b in batches]),
        sampling_logprobs=torch.cat([pad(b.sampling_logprobs, t, 0.0, False) for b in batches]),
        finish_reasons=[r for b in batches for r in b.finish_reasons])
