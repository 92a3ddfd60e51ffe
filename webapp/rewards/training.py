"""Executing a reward-model run on a worker: train on the run's preference data, then register it."""

from __future__ import annotations

import logging

from django.db import transaction

from webapp.experiments.execution import (
    Heartbeat,
    LeaseLost,
    RunRecorder,
    run_claim,
    run_failed,
    run_stopped_or_done,
)
from webapp.experiments.models import Run, RunStatus
from webapp.rewards.selectors import preference_records
from webapp.rewards.services import reward_model_register

log = logging.getLogger(__name__)


def reward_model_run_execute(*, run_id: int, worker: str) -> str:
    """Train from scratch (the reward-model trainer keeps no checkpoints; a rerun after a lost
    worker rewrites the same metric rows) and, on success, register the saved model."""
    claim = run_claim(run_id=run_id, worker=worker)
    if claim is None:
        return "skipped"
    run = Run.objects.select_related("project").get(pk=run_id)
    from workers.engine.errors import EngineError  # noqa: PLC0415 (torch: worker side only)
    from workers.engine.rm_trainer import RewardModelTrainConfig, planned_steps, train_reward_model  # noqa: PLC0415

    recorder = None
    try:
        settings_only = {k: v for k, v in run.config.items() if k != "data"}
        config = RewardModelTrainConfig.from_dict(settings_only)
        records = preference_records(project=run.project, data=run.config["data"])
        total = planned_steps(len(records), config) if records else 1
        Run.objects.filter(pk=run_id).update(total_steps=total)
        recorder = RunRecorder(claim, total_steps=total)
        with Heartbeat(claim):
            result = train_reward_model(config, records, output_dir=run.checkpoint_dir / "reward-model",
                                        on_metrics=recorder.on_metrics, should_stop=recorder.should_stop)
    except LeaseLost:
        return "lease lost"
    except EngineError as exc:
        run_failed(claim=claim, exc=exc, user_error=True)
        return RunStatus.FAILED
    except Exception as exc:  # noqa: BLE001 (any crash ends the run as failed, with its traceback)
        log.exception("reward-model run %s failed", run_id)
        run_failed(claim=claim, exc=exc, user_error=False)
        return RunStatus.FAILED
    if result.stopped or recorder.lease_lost:
        return run_stopped_or_done(claim=claim, recorder=recorder, stopped=True)
    with transaction.atomic():
        outcome = run_stopped_or_done(claim=claim, recorder=recorder, stopped=False)
        if outcome == RunStatus.SUCCEEDED:
            reward_model_register(run=run, path=str(result.output_dir), metrics=result.metrics)
    return outcome
