"""Labels are written in the request: with the broker down and no worker, none is lost."""

import uuid

import pytest
from django.urls import reverse
from kombu.exceptions import OperationalError

from tests.factories import PASSWORD, make_project, make_task, make_user
from webapp.feedback.models import PreferenceLabel
from workers.celery_app import app as celery_app

CLOSED_BROKER = "redis://127.0.0.1:1/0"


def drop_broker_pools():
    """Celery caches broker connections and producers; forget them after changing the URL."""
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker_down(settings, monkeypatch):
    # Read the app's broker first: Celery loads its conf lazily, from the settings changed below.
    saved = {key: celery_app.conf[key] for key in ("broker_url", "broker_transport_options")}
    settings.CELERY_BROKER_URL = CLOSED_BROKER
    # Celery lets the CELERY_BROKER_URL variable win over app.conf (CI sets it), so point both away.
    monkeypatch.setenv("CELERY_BROKER_URL", CLOSED_BROKER)
    drop_broker_pools()  # so the closed broker takes effect
    celery_app.conf.update(broker_url=CLOSED_BROKER, broker_transport_options={})
    try:
        with pytest.raises(OperationalError):  # the premise: nothing answers there
            with celery_app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        yield
    finally:
        celery_app.conf.update(saved)
        drop_broker_pools()  # so later tests in this process reach the real broker again


@pytest.mark.django_db
def test_submissions_land_in_the_database_with_the_broker_unreachable(client, broker_down):
    annotator = make_user()
    project = make_project(annotator=annotator)
    tasks = [make_task(project) for _ in range(3)]
    assert client.login(username=annotator.username, password=PASSWORD)
    for choice in ("a", "b", "tie"):
        page = client.get(reverse("feedback:annotate", args=[project.id]))
        task = page.context["task"]
        response = client.post(reverse("feedback:submit", args=[project.id, task.id]),
                               {"choice": choice, "submission_key": uuid.uuid4().hex}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
    stored = dict(PreferenceLabel.objects.filter(annotator=annotator).values_list("task_id", "ranking"))
    assert stored == {tasks[0].id: [[0], [1]], tasks[1].id: [[1], [0]], tasks[2].id: [[0, 1]]}
