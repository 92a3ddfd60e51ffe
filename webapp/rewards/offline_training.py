"""What DPO and SFT runs do alike on a worker: claim the run, start a first attempt from an
empty folder, train through the engine with a heartbeat, and on success register the policy of
the last checkpoint in the project. Each kind gives only how it reads its data and trains."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from django.conf import settings

from webapp.experiments.execution import (
    Heartbeat,
    PolicyRunRecorder,
    engine_run,
    run_claim,
)
from webapp.experiments.models import Run
from webapp.experiments.policies import policy_from_run_register


def offline_policy_run_execute(*, run_id: int, worker: str, label: str,
                               prepare: Callable[[Run, int], tuple[int, Callable]]) -> str:
    """Execute a DPO or SFT run. ``prepare(run, attempt)`` reads the run's config and data (in
    the attempt: the first reads the data from the database and keeps it in the run's folder, a
    later one reads it from there, ``webapp.rewards.data_snapshots``) and returns (the steps
    planned, ``train(**callbacks)`` running the engine)."""
    claim = run_claim(run_id=run_id, worker=worker)
    if claim is None:
        return "skipped"
    run = Run.objects.select_related("project").get(pk=run_id)
    if claim.attempt == 1 and run.checkpoint_dir.exists():
        # A first attempt starts fresh: anything here was left by an earlier database's run with this id.
        # (Its data snapshot is written after, in prepare; later attempts keep and read it.)
        shutil.rmtree(run.checkpoint_dir)

    def attempt():
        total, train = prepare(run, claim.attempt)
        Run.objects.filter(pk=run_id).update(total_steps=total)
        recorder = PolicyRunRecorder(claim, total_steps=total, prompt_ids=set())
        with Heartbeat(claim):
            result = train(output_dir=run.checkpoint_dir, on_metrics=recorder.on_metrics,
                           on_checkpoint=recorder.on_checkpoint, should_stop=recorder.should_stop,
                           model_cache_dir=settings.STEER_MODEL_CACHE_DIR,
                           on_system_metrics=recorder.on_system_metrics)
        return result, recorder

    return engine_run(claim, attempt, label=label,
                      on_succeeded=lambda result: policy_from_run_register(run=run, step=result.steps_completed))
