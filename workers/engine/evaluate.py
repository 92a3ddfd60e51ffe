"""Evaluation with exact_answer: greedy pass@1 and the unbiased pass@k estimator."""

from __future__ import annotations

from collections.abc import Sequence

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


def _correct(model, tokenizer, prompt_ids: list[list[int]], references: list[str | None],
             params: SamplingParams, generator: torch.Generator | None, batch_rows: int,
             sampler: Sampler) -> list[float]:
    pad_id, eos_ids = tokenizer.pad_token_id, stop_token_ids(model, tokenizer)
    out: list[float] = []
    for start in range(0, len(prompt_ids), batch_rows):
        batch = sampler(model, prompt_ids[start:start + batch_rows], params,
                        pad_id=pad_id, eos_ids=eos_ids, generator=generator)
        completions = decode_completions(tokenizer, batch)
        out += exact_answer([], completions, references[start:start + batch_rows])
    return out


def evaluate_pass_at_k(model, tokenizer, records: Sequence[PromptRecord], *, num_samples: int,
                       k: int, max_new_tokens: int, temperature: float = 1.0,
                       use_chat_template: bool = True, seed: int = 0, batch_rows: int = 32,
                       sampler: Sampler = sample_completions) -> dict[str, float]:
    """{"greedy_pass@1": fraction solved greedily, "pass@<k>": mean unbiased pass@k over
    ``num_samples`` samples per prompt at ``temperature``}, decoding with ``sampler``."""
    was_training = model.training
    model.eval()
    prompt_ids = encode_prompts(tokenizer, [r.prompt for r in records],
                                use_chat_template=use_chat_template)
    references = [r.reference for r in records]
    greedy = _correct(model, tokenizer, prompt_ids, references,
                      SamplingParams(max_new_tokens=max_new_tokens, greedy=True), None,
                      batch_rows, sampler)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    sampled = _correct(model, tokenizer, [p for p in prompt_ids for _ in range(num_samples)],
                       [r for r in references for _ in range(num_samples)],
                       SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature),
                       generator, batch_rows, sampler)
    per_prompt = [pass_at_k(num_samples, int(sum(sampled[i:i + num_samples])), k)
                  for i in range(0, len(sampled), num_samples)]
    model.train(was_training)
    return {"greedy_pass@1": sum(greedy) / len(greedy),
            f"pass@{k}": sum(per_prompt) / len(per_prompt)}
