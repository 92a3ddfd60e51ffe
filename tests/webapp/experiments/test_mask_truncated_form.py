"""The New-run form's checkbox for algorithm.mask_truncated_completions (DAPO overlong filtering)."""

import pytest
from django.urls import reverse

from tests.factories import (
    PASSWORD,
    make_dataset,
    make_policy,
    make_project,
    make_user,
    tiny_run_form_data,
)
from webapp.experiments.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(client):
    user = make_user()
    project = make_project(owner=user)
    client.login(username=user.username, password=PASSWORD)
    return project


def _field(page: str) -> str:
    start = page.index('name="algorithm__mask_truncated_completions"')
    return page[page.rindex("<input", 0, start):page.index(">", start)]


def test_the_new_run_form_offers_the_knob_unchecked(client, project):
    page = client.get(reverse("experiments:new", args=[project.id])).content.decode()
    field = _field(page)
    assert 'type="checkbox"' in field and "checked" not in field


@pytest.mark.parametrize("sent, stored", [("on", True), (None, False)], ids=["checked", "unchecked"])
def test_the_checkbox_reaches_the_runs_config(client, project, sent, stored):
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    data.pop("algorithm__mask_truncated_completions")
    if sent is not None:
        data["algorithm__mask_truncated_completions"] = sent
    response = client.post(reverse("experiments:new", args=[project.id]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Run.objects.get(project=project).config["algorithm"]["mask_truncated_completions"] is stored


def test_a_copy_of_a_run_that_masks_shows_the_box_checked(client, project):
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    data["algorithm__mask_truncated_completions"] = "on"
    client.post(reverse("experiments:new", args=[project.id]), data)
    run = Run.objects.get(project=project)
    page = client.get(reverse("experiments:new", args=[project.id]) + f"?from={run.id}").content.decode()
    assert "checked" in _field(page)
