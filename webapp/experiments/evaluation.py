"""Evaluation runs: a policy sampled over every prompt of a dataset and scored, on a worker,
and the summary the run's page and API show (reward, each component, accuracy, pass@k).

The engine (``workers.engine.evaluate_policy``) reports each step's completions before its metrics,
and the recorder counts a step done when its metrics are stored; a run resumed by another
worker starts after the last step done, and draws what it would have drawn. The summary is
computed from the stored completions once every step is done, so it covers the whole dataset
however many workers took part, and is stored as ``eval/...`` metrics at the last step.
"""

from __future__ import annotations

import math
from collections import defaultdict

from django.conf import settings

from webapp.experiments.execution import (
    Heartbeat,
    PolicyRunRecorder,
    engine_run,
    run_claim,
    run_discard_after,
)
from webapp.experiments.models import Run, Trajectory

SUMMARY_PREFIX = "eval/"


def evaluation_run_execute(*, run_id: int, worker: str) -> str:
    """Evaluate the run's policy on its dataset, from the step after the last one recorded."""
    claim = run_claim(run_id=run_id, worker=worker)
    if claim is None:
        return "skipped"
    run = Run.objects.select_related("dataset").get(pk=run_id)
    from workers.engine import (  # noqa: PLC0415 (torch)
        Callbacks,
        PromptRecord,
        TrainConfig,
        evaluate_policy,
        evaluation_steps,
    )

    def attempt():
        config = TrainConfig.from_dict(run.config)
        prompts = [PromptRecord(p.engine_prompt(), p.reference or None, p.id)
                   for p in run.dataset.prompts.order_by("index")] if run.dataset else []
        total = evaluation_steps(len(prompts), config.rollout.prompts_per_step) if prompts else 0
        Run.objects.filter(pk=run_id).update(total_steps=total)
        recorder = PolicyRunRecorder(claim, total_steps=max(total, 1), prompt_ids={p.id for p in prompts},
                                     durable_steps=True)
        callbacks = Callbacks(on_metrics=recorder.on_metrics, on_rollouts=recorder.on_rollouts,
                              should_stop=recorder.should_stop, on_system_metrics=recorder.on_system_metrics)
        start = run.current_step if claim.attempt > 1 else 0
        if claim.attempt > 1:  # the completions a lost attempt stored for the step it did not finish
            run_discard_after(claim=claim, step=start)
        with Heartbeat(claim):
            result = evaluate_policy(config, prompts, callbacks, model_cache_dir=settings.STEER_MODEL_CACHE_DIR,
                                     start_step=start)
            if not result.stopped:
                recorder.on_metrics(result.total_steps, evaluation_summary(
                    run=run, accuracy_key=config.accuracy_reward, keys=[r.key for r in config.rewards]))
        return result, recorder

    return engine_run(claim, attempt)


def evaluation_summary(*, run: Run, accuracy_key: str | None, keys: list[str]) -> dict[str, float]:
    """``eval/...`` figures over every stored completion of the run (see ``summarize``)."""
    rows = Trajectory.objects.filter(run=run).values_list("step", "group_index", "reward", "rewards", "length",
                                                          "finish_reason")
    return summarize(list(rows), accuracy_key=accuracy_key, keys=keys)


def summarize(rows, *, accuracy_key: str | None, keys: list[str]) -> dict[str, float]:
    """From (step, group_index, reward, rewards, length, finish_reason) rows, one per completion:

    - ``eval/prompts``, ``eval/completions``;
    - ``eval/reward`` and ``eval/reward_std`` over all completions, ``eval/rewards/<key>/mean``;
    - with a 0/1 accuracy reward: ``eval/accuracy`` (the share of correct completions, i.e.
      pass@1 from n samples) and ``eval/pass@k`` for k = 1, 2, 4, … up to the smallest group's
      size n, and n itself: the unbiased estimator 1 − C(n − c, k)/C(n, k) averaged over prompts;
    - ``eval/mean_length`` (tokens) and ``eval/clipped_ratio`` (stopped by the token cap).
    """
    if not rows:
        return {}
    rewards = [float(r[2]) for r in rows]
    mean = sum(rewards) / len(rewards)
    out = {
        f"{SUMMARY_PREFIX}completions": float(len(rows)),
        f"{SUMMARY_PREFIX}reward": mean,
        f"{SUMMARY_PREFIX}reward_std": math.sqrt(sum((x - mean) ** 2 for x in rewards) / max(len(rewards) - 1, 1)),
        f"{SUMMARY_PREFIX}clipped_ratio": sum(r[5] == Trajectory.FinishReason.LENGTH for r in rows) / len(rows),
    }
    lengths = [r[4] for r in rows if r[4] is not None]  # None: a length no trainer reported
    if lengths:
        out[f"{SUMMARY_PREFIX}mean_length"] = sum(lengths) / len(lengths)
    for key in keys:
        values = [float(r[3][key]) for r in rows if key in r[3]]
        if values:
            out[f"{SUMMARY_PREFIX}rewards/{key}/mean"] = sum(values) / len(values)
    groups: dict[tuple[int, int], list[bool]] = defaultdict(list)
    for step, group, _, components, _, _ in rows:
        groups[(step, group)].append(accuracy_key is not None and components.get(accuracy_key) == 1.0)
    out[f"{SUMMARY_PREFIX}prompts"] = float(len(groups))
    if accuracy_key is not None:
        from workers.engine.evaluate import pass_at_k  # noqa: PLC0415 (torch: the worker computes the summary)

        out[f"{SUMMARY_PREFIX}accuracy"] = sum(sum(g) for g in groups.values()) / len(rows)
        n = min(len(g) for g in groups.values())
        for k in sorted({*(2 ** i for i in range(n.bit_length()) if 2 ** i <= n), n}):
            out[f"{SUMMARY_PREFIX}pass@{k}"] = sum(pass_at_k(len(g), sum(g), k) for g in groups.values()) / len(groups)
    return out
