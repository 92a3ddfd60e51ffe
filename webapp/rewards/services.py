"""Writes on reward models and their training data."""

from __future__ import annotations

import json
import math
import tempfile

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from webapp.core.deletion import first_few
from webapp.core.json_sql import json_column_set
from webapp.core.line_errors import LineErrors
from webapp.core.names import name_problem, name_strip
from webapp.core.uploads import UploadText
from webapp.rewards.errors import PairImportError, RewardModelError
from webapp.rewards.models import PreferencePairSet, RewardModel
from webapp.rewards.parsing import MAX_PAIRS, check_pair_count, iter_pairs
from webapp.rewards.selectors import runs_using_pair_set, runs_using_reward_model


@transaction.atomic
def pair_set_import(*, project, name: str, content: str | UploadText, user=None) -> PreferencePairSet:
    """Parse a JSONL file of pairs and store it; stores nothing on PairImportError (bad lines, with
    their numbers) or RewardModelError on ``name`` (a name refused or taken, as for a set built
    from a run).

    The set's pairs are one JSON array in one row. The file is read a line at a time and each
    good pair written as JSON text to a temporary file, not kept as a dict; the row is saved with
    its first pair and then given the whole array from the file (``json_column_set``), so an
    import holds a line's pairs at a time, not the parsed set and its serialisation beside it."""
    name = name_strip(name)
    if problem := name_problem(name):
        raise RewardModelError(f"the name {problem}", field="name")
    errors = LineErrors()
    with tempfile.TemporaryFile() as spool:
        count, first, has_chat_prompt, has_margin = 0, None, False, False
        spool.write(b"[")
        for pair in iter_pairs(content, errors):
            count += 1
            if errors or count > MAX_PAIRS:  # refused in the end: only counted from here on
                continue
            if first is None:
                first = pair
            else:
                spool.write(b", ")  # json.dumps's separator, as the JSONField writes a list
            spool.write(json.dumps(pair).encode())
            has_chat_prompt = has_chat_prompt or isinstance(pair["prompt"], list)
            has_margin = has_margin or "margin" in pair
        spool.write(b"]")
        check_pair_count(count, errors)
        if PreferencePairSet.objects.filter(project=project, name=name).exists():
            raise RewardModelError(f"a set of pairs named {name!r} already exists in this project", field="name")
        pair_set = PreferencePairSet(project=project, name=name, pairs=[first], pair_count=count, created_by=user,
                                     has_chat_prompt=has_chat_prompt, has_margin=has_margin)
        try:
            pair_set.full_clean()
        except ValidationError as exc:
            if "name" in getattr(exc, "error_dict", {}):
                raise RewardModelError("; ".join(exc.message_dict["name"]), field="name") from exc
            raise PairImportError([(0, "; ".join(exc.messages))]) from exc
        try:
            with transaction.atomic():
                pair_set.save()
        except IntegrityError as exc:  # an import at the same time took the name after the checks above
            raise RewardModelError(f"a set of pairs named {name!r} already exists in this project",
                                   field="name") from exc
        json_column_set(PreferencePairSet._meta.db_table, "pairs", pair_set.pk, spool)
    return PreferencePairSet.objects.defer("pairs").get(pk=pair_set.pk)


def _pair_set(*, project, name: str, pairs: list[dict], user) -> PreferencePairSet:
    """A new set of pairs (unsaved), with what a download needs to know before its first line."""
    return PreferencePairSet(project=project, name=name, pairs=pairs, pair_count=len(pairs), created_by=user,
                             has_chat_prompt=any(isinstance(pair["prompt"], list) for pair in pairs),
                             has_margin=any("margin" in pair for pair in pairs))


def reward_model_register(*, run, path: str, metrics: dict) -> RewardModel:
    """The RewardModel row of a finished reward-model run (idempotent: one per training run).
    Metrics that are not finite numbers are left out, as the run's metric points leave them:
    a training that diverged reports a NaN loss, which a JSON column refuses (on PostgreSQL the
    insert failed and the worker's task with it, leaving the run running)."""
    config = run.config
    name = run.name
    if RewardModel.objects.filter(project_id=run.project_id, name=name).exclude(training_run=run).exists():
        name = f"{run.name} (run {run.pk})"
    reward_model, _ = RewardModel.objects.update_or_create(
        training_run=run,
        defaults={"project_id": run.project_id, "name": name, "backbone": config["backbone"],
                  "ensemble_size": config["ensemble_size"], "path": str(path),
                  "metrics": {k: v for k, v in metrics.items()
                              if isinstance(v, (int, float)) and math.isfinite(v)}},
    )
    return reward_model


