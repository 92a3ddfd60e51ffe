"""Executing an SFT run on a worker: fine-tune the policy on the run's examples, then register it."""

from __future__ import annotations

from functools import partial

from webapp.rewards.data_snapshots import run_training_data
from webapp.rewards.offline_training import offline_policy_run_execute
from webapp.rewards.selectors import sft_examples


def sft_run_execute(*, run_id: int, worker: str) -> str:
    """Train with the engine's SFT, resuming from the run's latest checkpoint if it has one (on
    the examples its first attempt read and kept), and, on success, register the policy of its
    last checkpoint in the project (as a DPO run does)."""
    from workers.engine.sft import check_examples, planned_sft_steps, train_sft
    from workers.engine.sft_config import SFTTrainConfig

    def prepare(run, attempt):
        config = SFTTrainConfig.from_dict({k: v for k, v in run.config.items() if k != "data"})
        examples = check_examples(run_training_data(
            run=run, attempt=attempt, kind="sft_examples",
            query=lambda: sft_examples(project=run.project, data=run.config["data"])))
        return planned_sft_steps(len(examples), config), partial(train_sft, config, examples)

    return offline_policy_run_execute(run_id=run_id, worker=worker, label="SFT run", prepare=prepare)
