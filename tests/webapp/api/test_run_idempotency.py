"""POST /projects/<id>/runs/ with an Idempotency-Key: a retried creation answers the run it made."""

import json

import pytest

from tests.factories import make_dataset, make_policy, make_project
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments import services
from webapp.experiments.models import Run

pytestmark = pytest.mark.django_db

KEY = "6f1c9a52-0d1e-4c9b-9a57-3b8f0c2d4e11"
EXTERNAL = {"name": "trl-1", "kind": "external", "config": {"trainer": "GRPOTrainer"}}


@pytest.fixture
def project(owner):
    return make_project(owner=owner)


def create(api, project, body, key=KEY):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post(f"/api/v1/projects/{project.id}/runs/", data=json.dumps(body), content_type="application/json",
                    **headers)


def test_a_repeated_key_answers_the_run_it_created_and_creates_nothing(api, project):
    first = create(api, project, EXTERNAL)
    assert first.status_code == 201, first.json()
    again = create(api, project, {"config": EXTERNAL["config"], "kind": "external", "name": "trl-1"})  # keys reordered
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Run.objects.filter(project=project).count() == 1


def test_a_repeated_key_with_another_body_answers_409_and_creates_nothing(api, project):
    run_id = create(api, project, EXTERNAL).json()["id"]
    response = create(api, project, {**EXTERNAL, "name": "trl-2"})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert f"this Idempotency-Key already created run {run_id}" in error["message"]
    assert list(Run.objects.filter(project=project).values_list("name", flat=True)) == ["trl-1"]


def test_without_a_key_every_post_creates_a_run(api, project):
    assert [create(api, project, EXTERNAL, key=None).status_code for _ in range(2)] == [201, 201]
    assert Run.objects.filter(project=project).count() == 2


def test_a_key_belongs_to_its_user_and_project(api, owner, project):
    other_project = make_project(owner=owner)
    colleague = api_user()
    project.memberships.create(user=colleague, role="researcher")
    responses = [create(api, project, EXTERNAL), create(api, other_project, EXTERNAL),
                 create(token_client(colleague), project, EXTERNAL)]
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert len({r.json()["id"] for r in responses}) == 3


@pytest.mark.parametrize("key", ["short", "x" * 65, "has space in it", "naïve-key-1"])
def test_a_malformed_key_answers_400_naming_the_header(api, project, key):
    response = create(api, project, EXTERNAL, key=key)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["Idempotency-Key"]
    assert not Run.objects.exists()


def test_a_launched_run_retried_with_its_key_is_sent_to_a_worker_once(api, project, sent,
                                                                     django_capture_on_commit_callbacks):
    body = {"name": "grpo-1", "kind": "policy", "dataset": make_dataset(project).id,
            "policy": make_policy(project).id, "config": {"train": {"total_steps": 3}}}
    with django_capture_on_commit_callbacks(execute=True):
        first, again = create(api, project, body), create(api, project, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert sent == [("workers.tasks.run_policy", [first.json()["id"]])]


def test_a_retry_that_arrives_while_the_first_request_is_creating_gets_the_first_run(api, owner, project, monkeypatch):
    """Both requests look the key up before either has stored its run; the second one's insert
    meets the unique constraint, and it answers the run the first one stored."""
    first = create(api, project, EXTERNAL).json()
    looked_up = services._run_created_with
    calls = []

    def not_yet_stored(**kwargs):
        calls.append(kwargs["key"])
        return None if len(calls) == 1 else looked_up(**kwargs)
    monkeypatch.setattr(services, "_run_created_with", not_yet_stored)
    response = create(api, project, EXTERNAL)
    assert response.status_code == 200 and response.json()["id"] == first["id"]
    assert calls == [KEY, KEY]
    assert Run.objects.filter(project=project).count() == 1
