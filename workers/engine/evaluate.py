"""Evaluation with a 0/1 reward (exact_answer unless told otherwise): greedy pass@1, the
unbiased pass@k estimator, and each prompt's greedy answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .data import PromptRecord
from .policy import stop_token_ids
from .rewards import exact_answer
from .rollout import (Sampler, SamplingParams, decode_completions, encode_prompts,
                      sample_completions)
from .stopping import StopCheck, StopRequested, stoppable


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


@dataclass
class _Decoded:
    correct: list[float]
    completions: list[str]
    lengths: list[int]
    finish_reasons: list[str]


@dataclass
class HeldOutAnswer:
    """One held-out prompt's greedy answer, and how many of its samples were right."""

    index: int  # position in the held-out prompts
    completion: str
    correct: bool
    length: int
    finish_reason: str
    samples_correct: int
    samples: int


@dataclass
class HeldOutResult:
    metrics: dict[str, float]  # greedy_pass@1, pass@<k>
    answers: list[HeldOutAnswer]


# score(prompts, completions, references, completion_lengths) -> 0/1 per completion
Scorer = Callable[[list, list[str], list[str | None], list[int]], list[float]]


def exact_answer_scorer(prompts, completions, references, completion_lengths) -> list[float]:
    return exact_answer(prompts, completions, references)


def _decode(model, tokenizer, prompts: list, prompt_ids: list[list[int]], references: list[str | None],
            params: SamplingParams, generator: torch.Generator | None, batch_rows: int,
            sampler: Sampler, should_stop: Callable[[], bool], score: Scorer) -> _Decoded:
    pad_id, eos_ids = tokenizer.pad_token_id, stop_token_ids(model, tokenizer)
    out = _Decoded([], [], [], [])
    for start in range(0, len(prompt_ids), batch_rows):
        if should_stop():
            raise StopRequested
        batch = sampler(model, prompt_ids[start:start + batch_rows], params,
                        pad_id=pad_id, eos_ids=eos_ids, generator=generator)
        completions = decode_completions(tokenizer, batch)
        out.correct += [float(v == 1.0) for v in score(
            prompts[start:start + batch_rows], completions, references[start:start + batch_rows],
            list(batch.completion_lengths))]
        out.completions += completions
        out.lengths += list(batch.completion_lengths)
        out.finish_reasons += list(batch.finish_reasons)
    return out


def evaluate_held_out(model, tokenizer, records: Sequence[PromptRecord], *, num_samples: int,
                      k: int, max_new_tokens: int, temperature: float = 1.0,
                      use_chat_template: bool = True, seed: int = 0, batch_rows: int = 32,
                      sampler: Sampler = sample_completions,
                      should_stop: Callable[[], bool] = lambda: False,
                      score: Scorer = exact_answer_scorer) -> HeldOutResult | None:
    """Metrics {"greedy_pass@1": fraction solved greedily, "pass@<k>": mean unbiased pass@k
    over ``num_samples`` samples per prompt at ``temperature``} and each prompt's greedy answer,
    decoding with ``sampler`` and counting as solved what ``score`` gives 1; None when
    ``should_stop``, asked before each batch of ``batch_rows`` rows and polled within one (at
    most once per ``StopCheck`` interval, a second unless given a StopCheck), ends it early."""
    was_training = model.training
    stop = should_stop if isinstance(should_stop, StopCheck) else StopCheck(should_stop)
    try:
        with stoppable(stop):
            return _held_out(model, tokenizer, records, num_samples=num_samples, k=k,
                             max_new_tokens=max_new_tokens, temperature=temperature,
                             use_chat_template=use_chat_template, seed=seed, batch_rows=batch_rows,
                             sampler=sampler, should_stop=stop, score=score)
    except StopRequested:
        return None
    finally:
        model.train(was_training)


def evaluate_pass_at_k(model, tokenizer, records: Sequence[PromptRecord], **kwargs
                       ) -> dict[str, float] | None:
    """``evaluate_held_out``'s metrics alone (None when stopped)."""
    result = evaluate_held_out(model, tokenizer, records, **kwargs)
    return None if result is None else result.metrics


def _held_out(model, tokenizer, records, *, num_samples, k, max_new_tokens, temperature,
              use_chat_template, seed, batch_rows, sampler, should_stop, score) -> HeldOutResult:
    model.eval()
    prompts = [r.prompt for r in records]
    prompt_ids = encode_prompts(tokenizer, prompts, use_chat_template=use_chat_template)
    references = [r.reference for r in records]
    greedy = _decode(model, tokenizer, prompts, prompt_ids, references,
                     SamplingParams(max_new_tokens=max_new_tokens, greedy=True), None,
                     batch_rows, sampler, should_stop, score)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    sampled = _decode(model, tokenizer, [p for p in prompts for _ in range(num_samples)],
                      [p for p in prompt_ids for _ in range(num_samples)],
                      [r for r in references for _ in range(num_samples)],
                      SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature),
                      generator, batch_rows, sampler, should_stop, score).correct
    solved = [int(sum(sampled[i:i + num_samples])) for i in range(0, len(sampled), num_samples)]
    per_prompt = [pass_at_k(num_samples, c, k) for c in solved]
    answers = [HeldOutAnswer(i, greedy.completions[i], greedy.correct[i] == 1.0, greedy.lengths[i],
                             greedy.finish_reasons[i], solved[i], num_samples)
               for i in range(len(records))]
    return HeldOutResult({"greedy_pass@1": sum(greedy.correct) / len(greedy.correct),
                          f"pass@{k}": sum(per_prompt) / len(per_prompt)}, answers)
