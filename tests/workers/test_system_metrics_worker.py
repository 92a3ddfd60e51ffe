"""A run a real `celery worker` trains stores its system metrics, and its page charts them."""

import pytest
from django.urls import reverse

from tests.workers.test_run_worker import (  # noqa: F401 (worker_factory: a fixture)
    launch_through_the_form,
    run_state,
    wait_for,
    worker_factory,
)
from webapp.experiments.models import MetricPoint, RunStatus
from workers.engine.system_metrics import PSUTIL_KEYS

pytest.importorskip("psutil")
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_run_trained_by_a_worker_charts_its_system_metrics(client, worker_factory):  # noqa: F811
    worker = worker_factory()
    run = launch_through_the_form(client, total_steps=2)
    wait_for(lambda: run_state(run).is_terminal, worker, 120, "the run to finish")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.config["train"]["log_system_metrics"] is True  # the form's default
    for key in PSUTIL_KEYS:
        assert sorted(MetricPoint.objects.filter(run=run, key=key).values_list("step", flat=True)) == [1, 2], key
    data = client.get(reverse("experiments:chart_data", args=[run.project_id, run.id])).json()
    keys = [s["key"] for s in data["series"]]
    assert set(PSUTIL_KEYS) <= set(keys)
    system = [i for i, key in enumerate(keys) if key.startswith("system/")]
    assert system == list(range(system[0], system[0] + len(system)))  # their charts sit together
