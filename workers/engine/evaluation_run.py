"""A policy evaluated on a whole dataset: sample, score, report; no update.

``evaluate_policy`` is what the Celery worker calls for an evaluation run. The dataset's prompts are
taken in order, ``rollout.prompts_per_step`` at a time: each batch is a step, with the same
metrics as a training step's rollout (reward, per-component means, accuracy, lengths) and every
completion reported as a rollout record. Each step's draws come from a generator seeded by
(``train.seed``, step), so a run resumed after step k (``start_step=k``) repeats what an
uninterrupted run would have drawn from step k + 1 on. A step's records are reported before
its metrics, so a caller that counts a step done when its metrics arrive never skips records.

Nothing is trained, so the sections about updates (algorithm, optim, filters) are ignored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig, check_evaluable, evaluation_steps
from .data import PromptRecord, sampling_seed, validate_prompts
from .metrics import rollout_metrics
from .policy import load_policy, resolve_device, stop_token_ids
from .rewards import reference_reward, score_completions
from .rollout import SamplingParams, decode_completions, encode_prompts
from .stopping import StopCheck, StopRequested, stoppable
from .system_metrics import start_cpu_window, system_metrics
from .trainer import Callbacks, _check_models_available, rollout_sampler


@dataclass
class EvaluationResult:
    steps_completed: int  # the last step done (start_step if none was)
    total_steps: int
    stopped: bool  # should_stop ended it before the last step
    # (step, system/* metrics) of each step this call took, with train.log_system_metrics, as
    # TrainResult's
    system_history: list[tuple[int, dict[str, float]]] = field(default_factory=list)


def evaluate_policy(config: TrainConfig, prompts: Sequence[PromptRecord | Mapping[str, Any]],
             callbacks: Callbacks | None = None, *, model_cache_dir: Path | None = None,
             start_step: int = 0) -> EvaluationResult:
    """Sample ``rollout.num_generations`` completions of every prompt with ``config.policy``,
    score them with ``config.rewards`` and report them step by step, from ``start_step + 1``.

    Checks data and model paths before any work (DataError, ModelLoadError).
    """
    check_evaluable(config)
    callbacks = callbacks or Callbacks()
    records = validate_prompts(prompts, need_references=reference_reward([r.name for r in config.rewards]))
    _check_models_available(config)
    per_step, g = config.rollout.prompts_per_step, config.rollout.num_generations
    total = evaluation_steps(len(records), per_step)
    result = EvaluationResult(start_step, total, False)
    if start_step >= total:
        return result
    device = resolve_device(config.train.device)
    torch.manual_seed(config.train.seed)  # a tiny policy's weights
    model, tokenizer = load_policy(config.policy, cache_dir=model_cache_dir, device=device)
    model.eval().requires_grad_(False)
    sampler = rollout_sampler(config, model, device)
    eos_ids = stop_token_ids(model, tokenizer)
    params = SamplingParams(max_new_tokens=config.rollout.max_new_tokens,
                            temperature=config.rollout.temperature, top_p=config.rollout.top_p,
                            greedy=config.rollout.greedy)
    keys = [r.key for r in config.rewards]
    weights = torch.tensor([r.weight for r in config.rewards])
    if config.train.log_system_metrics:
        start_cpu_window()
    stop = StopCheck(callbacks.should_stop)
    for step in range(start_step + 1, total + 1):
        if stop():
            result.stopped = True
            break
        batch_records = records[(step - 1) * per_step: step * per_step]
        started = time.perf_counter()
        prompt_ids = encode_prompts(tokenizer, [r.prompt for r in batch_records],
                                    use_chat_template=config.rollout.use_chat_template)
        generator = torch.Generator(device=device)
        generator.manual_seed(sampling_seed(config.train.seed, step, 0))
        try:  # polled within the sampling and scoring: a step stopped there reports nothing
            with stoppable(stop):
                with torch.no_grad():
                    batch = sampler(model, [ids for ids in prompt_ids for _ in range(g)], params,
                                    pad_id=tokenizer.pad_token_id, eos_ids=eos_ids, generator=generator)
                completions = decode_completions(tokenizer, batch)
                rewards, extras = score_completions(
                    config.rewards, [r.prompt for r in batch_records for _ in range(g)], completions,
                    [r.reference for r in batch_records for _ in range(g)],
                    completion_lengths=batch.completion_lengths, device=device, group_size=g,
                    model_cache_dir=model_cache_dir)
        except StopRequested:
            result.stopped = True
            break
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - started
        components = torch.tensor([rewards[k] for k in keys]).T.reshape(-1, g, len(keys))
        totals = components @ weights
        callbacks.on_rollouts(step, [{
            "prompt_id": record.id if record.id is not None else (step - 1) * per_step + group,
            "group_index": group, "sample_index": j,
            "prompt_text": tokenizer.decode(prompt_ids[group]),
            "completion_text": completions[group * g + j],
            "rewards": {k: v[group * g + j] for k, v in rewards.items()},
            "reward": float(totals[group, j]), "advantage": None,
            "length": batch.completion_lengths[group * g + j],
            "finish_reason": batch.finish_reasons[group * g + j], "trained": False,
        } for group, record in enumerate(batch_records) for j in range(g)])
        metrics = rollout_metrics(components, weights, keys, batch, config.accuracy_reward)
        metrics.update(extras)
        metrics["timing/rollout_s"] = elapsed
        metrics["throughput/tokens_per_s"] = float(batch.completion_mask.sum()) / max(elapsed, 1e-9)
        if config.train.log_system_metrics and (system := system_metrics(device)):
            callbacks.on_system_metrics(step, dict(system))
            result.system_history.append((step, system))
        callbacks.on_metrics(step, metrics)
        result.steps_completed = step
    return result
