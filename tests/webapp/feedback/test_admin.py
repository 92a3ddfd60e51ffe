"""The label admin shows a label's review (rejected when, by whom, why) but cannot change it:
editing rejected_at there changed whether the label counts without its task's label_count.
Rejecting and restoring go through the review services (the pages, the API). Nor can the
admin change a task's label_count or the foreign keys that scope tasks, labels and
assignments (a label's task, a task's project), nor add or delete a label; nor what labels
point at: a task's candidates and a rubric version's criteria are shown, never edited."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_project, make_rubric, make_task, make_user
from webapp.feedback.models import (
    Assignment,
    Candidate,
    ComparisonTask,
    Criterion,
    CriterionScore,
    PreferenceLabel,
)
from webapp.feedback.services import label_reject, label_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = make_user()
    user.is_staff = user.is_superuser = True
    user.save()
    client.force_login(user)
    return user


def change_form(label: PreferenceLabel, **changes) -> dict:
    """What the label's admin change form posts, with ``changes`` over it."""
    rejected_at = timezone.localtime(label.rejected_at) if label.rejected_at else None
    data = {"task": label.task_id, "annotator": label.annotator_id, "ranking": "[[0], [1]]",
            "strength": label.strength or "", "critique": label.critique, "rubric_version": "",
            "time_spent_ms": "" if label.time_spent_ms is None else label.time_spent_ms,
            "submission_key": label.submission_key,
            "rejected_at_0": rejected_at.strftime("%Y-%m-%d") if rejected_at else "",
            "rejected_at_1": rejected_at.strftime("%H:%M:%S") if rejected_at else "",
            "rejected_by": label.rejected_by_id or "", "rejection_reason": label.rejection_reason,
            "scores-TOTAL_FORMS": 0, "scores-INITIAL_FORMS": 0, "scores-MIN_NUM_FORMS": 0,
            "scores-MAX_NUM_FORMS": 1000, "_save": "Save"}
    return {**data, **changes}


def label_count(task) -> int:
    return ComparisonTask.objects.get(pk=task.pk).label_count


def test_the_admin_cannot_reject_a_label(client, staff, project, annotator):
    task = make_task(project, required_labels=2)
    label = label_submit(task=task, annotator=annotator, ranking=[[0], [1]], submission_key=uuid.uuid4().hex)
    url = reverse("admin:feedback_preferencelabel_change", args=[label.pk])
    when = timezone.localtime(timezone.now() - timedelta(days=1))
    response = client.post(url, change_form(label, critique="edited by staff", rejected_at_0=when.strftime("%Y-%m-%d"),
                                            rejected_at_1=when.strftime("%H:%M:%S"), rejected_by=staff.pk,
                                            rejection_reason="staff said so"))
    assert response.status_code == 302, response.content.decode()[:3000]
    label.refresh_from_db()
    assert label.critique == "edited by staff"  # the form saves what it may change
    assert (label.rejected_at, label.rejected_by_id, label.rejection_reason) == (None, None, "")
    assert label_count(task) == 1


def test_the_admin_cannot_restore_a_rejected_label_and_shows_its_review(client, staff, project, annotator,
                                                                         researcher):
    task = make_task(project, required_labels=2)
    label = label_submit(task=task, annotator=annotator, ranking=[[0], [1]], submission_key=uuid.uuid4().hex)
    label = label_reject(label_id=label.pk, project=project, by=researcher, reason="<b>spam</b>")
    rejected_at = label.rejected_at
    assert label_count(task) == 0
    url = reverse("admin:feedback_preferencelabel_change", args=[label.pk])
    page = client.get(url).content.decode()
    assert 'name="rejected_at_0"' not in page and 'name="rejection_reason"' not in page
    assert "&lt;b&gt;spam&lt;/b&gt;" in page and "<b>spam</b>" not in page
    response = client.post(url, change_form(label, rejected_at_0="", rejected_at_1="", rejected_by="",
                                            rejection_reason=""))
    assert response.status_code == 302, response.content.decode()[:3000]
    label.refresh_from_db()
    assert (label.rejected_at, label.rejected_by_id, label.rejection_reason) == (rejected_at, researcher.pk,
                                                                                "<b>spam</b>")
    assert label_count(task) == 0


# ---------------------------------------------------------------- counts and foreign keys

