"""The trajectory browser's step picker stays small on a long run (a live run re-sends it every 5 s)."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import PASSWORD, make_project, make_run, make_user
from webapp.experiments.models import RunStatus, Trajectory
from webapp.experiments.selectors import step_choices


def test_a_short_run_lists_every_step():
    assert step_choices(list(range(1, 151)), None) == list(range(1, 151))


def test_a_long_run_lists_the_newest_a_spread_the_first_and_the_chosen_step():
    steps = list(range(2, 10_002, 2))  # 5,000 sparse steps (log_rollouts_fraction < 1)
    listed = step_choices(steps, 1_234)
    assert len(listed) <= 50 + 100 + 2 and set(listed) <= set(steps)
    assert listed[-50:] == steps[-50:] and listed[0] == steps[0] and 1_234 in listed
    gaps = [b - a for a, b in zip(listed, listed[1:])]
    assert max(gaps) <= 2 * (len(steps) - 50) // 100 + 2  # evenly spread, no long hole


@pytest.mark.django_db
def test_the_browser_of_a_long_live_run_sends_a_short_list_and_keeps_the_chosen_step(client):
    user = make_user()
    project = make_project(owner=user)
    client.login(username=user.username, password=PASSWORD)
    run = make_run(project, status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    Trajectory.objects.bulk_create(
        Trajectory(run=run, step=step, group_index=0, sample_index=0, prompt_text="p", completion=f"at {step}",
                   rewards={}, reward=0.0, advantage=0.0, length=1) for step in range(1, 1_001))
    url = reverse("experiments:trajectories", args=[project.id, run.id])
    page = client.get(url, {"step": 437}, HTTP_HX_REQUEST="true").content.decode()
    options = re.findall(r'<option value="(\d+)"', page)
    assert len(options) <= 152 and "437" in options and options[-1] == "1000"
    assert re.search(r'<option value="437" selected>', page) and "at 437" in page
    assert "1000 steps stored" in page
