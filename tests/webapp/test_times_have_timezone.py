"""Every time of day a page shows says its timezone: a researcher in Berlin or San Francisco reading
"started 14:02" could not tell it from their own clock (Steer shows UTC, settings.TIME_ZONE)."""

import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from tests.factories import (
    PASSWORD,
    make_dataset,
    make_project,
    make_run,
    make_task,
    make_user,
)
from webapp.accounts.services import api_token_create
from webapp.experiments.models import Run, RunStatus
from webapp.feedback.models import PreferenceLabel
from webapp.feedback.review import label_reject

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)
# a date with a time of day, and what follows it
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)?(.{0,4})")


def times_without_zone(html: str) -> list[str]:
    return [m.group(0) for m in TIME.finditer(html) if not m.group(1).startswith(" UTC")]


def test_every_time_of_day_shown_says_utc(client):
    owner, annotator = make_user(), make_user()
    project = make_project(owner=owner, annotator=annotator)
    run = make_run(project, status=RunStatus.SUCCEEDED, current_step=2, total_steps=2)
    Run.objects.filter(pk=run.pk).update(created_at=WHEN, started_at=WHEN, finished_at=WHEN)
    dataset = make_dataset(project, user=owner)
    task = make_task(project)
    label = PreferenceLabel.objects.create(task=task, annotator=annotator, ranking=[[0], [1]])
    label_reject(label_id=label.id, project=project, by=owner, reason="the other one")
    api_token_create(user=owner, name="notebook", expires_in_days=30)
    client.login(username=owner.username, password=PASSWORD)
    pages = {
        "project overview": reverse("projects:overview", args=[project.id]),
        "runs list": reverse("experiments:list", args=[project.id]),
        "run page": reverse("experiments:detail", args=[project.id, run.id]),
        "dataset": reverse("datasets:detail", args=[project.id, dataset.id]),
        "task": reverse("feedback:task_detail", args=[project.id, task.id]),
        "API tokens": reverse("accounts:tokens"),
    }
    for name, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, name
        html = response.content.decode()
        assert TIME.search(html), f"{name} shows no time at all"
        assert times_without_zone(html) == [], name
    assert "started 2026-03-01 12:34:56 UTC · finished 2026-03-01 12:34:56 UTC" in client.get(pages["run page"]).content.decode()

    client.login(username=annotator.username, password=PASSWORD)
    rejected = client.get(reverse("feedback:my_rejected", args=[project.id])).content.decode()
    assert TIME.search(rejected) and times_without_zone(rejected) == []
