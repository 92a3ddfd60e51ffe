import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from webapp.core.downloads import attachment_response
from webapp.core.parquet_stream import CONTENT_TYPE as PARQUET_CONTENT_TYPE
from webapp.core.query import query_id
from webapp.experiments.export_filters import ExportFilterError, export_filters
from webapp.feedback import exports, selectors, services
from webapp.feedback.errors import (
    FeedbackError,
    LabelConflict,
    SubmissionChanged,
    TaskFilled,
)
from webapp.feedback.export_filters import PreferenceExportFilterSerializer
from webapp.feedback.forms import (
    CriterionFormSet,
    GoldForm,
    HeadToHeadForm,
    LabelForm,
    LabelRejectForm,
    RubricForm,
    TaskImportForm,
    TasksFromRunForm,
    criteria_from_formset,
)
from webapp.feedback.head_to_head import comparison_tasks_head_to_head_outcome
from webapp.feedback.labelling import UNDO_WINDOW_S
from webapp.feedback.models import PreferenceLabel
from webapp.feedback.parsing import TaskImportError
from webapp.projects.access import member_required, research_required


def _page(request, template: str, status: int = 200, **context):
    return render(request, template, {"project": request.project, "membership": request.membership, **context},
                  status=status)


# ---------------------------------------------------------------- annotation workspace

def _undo_offer(request, label_id=None, label=None) -> dict | None:
    """The caller's label still inside the undo window, with the seconds left."""
    if label is None and query_id(label_id) is not None:
        label = PreferenceLabel.objects.filter(pk=label_id, annotator=request.user, task__project=request.project).first()
    if label is None:
        return None
    left = UNDO_WINDOW_S - (timezone.now() - label.created_at).total_seconds()
    return {"label": label, "seconds_left": int(left)} if left > 1 else None


def _score_field(position: int, criterion, data) -> dict:
    """One score <select>: its options as (text, selected), made here rather than in the template,
    where each of the dozens of options per task cost a filter call and number localisation."""
    name = f"score_{position}_{criterion.pk}"
    current = str(data.get(name, ""))
    low, high = criterion.bounds
    return {"criterion": criterion, "name": name,
            "options": [(str(v), str(v) == current) for v in range(low, high + 1)]}


def _workspace(request, *, task, form=None, undo=None, error=None, status=200, fresh=False, progress=None,
               criteria_by_version=None, undone=False):
    """The workspace for `task` (None: queue empty). `fresh`: just assigned, so not labelled yet.

    `progress`: the counter, when the caller has it already (``task_next_with_progress``).
    `criteria_by_version`: {rubric version id: ``criteria_current`` of a task made with it}
    that the caller has read; a task with one of those versions scores on the same criteria.
    `undone`: the caller's label on `task` was just withdrawn (said to screen readers).
    """
    if progress is None:
        progress = selectors.annotation_progress(project=request.project, annotator=request.user)
    context = {"task": task, "undo": undo, "error": error, "progress": progress, "undone": undone,
               "undo_window_s": UNDO_WINDOW_S}
    if task is None:
        context["skipped"] = selectors.skipped_still_open(project=request.project, annotator=request.user)
    if task is not None:
        known = criteria_by_version or {}
        criteria = (known[task.rubric_version_id] if task.rubric_version_id in known
                    else selectors.criteria_current(task=task))
        candidates = selectors.workspace_candidates(task=task)
        already = (None if fresh else
                   PreferenceLabel.objects.filter(task=task, annotator=request.user).only("id", "created_at").first())
        if already is not None and context["undo"] is None:
            context["undo"] = _undo_offer(request, label=already)  # the way to change it, while it lasts
        form = form or LabelForm(initial=LabelForm.new_initial(), k=len(candidates), criteria=criteria)
        data = form.data if form.is_bound else {}
        context.update({
            "form": form, "criteria": criteria, "k": len(candidates),
            "rubric_name": criteria[0].rubric_name if criteria else "",
            "already_labelled": already,
            "candidates": [{
                "c": c,
                "rank": data.get(f"rank_{c.position}", c.position + 1),
                "scores": [_score_field(c.position, cr, data) for cr in criteria],
            } for c in candidates],
            "choice": data.get("choice", ""),
            "strength": data.get("strength", ""),
            "ranked": bool(data.get("ranked")),
            "submission_key": data.get("submission_key") or form.initial.get("submission_key"),
            "rendered_at": data.get("rendered_at") or form.initial.get("rendered_at"),
        })
    template = "feedback/partials/_workspace.html" if request.htmx else "feedback/annotate.html"
    return render(request, template, {"project": request.project, "membership": request.membership, **context},
                  status=status)


