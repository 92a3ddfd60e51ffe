"""Writes on policies: register one a run can start from, delete one no run used.

A project member who drives experiments may register a built-in model, a tiny random model or a
checkpoint of one of the project's finished runs (to train further from it, or to start a
reward model from it). A local folder names a path on the workers' disks, which is not a
project member's to choose: only staff (the operators) may register one.
"""

from __future__ import annotations

import os

from django.db import transaction

from webapp.core.deletion import first_few
from webapp.core.json_input import storable_text_check
from webapp.core.locks import rows_for_share
from webapp.core.names import name_problem, name_strip
from webapp.experiments.errors import PolicyError, PolicyInUse
from webapp.experiments.models import TERMINAL_STATUSES, Checkpoint, PolicyModel, Run, RunKind

NAME_MAX = PolicyModel._meta.get_field("name").max_length
PATH_MAX = PolicyModel._meta.get_field("reference").max_length


def builtin_names() -> tuple[str, ...]:
    from workers.engine.builtin_models import BUILTIN_MODELS  # noqa: PLC0415 (light, no torch)

    return tuple(BUILTIN_MODELS)


def policy_create(*, project, user, name: str, source: str, reference: str = "",
                  checkpoint_id: int | None = None) -> PolicyModel:
    """Register a policy. PolicyError naming the field changes nothing.

    ``reference`` is the built-in model's name (``builtin``) or the folder (``path``, staff
    only); ``checkpoint_id`` is a checkpoint of a finished run of this project
    (``checkpoint``). A tiny model takes neither: its shape comes from the run's config.
    """
    name = _name_clean(name)
    reference = (reference or "").strip()
    if source not in PolicyModel.Source.values:
        raise PolicyError(f"unknown source {source!r}; choose one of {', '.join(PolicyModel.Source.values)}",
                          field="source")
    if source != PolicyModel.Source.CHECKPOINT and checkpoint_id is not None:
        raise PolicyError("only a policy whose source is 'checkpoint' names a checkpoint", field="checkpoint")
    if source == PolicyModel.Source.BUILTIN:
        if reference not in builtin_names():
            raise PolicyError(f"unknown built-in model {reference!r}; known: {', '.join(builtin_names())}",
                              field="reference")
    elif source == PolicyModel.Source.PATH:
        reference = _folder_clean(reference, user)
    elif reference:
        raise PolicyError(f"a {source} policy takes no reference", field="reference")
    with transaction.atomic():
        checkpoint = None
        if source == PolicyModel.Source.CHECKPOINT:
            checkpoint = _finished_checkpoint(project, checkpoint_id)
            reference = checkpoint.path
        if PolicyModel.objects.filter(project=project, name__iexact=name).exists():
            raise PolicyError(f"a policy named {name!r} already exists in this project", field="name")
        return PolicyModel.objects.create(project=project, name=name, source=source, reference=reference,
                                          checkpoint=checkpoint, created_by=user)


def policy_from_run_register(*, run: Run, step: int) -> PolicyModel:
    """The policy a DPO or SFT run trained: its checkpoint ``step``, registered in the run's project under
    the run's name (``"<name> (run <id>)"`` when a policy has that name already). Idempotent: the
    policy already made from that checkpoint is returned. Called by the worker as the run succeeds."""
    checkpoint = Checkpoint.objects.get(run=run, step=step)
    existing = PolicyModel.objects.filter(checkpoint=checkpoint).order_by("pk").first()
    if existing is not None:
        return existing
    name = run.name[:NAME_MAX]
    if PolicyModel.objects.filter(project_id=run.project_id, name__iexact=name).exists():
        name = f"{run.name[:NAME_MAX - 20]} (run {run.pk})"
    return PolicyModel.objects.create(project_id=run.project_id, name=name, source=PolicyModel.Source.CHECKPOINT,
                                      reference=checkpoint.path, checkpoint=checkpoint, created_by=run.created_by)


def _name_clean(name: str) -> str:
    name = name_strip(name)
    if not name:
        raise PolicyError("a policy needs a name", field="name")
    if problem := name_problem(name):
        raise PolicyError(f"the name {problem}", field="name")
    if len(name) > NAME_MAX:
        raise PolicyError(f"at most {NAME_MAX} characters, got {len(name)}", field="name")
    try:
        storable_text_check(name)
    except ValueError as exc:
        raise PolicyError(str(exc), field="name") from None
    return name


