"""The label admin shows a label's review (rejected when, by whom, why) but cannot change it:
editing rejected_at there changed whether the label counts without its task's label_count.
Rejecting and restoring go through the review services (the pages, the API)."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_task, make_user
from webapp.feedback.models import ComparisonTask, PreferenceLabel
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
            "time_spent_ms": label.time_spent_ms, "submission_key": label.submission_key,
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