@member_required
def my_rejected_labels_page(request, project_id: int):
    """The caller's own labels that a researcher rejected in review, each with its task's prompt,
    the caller's ranking, who rejected it, when and why: the reviewer's word back to the annotator."""
    labels = selectors.rejected_labels_of(project=request.project, annotator=request.user)
    page = Paginator(labels, 50).get_page(request.GET.get("page"))
    return _page(request, "feedback/my_rejected_labels.html", page=page)


@member_required
def annotate_page(request, project_id: int):
    """The next task for the caller (their held one first), or a done message."""
    nxt = services.task_next_with_progress(project=request.project, annotator=request.user)
    return _workspace(request, task=nxt.task, undo=_undo_offer(request, label_id=request.GET.get("last")), fresh=True,
                      progress=nxt.progress)


@member_required
def annotate_task_page(request, project_id: int, task_id: int):
    """One task's workspace (after an undo, say); a regular task that others filled meanwhile,
    which would refuse the caller's label, gives way to their next task, saying why."""
    task = selectors.task_get(project=request.project, task_id=task_id)
    if selectors.task_filled_without(task=task, annotator=request.user):
        wanted = f"{task.required_labels} label{'s' if task.required_labels != 1 else ''}"
        messages.info(request, f"Task {task.id} already has the {wanted} it wants, from other annotators; "
                               "here is your next task.")
        return redirect("feedback:annotate", request.project.id)
    return _workspace(request, task=task)


def _after_write(request, *, undo_label=None, criteria_by_version=None, error=None):
    """Next task, swapped in by htmx; a plain POST is redirected (POST/redirect/GET). ``error``:
    a refusal to say above it (a flash message after the redirect)."""
    if not request.htmx:
        url = reverse("feedback:annotate", args=[request.project.id])
        if error:
            messages.error(request, error)
        return redirect(f"{url}?last={undo_label.pk}" if undo_label else url)
    nxt = services.task_next_with_progress(project=request.project, annotator=request.user)
    response = _workspace(request, task=nxt.task, undo=_undo_offer(request, label=undo_label), fresh=True,
                          progress=nxt.progress, criteria_by_version=criteria_by_version, error=error)
    response["HX-Push-Url"] = reverse("feedback:annotate", args=[request.project.id])
    return response


@require_POST
@member_required
def label_submit_view(request, project_id: int, task_id: int):
    task = selectors.task_get(project=request.project, task_id=task_id)
    criteria = selectors.criteria_current(task=task)
    known = {task.rubric_version_id: criteria}  # the next task is most often from the same import
    form = LabelForm(request.POST, k=len(task.candidates.all()), criteria=criteria)
    if not form.is_valid():
        errors = "; ".join(f"{'' if field == '__all__' else form[field].label + ': '}{' '.join(errs)}"
                           for field, errs in form.errors.items())
        return _workspace(request, task=task, form=form, criteria_by_version=known,
                          error=f"Nothing was saved: {errors}")
    data = form.cleaned_data
    try:
        label = services.label_submit(task=task, annotator=request.user, ranking=data["ranking"],
                                      both_bad=data["both_bad"], critique=data["critique"], scores=data["scores"],
                                      time_spent_ms=data["time_spent_ms"], submission_key=data["submission_key"],
                                      criteria=criteria, strength=data["strength"])
    except TaskFilled as exc:  # the task is done: the refusal is said over the next task, not this one again
        return _after_write(request, criteria_by_version=known, error=f"Nothing was saved: {_said_to_annotator(exc)}")
    except FeedbackError as exc:
        return _workspace(request, task=task, form=form, criteria_by_version=known,
                          error=f"Nothing was saved: {_said_to_annotator(exc)}")
    return _after_write(request, undo_label=label, criteria_by_version=known)


