"""Dataset pages: the list, one dataset's prompts, importing, deleting. Thin."""

import json

from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from webapp.core.deletion import deletion_attempt
from webapp.datasets.errors import DatasetError, DatasetImportError, DatasetInUse
from webapp.datasets.forms import DatasetImportForm
from webapp.datasets.models import PromptDataset
from webapp.datasets.selectors import dataset_get, dataset_list, dataset_runs, prompt_list
from webapp.datasets.services import dataset_delete, dataset_delete_check, dataset_import
from webapp.projects.access import research_required


@research_required
def dataset_list_page(request, project_id: int):
    return render(request, "datasets/list.html", {"project": request.project, "membership": request.membership,
                                                  "datasets": dataset_list(project=request.project)})


@research_required
def dataset_detail_page(request, project_id: int, dataset_id: int):
    dataset = dataset_get(project=request.project, dataset_id=dataset_id)
    page = Paginator(prompt_list(dataset=dataset), 50).get_page(request.GET.get("page"))
    # a prompt's other fields (a CSV's extra columns, a JSONL line's other keys), as JSON
    rows = [(p, json.dumps(p.metadata, ensure_ascii=False, sort_keys=True) if p.metadata else "") for p in page]
    return render(request, "datasets/detail.html", {"project": request.project, "membership": request.membership,
                                                    "dataset": dataset, "page": page, "rows": rows,
                                                    "with_metadata": any(m for _, m in rows)})


@research_required
def dataset_import_page(request, project_id: int):
    """GET: the form. POST: import the file and go to the dataset, or the form again with what is
    wrong (the field, or each bad line or row) at 400, nothing stored, as other refused forms."""
    form = DatasetImportForm(request.POST or None, request.FILES or None)
    line_errors, line_unit = [], "line"
    if request.method == "POST" and form.is_valid():
        filename, content = form.cleaned_data["file"]
        try:
            dataset = dataset_import(project=request.project, name=form.cleaned_data["name"], filename=filename,
                                     content=content, user=request.user,
                                     description=form.cleaned_data["description"])
        except DatasetError as exc:
            form.add_error(exc.field, exc.message)
        except DatasetImportError as exc:
            line_errors, line_unit = exc.errors, exc.unit
        else:
            return redirect("datasets:detail", request.project.id, dataset.id)
    return render(request, "datasets/import.html", {"project": request.project, "membership": request.membership,
                                                    "form": form, "line_errors": line_errors, "line_unit": line_unit},
                  status=400 if request.method == "POST" else 200)


@research_required
@require_http_methods(["GET", "POST"])
def dataset_delete_page(request, project_id: int, dataset_id: int):
    """GET: what deleting the dataset removes, or the runs that keep it. POST: delete it."""
    dataset = dataset_get(project=request.project, dataset_id=dataset_id)
    outcome = deletion_attempt(
        request, check=lambda: dataset_delete_check(dataset=dataset),
        delete=lambda: dataset_delete(dataset_id=dataset.id), refusals=(DatasetInUse,),
        gone=PromptDataset.DoesNotExist, done=f"Deleted dataset “{dataset.name}” with its prompts.")
    if outcome.deleted:
        return redirect("datasets:list", request.project.id)
    return render(request, "datasets/delete.html", {
        "project": request.project, "membership": request.membership, "dataset": dataset, "error": outcome.error,
        "prompt_count": prompt_list(dataset=dataset).count(), "runs": dataset_runs(dataset=dataset)[:20]},
        status=outcome.status)
