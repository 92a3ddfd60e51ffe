"""Evaluation with exact_answer: greedy pass@1 and the unbiased pass@k estimator."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .data import PromptRecord
from .policy import stop_token_ids
from .rewards import exact_answer
from .rollout import (Sampler, SamplingParams, decode_completions, encode_prompts,
                      sample_completions)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021):
    1 - C(n - c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    failure = 1.0
    for i in range(n - c + 1, n + 1):
        failure *= 1.0 - k / i
    return 1.0 - failure


class _Stopped(Exception):
    """``should_stop`` said so between two batches."""


def _correct(model, tokenizer, prompt_ids: list[list[int]], references: list[str | None],
             params: SamplingParams, generator: torch.Generator | None, batch_rows: int,
             sampler: Sampler, should_stop: Callable[[], bool]) -> list[float]:
    pad_id, eos_ids = tokenizer.pad_token_id, stop_token_ids(model, tokenizer)
    out: list[float] = []
    for start in range(0, len(prompt_ids), batch_rows):
        if should_stop():
            raise _Stopped
        batch = sampler(model, prompt_ids[start:start + batch_rows], params,
                        pad_id=pad_id, eos_ids=eos_ids, generator=generator)
        completions = decode_completions(tokenizer, batch)
        out += exact_answer([], completions, references[start:start + batch_rows])
    return out


def evaluate_pass_at_k(model, tokenizer, records: Sequence[PromptRecord], *, num_samples: int,
                       k: int, max_new_tokens: int, temperature: float = 1.0,
                       use_chat_template: bool = True, seed: int = 0, batch_rows: int = 32,
                       sampler: Sampler = sample_completions,
                       should_stop: Callable[[], bool] = lambda: False) -> dict[str, float] | None:
    """{"greedy_pass@1": fraction solved greedily, "pass@<k>": mean unbiased pass@k over
    ``num_samples`` samples per prompt at ``temperature``}, decoding with ``sampler``; None when
    ``should_stop``, asked before each batch of ``batch_rows`` rows, ends it early."""
    was_training = model.training
    try:
        return _pass_at_k(model, tokenizer, records, num_samples=num_samples, k=k,
                          max_new_tokens=max_new_tokens, temperature=temperature,
                          use_chat_template=use_chat_template, seed=seed, batch_rows=batch_rows,
                          sampler=sampler, should_stop=should_stop)
    except _Stopped:
        return None
    finally:
        model.train(was_training)


def _pass_at_k(model, tokenizer, records, *, num_samples, k, max_new_tokens, temperature,
               use_chat_template, seed, batch_rows, sampler, should_stop) -> dict[str, float]:
    model.eval()
    prompt_ids = encode_prompts(tokenizer, [r.prompt for r in records],
                                use_chat_template=use_chat_template)
    references = [r.reference for r in records]
    greedy = _correct(model, tokenizer, prompt_ids, references,
                      SamplingParams(max_new_tokens=max_new_tokens, greedy=True), None,
                      batch_rows, sampler, should_stop)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    sampled = _correct(model, tokenizer, [p for p in prompt_ids for _ in range(num_samples)],
                       [r for r in references for _ in range(num_samples)],
                       SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature),
                       generator, batch_rows, sampler, should_stop)
    per_prompt = [pass_at_k(num_samples, int(sum(sampled[i:i + num_samples])), k)
                  for i in range(0, len(sampled), num_samples)]
    return {"greedy_pass@1": sum(greedy) / len(greedy),
            f"pass@{k}": sum(per_prompt) / len(per_prompt)}
