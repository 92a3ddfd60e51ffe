"""Executing an SFT run on a worker: fine-tune the policy on the run's examples, then register it."""

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
from webapp.rewards.selectors import sft_examples


def sft_run_execute(*, run_id: int, worker: str) -> str:
    """Train with the engine's SFT, resuming from the run's latest checkpoint if it has one, and,
    on success, register the policy of its last checkpoint in the project (as a DPO run does)."""
    claim = run_claim(run_id=run_id, worker=worker)
    if claim is None:
        return "skipped"
    run = Run.objects.select_related("project").get(pk=run_id)
    if claim.attempt == 1 and run.checkpoint_dir.exists():
        # A first attempt starts fresh: anything here was left by an earlier database's run with this id.
        shutil.rmtree(run.checkpoint_dir)
    from workers.engine.sft import check_examples, planned_sft_steps, train_sft
    from workers.engine.sft_config import SFTTrainConfig

    def attempt():
        config = SFTTrainConfig.from_dict({k: v for k, v in run.config.items() if k != "data"})
        examples = check_examples(sft_examples(project=run.project, data=run.config["data"]))
        total = planned_sft_steps(len(examples), config)
        Run.objects.filter(pk=run_id).update(total_steps=total)
        recorder = PolicyRunRecorder(claim, total_steps=total, prompt_ids=set())
        with Heartbeat(claim):
            result = train_sft(config, examples, output_dir=run.checkpoint_dir, on_metrics=recorder.on_metrics,
                               on_checkpoint=recorder.on_checkpoint, should_stop=recorder.should_stop,
                               model_cache_dir=settings.STEER_MODEL_CACHE_DIR)
        return result, recorder

    return engine_run(claim, attempt, label="SFT run",
                      on_succeeded=lambda result: policy_from_run_register(run=run, step=result.steps_completed))
