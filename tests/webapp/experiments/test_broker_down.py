"""A launch while the broker is down: a clear error, and no run left queued without a task.

Transactional: the task is sent once the run is committed, as in production, so a broker that
refuses it is met after the commit (which an outer test transaction would postpone).
"""

import json

import pytest
from django.urls import reverse
from kombu.exceptions import OperationalError

from tests.factories import PASSWORD, make_dataset, make_policy, make_project, make_user, tiny_run_form_data
from tests.webapp.api.conftest import token_client
from webapp.experiments.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker_down(monkeypatch):
    from workers.celery_app import app

    def refuse(name, args):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr(app, "send_task", refuse)


def test_an_api_launch_answers_503_and_stores_no_run(broker_down):
    user = make_user()
    project = make_project(owner=user)
    body = {"name": "grpo", "kind": "policy", "dataset": make_dataset(project).id,
            "policy": make_policy(project).id, "config": {"train": {"total_steps": 3}}}
    response = token_client(user).post(f"/api/v1/projects/{project.id}/runs/", data=json.dumps(body),
                                       content_type="application/json")
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "unavailable" and "task queue" in error["message"]
    assert not Run.objects.exists()


def test_an_api_launch_with_an_idempotency_key_answers_503_stores_no_run_and_may_be_retried(broker_down, monkeypatch):
    """The key's lookup and the launch share one transaction (the key's lock), so the task is sent
    as that one commits: the run is withdrawn all the same, and the key made nothing."""
    user = make_user()
    project = make_project(owner=user)
    body = {"name": "grpo", "kind": "policy", "dataset": make_dataset(project).id,
            "policy": make_policy(project).id, "config": {"train": {"total_steps": 3}}}
    api = token_client(user)

    def post():
        return api.post(f"/api/v1/projects/{project.id}/runs/", data=json.dumps(body), content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="a3f0c2d1-5b6e-4f70-8a91-2c3d4e5f6a7b")

    response = post()
    assert response.status_code == 503, response.content
    assert "task queue" in response.json()["error"]["message"]
    assert not Run.objects.exists()
    from workers.celery_app import app

    monkeypatch.setattr(app, "send_task", lambda name, args: None)  # the broker is back
    assert post().status_code == 201 and Run.objects.count() == 1


def test_the_new_run_form_shows_the_error_and_stores_no_run(client, broker_down):
    user = make_user()
    project = make_project(owner=user)
    client.login(username=user.username, password=PASSWORD)
    response = client.post(reverse("experiments:new", args=[project.id]),
                           tiny_run_form_data(make_policy(project), make_dataset(project)))
    assert response.status_code == 400
    assert "task queue" in response.content.decode()
    assert not Run.objects.exists()


def test_an_orphaned_run_the_broker_cannot_take_stays_for_the_next_recovery_round(broker_down, settings):
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import make_run
    from webapp.experiments.execution import recover_orphaned_runs
    from webapp.experiments.models import RunStatus

    stale = timezone.now() - timedelta(seconds=settings.STEER_HEARTBEAT_TIMEOUT_S + 5)
    run = make_run(make_project(), status=RunStatus.RUNNING, worker="gone@host", attempts=1, heartbeat_at=stale)
    assert recover_orphaned_runs() == []
    run.refresh_from_db()
    # Still running with a stale heartbeat, not queued behind a message that was never sent.
    assert run.status == RunStatus.RUNNING and run.worker_lost


def test_the_reward_model_page_shows_the_error_and_stores_no_run(client, broker_down):
    from tests.webapp.rewards.test_reward_model_runs import TINY_RM, pairs_jsonl
    from webapp.rewards.services import pair_set_import

    user = make_user()
    project = make_project(owner=user)
    client.login(username=user.username, password=PASSWORD)
    pair_set = pair_set_import(project=project, name="seed", content=pairs_jsonl())
    response = client.post(reverse("rewards:train", args=[project.id]), {
        "name": "rm-1", "data": f"pairs:{pair_set.id}", "settings": json.dumps(TINY_RM)})
    assert response.status_code == 400
    assert "the task queue (the broker at CELERY_BROKER_URL) cannot be reached" in response.content.decode()
    assert not Run.objects.exists()
