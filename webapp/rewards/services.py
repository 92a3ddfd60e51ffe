"""Writes on reward models and their training data."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from webapp.rewards.errors import PairImportError
from webapp.rewards.models import PreferencePairSet, RewardModel
from webapp.rewards.parsing import parse_pairs


@transaction.atomic
def pair_set_import(*, project, name: str, content: str, user=None) -> PreferencePairSet:
    """Parse a JSONL file of pairs and store it; PairImportError (with line numbers) stores nothing."""
    pairs = parse_pairs(content)
    if PreferencePairSet.objects.filter(project=project, name=name).exists():
        raise PairImportError([(0, f"a set of pairs named {name!r} already exists in this project")])
    pair_set = PreferencePairSet(project=project, name=name, pairs=pairs, pair_count=len(pairs), created_by=user)
    try:
        pair_set.full_clean()
    except ValidationError as exc:
        raise PairImportError([(0, "; ".join(exc.messages))]) from exc
    pair_set.save()
    return pair_set


def reward_model_register(*, run, path: str, metrics: dict) -> RewardModel:
    """The RewardModel row of a finished reward-model run (idempotent: one per training run)."""
    config = run.config
    name = run.name
    if RewardModel.objects.filter(project_id=run.project_id, name=name).exclude(training_run=run).exists():
        name = f"{run.name} (run {run.pk})"
    reward_model, _ = RewardModel.objects.update_or_create(
        training_run=run,
        defaults={"project_id": run.project_id, "name": name, "backbone": config["backbone"],
                  "ensemble_size": config["ensemble_size"], "path": str(path),
                  "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}},
    )
    return reward_model
