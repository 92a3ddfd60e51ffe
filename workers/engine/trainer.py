"""The RL loop. Each step reads top to bottom: sample groups, score them, filter (refilling
dropped groups), compute advantages, update the policy, report, checkpoint.

``train`` is what the Celery worker calls; it resumes from the latest complete checkpoint in
``output_dir`` and, on CPU with the same seed, repeats an uninterrupted run bit for bit.

With ``rollout.budget_allocation`` "knapsack" (Knapsack RL) each sampling round shares its
prompts x num_generations completions out among its prompts (``budget.knapsack_allocation``)
by each prompt's success rate in its latest sampled group (``_Session.prompt_success``, kept
in the checkpoint's trainer_state so that a resumed run allocates as an uninterrupted one).
Its groups then differ in size: they travel padded to (n, Gmax[, K]) with a ``valid`` mask
through the masked estimators, filters and metrics; a uniform run takes the unpadded path,
unchanged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .advantages import compute_advantages, compute_masked_advantages, pad_groups
from .budget import knapsack_allocation, success_estimate
from .checkpoint import (latest_checkpoint, load_training_state, prune_checkpoints, remove_partial_checkpoints,
                         save_checkpoint)
from .compiling import compile_wanted
from .config import PolicyConfig, TrainConfig, check_trainable
from .data import (PromptRecord, refill_prompt_indices, sampling_seed, step_prompt_indices,
                   validate_prompts)
from .errors import ModelLoadError
from .filters import any_enabled, keep_mask
from .metrics import masked_rollout_metrics, rollout_metrics
from .policy import (check_policy_available, load_policy, load_policy_checkpoint,
                     resolve_device, stop_token_ids)
from .reward_gates import gate_by_group_accuracy
from .rewards import reference_reward, score_completions
from .rollout import (RolloutBatch, Sampler, SamplingParams, concat_rollouts,
                      decode_completions, encode_prompts, sample_completions)
from .static_decoder import StaticCacheSampler, supports
from .stopping import StopCheck, StopRequested, stoppable
from .system_metrics import start_cpu_window, system_metrics
from .update import (UpdateBatch, build_optimizer, learning_rate_at, policy_update,
                     skipped_update_metrics)


_EVAL_ROUND = 1_000_000  # sampling-seed round reserved for evaluation


class Callbacks:
    """What the caller hears during training. Subclass and override, or pass functions:
    ``Callbacks(on_metrics=lambda step, m: ...)``. Every hook is optional."""

    def __init__(self, *, on_metrics=None, on_rollouts=None, on_checkpoint=None,
                 should_stop=None, on_held_out=None, on_system_metrics=None):
        for name, fn in (("on_metrics", on_metrics), ("on_rollouts", on_rollouts),
                         ("on_checkpoint", on_checkpoint), ("should_stop", should_stop),
                         ("on_held_out", on_held_out), ("on_system_metrics", on_system_metrics)):
            if fn is not None:
                setattr(self, name, fn)

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Called once per completed step with the metrics named in ``metrics.py``."""

    def on_system_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Called, before ``on_metrics`` of the same step, with the machine's state at the end
        of the step (``system/*``, see ``system_metrics.py``) when ``train.log_system_metrics``.
        A hook of its own because they read the machine, not the run: a resumed run repeats
        ``on_metrics`` bit for bit (timings aside), never these. A caller that charts them
        stores them beside the step's metrics, as MLflow does."""

    def on_rollouts(self, step: int, records: list[dict[str, Any]]) -> None:
        """Called with one dict per completion (see ``rollout_records``)."""

    def on_held_out(self, step: int, records: list[dict[str, Any]]) -> None:
        """Called, before ``on_metrics`` of the same step, with each held-out prompt's greedy
        answer when the step evaluated them (see ``held_out_records``)."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Called after checkpoint ``step`` is complete on disk."""

    def should_stop(self) -> bool:
        """Asked before every step, and within a step's rollout, scoring and held-out evaluation
        at most once a second (``stopping.POLL_INTERVAL_S``); True ends training cleanly after a
        checkpoint of the last completed step. A step stopped in its rollout is abandoned: none
        of it is reported, and its model update never starts."""
        return False


@dataclass
class TrainResult:
    output_dir: Path
    steps_completed: int  # number of the last completed step (0 if none)
    stopped: bool  # should_stop ended the run before total_steps
    resumed_from: int  # step of the checkpoint resumed from (0 for a fresh run)
    final_checkpoint: Path | None
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    # (step, system/* metrics) of each step this run took, with train.log_system_metrics: apart
    # from ``history``, which a resumed run repeats bit for bit, as the machine's state is not
    system_history: list[tuple[int, dict[str, float]]] = field(default_factory=list)


@dataclass
class _Session:
    config: TrainConfig
    records: list[PromptRecord]
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    ref_model: Any
    device: str
    eos_ids: list[int]
    sampler: Sampler = sample_completions  # StaticCacheSampler with train.fast_path
    eval_sampler: Sampler = sample_completions  # its own cache: eval batches differ in shape
    prompt_ids: dict[int, list[int]] = field(default_factory=dict)  # encoded once per prompt
    model_cache_dir: Path | None = None  # built-in models (the policy's, a judge's) cached here
    # Knapsack RL: {prompt index: (successes, trials)} of the prompt's latest sampled group,
    # whether or not the filters kept it (the paper reads the previous epoch's rate; this is
    # the most recent one). Updated after each round is scored; saved in checkpoints.
    prompt_success: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass
class _Groups:
    """Scored rollouts of one step, group-major: row = group * G + j with a uniform budget;
    with Knapsack RL's, group i's rows are offsets[i] .. offsets[i] + group_sizes[i] - 1."""

    prompt_indices: list[int]  # (n,) dataset index of each group's prompt
    batch: RolloutBatch  # sum(group_sizes) rows (n * G when uniform)
    completions: list[str]
    rewards: dict[str, list[float]]  # reward key -> one value per row (n * G when uniform), as scored
    extras: dict[str, float]
    passed: torch.Tensor  # (n,) bool, passed the filters
    # What advantages and filters see: ``rewards`` with components gated by group accuracy
    # held at their group's best value (reward_gates); the same lists when nothing is gated.
    trained_rewards: dict[str, list[float]]
    group_sizes: list[int]  # (n,) completions of each group: all G when uniform

    @property
    def offsets(self) -> list[int]:
        """(n,) first row of each group."""
        out, start = [], 0
        for size in self.group_sizes:
            out.append(start)
            start += size
        return out

    def rows(self) -> list[tuple[int, int]]:
        """(group, j) of every row, in row order."""
        return [(group, j) for group, size in enumerate(self.group_sizes) for j in range(size)]


def train(config: TrainConfig, prompts: Sequence[PromptRecord | Mapping[str, Any]],
          callbacks: Callbacks | None = None, *, output_dir: Path,
          model_cache_dir: Path | None = None,
          eval_prompts: Sequence[PromptRecord] | None = None) -> TrainResult:
    """Train ``config.policy`` on ``prompts`` for steps 1..config.train.total_steps.

    Checks config, data and model paths before any work (ConfigError, DataError,
    ModelLoadError). Resumes from the latest checkpoint in ``output_dir/checkpoints``.
    ``eval_prompts`` with ``config.eval.every_steps`` > 0 adds eval/greedy_pass@1 and
    eval/pass@<k>, scored by ``config.held_out_reward``, every that many steps and at the last
    step.
    """
    check_trainable(config)
    callbacks = callbacks or Callbacks()
    output_dir = Path(output_dir)
    records = validate_prompts(prompts, need_references=reference_reward([r.name for r in config.rewards]))
    eval_records = validate_prompts(eval_prompts, need_references=reference_reward([config.held_out_reward.name])
                                    ) if eval_prompts else []
    _check_models_available(config)
    session, start_step = _open_session(config, records, output_dir, model_cache_dir)
    if config.train.log_system_metrics:
        start_cpu_window()
    result = TrainResult(output_dir, start_step, False, start_step, None)
    last_saved = start_step
    stop = StopCheck(callbacks.should_stop)
    for step in range(start_step + 1, config.train.total_steps + 1):
        if stop():
            result.stopped = True
            break
        try:
            metrics, records_of_step = _train_step(session, step, stop)
        except StopRequested:  # asked during the step's rollout: abandoned before its update
            result.stopped = True
            break
        system = system_metrics(session.device) if config.train.log_system_metrics else None
        eval_cut_short = False
        answers = None
        if eval_records and _evaluates_at(step, config):
            evaluated = _evaluate(session, eval_records, step, stop)
            eval_cut_short = evaluated is None
            if evaluated is not None:
                metrics.update(evaluated[0])
                answers = evaluated[1]
        if answers is not None:
            callbacks.on_held_out(step, answers)
        if system:  # none without psutil on a CPU
            callbacks.on_system_metrics(step, dict(system))
            result.system_history.append((step, system))
        callbacks.on_metrics(step, metrics)
        if _logs_rollouts(step, config.train.log_rollouts_fraction):
            callbacks.on_rollouts(step, records_of_step())
        result.history.append((step, metrics))
        result.steps_completed = step
        if step % config.train.checkpoint_every == 0 or step == config.train.total_steps:
            result.final_checkpoint = _checkpoint(session, output_dir, step, callbacks)
            last_saved = step
        if eval_cut_short:  # asked to stop during the evaluation: the step is done, the run stops
            result.stopped = True
            break
    if result.steps_completed > last_saved:
        result.final_checkpoint = _checkpoint(session, output_dir, result.steps_completed,
                                              callbacks)
    elif result.final_checkpoint is None and last_saved:
        found = latest_checkpoint(output_dir)
        result.final_checkpoint = found[1] if found else None
    return result


# --- setup ---------------------------------------------------------------------------------

def _check_models_available(config: TrainConfig) -> None:
    check_policy_available(config.policy)
    for i, reward in enumerate(config.rewards):
        if reward.name == "reward_model" and not Path(reward.params["path"]).exists():
            raise ModelLoadError(f"rewards[{i}].path: no reward model at "
                                 f"{reward.params['path']}")
        if reward.name in ("tournament", "rubric_judge"):
            try:
                check_policy_available(PolicyConfig.from_dict(reward.params["judge"]))
            except ModelLoadError as exc:  # its message names the field as the policy's
                raise ModelLoadError(f"rewards[{i}].judge.{str(exc).removeprefix('policy.')}") from None


def rollout_sampler(config: TrainConfig, model, device: torch.device | str) -> Sampler:
    """The decoder of a run's rollouts (a training run's and an evaluation run's): with
    ``train.fast_path`` and a policy it supports, the static-cache decoder, its step compiled
    as ``train.compile_decoder`` says (unset: on a CUDA device with Triton) and attending as
    ``train.decode_attention`` says; else Hugging Face's forward passes."""
    if not (config.train.fast_path and supports(model)):
        return sample_completions
    return StaticCacheSampler(compile=compile_wanted(config.train.compile_decoder, device),
                              attention=config.train.decode_attention)


def _open_session(config: TrainConfig, records: list[PromptRecord], output_dir: Path,
                  model_cache_dir: Path | None) -> tuple[_Session, int]:
    device = resolve_device(config.train.device)
    remove_partial_checkpoints(output_dir)
    found = latest_checkpoint(output_dir)
    if found is None:
        random.seed(config.train.seed)
        np.random.seed(config.train.seed)
        torch.manual_seed(config.train.seed)
        model, tokenizer = load_policy(config.policy, cache_dir=model_cache_dir, device=device)
    else:
        model, tokenizer = load_policy_checkpoint(found[1], config.policy, device=device)
    ref_model = None
    if config.algorithm.beta > 0:  # the frozen initial policy, also after a resume
        ref_model, _ = load_policy(config.policy, cache_dir=model_cache_dir, device=device)
        ref_model.eval().requires_grad_(False)
    model.eval()
    fast = config.train.fast_path
    optimizer = build_optimizer(model, config.optim, fast=fast)
    start_step, state = 0, {}
    if found is not None:
        state = load_training_state(found[1], optimizer)
        start_step = state["step"]
    # The held-out set's sampler is never compiled: its batches are few and of their own
    # shape, so compiling them would cost more than it saves.
    eval_sampler = StaticCacheSampler() if fast and supports(model) else sample_completions
    session = _Session(config, records, model, tokenizer, optimizer, ref_model, device,
                       stop_token_ids(model, tokenizer), rollout_sampler(config, model, device),
                       eval_sampler, model_cache_dir=model_cache_dir)
    session.prompt_success = {int(i): (int(hits), int(trials))
                              for i, hits, trials in state.get("prompt_success", [])}
    return session, start_step


def _checkpoint(session: _Session, output_dir: Path, step: int, callbacks: Callbacks) -> Path:
    trainer_state: dict[str, Any] = {"total_steps": session.config.train.total_steps}
    if session.config.rollout.knapsack:  # [[prompt index, successes, trials], ...]
        trainer_state["prompt_success"] = [[i, *session.prompt_success[i]]
                                           for i in sorted(session.prompt_success)]
    path = save_checkpoint(output_dir, step, model=session.model, tokenizer=session.tokenizer,
                           optimizer=session.optimizer, config_dict=session.config.to_dict(),
                           trainer_state=trainer_state)
    prune_checkpoints(output_dir, session.config.train.keep_checkpoints)
    callbacks.on_checkpoint(step, path)
    return path


def _logs_rollouts(step: int, fraction: float) -> bool:
    """Evenly spaced steps, about ``fraction`` of them (all when 1, none when 0)."""
    return int(step * fraction) > int((step - 1) * fraction)


# --- one step ------------------------------------------------------------------------------

def _train_step(s: _Session, step: int, stop: StopCheck | None = None
                ) -> tuple[dict[str, float], Callable[[], list[dict[str, Any]]]]:
    """One step's metrics, and a function building its rollout records (called only on the
    steps whose rollouts are reported). Raises StopRequested when ``stop`` says so during the
    sampling and scoring, with the session as the previous step left it; the update, once
    started, is never interrupted."""
    cfg = s.config
    _synchronize(s.device)
    started = time.perf_counter()
    success_before = dict(s.prompt_success)
    try:
        with stoppable(stop or StopCheck(None)):
            groups = _sample_and_score(s, step)
    except StopRequested:
        s.prompt_success = success_before  # Knapsack RL's estimates: none from the abandoned step
        raise
    _synchronize(s.device)
    rollout_s = time.perf_counter() - started

    keys = [r.key for r in cfg.rewards]
    g = cfg.rollout.num_generations
    valid = None  # (n, Gmax) bool with Knapsack RL's groups of different sizes
    if cfg.rollout.knapsack:
        components, valid = pad_groups(torch.tensor([groups.rewards[k] for k in keys]).T,
                                       groups.group_sizes)
        trained_components, _ = pad_groups(torch.tensor([groups.trained_rewards[k] for k in keys]).T,
                                           groups.group_sizes)
    else:
        components = torch.tensor([groups.rewards[k] for k in keys]).T.reshape(-1, g, len(keys))
        trained_components = torch.tensor([groups.trained_rewards[k] for k in keys]).T.reshape(-1, g, len(keys))
    weights = torch.tensor([r.weight for r in cfg.rewards])
    trained = torch.nonzero(groups.passed).flatten()[:cfg.rollout.prompts_per_step]
    advantages = torch.zeros(components.shape[:2])  # (n, G); groups not trained stay at 0
    if len(trained) and valid is None:
        advantages[trained] = compute_advantages(cfg.algorithm.estimator, trained_components[trained],
                                                 weights, scale=cfg.algorithm.scale)
    elif len(trained):
        advantages[trained] = compute_masked_advantages(
            cfg.algorithm.estimator, trained_components[trained], weights, valid[trained],
            scale=cfg.algorithm.scale)

    correct = None  # (n, G) bool, for clips by correctness
    if cfg.accuracy_reward is not None:
        correct = components[..., keys.index(cfg.accuracy_reward)] == 1.0
    started = time.perf_counter()
    update = _update(s, step, groups, trained, advantages, correct, valid)
    _synchronize(s.device)  # the optimiser step is asynchronous on a GPU
    update_s = time.perf_counter() - started

    if valid is None:
        metrics = rollout_metrics(components, weights, keys, groups.batch, cfg.accuracy_reward)
    else:
        metrics = masked_rollout_metrics(components, valid, weights, keys, groups.batch,
                                         cfg.accuracy_reward)
    metrics.update(groups.extras)
    metrics.update(update)
    metrics["filter/kept_fraction"] = float(groups.passed.float().mean())
    metrics["timing/rollout_s"] = rollout_s
    metrics["timing/update_s"] = update_s
    generated = float(groups.batch.completion_mask.sum())
    metrics["throughput/tokens_per_s"] = generated / max(rollout_s + update_s, 1e-9)
    return metrics, lambda: rollout_records(s, groups, components @ weights, advantages,
                                            trained)


def _synchronize(device: str) -> None:
    """Wait for queued GPU work, so the step's timings measure work done, not launched."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _sample_and_score(s: _Session, step: int) -> _Groups:
    """Round 0 takes the step's scheduled prompts; while filters leave fewer than
    prompts_per_step groups, refill rounds sample more (at most max_refill_rounds)."""
    cfg = s.config
    wanted = cfg.rollout.prompts_per_step
    indices = step_prompt_indices(len(s.records), wanted, cfg.train.seed, step)
    rounds = [_sample_round(s, indices, step, 0)]
    passed = int(rounds[0].passed.sum())
    for round_ in range(1, cfg.filters.max_refill_rounds + 1):
        if not any_enabled(cfg.filters) or passed >= wanted:
            break
        indices = refill_prompt_indices(len(s.records), wanted - passed, cfg.train.seed, step,
                                        round_)
        rounds.append(_sample_round(s, indices, step, round_))
        passed += int(rounds[-1].passed.sum())
    if len(rounds) == 1:
        return rounds[0]
    extras: dict[str, float] = {}
    for r in rounds:  # averaged over rounds
        for k, v in r.extras.items():
            extras[k] = extras.get(k, 0.0) + v / len(rounds)
    return _Groups(
        prompt_indices=[i for r in rounds for i in r.prompt_indices],
        batch=concat_rollouts([r.batch for r in rounds], s.tokenizer.pad_token_id),
        completions=[c for r in rounds for c in r.completions],
        rewards={k: [v for r in rounds for v in r.rewards[k]] for k in rounds[0].rewards},
        extras=extras, passed=torch.cat([r.passed for r in rounds]),
        trained_rewards={k: [v for r in rounds for v in r.trained_rewards[k]] for k in rounds[0].rewards},
        group_sizes=[n for r in rounds for n in r.group_sizes])


def _group_sizes(s: _Session, indices: list[int]) -> list[int]:
    """Completions per prompt of one round: num_generations each, or with Knapsack RL the
    round's len(indices) x num_generations shared out by ``knapsack_allocation`` over the
    prompts' smoothed success estimates (None, so the uniform share, for a prompt never
    sampled)."""
    rollout = s.config.rollout
    if not rollout.knapsack:
        return [rollout.num_generations] * len(indices)
    estimates = [success_estimate(*s.prompt_success[i]) if i in s.prompt_success else None
                 for i in indices]
    return knapsack_allocation(estimates, len(indices) * rollout.num_generations,
                               rollout.min_generations, rollout.max_group_size)


def _sample_round(s: _Session, indices: list[int], step: int, round_: int) -> _Groups:
    cfg, g = s.config, s.config.rollout.num_generations
    sizes = _group_sizes(s, indices)
    knapsack = cfg.rollout.knapsack
    for i in indices:
        if i not in s.prompt_ids:
            s.prompt_ids[i] = encode_prompts(s.tokenizer, [s.records[i].prompt],
                                             use_chat_template=cfg.rollout.use_chat_template)[0]
    generator = torch.Generator(device=s.device)
    generator.manual_seed(sampling_seed(cfg.train.seed, step, round_))
    params = SamplingParams(max_new_tokens=cfg.rollout.max_new_tokens,
                            temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p)
    repeated = [i for i, n in zip(indices, sizes, strict=True) for _ in range(n)]
    batch = s.sampler(s.model, [s.prompt_ids[i] for i in repeated], params,
                      pad_id=s.tokenizer.pad_token_id, eos_ids=s.eos_ids, generator=generator)
    completions = decode_completions(s.tokenizer, batch)
    rewards, extras = score_completions(
        cfg.rewards, [s.records[i].prompt for i in repeated], completions,
        [s.records[i].reference for i in repeated],
        completion_lengths=batch.completion_lengths, device=s.device, group_size=g,
        model_cache_dir=s.model_cache_dir, group_sizes=sizes if knapsack else None)
    trained_rewards, gate_extras = gate_by_group_accuracy(cfg.rewards, rewards, cfg.accuracy_reward, g,
                                                          sizes if knapsack else None)
    extras.update(gate_extras)
    weights = [r.weight for r in cfg.rewards]
    total = torch.tensor([sum(w * trained_rewards[r.key][row] for w, r in zip(weights, cfg.rewards))
                          for row in range(len(completions))])
    correct = None
    if cfg.accuracy_reward is not None:
        correct = torch.tensor(rewards[cfg.accuracy_reward]) == 1.0
    if not knapsack:
        total = total.reshape(-1, g)
        correct = correct.reshape(-1, g) if correct is not None else None
        passed = keep_mask(cfg.filters, total, correct)
    else:
        total, valid = pad_groups(total, sizes)
        correct = pad_groups(correct, sizes)[0]  # the config requires an accuracy reward
        passed = keep_mask(cfg.filters, total, correct, valid)
        for i, hits, n in zip(indices, (correct & valid).sum(dim=1).tolist(), sizes, strict=True):
            s.prompt_success[i] = (int(hits), n)  # a prompt twice in a round: its last group
    return _Groups(indices, batch, completions, rewards, extras, passed, trained_rewards, sizes)


def _update(s: _Session, step: int, groups: _Groups, trained: torch.Tensor,
            advantages: torch.Tensor, correct: torch.Tensor | None,
            valid: torch.Tensor | None = None) -> dict[str, float]:
    """The policy update on the ``trained`` groups' rows; ``valid`` (n, Gmax): the groups are
    padded (Knapsack RL) and only their valid slots are rows."""
    cfg = s.config
    lr = learning_rate_at(step, cfg.optim)
    if len(trained) == 0:  # every group filtered out: nothing to learn from this step
        return skipped_update_metrics(cfg.algorithm, lr)
    if valid is None:
        g = cfg.rollout.num_generations
        rows = [int(i) * g + j for i in trained for j in range(g)]
        trained_advantages = advantages[trained].reshape(-1)
        trained_correct = correct[trained].reshape(-1) if correct is not None else None
    else:  # group-major rows of each trained group, as valid[trained] lists its slots
        offsets, sizes = groups.offsets, groups.group_sizes
        rows = [offsets[int(i)] + j for i in trained for j in range(sizes[int(i)])]
        trained_advantages = advantages[trained][valid[trained]]
        trained_correct = correct[trained][valid[trained]] if correct is not None else None
    kept = groups.batch.select(rows)
    device = kept.input_ids.device
    update_batch = UpdateBatch(kept.input_ids, kept.attention_mask, kept.completion_mask,
                               trained_advantages.to(device), kept.sampling_logprobs,
                               trained_correct.to(device) if trained_correct is not None else None)
    if cfg.algorithm.mask_truncated_completions:  # DAPO's overlong filtering
        update_batch.truncated = torch.tensor([r == "length" for r in kept.finish_reasons],
                                              device=device)
    return policy_update(s.model, s.optimizer, update_batch, algo=cfg.algorithm,
                         optim=cfg.optim, lr=lr, temperature=cfg.rollout.temperature,
                         max_new_tokens=cfg.rollout.max_new_tokens,
                         micro_batch_size=cfg.train.micro_batch_size, ref_model=s.ref_model,
                         fast=cfg.train.fast_path, compile_head=cfg.train.compile_head,
                         compile_layers=compile_wanted(cfg.train.compile_layers, device))


def rollout_records(s: _Session, groups: _Groups, totals: torch.Tensor, advantages: torch.Tensor,
                    trained: torch.Tensor) -> list[dict[str, Any]]:
    """One dict per completion: prompt_id, group_index, sample_index, prompt_text,
    completion_text, rewards {key: value}, reward, advantage, length, finish_reason, trained."""
    trained_set = {int(i) for i in trained}
    lengths = groups.batch.completion_lengths
    out = []
    for row, ((group, j), completion) in enumerate(zip(groups.rows(), groups.completions, strict=True)):
        index = groups.prompt_indices[group]
        record = s.records[index]
        out.append({
            "prompt_id": record.id if record.id is not None else index,
            "group_index": group, "sample_index": j,
            "prompt_text": s.tokenizer.decode(s.prompt_ids[index]),
            "completion_text": completion,
            "rewards": {k: v[row] for k, v in groups.rewards.items()},
            "reward": float(totals[group, j]), "advantage": float(advantages[group, j]),
            "length": lengths[row], "finish_reason": groups.batch.finish_reasons[row],
            "trained": group in trained_set})
    return out


def _evaluates_at(step: int, config: TrainConfig) -> bool:
    """Every eval.every_steps steps, and at the last step, so the final policy is always measured."""
    every = config.eval.every_steps
    return every > 0 and (step % every == 0 or step == config.train.total_steps)


def _evaluate(s: _Session, records: list[PromptRecord], step: int,
              should_stop: StopCheck) -> tuple[dict[str, float], list[dict[str, Any]]] | None:
    """eval/ metrics of the held-out ``records`` and their answers (see ``held_out_records``);
    None when the run is asked to stop meanwhile (the step itself is done: the loop records it
    and stops)."""
    from .evaluate import evaluate_held_out  # noqa: PLC0415

    cfg = s.config
    result = evaluate_held_out(
        s.model, s.tokenizer, records, num_samples=cfg.eval.num_samples, k=cfg.eval.k,
        max_new_tokens=cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens,
        temperature=cfg.eval.temperature, use_chat_template=cfg.rollout.use_chat_template,
        seed=sampling_seed(cfg.train.seed, step, _EVAL_ROUND), sampler=s.eval_sampler,
        should_stop=should_stop, score=_held_out_scorer(cfg))
    if result is None:
        return None
    return {f"eval/{k}": v for k, v in result.metrics.items()}, held_out_records(records, result)


def _held_out_scorer(config: TrainConfig):
    """The run's 0/1 accuracy reward as the held-out evaluation's scorer (``held_out_reward``)."""
    from .rewards import REWARDS  # noqa: PLC0415

    reward = config.held_out_reward
    fn = REWARDS[reward.name].fn
    return lambda prompts, completions, references, lengths: fn(
        prompts, completions, references, completion_lengths=lengths, **reward.params)


def held_out_records(records: Sequence[PromptRecord], result) -> list[dict[str, Any]]:
    """One dict per held-out prompt, for ``Callbacks.on_held_out``: index, prompt_id,
    reference, completion_text (the greedy answer), correct, length, finish_reason,
    samples_correct of samples."""
    return [{"index": a.index, "prompt_id": records[a.index].id, "reference": records[a.index].reference,
             "completion_text": a.completion, "correct": a.correct, "length": a.length,
             "finish_reason": a.finish_reason, "samples_correct": a.samples_correct,
             "samples": a.samples} for a in result.answers]
