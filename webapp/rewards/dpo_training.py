"""Executing a DPO run on a worker: train the policy on the run's pair set, then register it."""

from __future__ import annotations

import shutil

from django.conf import settings

from webapp.experiments.execution import (
    Heartbeat,
    PolicyRunRecorder,
    engine_run,
    run_claim,
)
from webapp.experiments.models import Run
from webapp.experiments.policies import policy_from_run_register
from webapp.rewards.selectors import dpo_pairs


def dpo_run_execute(*, run_id: int, worker: str) -> str:
    """Train with the engine's DPO, resuming from the run's latest checkpoint if it has one, and,
    on success, register the policy of its last checkpoint in the project."""
    claim = run_claim(run_id=run_id, worker=worker)
    if claim is None:
        return "skipped"
    run = Run.objects.select_related("project").get(pk=run_id)
    if claim.attempt == 1 and run.checkpoint_dir.exists():
        # A first attempt starts fresh: anything here was left by an earlier database's run with this id.
        shutil.rmtree(run.checkpoint_dir)
    from workers.engine.dpo import planned_dpo_steps, train_dpo, usable_pairs
    from workers.engine.dpo_config import DPOTrainConfig

    def attempt():
        config = DPOTrainConfig.from_dict({k: v for k, v in run.config.items() if k != "data"})
        pairs = dpo_pairs(project=run.project, data=run.config["data"])
        total = planned_dpo_steps(len(usable_pairs(pairs)[0]), config)
        Run.objects.filter(pk=run_id).update(total_steps=total)
        recorder = PolicyRunRecorder(claim, total_steps=total, prompt_ids=set())
        with Heartbeat(claim):
            result = train_dpo(config, pairs, output_dir=run.checkpoint_dir, on_metrics=recorder.on_metrics,
                               on_checkpoint=recorder.on_checkpoint, should_stop=recorder.should_stop,
                               model_cache_dir=settings.STEER_MODEL_CACHE_DIR)
        return result, recorder

    return engine_run(claim, attempt, label="DPO run",
                      on_succeeded=lambda result: policy_from_run_register(run=run, step=result.steps_completed))
