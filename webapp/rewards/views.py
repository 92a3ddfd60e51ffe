"""Reward-model pages: the list with metrics, launching a training run, importing pairs. Thin."""

from django.shortcuts import redirect, render

from webapp.experiments.errors import RunError
from webapp.experiments.forms import RewardModelRunForm
from webapp.experiments.models import RunKind
from webapp.experiments.selectors import reward_model_runs
from webapp.experiments.services import run_launch
from webapp.projects.access import research_required
from webapp.rewards.errors import PairImportError
from webapp.rewards.forms import PairImportForm
from webapp.rewards.selectors import label_count, pair_set_list, reward_model_list
from webapp.rewards.services import pair_set_import


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
    if request.method == "POST" and form.is_valid():
        try:
            run = run_launch(project=project, user=request.user, name=form.cleaned_data["name"],
                             kind=RunKind.REWARD_MODEL, config=form.config())
        except RunError as exc:
            form.add_error(form.field_for_error(exc.field), exc.message)
        else:
            return redirect("experiments:detail", project.id, run.id)
    status = 400 if request.method == "POST" else 200
    return render(request, "rewards/train.html", _context(request, form=form), status=status)


@research_required
def pair_import_page(request, project_id: int):
    form = PairImportForm(request.POST or None, request.FILES or None)
    line_errors = []
    if request.method == "POST" and form.is_valid():
        try:
            pair_set_import(project=request.project, name=form.cleaned_data["name"],
                            content=form.cleaned_data["file"], user=request.user)
        except PairImportError as exc:
            line_errors = exc.errors
        else:
            return redirect("rewards:train", request.project.id)
    return render(request, "rewards/import_pairs.html", _context(request, form=form, line_errors=line_errors))
