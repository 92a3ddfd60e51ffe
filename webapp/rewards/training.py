"""Executing a reward-model run on a worker: train on the run's preference data, then register it."""

from __future__ import annotations

from webapp.experiments.execution import (
    Heartbeat,
    RunRecorder,
    engine_run,
    run_claim,
    run_discard_after,
)
from webapp.experiments.models import Run
from webapp.rewards.data_snapshots import run_training_data
from webapp.rewards.selectors import preference_records
from webapp.rewards.services import reward_model_register


def reward_model_run_execute(*, run_id: int, worker: str) -> str:
    """Train from scratch (the reward-model trainer keeps no checkpoints: a rerun after a lost
    worker first deletes the metrics of the lost attempts), on the records the first attempt read
    and kept, and, on success, register the saved model."""
    claim = run_claim(run_id=run_id, worker=worker)
    if claim is None:
        return "skipped"
    run = Run.objects.select_related("project").get(pk=run_id)
    from workers.engine.rm_trainer import (  # noqa: PLC0415 (torch)
        RewardModelTrainConfig,
        planned_steps,
        train_reward_model,
    )

    def attempt():
        settings_only = {k: v for k, v in run.config.items() if k != "data"}
        config = RewardModelTrainConfig.from_dict(settings_only)
        # The records of the first attempt, kept in the run's folder beside (not inside) the model's.
        records = run_training_data(run=run, attempt=claim.attempt, kind="preference_records",
                                    query=lambda: preference_records(project=run.project, data=run.config["data"]))
        total = planned_steps(len(records), config) if records else 1
        Run.objects.filter(pk=run_id).update(total_steps=total)
        recorder = RunRecorder(claim, total_steps=total)
        if claim.attempt > 1:
            run_discard_after(claim=claim, step=0)
        with Heartbeat(claim):
            result = train_reward_model(config, records, output_dir=run.checkpoint_dir / "reward-model",
                                        on_metrics=recorder.on_metrics, should_stop=recorder.should_stop,
                                        on_system_metrics=recorder.on_system_metrics)
        return result, recorder

    return engine_run(claim, attempt, label="reward-model run", on_succeeded=lambda result: reward_model_register(
        run=run, path=str(result.output_dir), metrics=result.metrics))
