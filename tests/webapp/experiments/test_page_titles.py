"""A run's trajectories, held-out answers and bad-download pages name the project in their <title>,
as every other project page does (a tab or a history entry read "Trajectories · grpo-1 · Steer",
and runs of the same name in two projects could not be told apart)."""

import re

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_run, make_user

pytestmark = pytest.mark.django_db


def title(response) -> str:
    return re.search(r"<title>(.*?)</title>", response.content.decode(), re.S).group(1)


@pytest.fixture
def run(client):
    user = make_user()
    project = make_project(owner=user, name="Math <tutor>")
    client.login(username=user.username, password=PASSWORD)
    return make_run(project, name="grpo-1")


def test_the_trajectories_page_title_names_the_project(client, run):
    response = client.get(reverse("experiments:trajectories", args=[run.project_id, run.id]))
    assert title(response) == "Trajectories · grpo-1 · Math &lt;tutor&gt; · Steer"


def test_the_held_out_page_title_names_the_project(client, run):
    response = client.get(reverse("experiments:held_out", args=[run.project_id, run.id]))
    assert title(response) == "Held-out answers · grpo-1 · Math &lt;tutor&gt; · Steer"


def test_the_bad_download_page_title_names_the_project(client, run):
    response = client.get(reverse("experiments:export_trajectories", args=[run.project_id, run.id]),
                          {"step_min": "x"})
    assert response.status_code == 400
    assert title(response) == "Bad download filter · grpo-1 · Math &lt;tutor&gt; · Steer"