def reward_model_delete_check(*, reward_model: RewardModel) -> None:
    """RewardModelError if a queued or running run uses the reward model as a reward: its worker
    loads the model's folder when it starts or resumes."""
    active = [run for run in runs_using_reward_model(reward_model=reward_model) if not run.is_terminal]
    if active:
        named = first_few([f"“{run.name}” ({run.status})" for run in active], len(active))
        raise RewardModelError(
            f"{len(active)} active run{'s' if len(active) != 1 else ''} use{'s' if len(active) == 1 else ''} "
            f"it as a reward: {named}; wait for them to finish or cancel them first", field="runs")


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
    """RewardModelError if a queued or running reward-model, DPO or SFT run trains on the pairs: its worker
    reads them when it starts or resumes."""
    active = [run for run in runs_using_pair_set(pair_set=pair_set) if not run.is_terminal]
    if active:
        named = first_few([f"“{run.name}” ({run.status})" for run in active], len(active))
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


MAX_PAIRS_PER_GROUP = 28  # every pair of 8 completions


def pair_set_from_run(*, project, run, name: str, step_min: int, step_max: int, rule: str = "reward",
                      min_gap: float = 0.0, max_pairs_per_group: int = 4, user=None) -> PreferencePairSet:
    """A set of preference pairs from the run's trajectories levelled by a rule (see
    ``webapp.rewards.rule_pairs``). RewardModelError naming the field stores nothing.

    The pairs carry no margin: the gap between two completions' rewards orders them (and
    ``min_gap`` filters them) but is not made a Bradley-Terry margin, since rewards are on any
    scale (a length penalty, a 0-100 judge) where a margin is a gap in reward-model logits,
    bounded by ``MAX_PAIR_MARGIN``; a reward-model run gives every such pair its ``margin``
    setting. So a set from a run never holds a margin the trainer refuses, whatever its rewards."""
    from webapp.experiments.models import Trajectory
    from webapp.rewards.rule_pairs import Completion, rule_pairs, rules_available

    if run.project_id != project.pk:
        raise RewardModelError("the run belongs to another project", field="run")
    name = name_strip(name)
    if problem := name_problem(name):
        raise RewardModelError(f"the name {problem}", field="name")
    if step_min < 0 or step_max < step_min:
        raise RewardModelError("the step range must go from a step ≥ 0 up to a later or equal step",
                               field="step_max")
    if not min_gap >= 0:
        raise RewardModelError("must be 0 or more", field="min_gap")
    if not 1 <= max_pairs_per_group <= MAX_PAIRS_PER_GROUP:
        raise RewardModelError(f"must be between 1 and {MAX_PAIRS_PER_GROUP}", field="max_pairs_per_group")
    trajectories = (Trajectory.objects.filter(run=run, step__gte=step_min, step__lte=step_max)
                    .select_related("prompt").order_by("step", "group_index", "sample_index"))
    completions = [Completion(group=(t.step, t.group_index), sample=t.sample_index,
                              prompt=(t.prompt.engine_prompt() if t.prompt is not None
                                      else t.prompt_messages or t.prompt_text),
                              text=t.completion, reward=t.reward,
                              rewards=t.rewards if isinstance(t.rewards, dict) else {})
                   for t in trajectories]
    if not completions:
        raise RewardModelError(f"the run recorded no completions in steps {step_min}–{step_max}", field="step_min")
    if rule not in rules_available(completions):
        raise RewardModelError(f"no reward {rule!r} in these completions; choose one of "
                               f"{', '.join(rules_available(completions))}", field="rule")
    pairs = rule_pairs(completions, rule=rule, min_gap=min_gap, max_pairs_per_group=max_pairs_per_group)
    if not pairs:
        raise RewardModelError(f"no two completions of one prompt differ in {rule!r} by more than {min_gap:g}",
                               field="rule")
    if len(pairs) > MAX_PAIRS:
        raise RewardModelError(f"{len(pairs)} pairs; at most {MAX_PAIRS} in one set: narrow the steps",
                               field="step_max")
    with transaction.atomic():
        if PreferencePairSet.objects.filter(project=project, name=name).exists():
            raise RewardModelError(f"a set of pairs named {name!r} already exists in this project", field="name")
        pair_set = _pair_set(project=project, name=name, pairs=pairs, user=user)
        try:
            pair_set.full_clean()
        except ValidationError as exc:
            raise RewardModelError("; ".join(exc.messages), field="name") from exc
        pair_set.save()
    return pair_set
