"""Writes on reward models and their training data."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from webapp.rewards.errors import PairImportError, RewardModelError
from webapp.rewards.models import PreferencePairSet, RewardModel
from webapp.rewards.parsing import parse_pairs
from webapp.rewards.selectors import runs_using_pair_set, runs_using_reward_model


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


def reward_model_delete_check(*, reward_model: RewardModel) -> None:
    """RewardModelError if a queued or running run uses the reward model as a reward: its worker
    loads the model's folder when it starts or resumes."""
    active = [run for run in runs_using_reward_model(reward_model=reward_model) if not run.is_terminal]
    if active:
        named = ", ".join(f"“{run.name}” ({run.status})" for run in active[:5])
        more = f" and {len(active) - 5} more" if len(active) > 5 else ""
        raise RewardModelError(
            f"{len(active)} active run{'s' if len(active) != 1 else ''} use{'s' if len(active) == 1 else ''} "
            f"it as a reward: {named}{more}; wait for them to finish or cancel them first", field="runs")


def reward_model_delete(*, reward_model_id: int, with_training_run: bool = False) -> None:
    """Delete a reward model, and with ``with_training_run`` the run that trained it.

    The model's files lie in its training run's folder. Without the run they stay there until
    the run is deleted, but no new run can name them (``webapp.experiments.local_folders``
    accepts only registered reward models); with it, ``run_delete`` removes the run's metrics,
    checkpoints and folder once the transaction commits. Finished runs that used the model keep
    their configs and results. RewardModelError (see ``reward_model_delete_check``) and the
    run's own refusals (RunError) change nothing; RewardModel.DoesNotExist for a missing model.
    """
    from webapp.experiments.services import run_delete  # noqa: PLC0415 (experiments imports rewards lazily)

    with transaction.atomic():
        # The row lock orders this against launches, which share-lock the rows they use (see
        # local_folders.reward_models_lock): a launch that commits first is seen below.
        reward_model = RewardModel.objects.select_for_update().get(pk=reward_model_id)
        reward_model_delete_check(reward_model=reward_model)
        run_id = reward_model.training_run_id
        reward_model.delete()
        if with_training_run and run_id is not None:
            run_delete(run_id=run_id)


def pair_set_delete_check(*, pair_set: PreferencePairSet) -> None:
    """RewardModelError if a queued or running reward-model run trains on the pairs: its worker
    reads them when it starts or resumes."""
    active = [run for run in runs_using_pair_set(pair_set=pair_set) if not run.is_terminal]
    if active:
        named = ", ".join(f"“{run.name}” ({run.status})" for run in active[:5])
        raise RewardModelError(f"{len(active)} active run{'s' if len(active) != 1 else ''} train"
                               f"{'s' if len(active) == 1 else ''} on it: {named}; wait for them to finish "
                               "or cancel them first", field="runs")


def pair_set_delete(*, pair_set_id: int) -> None:
    """Delete a set of imported pairs. Finished runs that trained on it keep their configs and
    reward models. RewardModelError (see ``pair_set_delete_check``) changes nothing;
    PreferencePairSet.DoesNotExist for a missing set. The row lock orders this against launches,
    which share-lock the set they train on (``webapp.rewards.selectors.preference_source_check``)."""
    with transaction.atomic():
        pair_set = PreferencePairSet.objects.select_for_update().defer("pairs").get(pk=pair_set_id)
        pair_set_delete_check(pair_set=pair_set)
        pair_set.delete()
