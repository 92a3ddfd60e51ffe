"""Label review over the API: reject a label, restore it, reject all of an annotator's labels;
a rejected label keeps being listed to researchers with when and why, and counts nowhere."""

import json
import uuid

import pytest

from tests.factories import make_project, make_task
from tests.webapp.api.conftest import api_user, token_client
from webapp.feedback.models import ComparisonTask, PreferenceLabel
from webapp.feedback.services import label_submit

pytestmark = pytest.mark.django_db


def post(client, path, body=None):
    return client.post(path, data=json.dumps(body) if body is not None else None, content_type="application/json")


@pytest.fixture
def world(owner):
    annotator = api_user()
    project = make_project(owner=owner, annotator=annotator)
    tasks = [make_task(project, required_labels=2) for _ in range(2)]
    labels = [label_submit(task=t, annotator=annotator, ranking=[[0], [1]], submission_key=uuid.uuid4().hex)
              for t in tasks]
    return project, annotator, tasks, labels


def test_reject_answers_the_label_with_when_and_why_and_restore_undoes_it(api, owner, world):
    _, _, tasks, labels = world
    response = post(api, f"/api/v1/labels/{labels[0].pk}/reject/", {"reason": "always A"})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == labels[0].pk and body["rejected_at"] and body["rejection_reason"] == "always A"
    assert PreferenceLabel.objects.get(pk=labels[0].pk).rejected_by == owner
    assert ComparisonTask.objects.get(pk=tasks[0].pk).label_count == 0
    again = post(api, f"/api/v1/labels/{labels[0].pk}/reject/", {"reason": "other"})  # idempotent
    assert again.status_code == 200 and again.json()["rejection_reason"] == "always A"
    assert ComparisonTask.objects.get(pk=tasks[0].pk).label_count == 0
    restored = post(api, f"/api/v1/labels/{labels[0].pk}/restore/")
    assert restored.status_code == 200
    assert (restored.json()["rejected_at"], restored.json()["rejection_reason"]) == (None, "")
    assert post(api, f"/api/v1/labels/{labels[0].pk}/restore/").status_code == 200
    assert ComparisonTask.objects.get(pk=tasks[0].pk).label_count == 1


def test_restoring_a_label_of_a_task_filled_again_answers_409_and_changes_nothing(api, world):
    project, annotator, tasks, labels = world
    assert post(api, f"/api/v1/labels/{labels[0].pk}/reject/").status_code == 200
    others = [api_user(), api_user()]
    for user in others:
        project.memberships.create(user=user, role="annotator")
        label_submit(task=tasks[0], annotator=user, ranking=[[1], [0]], submission_key=uuid.uuid4().hex)
    assert ComparisonTask.objects.get(pk=tasks[0].pk).label_count == 2  # of 2: filled again
    response = post(api, f"/api/v1/labels/{labels[0].pk}/restore/")
    assert response.status_code == 409, response.json()
    assert response.json()["error"]["code"] == "conflict"
    assert "has 2 counting labels of the 2 labels it wants" in response.json()["error"]["message"]
    assert PreferenceLabel.objects.get(pk=labels[0].pk).rejected_at is not None
    assert ComparisonTask.objects.get(pk=tasks[0].pk).label_count == 2


def test_rejected_labels_stay_listed_to_researchers_and_to_their_annotator(api, world):
    project, annotator, _, labels = world
    assert post(api, f"/api/v1/labels/{labels[1].pk}/reject/").status_code == 200
    listed = {r["id"]: r for r in api.get(f"/api/v1/projects/{project.id}/labels/").json()["results"]}
    assert listed[labels[0].pk]["rejected_at"] is None and listed[labels[1].pk]["rejected_at"]
    assert api.get(f"/api/v1/labels/{labels[1].pk}/").json()["rejection_reason"] == ""
    own = token_client(annotator).get(f"/api/v1/projects/{project.id}/labels/").json()["results"]
    assert len(own) == 2 and all("rejected_at" in r for r in own)


def test_an_annotator_cannot_withdraw_a_rejected_label(api, world):
    _, annotator, _, labels = world
    assert post(api, f"/api/v1/labels/{labels[0].pk}/reject/").status_code == 200
    response = token_client(annotator).delete(f"/api/v1/labels/{labels[0].pk}/")
    assert response.status_code == 409 and "rejected by a researcher" in response.json()["error"]["message"]
    assert PreferenceLabel.objects.filter(pk=labels[0].pk).exists()


def test_a_reason_over_500_characters_or_an_unknown_key_answers_400(api, world):
    _, _, _, labels = world
    response = post(api, f"/api/v1/labels/{labels[0].pk}/reject/", {"reason": "x" * 501})
    assert response.status_code == 400 and "reason" in response.json()["error"]["fields"]
    response = post(api, f"/api/v1/labels/{labels[0].pk}/reject/", {"why": "spam"})
    assert response.status_code == 400 and "why" in response.json()["error"]["fields"]
    assert PreferenceLabel.objects.get(pk=labels[0].pk).rejected_at is None


def test_rejecting_all_of_an_annotators_labels_answers_how_many(api, world):
    project, annotator, tasks, _ = world
    url = f"/api/v1/projects/{project.id}/labels/reject/"
    response = post(api, url, {"annotator": annotator.pk, "reason": "spam"})
    assert response.status_code == 200 and response.json() == {"rejected": 2}
    assert [t.label_count for t in ComparisonTask.objects.filter(pk__in=[t.pk for t in tasks])] == [0, 0]
    assert post(api, url, {"annotator": annotator.pk}).json() == {"rejected": 0}
    assert api.get(f"/api/v1/projects/{project.id}/quality/").json()["annotators"][0]["rejected"] == 2


@pytest.mark.parametrize("body, field", [({}, "annotator"), ({"annotator": "x"}, "annotator"),
                                         ({"annotator": 1, "extra": 1}, "extra")])
def test_rejecting_all_labels_names_a_bad_body(api, world, body, field):
    project, *_ = world
    response = post(api, f"/api/v1/projects/{project.id}/labels/reject/", body)
    assert response.status_code == 400 and field in response.json()["error"]["fields"]


def test_rejecting_all_labels_of_someone_without_labels_here_names_the_annotator(api, owner, world):
    project, *_ = world
    response = post(api, f"/api/v1/projects/{project.id}/labels/reject/", {"annotator": owner.pk})
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["annotator"] == ["this annotator has no labels in this project"]


def test_a_reason_that_is_no_string_answers_400_and_leaves_the_label_counting(api, world):
    """DRF read the number 0 as the reason "0" and rejected the label."""
    _, _, _, labels = world
    response = post(api, f"/api/v1/labels/{labels[0].pk}/reject/", {"reason": 0})
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["reason"]
    assert PreferenceLabel.objects.get(pk=labels[0].pk).rejected_at is None
