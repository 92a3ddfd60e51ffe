"""The run page's charts placeholder: until its script has drawn the charts, a run with metrics
said "No metrics yet." (and kept saying it where the script never ran)."""

import re

import pytest
from django.urls import reverse

from tests.factories import make_run
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import RunStatus

pytestmark = pytest.mark.django_db


def placeholder(html: str) -> str:
    return re.search(r'<p id="charts-empty"[^>]*>(.*?)</p>', html).group(1)


def test_a_run_with_metrics_never_says_it_has_none(client, researcher):
    run = make_run(researcher, status=RunStatus.RUNNING)
    url = reverse("experiments:detail", args=[researcher.id, run.id])
    assert placeholder(client.get(url).content.decode()) == "No metrics yet."
    metric_points_upsert(run_id=run.id, points=[("reward", 1, 0.5), ("loss", 1, 2.0)])
    assert placeholder(client.get(url).content.decode()) == "Loading the charts…"
