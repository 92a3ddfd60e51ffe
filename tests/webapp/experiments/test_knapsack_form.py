"""The New-run form's Rollout budget (rollout.budget_allocation: uniform or knapsack) and its
min/max completions per prompt (Knapsack RL)."""

import re

import pytest
from django.urls import reverse

from tests.factories import (
    make_dataset,
    make_policy,
    tiny_run_form_data,
)
from tests.webapp.experiments.test_mask_truncated_form import project  # noqa: F401 (a fixture: an owner logged in)
from webapp.experiments.models import Run

pytestmark = pytest.mark.django_db


def _select(page: str, name: str) -> str:
    start = page.index(f'name="{name}"')
    return page[page.rindex("<select", 0, start):page.index("</select>", start)]


def _input(page: str, name: str) -> str:
    start = page.index(f'name="{name}"')
    return page[page.rindex("<input", 0, start):page.index(">", start)]


def _errors_of(page: str, name: str) -> str:
    """The label holding field ``name`` (its errors are printed in it)."""
    start = page.index(f'name="{name}"')
    return page[page.rindex("<label", 0, start):page.index("</label>", start)]


def test_the_new_run_form_offers_the_budget_uniform_by_default(client, project):
    page = client.get(reverse("experiments:new", args=[project.id])).content.decode()
    select = _select(page, "rollout__budget_allocation")
    assert re.search(r'<option value="uniform"[^>]*selected', select)
    assert '<option value="knapsack"' in select
    assert 'value="2"' in _input(page, "rollout__min_generations")
    assert 'value="0"' in _input(page, "rollout__max_generations")


def test_the_form_launches_a_knapsack_run(client, project):
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    data.update({"rollout__budget_allocation": "knapsack", "rollout__num_generations": 4,
                 "rollout__min_generations": 3, "rollout__max_generations": 8})
    response = client.post(reverse("experiments:new", args=[project.id]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    rollout = Run.objects.get(project=project).config["rollout"]
    assert rollout["budget_allocation"] == "knapsack"
    assert rollout["min_generations"] == 3 and rollout["max_generations"] == 8


def test_a_uniform_launch_stores_the_config_as_before(client, project):
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    response = client.post(reverse("experiments:new", args=[project.id]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    rollout = Run.objects.get(project=project).config["rollout"]
    assert not {"budget_allocation", "min_generations", "max_generations"} & set(rollout)


@pytest.mark.parametrize("change, field, fragment", [
    ({"rollout__min_generations": 1}, "rollout__min_generations", "must be at least 2"),
    ({"rollout__max_generations": 1}, "rollout__max_generations", "must be at least num_generations"),
    ({"reward_0_name": "length", "reward_0_params": '{"max_tokens": 3}', "reward_1_name": ""},
     "rollout__budget_allocation", "needs a 0/1 reward"),
])
def test_a_bad_combination_is_refused_on_its_field_and_launches_nothing(client, project, change, field, fragment):
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    data.update({"rollout__budget_allocation": "knapsack", **change})
    response = client.post(reverse("experiments:new", args=[project.id]), data)
    assert response.status_code == 400  # the form shown again with its errors
    assert fragment in _errors_of(response.content.decode(), field)
    assert not Run.objects.filter(project=project).exists()


def test_a_copy_shows_the_budget_of_the_run(client, project):
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    data.update({"rollout__budget_allocation": "knapsack", "rollout__min_generations": 3,
                 "rollout__max_generations": 9, "rollout__num_generations": 4})
    assert client.post(reverse("experiments:new", args=[project.id]), data).status_code == 302
    run = Run.objects.get(project=project)
    page = client.get(reverse("experiments:new", args=[project.id]) + f"?from={run.id}").content.decode()
    assert re.search(r'<option value="knapsack"[^>]*selected', _select(page, "rollout__budget_allocation"))
    assert 'value="3"' in _input(page, "rollout__min_generations")
    assert 'value="9"' in _input(page, "rollout__max_generations")


def test_a_copy_of_a_uniform_run_fills_the_knobs_with_their_defaults(client, project):
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    assert client.post(reverse("experiments:new", args=[project.id]), data).status_code == 302
    run = Run.objects.get(project=project)  # its config has none of the three keys
    page = client.get(reverse("experiments:new", args=[project.id]) + f"?from={run.id}").content.decode()
    assert re.search(r'<option value="uniform"[^>]*selected', _select(page, "rollout__budget_allocation"))
    assert 'value="2"' in _input(page, "rollout__min_generations")
    assert 'value="0"' in _input(page, "rollout__max_generations")