def _said_to_annotator(exc: FeedbackError) -> str:
    """The refusal in the workspace's words (the API's name the submission key, which an annotator never sees)."""
    if isinstance(exc, SubmissionChanged):
        return (f"this task was saved already (label {exc.label.pk}) with another choice, which stands; "
                "to change it, undo it within 30 s of saving")
    if isinstance(exc, LabelConflict):
        return f"you have labelled this task already (label {exc.label.pk}); your first label stands"
    if isinstance(exc, TaskFilled) and exc.held:
        who = "another annotator, who holds its last open slot" if exc.held == 1 else \
            "other annotators, who hold its open slots"
        return f"task {exc.task_id} is being labelled by {who}; it has left your queue"
    if isinstance(exc, TaskFilled):
        wanted = f"{exc.required_labels} label{'s' if exc.required_labels != 1 else ''}"
        return (f"task {exc.task_id} already has the {wanted} it wants, from other annotators while it was open "
                "here; it has left your queue")
    return exc.message


@require_POST
@member_required
def task_skip_view(request, project_id: int, task_id: int):
    task = selectors.task_get(project=request.project, task_id=task_id)
    services.assignment_skip(task=task, annotator=request.user)
    return _after_write(request)


@require_POST
@member_required
def tasks_unskip_view(request, project_id: int):
    """The caller's skipped tasks come back to their queue; the next task is shown."""
    services.assignments_unskip(project=request.project, annotator=request.user)
    return _after_write(request)


@require_POST
@member_required
def label_undo_view(request, project_id: int, label_id: int):
    if not PreferenceLabel.objects.filter(pk=label_id, task__project=request.project).exists():
        raise Http404("No such label.")
    try:
        task = services.label_undo(label_id=label_id, annotator=request.user)
    except FeedbackError as exc:
        if request.htmx:  # said in the swapped workspace; a flash message would say it again on the next page
            nxt = services.task_next_with_progress(project=request.project, annotator=request.user)
            return _workspace(request, task=nxt.task, error=exc.message, progress=nxt.progress)
        messages.error(request, exc.message)
        return redirect("feedback:annotate", request.project.id)
    if not request.htmx:
        messages.success(request, f"Your label on task {task.id} was withdrawn; label it again.")
        return redirect("feedback:annotate_task", request.project.id, task.id)
    return _workspace(request, task=task, undone=True)


# ---------------------------------------------------------------- rubrics (researchers)

@research_required
def rubric_list_page(request, project_id: int):
    return _page(request, "feedback/rubric_list.html", rubrics=selectors.rubric_list(project=request.project))


@research_required
def rubric_create_page(request, project_id: int):
    form = RubricForm(request.POST or None)
    formset = CriterionFormSet(request.POST or None, prefix="criteria")
    error = None
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        try:
            rubric = services.rubric_create(project=request.project, name=form.cleaned_data["name"],
                                            description=form.cleaned_data["description"],
                                            criteria=criteria_from_formset(formset), user=request.user)
        except FeedbackError as exc:
            error = exc.message
        else:
            return redirect("feedback:rubric_detail", request.project.id, rubric.id)
    return _page(request, "feedback/rubric_form.html", form=form, formset=formset, error=error, rubric=None)


@research_required
def rubric_detail_page(request, project_id: int, rubric_id: int):
    rubric = selectors.rubric_get(project=request.project, rubric_id=rubric_id)
    return _page(request, "feedback/rubric_detail.html", rubric=rubric,
                 versions=selectors.rubric_versions(rubric=rubric))


@research_required
def rubric_edit_page(request, project_id: int, rubric_id: int):
    rubric = selectors.rubric_get(project=request.project, rubric_id=rubric_id)
    latest = rubric.latest_version()
    initial = [{"name": c.name, "description": c.description, "weight": c.weight, "scale": c.scale}
               for c in latest.criteria.order_by("position")] if latest else []
    form = RubricForm(request.POST or None, initial={"name": rubric.name, "description": rubric.description})
    # Bound without `initial`: rows left as they were must not read as "unchanged" and drop out.
    formset = (CriterionFormSet(request.POST, prefix="criteria") if request.method == "POST"
               else CriterionFormSet(prefix="criteria", initial=initial))
    error = None
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        try:
            version = services.rubric_update(rubric=rubric, name=form.cleaned_data["name"],
                                             description=form.cleaned_data["description"],
                                             criteria=criteria_from_formset(formset), user=request.user)
        except FeedbackError as exc:
            error = exc.message
        else:
            messages.success(request, f"Saved; annotators now score on version {version.number}.")
            return redirect("feedback:rubric_detail", request.project.id, rubric.id)
    return _page(request, "feedback/rubric_form.html", form=form, formset=formset, error=error, rubric=rubric)


# ---------------------------------------------------------------- tasks (researchers)

