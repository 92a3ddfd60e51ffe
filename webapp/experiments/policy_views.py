"""Policy pages: the list, registering one, deleting one. Thin."""

from __future__ import annotations

from django.contrib import messages
from django.db import IntegrityError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from webapp.core.deletion import deletion_attempt
from webapp.core.query import query_id
from webapp.experiments.errors import PolicyError, PolicyInUse
from webapp.experiments.models import PolicyModel
from webapp.experiments.policies import policy_create, policy_delete, policy_delete_check
from webapp.experiments.policy_forms import PolicyForm
from webapp.experiments.selectors import (
    checkpoints_to_start_from,
    policy_get,
    policy_list,
    policy_registered_alike,
    policy_runs,
)
from webapp.projects.access import research_required


def _context(request, **extra) -> dict:
    return {"project": request.project, "membership": request.membership, **extra}


@research_required
def policy_list_page(request, project_id: int):
    return render(request, "experiments/policy_list.html",
                  _context(request, policies=policy_list(project=request.project)))


@research_required
@require_http_methods(["GET", "POST"])
def policy_new_page(request, project_id: int):
    """Register a policy. ``?checkpoint=<id>`` (the run page's link) comes chosen."""
    initial = {"source": PolicyModel.Source.BUILTIN}
    chosen = query_id(request.GET.get("checkpoint", ""))
    checkpoints = checkpoints_to_start_from(project=request.project)
    if chosen is not None:
        initial = {"source": PolicyModel.Source.CHECKPOINT, "checkpoint": chosen}
        checkpoint = next((c for c in checkpoints if c.id == chosen), None)
        if checkpoint is not None:  # a name to start from: the run's, at the step
            initial["name"] = f"{checkpoint.run.name}@{checkpoint.step}"[:120]
    form = PolicyForm(request.POST or None, initial=initial, staff=request.user.is_staff, checkpoints=checkpoints)
    if request.method == "POST" and form.is_valid():
        asked = {"name": form.cleaned_data["name"], "source": form.cleaned_data["source"],
                 "reference": form.reference(), "checkpoint_id": form.checkpoint_id()}
        try:
            policy = policy_create(project=request.project, user=request.user, **asked)
        except (PolicyError, IntegrityError) as exc:  # IntegrityError: a concurrent registration took the name
            # The same registration sent again (a double click on Register) is the one already made.
            policy = (policy_registered_alike(project=request.project, user=request.user, **asked)
                      if isinstance(exc, IntegrityError) or exc.field == "name" else None)
            if policy is None and isinstance(exc, IntegrityError):
                form.add_error("name", "a policy with this name already exists in this project")
            elif policy is None:
                form.add_error(form.field_for_error(exc.field), exc.message)
        if policy is not None:
            messages.success(request, f"Registered policy “{policy.name}”.")
            return redirect("policies:list", request.project.id)
    status = 400 if request.method == "POST" else 200
    return render(request, "experiments/policy_new.html", _context(request, form=form), status=status)


@research_required
@require_http_methods(["GET", "POST"])
def policy_delete_page(request, project_id: int, policy_id: int):
    """GET: what deleting the policy removes, or the runs that keep it. POST: delete it."""
    policy = policy_get(project=request.project, policy_id=policy_id)
    outcome = deletion_attempt(
        request, check=lambda: policy_delete_check(policy=policy),
        delete=lambda: policy_delete(policy_id=policy.id), refusals=(PolicyInUse,),
        gone=PolicyModel.DoesNotExist, done=f"Deleted policy “{policy.name}”.")
    if outcome.deleted:
        return redirect("policies:list", request.project.id)
    return render(request, "experiments/policy_delete.html", _context(
        request, policy=policy, error=outcome.error, runs=policy_runs(policy=policy)[:20]), status=outcome.status)
