"""Run pages: list, launch, the live run page (status, charts, trajectories), cancel, delete. Thin."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling, retarget

from webapp.core.deletion import deletion_attempt
from webapp.core.query import query_id
from webapp.core.tar_stream import folder_in_checkpoint_root, tar_download_response
from webapp.experiments.errors import RunError
from webapp.experiments.export_filters import (
    ExportFilterError,
    MetricExportFilterSerializer,
    TrajectoryExportFilterSerializer,
    export_filters,
)
from webapp.experiments.exports import (
    PARQUET_CONTENT_TYPE,
    export_response,
    run_metrics_csv,
    run_trajectories_jsonl,
    run_trajectories_parquet,
)
from webapp.experiments.form_launch import form_launch, form_sweep_launch
from webapp.experiments.forms import (
    DPORunForm,
    NewEvaluationForm,
    NewRunForm,
    SFTRunForm,
)
from webapp.experiments.metrics import metric_key_is_valid
from webapp.experiments.models import Run, RunKind
from webapp.experiments.run_compare import run_settings, settings_differences
from webapp.experiments.run_copy import (
    copy_fill,
    copy_url,
    offline_run_copy,
    policy_run_copy,
)
from webapp.experiments.run_list_filters import RunListFilterForm, RunNotesForm
from webapp.experiments.selectors import (
    HELD_OUT_VIEWS,
    artifact_list,
    checkpoint_get,
    checkpoint_list,
    comparison_runs,
    evaluation_columns,
    evaluation_results,
    held_out_answers,
    held_out_rows,
    held_out_scorer,
    held_out_steps,
    metric_clocks,
    metric_history_downsampled,
    metric_keys,
    metric_latest,
    policies_from_run,
    project_metric_keys,
    run_deletion_summary,
    run_get,
    run_list,
    step_choices,
    trajectory_groups,
    trajectory_steps,
)
from webapp.experiments.services import (
    run_cancel,
    run_delete,
    run_delete_check,
    run_notes_update,
)
from webapp.projects.access import research_required

CHART_MAX_POINTS = 1000
CHART_TIME_AXES = ("relative", "wall")  # the charts' x-axis besides steps
MAX_COMPARED_RUNS = 8


def _context(request, **extra) -> dict:
    return {"project": request.project, "membership": request.membership, **extra}


RUNS_PAGE = 50  # runs a page of the runs list
ARTIFACTS_PAGE = 50  # files a page of the run page's artifacts
COMPARE_CHOICES = 20  # runs the run page's Compare picker offers at once (newest of its kind, or found)


@research_required
def run_list_page(request, project_id: int):
    """The project's runs, newest first, a page at a time, filtered by name, kind and status, with a
    metric's latest value as a column to sort by; the table polls itself (keeping its page and
    filters) while a run it shows is active."""
    # a poll renders the table alone: it checks the chosen metric, not the list of every key
    keys = (project_metric_keys(project=request.project, only=request.GET.get("metric", ""))
            if request.htmx else project_metric_keys(project=request.project))
    filters = RunListFilterForm(request.GET, metric_keys=keys)
    filters.is_valid()
    chosen = filters.filters()
    listed = run_list(project=request.project, **chosen).prefetch_related("tags")
    page = Paginator(listed, RUNS_PAGE).get_page(request.GET.get("page"))
    runs = list(page.object_list)
    context = _context(request, runs=runs, page=page, any_active=any(not r.is_terminal for r in runs),
                       filters=filters, metric=chosen["metric"], ordered_by_metric=bool(chosen["metric_order"]),
                       poll_query=_page_query(request.GET, page.number),
                       previous_query=_page_query(request.GET, page.number - 1),
                       next_query=_page_query(request.GET, page.number + 1))
    if request.htmx:
        response = render(request, "experiments/partials/_run_table.html", context)
        return response if context["any_active"] else _stop_polling(response)
    return render(request, "experiments/list.html", context)


def _page_query(query, number: int, page: str = "page") -> str:
    """``?page=<number>`` (left out for page 1; ``page`` names the parameter) followed by the
    rest of ``query`` (the list's filters), as a link's query."""
    pairs = [(page, str(number))] if number > 1 else []
    pairs += [(name, value) for name, values in query.lists() if name != page for value in values]
    return "?" + urlencode(pairs) if pairs else ""


def _stop_polling(response):
    stop = HttpResponseStopPolling(response.content)
    stop["Content-Type"] = response["Content-Type"]
    return stop


@research_required
def run_new_page(request, project_id: int):
    return _launch_page(request, NewRunForm, RunKind.POLICY)


@research_required
def evaluation_new_page(request, project_id: int):
    return _launch_page(request, NewEvaluationForm, RunKind.EVALUATION)


@research_required
def dpo_new_page(request, project_id: int):
    """The New DPO run page: a policy and a pair set of the project; ``?policy=<id>`` comes chosen,
    ``?from=<run id>`` fills it with that DPO run's settings."""
    return _offline_launch_page(request, DPORunForm, RunKind.DPO, "experiments/new_dpo.html")


@research_required
def sft_new_page(request, project_id: int):
    """The New SFT run page: a policy and examples of the project; ``?policy=<id>`` comes chosen,
    ``?from=<run id>`` fills it with that SFT run's settings."""
    return _offline_launch_page(request, SFTRunForm, RunKind.SFT, "experiments/new_sft.html")


def _offline_launch_page(request, form_class, kind: str, template: str):
    chosen = query_id(request.GET.get("policy", ""))
    form = form_class(request.POST or None, project=request.project, initial={"policy": chosen} if chosen else None)
    copy = copy_fill(form, project=request.project, query=request.GET, kind=kind, read=offline_run_copy)
    if request.method == "POST" and form.is_valid() and (
            launched := _launched(request, form, kind=kind, policy=form.cleaned_data["policy"])):
        return launched
    status = 400 if request.method == "POST" else 200
    return render(request, template, _context(request, form=form, copy=copy), status=status)


def _launch_page(request, form_class, kind: str):
    """The New-run and New-evaluation pages: ``?policy=<id>`` (the Policies page's links) comes chosen;
    ``?from=<run id>`` fills the form with that run's settings."""
    from webapp.rewards.selectors import reward_models_ready

    chosen = query_id(request.GET.get("policy", ""))
    form = form_class(request.POST or None, project=request.project, initial={"policy": chosen} if chosen else None,
                      reward_models=reward_models_ready(project=request.project))
    copy = copy_fill(form, project=request.project, query=request.GET, kind=kind, read=policy_run_copy)
    if request.method == "POST" and form.is_valid() and (
            launched := _launched(request, form, kind=kind, dataset=form.cleaned_data["dataset"],
                                  policy=form.cleaned_data["policy"], eval_dataset=form.cleaned_data.get("eval_dataset"))):
        return launched
    status = 400 if request.method == "POST" else 200
    return render(request, "experiments/new.html",
                  _context(request, form=form, copy=copy, evaluation=kind == RunKind.EVALUATION), status=status)


def _launched(request, form, *, kind: str, **inputs):
    """The page after a valid form's launch: the run's, or for a sweep the runs list filtered by
    its tag; None when the launch was refused (the form says why)."""
    if form.cleaned_data.get("sweep_axes"):
        sweep = form_sweep_launch(request, form, kind=kind, **inputs)
        if sweep is None:
            return None
        count = len(sweep.runs)
        messages.success(request, f"The sweep launched {count} runs, tagged “{sweep.tag}”: tick them to compare."
                         if sweep.created else f"This sweep was launched already: its {count} runs, tagged “{sweep.tag}”.")
        return redirect(f"{reverse('experiments:list', args=[request.project.id])}?{urlencode({'tag': sweep.tag})}")
    run = form_launch(request, form, kind=kind, **inputs)
    return redirect("experiments:detail", request.project.id, run.id) if run is not None else None


@research_required
def run_detail_page(request, project_id: int, run_id: int, *, notes_form=None, notes_error: str = "",
                    artifact_error: str = "", status=200):
    run = run_get(project=request.project, run_id=run_id)
    picker = _compare_picker(request, run)
    if request.htmx and request.htmx.target == "compare-candidates":  # the picker's search, as you type
        return render(request, "experiments/partials/_compare_candidates.html", _context(request, run=run, **picker))
    from webapp.feedback.head_to_head import head_to_head_opponents, head_to_heads  # noqa: PLC0415 (feedback imports experiments)

    results = (evaluation_results(project=request.project, dataset_id=run.dataset_id, include=run.id)
               if run.kind == RunKind.EVALUATION else [])
    opponents = head_to_head_opponents(project=request.project, run=run)
    live = set(run_list(project=request.project).filter(pk__in=[i for i, _ in opponents]).values_list("id", flat=True))
    against = head_to_heads(project=request.project, run_id=run.id, other_ids=[i for i, _ in opponents])
    human = [{"run_id": other_id, "name": name, "live": other_id in live, "result": against[other_id]}
             for other_id, name in opponents]
    tags = [t.name for t in run.tags.all()]
    artifacts = Paginator(artifact_list(run=run), ARTIFACTS_PAGE).get_page(request.GET.get("artifacts_page"))
    notes_form = notes_form or RunNotesForm(initial={"name": run.name, "tags": ", ".join(tags),
                                                     "description": run.description})
    return render(request, "experiments/detail.html", _context(
        request, run=run, tags=tags, notes_form=notes_form, notes_error=notes_error,
        **picker,
        checkpoints=checkpoint_list(run=run), artifacts=artifacts, artifact_error=artifact_error,
        artifacts_previous_query=_page_query(request.GET, artifacts.number - 1, page="artifacts_page"),
        artifacts_next_query=_page_query(request.GET, artifacts.number + 1, page="artifacts_page"),
        artifact_max_bytes=settings.STEER_ARTIFACT_MAX_BYTES,
        config_json=json.dumps(run.config, indent=2), results=results, result_columns=evaluation_columns(results),
        human=human, trained_policies=policies_from_run(run=run) if run.registers_policy else [],
        copy_url=copy_url(run),
        metric_keys=metric_keys(run_ids=[run.id])), status=status)


def _compare_picker(request, run: Run) -> dict:
    """The run page's Compare picker: the runs ticked in the address (``?compare=``) and those
    offered beside them, the newest of the run's kind or, with ``?find=``, those of any kind whose
    name or a tag contains it; all of the run's project, ``COMPARE_CHOICES`` at most offered."""
    asked = request.GET.getlist("compare")[:MAX_COMPARED_RUNS]  # as _compare_ids reads them
    wanted = set(_compare_ids(asked, run))
    compared = list(run_list(project=request.project).filter(pk__in=wanted)) if wanted else []
    find = request.GET.get("find", "").strip()[:200]
    offered = list(comparison_runs(run=run, search=find, limit=COMPARE_CHOICES + 1))
    others = offered[:COMPARE_CHOICES]
    others += [r for r in compared if r not in others]  # asked for by the address: older, or of another kind
    # one count for an id of no run, of another project's run, or that is no id: nothing told apart
    missing = len(wanted) - len(compared) + sum(1 for raw in asked if query_id(raw) is None)
    return {"others": others, "compared_ids": {r.id for r in compared}, "compare_missing": missing,
            "compare_find": find, "compare_found": bool(offered), "compare_more": len(offered) > COMPARE_CHOICES,
            "compare_choices": COMPARE_CHOICES,
            "compare_offered": bool(others) or run_list(project=request.project).exclude(pk=run.pk).exists()}


@require_POST
@research_required
def run_notes_action(request, project_id: int, run_id: int):
    """Save the run's name, tags and description from its page; a refusal shows the page again
    with the form as sent and what is wrong (400), nothing saved."""
    run = run_get(project=request.project, run_id=run_id)
    form = RunNotesForm(request.POST)
    if form.is_valid():
        try:
            run_notes_update(run_id=run.id, project=request.project, name=form.cleaned_data["name"],
                             description=form.cleaned_data["description"], tags=form.cleaned_data["tags"])
        except RunError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        except Run.DoesNotExist:
            raise Http404("No such run.") from None
        else:
            messages.success(request, "Notes saved.")
            return redirect("experiments:detail", request.project.id, run.id)
    return run_detail_page(request, project_id, run_id, notes_form=form, notes_error="Nothing was saved.", status=400)


@research_required
def run_status_partial(request, project_id: int, run_id: int):
    """The status panel; htmx polls it every 2 s and is told to stop (286) once the run is over."""
    run = run_get(project=request.project, run_id=run_id)
    response = render(request, "experiments/partials/_run_status.html",
                      _context(request, run=run, checkpoints=checkpoint_list(run=run)))
    return _stop_polling(response) if run.is_terminal else response


def _compare_ids(raw_ids: list[str], run: Run) -> list[int]:
    """The ids among the first ``MAX_COMPARED_RUNS`` values of ``?compare=``, this run's left out
    (whose runs the caller may see is the query's business)."""
    ids = [query_id(raw) for raw in raw_ids[:MAX_COMPARED_RUNS]]
    return [i for i in ids if i is not None and i != run.id]


@research_required
def run_compare_page(request, project_id: int):
    """The runs ticked on the runs list (``?run=``, in the list's order), on the first one's page with
    the others overlaid on its charts; fewer than two, or more than the charts overlay, back to
    the list saying so."""
    ids = list(dict.fromkeys(i for i in (query_id(raw) for raw in request.GET.getlist("run")) if i is not None))
    runs = {r.id: r for r in run_list(project=request.project).filter(pk__in=ids)}
    chosen = [i for i in ids if i in runs]
    if len(chosen) < 2 or len(chosen) > MAX_COMPARED_RUNS + 1:
        messages.error(request, f"Tick from two to {MAX_COMPARED_RUNS + 1} runs to compare"
                                f"{f' ({len(chosen)} ticked)' if chosen else ''}.")
        return redirect("experiments:list", request.project.id)
    query = urlencode([("compare", i) for i in chosen[1:]])
    return redirect(f"{reverse('experiments:detail', args=[request.project.id, chosen[0]])}?{query}#charts")


@research_required
def run_chart_data(request, project_id: int, run_id: int):
    """JSON for the charts: every metric of the run (and of the runs to compare), downsampled."""
    run = run_get(project=request.project, run_id=run_id)
    wanted = list(dict.fromkeys(_compare_ids(request.GET.getlist("compare"), run)))
    compared = list(run_list(project=request.project).filter(pk__in=wanted)
                    .select_related("policy", "dataset", "eval_dataset"))
    others = {r.id: r.name for r in compared}
    run_ids = [run.id, *others]
    asked = request.GET.getlist("key")  # none: every key
    keys = [k for k in asked if metric_key_is_valid(k)]  # no metric is stored under the others
    series = (metric_history_downsampled(run_ids=run_ids, keys=keys, max_points=CHART_MAX_POINTS)
              if keys or not asked else [])
    # A time axis (?x=relative or ?x=wall) places each step at when it was recorded; relative time
    # counts from when a worker started the run, where one did.
    timed = request.GET.get("x") in CHART_TIME_AXES
    timing = ({"clocks": {str(rid): clock for rid, clock in metric_clocks(run_ids=run_ids).items()},
               "starts": {str(r.id): r.started_at.timestamp() if r.started_at else None for r in (run, *compared)}}
              if timed else {})
    return JsonResponse({
        "run": {"id": run.id, "name": run.name, "status": run.status, "terminal": run.is_terminal,
                "current_step": run.current_step, "total_steps": run.total_steps, "steps_planned": run.steps_planned,
                "step_unreported": run.step_unreported},
        "runs": {str(rid): name for rid, name in {run.id: run.name, **others}.items()},
        # Compared runs still going: the charts keep polling for them once this run is over.
        "compared_active": [str(r.id) for r in compared if not r.is_terminal],
        # Compared runs not found (deleted since the page showed them, or of no run of the project):
        # the page names them by the name it showed, rather than their curves vanishing unsaid.
        "compared_missing": [str(i) for i in wanted if i not in others],
        "latest": {str(k): v for k, v in metric_latest(run_ids=[run.id]).items()},
        "series": series,
        # The settings that differ between this run and the compared ones, in the order of "order".
        "differences": {"order": [str(r.id) for r in (run, *compared)],
                        "rows": settings_differences([run_settings(r) for r in (run, *compared)]) if compared else []},
        **timing,
    })


@research_required
@require_POST
def run_cancel_action(request, project_id: int, run_id: int):
    run = run_get(project=request.project, run_id=run_id)
    try:
        run = run_cancel(run_id=run.id)
    except RunError as exc:
        error = exc.message
    else:
        error = ""
    if request.htmx:
        return render(request, "experiments/partials/_run_status.html",
                      _context(request, run=run, checkpoints=checkpoint_list(run=run), cancel_error=error))
    return redirect("experiments:detail", request.project.id, run.id)


@research_required
@require_http_methods(["GET", "POST"])
def run_delete_page(request, project_id: int, run_id: int):
    """GET: what deleting the run removes and keeps, and the button to do it (a page, so the
    confirmation works without JavaScript). POST: delete it and go back to the runs list."""
    run = run_get(project=request.project, run_id=run_id)
    outcome = deletion_attempt(
        request, check=lambda: run_delete_check(run=run), delete=lambda: run_delete(run_id=run.id),
        refusals=(RunError,), gone=Run.DoesNotExist,
        done=f"Deleted run “{run.name}” with its metrics, trajectories and checkpoints.")
    if outcome.deleted:
        return redirect("experiments:list", request.project.id)
    return render(request, "experiments/delete.html",
                  _context(request, run=run, summary=run_deletion_summary(run=run), error=outcome.error),
                  status=outcome.status)


@research_required
@require_http_methods(["GET"])
def run_checkpoint_download(request, project_id: int, run_id: int, checkpoint_id: int):
    """The checkpoint's folder as ``run-<id>-step-<n>.tar``, the same as
    ``GET /api/v1/checkpoints/<id>/download/``; 404 once its files are gone."""
    run = run_get(project=request.project, run_id=run_id)
    checkpoint = checkpoint_get(run=run, checkpoint_id=checkpoint_id)
    folder = folder_in_checkpoint_root(checkpoint.path, "The checkpoint's files are not on this server.")
    return tar_download_response(folder, f"run-{run.id}-step-{checkpoint.step}")


HELD_OUT_PAGE = 100  # prompts a page


@research_required
def run_held_out_page(request, project_id: int, run_id: int):
    """The held-out prompts' greedy answers at one evaluated step (the newest by default), each
    marked right or wrong, with the share of its samples that were right and whether it was
    right at the evaluation before; "wrong" and "changed" narrow the list."""
    run = run_get(project=request.project, run_id=run_id)
    steps = held_out_steps(run=run)
    chosen = query_id(request.GET.get("step", ""))
    step = chosen if chosen in steps else (steps[-1] if steps else None)
    show = request.GET.get("show", "all")
    show = show if show in HELD_OUT_VIEWS else "all"
    answers = held_out_answers(run=run, step=step, show=show) if step is not None else []
    page = Paginator(answers, HELD_OUT_PAGE).get_page(request.GET.get("page"))
    page.object_list = held_out_rows(page.object_list)
    previous = [s for s in steps if step is not None and s < step]
    return render(request, "experiments/held_out.html", _context(
        request, run=run, steps=steps, step=step, show=show, views=HELD_OUT_VIEWS, page=page,
        previous_step=previous[-1] if previous else None, scorer=held_out_scorer(run=run)))


@research_required
def run_trajectories_partial(request, project_id: int, run_id: int):
    """One step's groups: prompt, completions, per-reward values and advantage, sortable by reward.

    Without a step (or with one not stored) it shows the newest step; while the run is active the
    groups poll themselves, so "latest" follows the run and a chosen step keeps its place.
    """
    run = run_get(project=request.project, run_id=run_id)
    steps = trajectory_steps(run=run)
    chosen = query_id(request.GET.get("step", ""))
    follow_latest = chosen not in steps
    step = (steps[-1] if steps else None) if follow_latest else chosen
    order = request.GET.get("order", "reward")
    groups = trajectory_groups(run=run, step=step, order=order) if step is not None else []
    # A poll of the groups alone (their own element, so an open step picker is not replaced):
    # the groups and, in place, the picker's options; the whole section once there is none.
    poll = bool(request.htmx) and request.htmx.target == "trajectory-groups"
    context = _context(request, run=run, steps=steps, step=step, order=order, groups=groups, poll=poll,
                       follow_latest=follow_latest, step_options=step_choices(steps, step))
    if poll and steps:
        return render(request, "experiments/partials/_trajectory_groups.html", context)
    if request.htmx:
        response = render(request, "experiments/partials/_trajectories.html", context)
        return retarget(response, "#trajectories") if poll else response
    return render(request, "experiments/trajectories.html", context)


def _export(request, run, *, filters, write, what: str, content_type: str):
    """The run's download ``what``, filtered as the API's export is (``export_filters``); a bad
    filter is a 400 page naming the parameter."""
    try:
        params = export_filters(filters, request.GET)
    except ExportFilterError as exc:
        return render(request, "experiments/export_error.html", _context(request, run=run, error=exc), status=400)
    return export_response(write(run=run, **params), run=run, what=what, content_type=content_type)


@research_required
def run_trajectories_export(request, project_id: int, run_id: int):
    """The run's trajectories (all, or ``?step_min=&step_max=``) as a JSONL download."""
    run = run_get(project=request.project, run_id=run_id)
    return _export(request, run, filters=TrajectoryExportFilterSerializer, write=run_trajectories_jsonl,
                   what="trajectories.jsonl", content_type="application/jsonl")


@research_required
def run_trajectories_parquet_export(request, project_id: int, run_id: int):
    """The run's trajectories as a Parquet download: the JSONL's rows, typed, with the same filters."""
    run = run_get(project=request.project, run_id=run_id)
    return _export(request, run, filters=TrajectoryExportFilterSerializer, write=run_trajectories_parquet,
                   what="trajectories.parquet", content_type=PARQUET_CONTENT_TYPE)


@research_required
def run_metrics_export(request, project_id: int, run_id: int):
    """The run's metric points (every key, or each ``?key=``) as a CSV download, step,key,value."""
    run = run_get(project=request.project, run_id=run_id)
    return _export(request, run, filters=MetricExportFilterSerializer,
                   write=lambda run, key=None: run_metrics_csv(run=run, keys=key),
                   what="metrics.csv", content_type="text/csv")
