"""Executing a DPO run on a worker: train the policy on the run's pair set, then register it."""

from __future__ import annotations

from functools import partial

from webapp.rewards.data_snapshots import run_training_data
from webapp.rewards.offline_training import offline_policy_run_execute
from webapp.rewards.selectors import dpo_pairs


def dpo_run_execute(*, run_id: int, worker: str) -> str:
    """Train with the engine's DPO, resuming from the run's latest checkpoint if it has one (on
    the pairs its first attempt read and kept), and, on success, register the policy of its last
    checkpoint in the project."""
    from workers.engine.dpo import planned_dpo_steps, train_dpo, usable_pairs
    from workers.engine.dpo_config import DPOTrainConfig

    def prepare(run, attempt):
        config = DPOTrainConfig.from_dict({k: v for k, v in run.config.items() if k != "data"})
        pairs = run_training_data(run=run, attempt=attempt, kind="preference_pairs",
                                  query=lambda: dpo_pairs(project=run.project, data=run.config["data"]))
        return planned_dpo_steps(len(usable_pairs(pairs)[0]), config), partial(train_dpo, config, pairs)

    return offline_policy_run_execute(run_id=run_id, worker=worker, label="DPO run", prepare=prepare)
