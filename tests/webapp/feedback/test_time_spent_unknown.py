"""A label sent without a time is not stored as an instant one.

The workspace's script measures the time spent and posts it; a page without JavaScript posts the
time it was rendered at, from which the form takes it. A label sent with neither (a form posted by
a script, the API without ``time_spent_ms``) was stored with 0 ms, which reads as a label given in
no time and made the quality page's labels per hour grow with every such label. Now its time is
taken from the annotator's active assignment of the task (since it was made, at most its expiry
window); without one it is null, unknown: shown as "—", null in the exports and the API, and left
out of labels per hour."""

import io
import json
import uuid
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_task
from tests.webapp.api.conftest import token_client
from tests.webapp.feedback.conftest import login
from webapp.feedback import exports
from webapp.feedback.labelling import ASSIGNMENT_TTL
from webapp.feedback.models import Assignment, PreferenceLabel
from webapp.feedback.selectors import quality_report
from webapp.feedback.services import label_submit, task_next_for_annotator
from webapp.feedback.templatetags.durations import duration_ms

pytestmark = pytest.mark.django_db


def assigned_ago(project, annotator, task, ago: timedelta) -> None:
    """``annotator`` takes ``task`` from the queue, as if ``ago`` ago (its expiry window kept)."""
    assert task_next_for_annotator(project=project, annotator=annotator) == task
    then = timezone.now() - ago
    Assignment.objects.filter(task=task, annotator=annotator).update(assigned_at=then, expires_at=then + ASSIGNMENT_TTL)


def post_form(client, project, task, **data):
    """The label form posted without annotate.js's time_spent_ms (and here without rendered_at)."""
    return client.post(reverse("feedback:submit", args=[project.id, task.id]),
                       {"choice": "a", "submission_key": uuid.uuid4().hex, "time_spent_ms": "", **data})


def test_a_form_posted_without_a_time_takes_it_from_the_annotator_s_assignment(client, project, annotator):
    task = make_task(project)
    assigned_ago(project, annotator, task, timedelta(seconds=90))
    assert post_form(login(client, annotator), project, task).status_code == 302
    spent = PreferenceLabel.objects.get(task=task).time_spent_ms
    assert 90_000 <= spent < 100_000


def test_the_time_from_an_assignment_is_at_most_its_expiry_window(client, project, annotator):
    """An assignment two hours old, past its deadline but not yet closed by the expiry sweep."""
    task = make_task(project)
    assigned_ago(project, annotator, task, timedelta(hours=2))
    assert post_form(login(client, annotator), project, task).status_code == 302
    assert PreferenceLabel.objects.get(task=task).time_spent_ms == ASSIGNMENT_TTL.total_seconds() * 1000


def test_a_page_without_javascript_still_counts_from_when_it_was_rendered(client, project, annotator):
    task = make_task(project)
    assigned_ago(project, annotator, task, timedelta(minutes=10))
    rendered_at = int((timezone.now() - timedelta(seconds=30)).timestamp() * 1000)
    assert post_form(login(client, annotator), project, task, rendered_at=str(rendered_at)).status_code == 302
    assert 30_000 <= PreferenceLabel.objects.get(task=task).time_spent_ms < 40_000


def test_a_label_over_the_api_without_a_time_or_an_assignment_is_stored_as_unknown(project, annotator):
    task = make_task(project)
    response = token_client(annotator).post(f"/api/v1/tasks/{task.pk}/labels/",
                                            {"ranking": [[0], [1]], "submission_key": uuid.uuid4().hex}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["time_spent_ms"] is None
    assert PreferenceLabel.objects.get(task=task).time_spent_ms is None


def test_a_label_over_the_api_keeps_the_time_it_sends_and_without_one_takes_the_assignment_s(project, annotator):
    sent, held = make_task(project), make_task(project)
    client = token_client(annotator)
    answer = client.post(f"/api/v1/tasks/{sent.pk}/labels/",
                         {"ranking": [[0], [1]], "submission_key": uuid.uuid4().hex, "time_spent_ms": 4200},
                         format="json")
    assert answer.json()["time_spent_ms"] == 4200
    assigned_ago(project, annotator, held, timedelta(seconds=20))
    answer = client.post(f"/api/v1/tasks/{held.pk}/labels/",
                         {"ranking": [[0], [1]], "submission_key": uuid.uuid4().hex, "time_spent_ms": None},
                         format="json")
    assert answer.status_code == 201 and 20_000 <= answer.json()["time_spent_ms"] < 30_000


def test_an_unknown_time_reads_as_a_dash_and_as_null_and_counts_in_no_pace(client, project, annotator, researcher):
    task = make_task(project, required_labels=2)
    label_submit(task=task, annotator=annotator, ranking=[[0], [1]], submission_key=uuid.uuid4().hex,
                 time_spent_ms=60_000)
    unknown = label_submit(task=task, annotator=researcher, ranking=[[1], [0]], submission_key=uuid.uuid4().hex)
    assert unknown.time_spent_ms is None
    assert duration_ms(None) == "—"

    login(client, researcher)
    body = client.get(reverse("feedback:task_detail", args=[project.id, task.id])).content.decode()
    assert '<td class="duration">1 min 00 s</td>' in body
    # a bare dash said nothing to a screen reader: it is hidden from one, which reads "not known"
    assert ('<td class="duration"><span class="muted" title="not known: sent without a time">'
            '<span aria-hidden="true">—</span><span class="visually-hidden">not known</span></span></td>') in body
    lines = b"".join(client.get(reverse("feedback:export_labels", args=[project.id])).streaming_content).splitlines()
    assert sorted(json.loads(line)["time_spent_ms"] or 0 for line in lines) == [0, 60_000]
    assert {json.loads(line)["time_spent_ms"] for line in lines} == {None, 60_000}
    table = pq.read_table(io.BytesIO(b"".join(exports.raw_labels_parquet(project=project))))
    assert sorted(table.column("time_spent_ms").to_pylist(), key=lambda v: v or 0) == [None, 60_000]

    report = quality_report(project=project)
    assert report["label_count"] == 2
    assert report["labels_per_hour"] == pytest.approx(60.0)  # one label in a minute; the other's time is unknown
    people = {p.annotator_id: p for p in report["annotators"]}
    assert people[annotator.pk].labels_per_hour == pytest.approx(60.0)
    assert people[researcher.pk].labels == 1 and people[researcher.pk].labels_per_hour is None
    assert client.get(reverse("feedback:quality", args=[project.id])).status_code == 200

    researcher.is_staff = researcher.is_superuser = True
    researcher.save()
    changelist = client.get(reverse("admin:feedback_preferencelabel_changelist")).content.decode()
    assert '<td class="field-time_spent">1 min 00 s</td>' in changelist
    assert '<td class="field-time_spent">—</td>' in changelist