def _folder_clean(path: str, user) -> str:
    if not getattr(user, "is_staff", False):
        raise PolicyError("only staff may register a local folder, since it names a path on the workers' "
                          "disks; register a built-in model or a checkpoint of one of this project's runs",
                          field="source")
    if not path:
        raise PolicyError("give the folder: an absolute path on the workers, saved with save_pretrained",
                          field="reference")
    try:
        storable_text_check(path)
    except ValueError as exc:
        raise PolicyError(str(exc), field="reference") from None
    if not os.path.isabs(path):
        raise PolicyError(f"must be an absolute path, got {path!r}", field="reference")
    path = os.path.normpath(path)
    if len(path) > PATH_MAX:
        raise PolicyError(f"at most {PATH_MAX} characters", field="reference")
    return path


def _finished_checkpoint(project, checkpoint_id) -> Checkpoint:
    """The checkpoint, its run share-locked until the transaction ends: ``run_delete`` takes
    the run FOR UPDATE and then looks for policies built from its checkpoints, so it either
    sees this policy or has deleted the checkpoint before it is looked up here."""
    if checkpoint_id is None:
        raise PolicyError("choose the checkpoint to start from", field="checkpoint")
    checkpoint = Checkpoint.objects.filter(pk=checkpoint_id, run__project=project).select_related("run").first()
    if checkpoint is None:
        raise PolicyError(f"no checkpoint {checkpoint_id} in this project", field="checkpoint")
    if checkpoint.run.kind not in (RunKind.POLICY, RunKind.DPO, RunKind.SFT):
        raise PolicyError(f"checkpoint {checkpoint_id} belongs to a {checkpoint.run.get_kind_display()} run, "
                          "not a policy, DPO or SFT run", field="checkpoint")
    locked = rows_for_share(Run.objects.filter(pk=checkpoint.run_id).values_list("status"))
    if not locked or not Checkpoint.objects.filter(pk=checkpoint.pk).exists():
        raise PolicyError(f"no checkpoint {checkpoint_id} in this project", field="checkpoint")
    [(status,)] = locked
    if status not in TERMINAL_STATUSES:
        # A running run's older checkpoints are pruned as it goes.
        raise PolicyError(f"the run “{checkpoint.run.name}” is {status}; its checkpoints can be used "
                          "once it has finished", field="checkpoint")
    return checkpoint


def policy_delete_check(*, policy: PolicyModel) -> None:
    """PolicyInUse if runs trained from the policy (a run keeps the policy it started from), or
    if a queued or running run judges with it (its worker loads the judge's folder when it
    starts or resumes)."""
    from webapp.experiments.local_folders import runs_judging_with  # noqa: PLC0415 (imports this app's models)

    runs = policy.runs.order_by("-id")
    named = [f"“{name}”" for name in runs.values_list("name", flat=True)[:5]]
    if named:
        total = runs.count()
        active = runs.exclude(status__in=TERMINAL_STATUSES).exists()
        then = ("cancel the ones still queued or running, then delete them once they have stopped" if active
                else "delete those runs first")
        raise PolicyInUse(f"{total} run{'s' if total != 1 else ''} used it: {first_few(named, total)}; "
                          f"a run keeps its policy, so {then}")
    judging = [run for run in runs_judging_with(policy=policy) if not run.is_terminal]
    if judging:
        named = first_few([f"“{run.name}” ({run.status})" for run in judging], len(judging))
        raise PolicyInUse(f"{len(judging)} active run{'s' if len(judging) != 1 else ''} judge"
                          f"{'s' if len(judging) == 1 else ''} with it: {named}; wait for them to finish "
                          "or cancel them first")


def policy_delete(*, policy_id: int) -> None:
    """Delete a policy no run used (its checkpoint, if any, stays with its run).
    PolicyInUse changes nothing; PolicyModel.DoesNotExist for a missing policy.

    The row lock orders this against launches, which share-lock their policy
    (``webapp.experiments.services.run_create``).
    """
    with transaction.atomic():
        policy = PolicyModel.objects.select_for_update().get(pk=policy_id)
        policy_delete_check(policy=policy)
        policy.delete()
