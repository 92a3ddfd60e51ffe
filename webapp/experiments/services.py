"""Writes on runs: creation, the status state machine, metrics, trajectories, checkpoints."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from webapp.experiments.errors import IllegalTransition, RunError
from webapp.experiments.models import Run, RunKind, RunStatus
from webapp.experiments.run_config import parse_config_json, validate_config


@transaction.atomic
def run_create(
    *,
    project,
    user,
    name: str,
    kind: str,
    config,
    dataset=None,
    policy=None,
) -> Run:
    """Validate and store a queued run. Nothing is stored when any input is bad."""
    if kind not in RunKind.values:
        raise RunError(f"unknown kind {kind!r}; choose one of {', '.join(RunKind.values)}", field="kind")
    if not name.strip():
        raise RunError("a run needs a name", field="name")
    if dataset is not None and dataset.project_id != project.id:
        raise RunError("the dataset belongs to another project", field="dataset")
    if policy is not None and policy.project_id != project.id:
        raise RunError("the policy belongs to another project", field="policy")
    config = validate_config(kind, parse_config_json(config))
    run = Run(project=project, created_by=user, name=name.strip(), kind=kind, config=config,
              dataset=dataset, policy=policy)
    run.full_clean()
    run.save()
    return run


def run_transition(*, run_id: int, to: str, **fields) -> Run:
    """Move a run to status `to` under a row lock; IllegalTransition if the machine forbids it.

    Timestamps follow the status: started_at on the first start, finished_at on a terminal one.
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if not run.can_transition(to):
            raise IllegalTransition(f"a {run.status} run cannot become {to}", field="status")
        now = timezone.now()
        run.status = to
        if to == RunStatus.RUNNING and run.started_at is None:
            run.started_at = now
        if run.is_terminal:
            run.finished_at = now
        for name, value in fields.items():
            setattr(run, name, value)
        run.save()
    return run
