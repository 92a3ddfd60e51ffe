"""Reward-model pages: the list with metrics, launching a training run, importing pairs, deleting. Thin."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from webapp.core.deletion import deletion_attempt
from webapp.core.tar_stream import tar_download_response
from webapp.experiments.errors import RunError
from webapp.experiments.form_launch import form_launch
from webapp.experiments.forms import RewardModelRunForm
from webapp.experiments.models import RunKind
from webapp.experiments.run_copy import copy_fill, reward_model_run_copy
from webapp.experiments.selectors import reward_model_runs, run_deletion_summary
from webapp.projects.access import research_required
from webapp.rewards.errors import PairImportError, RewardModelError
from webapp.rewards.exports import pair_set_download_response
from webapp.rewards.forms import PairImportForm, PairsFromRunForm
from webapp.rewards.models import PreferencePairSet, RewardModel
from webapp.rewards.selectors import (
    label_count,
    pair_set_get,
    pair_set_list,
    reward_model_download_name,
    reward_model_folder,
    reward_model_get,
    reward_model_list,
    runs_using_pair_set,
    runs_using_reward_model,
)
from webapp.rewards.services import (
    pair_set_delete,
    pair_set_delete_check,
    pair_set_from_run,
    pair_set_import,
    reward_model_delete,
    reward_model_delete_check,
)


def _context(request, **extra) -> dict:
    return {"project": request.project, "membership": request.membership, **extra}


@research_required
def reward_model_list_page(request, project_id: int):
    project = request.project
    return render(request, "rewards/list.html", _context(
        request, reward_models=reward_model_list(project=project), runs=reward_model_runs(project=project)[:20],
        pair_sets=pair_set_list(project=project), label_count=label_count(project=project)))


@research_required
def reward_model_train_page(request, project_id: int):
    project = request.project
    form = RewardModelRunForm(request.POST or None, pair_sets=pair_set_list(project=project),
                              label_count=label_count(project=project))
    copy = copy_fill(form, project=project, query=request.GET, kind=RunKind.REWARD_MODEL, read=reward_model_run_copy)
    if request.method == "POST" and form.is_valid():
        run = form_launch(request, form, kind=RunKind.REWARD_MODEL)
        if run is not None:
            return redirect("experiments:detail", project.id, run.id)
    status = 400 if request.method == "POST" else 200
    return render(request, "rewards/train.html", _context(request, form=form, copy=copy), status=status)


@research_required
def pair_import_page(request, project_id: int):
    """GET: the form. POST: import the pairs and go to the reward-model page, or the form again
    with what is wrong (the name, or each bad line) at 400, nothing stored."""
    form = PairImportForm(request.POST or None, request.FILES or None)
    line_errors = []
    if request.method == "POST" and form.is_valid():
        try:
            pair_set_import(project=request.project, name=form.cleaned_data["name"],
                            content=form.cleaned_data["file"], user=request.user)
        except PairImportError as exc:
            line_errors = exc.errors
        except RewardModelError as exc:  # the name
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            return redirect("rewards:train", request.project.id)
    return render(request, "rewards/import_pairs.html", _context(request, form=form, line_errors=line_errors),
                  status=400 if request.method == "POST" else 200)


@research_required
@require_http_methods(["GET", "POST"])
def reward_model_delete_page(request, project_id: int, reward_model_id: int):
    """GET: what deleting the reward model removes and keeps, with the choice to delete its
    training run too. POST: delete (``with_training_run=on`` for the run) and go back to the list."""
    reward_model = reward_model_get(project=request.project, reward_model_id=reward_model_id)
    run = reward_model.training_run
    with_run = request.POST.get("with_training_run") == "on" and run is not None
    outcome = deletion_attempt(
        request, check=lambda: reward_model_delete_check(reward_model=reward_model),
        delete=lambda: reward_model_delete(reward_model_id=reward_model.id, with_training_run=with_run),
        refusals=(RewardModelError, RunError), gone=RewardModel.DoesNotExist,
        done=f"Deleted reward model “{reward_model.name}”{' and its training run' if with_run else ''}.")
    if outcome.deleted:
        return redirect("rewards:list", request.project.id)
    return render(request, "rewards/delete.html", _context(
        request, reward_model=reward_model, error=outcome.error, training_run=run,
        run_summary=run_deletion_summary(run=run) if run else None,
        users=runs_using_reward_model(reward_model=reward_model)), status=outcome.status)


@research_required
@require_http_methods(["GET"])
def reward_model_download_page(request, project_id: int, reward_model_id: int):
    """The reward model's folder as a tar, the same as ``GET /api/v1/reward-models/<id>/download/``."""
    reward_model = reward_model_get(project=request.project, reward_model_id=reward_model_id)
    folder = reward_model_folder(reward_model=reward_model)
    return tar_download_response(folder, reward_model_download_name(reward_model=reward_model))


@research_required
@require_http_methods(["GET", "POST"])
def pair_set_delete_page(request, project_id: int, pair_set_id: int):
    """GET: what deleting the imported pairs removes and which runs trained on them. POST: delete."""
    pair_set = pair_set_get(project=request.project, pair_set_id=pair_set_id)
    outcome = deletion_attempt(
        request, check=lambda: pair_set_delete_check(pair_set=pair_set),
        delete=lambda: pair_set_delete(pair_set_id=pair_set.id), refusals=(RewardModelError,),
        gone=PreferencePairSet.DoesNotExist, done=f"Deleted the imported pairs “{pair_set.name}”.")
    if outcome.deleted:
        return redirect("rewards:list", request.project.id)
    return render(request, "rewards/delete_pairs.html", _context(
        request, pair_set=pair_set, error=outcome.error, runs=runs_using_pair_set(pair_set=pair_set)[:20]),
        status=outcome.status)


@research_required
@require_http_methods(["GET"])
def pair_set_download_page(request, project_id: int, pair_set_id: int):
    """The pairs of a set (imported or built from a run) as JSONL, to train on elsewhere."""
    pair_set = pair_set_get(project=request.project, pair_set_id=pair_set_id)
    return pair_set_download_response(request.project, pair_set)


@research_required
def pairs_from_run_page(request, project_id: int):
    """Preference pairs built from a run's completions and rewards (no file needed)."""
    form = PairsFromRunForm(request.POST or None, project=request.project)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            pair_set = pair_set_from_run(project=request.project, run=data["run"], name=data["name"],
                                         step_min=data["step_min"], step_max=data["step_max"], rule=data["rule"],
                                         min_gap=data["min_gap"], max_pairs_per_group=data["max_pairs_per_group"],
                                         user=request.user)
        except RewardModelError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Built {pair_set.pair_count} pair{'s' if pair_set.pair_count != 1 else ''} "
                                      f"“{pair_set.name}” from run “{data['run'].name}”.")
            return redirect("rewards:train", request.project.id)
    status = 400 if request.method == "POST" else 200
    return render(request, "rewards/pairs_from_run.html", _context(request, form=form), status=status)