def task_change_form(task: ComparisonTask, **changes) -> dict:
    """What the task's admin change form posts (its candidates as they are), with ``changes`` over it."""
    candidates = list(task.candidates.order_by("position"))
    data = {"prompt_text": task.prompt_text, "prompt_messages": "null", "required_labels": task.required_labels,
            "gold_ranking": "null", "candidates-TOTAL_FORMS": len(candidates),
            "candidates-INITIAL_FORMS": len(candidates), "candidates-MIN_NUM_FORMS": 0,
            "candidates-MAX_NUM_FORMS": 1000, "_save": "Save"}
    for i, c in enumerate(candidates):
        data |= {f"candidates-{i}-id": c.pk, f"candidates-{i}-task": task.pk, f"candidates-{i}-position": c.position,
                 f"candidates-{i}-text": c.text, f"candidates-{i}-metadata": "{}"}
    return {**data, **changes}


def test_the_task_admin_shows_its_count_and_project_but_cannot_change_them(client, staff, project, annotator):
    """A staff user set a task's label_count by hand (the queue then served a full task, or
    never a task that wanted labels) or moved it to another project with its labels."""
    task = make_task(project, required_labels=3)
    label_submit(task=task, annotator=annotator, ranking=[[0], [1]], submission_key=uuid.uuid4().hex)
    other = make_project()
    url = reverse("admin:feedback_comparisontask_change", args=[task.pk])
    page = client.get(url).content.decode()
    for field in ("label_count", "project", "source_run", "source_run_name", "rubric_version"):
        assert f'name="{field}"' not in page, field
    assert 'name="required_labels"' in page  # the overlap stays a setting
    assert '<div class="readonly">1</div>' in page  # the count, shown
    response = client.post(url, task_change_form(task, label_count=0, project=other.pk, required_labels=2,
                                                 source_run_name="forged"))
    assert response.status_code == 302, response.content.decode()[:3000]
    task.refresh_from_db()
    assert (task.label_count, task.project_id, task.source_run_name, task.required_labels) == (1, project.pk, "", 2)
    assert client.get(reverse("admin:feedback_comparisontask_add")).status_code == 403


def test_the_label_admin_cannot_move_a_label_to_another_task_or_annotator(client, staff, project, annotator,
                                                                          researcher):
    """Moving a label to another task left it counted in its first task's label_count, not in
    the second's; it could also move into another project's task."""
    task, second = make_task(project, required_labels=2), make_task(project, required_labels=2)
    label = label_submit(task=task, annotator=annotator, ranking=[[0], [1]], submission_key=uuid.uuid4().hex)
    url = reverse("admin:feedback_preferencelabel_change", args=[label.pk])
    page = client.get(url).content.decode()
    for field in ("task", "annotator", "rubric_version"):
        assert f'name="{field}"' not in page, field
    response = client.post(url, change_form(label, task=second.pk, annotator=researcher.pk,
                                            critique="edited by staff"))
    assert response.status_code == 302, response.content.decode()[:3000]
    label.refresh_from_db()
    assert (label.task_id, label.annotator_id, label.critique) == (task.pk, annotator.pk, "edited by staff")
    assert (label_count(task), label_count(second)) == (1, 0)


