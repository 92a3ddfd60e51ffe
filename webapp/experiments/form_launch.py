"""Launching a run, or a sweep of runs, from a launch page's form, once per page shown
(``LaunchForm.submission_key``)."""

from __future__ import annotations

from webapp.experiments.errors import IdempotencyKeyReused, IdempotentOutcomeGone, RunError
from webapp.experiments.models import Run
from webapp.experiments.services import run_create_once
from webapp.experiments.sweeps import (
    SWEEP_FIELD,
    SweepLaunch,
    sweep_launch,
    sweep_launched_under,
)


def form_launch(request, form, *, kind: str, **inputs) -> Run | None:
    """The run the valid ``form`` launches (``inputs``: dataset, policy, eval_dataset), or None with
    the refusal put on the form's field. A submission that repeats the page's key with the same
    values (a double click on Launch, a resent POST) answers the run the first one launched; with
    other values (the page kept by Back, then edited) it launches nothing and asks to launch again."""
    key = form.cleaned_data.get("submission_key") or None
    try:
        run, _created = run_create_once(
            project=request.project, user=request.user, idempotency_key=key,
            name=form.cleaned_data["name"], kind=kind, config=form.config(), **inputs)
    except IdempotencyKeyReused:
        form.renew_submission_key()
        if sweep_launched_under(project=request.project, user=request.user, submission_key=key):
            form.add_error(None, "This page already launched a sweep. Nothing else was launched: press Launch "
                                 "again to launch this run too.")
            return None
        earlier = Run.objects.filter(project=request.project, created_by=request.user, creation_key=key).first()
        form.add_error(None, f"This page already launched {f'run “{earlier.name}”' if earlier else 'a run'}, with "
                             "other settings. Nothing else was launched: press Launch again to launch this one too.")
        return None
    except RunError as exc:
        form.add_input_error(exc.field, exc.message)
        return None
    return run


def form_sweep_launch(request, form, *, kind: str, **inputs) -> SweepLaunch | None:
    """The sweep the valid ``form`` launches (its ``sweep_axes``), or None with the refusal on the
    form: on the sweep's fields, or on the field the service names. The page's submission key
    covers the whole sweep: a resent page answers the runs the first launched (``sweep_launch``)."""
    try:
        return sweep_launch(
            project=request.project, user=request.user, submission_key=form.cleaned_data.get("submission_key") or None,
            name=form.cleaned_data["name"], kind=kind, config=form.config(), axes=form.cleaned_data["sweep_axes"],
            tag=form.cleaned_data.get("sweep_tag") or "", sampled_generations=form.sweep_sampled_generations(),
            **inputs)
    except IdempotentOutcomeGone as exc:
        form.renew_submission_key()
        form.add_error(None, f"This page launched this sweep already, but {exc.deleted} deleted since. Nothing was "
                             "launched: press Launch again to launch the sweep anew.")
        return None
    except IdempotencyKeyReused:
        form.renew_submission_key()
        form.add_error(None, "This page already launched runs with other settings. Nothing else was launched: "
                             "press Launch again to launch this sweep too.")
        return None
    except RunError as exc:
        if exc.field in (SWEEP_FIELD, "sweep_tag"):
            form.add_error(exc.field, exc.message)
        else:
            form.add_input_error(exc.field, exc.message)
        return None