@research_required
def task_list_page(request, project_id: int):
    page = Paginator(selectors.task_list(project=request.project), 50).get_page(request.GET.get("page"))
    page.object_list = selectors.tasks_with_compared_runs(page.object_list)
    return _page(request, "feedback/task_list.html", page=page)


@research_required
def task_import_page(request, project_id: int):
    """GET: the form. POST: import the tasks and go to their list, or the form again with what is
    wrong (a field, or each bad line) at 400, nothing stored."""
    form = TaskImportForm(request.POST or None, request.FILES or None, project=request.project)
    line_errors, error = [], None
    if request.method == "POST" and form.is_valid():
        try:
            tasks = services.comparison_tasks_import_jsonl(
                project=request.project, content=form.cleaned_data["file"],
                required_labels=form.cleaned_data["required_labels"], rubric=form.cleaned_data["rubric"],
                user=request.user)
        except TaskImportError as exc:
            line_errors = exc.errors
        except FeedbackError as exc:
            error = exc.message
        else:
            messages.success(request, f"Imported {len(tasks)} comparison tasks.")
            return redirect("feedback:tasks", request.project.id)
    return _page(request, "feedback/task_import.html", status=400 if request.method == "POST" else 200, form=form,
                 line_errors=line_errors, error=error)


@research_required
def task_from_run_page(request, project_id: int):
    """GET: the form. POST: make the tasks and go to their list, or the form again with what is
    wrong (a field, or the run's groups) at 400, nothing made."""
    runs = selectors.run_choices(project=request.project)
    # Bound on any POST: an empty one names the fields it lacks rather than showing a blank form.
    form = TasksFromRunForm(request.POST if request.method == "POST" else None, project=request.project, runs=runs)
    error = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            tasks = services.comparison_tasks_from_run(
                project=request.project, run=d["run"], step_min=d["step_min"], step_max=d["step_max"], k=d["k"],
                selection=d["selection"], max_tasks=d["max_tasks"], required_labels=d["required_labels"],
                rubric=d["rubric"], seed=d["seed"])
        except FeedbackError as exc:
            error = exc.message
        else:
            messages.success(request, f"Created {len(tasks)} comparison tasks from {d['run'].name}.")
            return redirect("feedback:tasks", request.project.id)
    return _page(request, "feedback/task_from_run.html", status=400 if request.method == "POST" else 200, form=form,
                 error=error, has_runs=runs.exists())


@research_required
def task_head_to_head_page(request, project_id: int):
    """Blind comparisons of two runs' answers to the same prompts. ``?a=<run>&b=<run>`` come chosen.
    A POST that makes nothing (a bad field, no prompt left to compare) shows the form again at 400."""
    runs = selectors.run_choices(project=request.project)
    initial = {name: query_id(request.GET.get(key, "")) for name, key in (("run_a", "a"), ("run_b", "b"))}
    form = HeadToHeadForm(request.POST if request.method == "POST" else None, project=request.project, runs=runs,
                          initial={k: v for k, v in initial.items() if v is not None})
    error = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            outcome = comparison_tasks_head_to_head_outcome(
                project=request.project, run_a=d["run_a"], run_b=d["run_b"], max_tasks=d["max_tasks"],
                required_labels=d["required_labels"], rubric=d["rubric"], seed=d["seed"])
        except FeedbackError as exc:
            error = exc.message
        else:
            skipped = (f" Skipped {outcome.skipped_identical} prompt(s) whose two answers were the same text."
                       if outcome.skipped_identical else "")
            messages.success(request, f"Created {len(outcome.tasks)} blind comparisons of {d['run_a'].name} and "
                                      f"{d['run_b'].name}.{skipped}")
            return redirect("feedback:tasks", request.project.id)
    return _page(request, "feedback/task_head_to_head.html", status=400 if request.method == "POST" else 200,
                 form=form, error=error, has_runs=runs.exists())


@research_required
def task_detail_page(request, project_id: int, task_id: int):
    task = selectors.task_get(project=request.project, task_id=task_id)
    form = GoldForm(request.POST or None,
                    initial={"gold_ranking": json.dumps(task.gold_ranking) if task.gold_ranking else ""})
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            services.comparison_task_set_gold(task=task, gold_ranking=form.cleaned_data["gold_ranking"])
        except FeedbackError as exc:
            error = exc.message
        else:
            return redirect("feedback:task_detail", request.project.id, task.id)
    return _page(request, "feedback/task_detail.html", task=task, candidates=selectors.workspace_candidates(task=task),
                 labels=selectors.task_labels(task=task), gold_form=form, error=error,
                 reject_form=LabelRejectForm(auto_id=False))  # one per label row: no id repeated