def test_the_label_admin_neither_adds_nor_deletes_labels(client, staff, project, annotator):
    """A label added or deleted here was not counted in, or out of, its task's label_count."""
    task = make_task(project, required_labels=2)
    label = label_submit(task=task, annotator=annotator, ranking=[[0], [1]], submission_key=uuid.uuid4().hex)
    assert client.get(reverse("admin:feedback_preferencelabel_add")).status_code == 403
    delete = reverse("admin:feedback_preferencelabel_delete", args=[label.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:feedback_preferencelabel_changelist")
    client.post(changelist, {"action": "delete_selected", "_selected_action": [label.pk], "post": "yes"})
    assert PreferenceLabel.objects.filter(pk=label.pk).exists() and label_count(task) == 1


def test_the_assignment_admin_cannot_move_an_assignment(client, staff, project, annotator, researcher):
    task, second = make_task(project, required_labels=2), make_task(project, required_labels=2)
    assignment = Assignment.objects.create(task=task, annotator=annotator,
                                           expires_at=timezone.now() + timedelta(minutes=30))
    url = reverse("admin:feedback_assignment_change", args=[assignment.pk])
    page = client.get(url).content.decode()
    assert 'name="task"' not in page and 'name="annotator"' not in page and 'name="status"' in page
    expires = timezone.localtime(assignment.expires_at)
    response = client.post(url, {"task": second.pk, "annotator": researcher.pk, "status": "active",
                                 "expires_at_0": expires.strftime("%Y-%m-%d"),
                                 "expires_at_1": expires.strftime("%H:%M:%S"), "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[:3000]
    assignment.refresh_from_db()
    assert (assignment.task_id, assignment.annotator_id) == (task.pk, annotator.pk)


def test_the_rubric_admins_show_their_project_and_number_read_only_and_add_none(client, staff, project):
    rubric = make_rubric(project)
    version = rubric.versions.get()
    page = client.get(reverse("admin:feedback_rubric_change", args=[rubric.pk])).content.decode()
    assert 'name="project"' not in page and 'name="name"' in page
    page = client.get(reverse("admin:feedback_rubricversion_change", args=[version.pk])).content.decode()
    assert 'name="rubric"' not in page and 'name="number"' not in page
    assert "Correct" in page and 'name="criteria-0-name"' not in page  # shown, not edited (below)
    for name in ("rubric", "rubricversion", "comparisontask", "assignment"):
        assert client.get(reverse(f"admin:feedback_{name}_add")).status_code == 403, name


# ---------------------------------------------------------------- what labels point at

def test_the_task_admin_shows_its_candidates_but_cannot_rewrite_reorder_add_or_delete_them(client, staff, project,
                                                                                          annotator):
    """A label says "B over A" by position: a candidate's text rewritten, or two positions
    swapped, made the stored label judge answers it never saw (and a head-to-head vote count for
    the other run, which its metadata names)."""
    task = make_task(project, completions=["<b>first</b>", "second"], required_labels=2)
    label_submit(task=task, annotator=annotator, ranking=[[1], [0]], submission_key=uuid.uuid4().hex)
    before = list(Candidate.objects.filter(task=task).order_by("pk").values_list("pk", "position", "text", "metadata"))
    url = reverse("admin:feedback_comparisontask_change", args=[task.pk])
    page = client.get(url).content.decode()
    for field in ("position", "text", "metadata", "DELETE"):
        assert f'name="candidates-0-{field}"' not in page, field
    assert "&lt;b&gt;first&lt;/b&gt;" in page and "<b>first</b>" not in page  # shown, as text
    [first, second] = before
    forged = task_change_form(task, **{
        "candidates-0-text": "rewritten", "candidates-0-position": 1, "candidates-0-metadata": '{"run": 999}',
        "candidates-0-DELETE": "on", "candidates-1-position": 0,
        "candidates-TOTAL_FORMS": 3, "candidates-2-task": task.pk, "candidates-2-position": 2,
        "candidates-2-text": "added", "candidates-2-metadata": "{}"})
    response = client.post(url, forged)
    assert response.status_code == 302, response.content.decode()[:3000]
    after = list(Candidate.objects.filter(task=task).order_by("pk").values_list("pk", "position", "text", "metadata"))
    assert after == before == [(first[0], 0, "<b>first</b>", {}), (second[0], 1, "second", {})]
    assert PreferenceLabel.objects.get(task=task).ranking == [[1], [0]]


def version_change_form(version, **changes) -> dict:
    """What a rubric version's admin change form posts (its criteria as they are), with ``changes`` over it."""
    criteria = list(version.criteria.order_by("position"))
    data = {"created_by": "", "criteria-TOTAL_FORMS": len(criteria), "criteria-INITIAL_FORMS": len(criteria),
            "criteria-MIN_NUM_FORMS": 0, "criteria-MAX_NUM_FORMS": 1000, "_save": "Save"}
    for i, c in enumerate(criteria):
        data |= {f"criteria-{i}-id": c.pk, f"criteria-{i}-version": version.pk, f"criteria-{i}-position": c.position,
                 f"criteria-{i}-name": c.name, f"criteria-{i}-description": c.description,
                 f"criteria-{i}-weight": c.weight, f"criteria-{i}-scale": c.scale}
    return {**data, **changes}


def test_the_rubric_version_admin_shows_its_criteria_but_cannot_change_add_or_delete_them(client, staff, project,
                                                                                          annotator):
    """Scores were given against a version's criteria: renamed, reweighted or put on another
    scale here, a stored 4 of "Clear" (1-5) read as, say, a 4 on a 0-1 "Concise"."""
    rubric = make_rubric(project)
    version = rubric.versions.get()
    task = make_task(project, rubric=rubric, required_labels=2)
    clear = version.criteria.get(name="Clear")
    label_submit(task=task, annotator=annotator, ranking=[[0], [1]], submission_key=uuid.uuid4().hex,
                 scores={0: {clear.pk: 4}})
    before = list(Criterion.objects.filter(version=version).order_by("pk").values_list(
        "pk", "position", "name", "description", "weight", "scale"))
    url = reverse("admin:feedback_rubricversion_change", args=[version.pk])
    page = client.get(url).content.decode()
    for field in ("position", "name", "description", "weight", "scale", "DELETE"):
        assert f'name="criteria-1-{field}"' not in page, field
    assert "Clear" in page and "Correct" in page
    forged = version_change_form(version, **{
        "criteria-1-name": "Concise", "criteria-1-scale": "binary", "criteria-1-weight": 99,
        "criteria-1-position": 0, "criteria-0-position": 1, "criteria-0-DELETE": "on",
        "criteria-TOTAL_FORMS": 3, "criteria-2-version": version.pk, "criteria-2-position": 2,
        "criteria-2-name": "Added", "criteria-2-weight": 1, "criteria-2-scale": "ten"})
    response = client.post(url, forged)
    assert response.status_code == 302, response.content.decode()[:3000]
    after = list(Criterion.objects.filter(version=version).order_by("pk").values_list(
        "pk", "position", "name", "description", "weight", "scale"))
    assert after == before and [c[2] for c in after] == ["Correct", "Clear"]
    assert list(CriterionScore.objects.values_list("criterion__name", "criterion__scale", "value")) == [
        ("Clear", "likert5", 4.0)]


def test_the_candidate_and_criterion_inlines_list_every_field_read_only(rf, staff):
    """What the pages above show, for each field of the two models: none is left editable."""
    from django.contrib.admin.sites import site

    from webapp.feedback.admin import CandidateInline, CriterionInline
    from webapp.feedback.models import RubricVersion

    request = rf.get("/")
    request.user = staff
    for inline, parent, model, link in ((CandidateInline, ComparisonTask, Candidate, "task"),
                                        (CriterionInline, RubricVersion, Criterion, "version")):
        admin = inline(parent, site)
        editable = {f.name for f in model._meta.fields if f.editable and not f.primary_key} - {link}
        assert editable and editable <= set(admin.get_readonly_fields(request)), inline
        assert not admin.has_add_permission(request, None) and not admin.has_delete_permission(request, None)


def test_the_task_admin_shows_its_prompt_and_gold_answer_but_cannot_change_them(client, staff, project, annotator):
    """The prompt is what the candidates answer and the labels judged them by; the gold ranking
    is what gold accuracy scores labels against. Rewritten here, a stored label judged another
    question, and annotators were scored against an answer nobody checked against the candidates
    (``comparison_task_set_gold``, on the task's page, does)."""
    messages = [{"role": "user", "content": "<i>Say hi.</i>"}]
    task = make_task(project, prompt_messages=messages, gold_ranking=[[1], [0]], required_labels=2)
    label_submit(task=task, annotator=annotator, ranking=[[1], [0]], submission_key=uuid.uuid4().hex)
    before = ComparisonTask.objects.values("prompt_text", "prompt_messages", "is_gold", "gold_ranking").get(pk=task.pk)
    assert before["is_gold"] and before["gold_ranking"] == [[1], [0]] and before["prompt_messages"] == messages
    url = reverse("admin:feedback_comparisontask_change", args=[task.pk])
    page = client.get(url).content.decode()
    for field in ("prompt_text", "prompt_messages", "is_gold", "gold_ranking"):
        assert f'name="{field}"' not in page, field
    assert "&lt;i&gt;Say hi.&lt;/i&gt;" in page and "<i>Say hi.</i>" not in page  # shown, as text
    response = client.post(url, task_change_form(
        task, prompt_text="Say bye.", prompt_messages='[{"role": "user", "content": "Say bye."}]',
        gold_ranking="[[0], [1]]", required_labels=3))  # is_gold left unticked, as if cleared
    assert response.status_code == 302, response.content.decode()[:3000]
    after = ComparisonTask.objects.values("prompt_text", "prompt_messages", "is_gold", "gold_ranking").get(pk=task.pk)
    assert after == before
    assert ComparisonTask.objects.get(pk=task.pk).required_labels == 3  # the form saves what it may change


def test_the_task_admin_lists_its_prompt_and_gold_answer_read_only_once_the_task_exists(rf, staff, project):
    from django.contrib.admin.sites import site

    task = make_task(project)
    admin = site._registry[ComparisonTask]
    request = rf.get("/")
    request.user = staff
    judged = {"prompt_text", "prompt_messages", "is_gold", "gold_ranking"}
    assert judged <= set(admin.get_readonly_fields(request, task))
    assert {"project", "label_count"} <= set(admin.get_readonly_fields(request, task))
    assert not judged & set(admin.get_readonly_fields(request, None))  # (the admin adds no task: 403 above)
    editable = {f.name for f in ComparisonTask._meta.fields if f.editable and not f.primary_key}
    assert editable - set(admin.get_readonly_fields(request, task)) == {"required_labels"}