# ---------------------------------------------------------------- label review (researchers)

@require_POST
@research_required
def label_reject_view(request, project_id: int, label_id: int):
    """Reject a label (it stays stored, counted nowhere); back to its task's page."""
    label = selectors.label_get(project=request.project, label_id=label_id)
    form = LabelRejectForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Label {label.pk} was not rejected: the reason is longer than 500 characters.")
    else:
        try:
            services.label_reject(label_id=label.pk, project=request.project, by=request.user,
                                  reason=form.cleaned_data["reason"])
        except FeedbackError as exc:
            messages.error(request, f"Label {label.pk} was not rejected: {exc.message}.")
        else:
            messages.success(request, f"Label {label.pk} was rejected: it no longer counts, and the task wants "
                                      "another label.")
    return redirect("feedback:task_detail", request.project.id, label.task_id)


@require_POST
@research_required
def label_restore_view(request, project_id: int, label_id: int):
    """Restore a rejected label (it counts again); back to its task's page."""
    label = selectors.label_get(project=request.project, label_id=label_id)
    try:
        services.label_restore(label_id=label.pk, project=request.project, by=request.user)
    except FeedbackError as exc:
        messages.error(request, f"Label {label.pk} was not restored: {exc.message}.")
    else:
        messages.success(request, f"Label {label.pk} was restored: it counts again.")
    return redirect("feedback:task_detail", request.project.id, label.task_id)


@research_required
def annotator_reject_page(request, project_id: int, annotator_id: int):
    """GET: how many of the annotator's labels would be rejected. POST: reject them all."""
    annotator = selectors.label_annotator_get(project=request.project, annotator_id=annotator_id)
    form = LabelRejectForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            n = services.annotator_labels_reject(project=request.project, annotator_id=annotator.pk, by=request.user,
                                                 reason=form.cleaned_data["reason"])
        except FeedbackError as exc:
            error = exc.message
        else:
            messages.success(request, f"Rejected {n} label{'s' if n != 1 else ''} of {annotator.username}: "
                                      "they no longer count, and their tasks want other labels.")
            return redirect("feedback:quality", request.project.id)
    return _page(request, "feedback/annotator_reject.html", annotator=annotator, form=form, error=error,
                 counted=selectors.annotator_labels_counted(project=request.project, annotator_id=annotator.pk))


# ---------------------------------------------------------------- quality and export (researchers)

@research_required
def quality_page(request, project_id: int):
    return _page(request, "feedback/quality.html", report=selectors.quality_report(project=request.project),
                 total_reward=selectors.TOTAL_REWARD)


def _jsonl_response(lines, filename: str) -> StreamingHttpResponse:
    return attachment_response(lines, filename=filename, content_type="application/jsonl; charset=utf-8")


@research_required
def export_preferences(request, project_id: int):
    """TRL's preference pairs; ``?ties=1`` flags ties, ``?strength_margins=0.33,0.67,1`` adds each
    pair's margin from its label's strength (a bad value: a 400 page naming it, nothing downloaded)."""
    include_ties = request.GET.get("ties") in {"1", "true", "yes"}
    try:
        params = export_filters(PreferenceExportFilterSerializer, request.GET)
    except ExportFilterError as exc:
        return render(request, "feedback/export_error.html",
                      {"project": request.project, "membership": request.membership, "error": exc}, status=400)
    margins = params.get("strength_margins")
    suffix = ("-with-ties" if include_ties else "") + ("-with-margins" if margins else "")
    return _jsonl_response(exports.preference_pairs_jsonl(project=request.project, include_ties=include_ties,
                                                           strength_margins=margins),
                           f"{request.project.slug}-preferences{suffix}.jsonl")


@research_required
def export_labels(request, project_id: int):
    return _jsonl_response(exports.raw_labels_jsonl(project=request.project), f"{request.project.slug}-labels.jsonl")


@research_required
def export_labels_parquet(request, project_id: int):
    return attachment_response(exports.raw_labels_parquet(project=request.project),
                               filename=f"{request.project.slug}-labels.parquet", content_type=PARQUET_CONTENT_TYPE)
