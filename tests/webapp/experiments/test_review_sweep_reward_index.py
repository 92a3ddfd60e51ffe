"""Review: a swept reward weight whose index has more digits than Python converts
(rewards[999…9].weight, 5,000 nines) is refused on the sweep field as any index past the run's
rewards is, where int() raised ValueError and the sweep API and the launch pages answered 500."""

import json

import pytest

from tests.factories import make_dataset, make_policy, make_project
from tests.webapp.experiments.test_sweeps import new_url, parse, sweep_data
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run

pytestmark = pytest.mark.django_db

PATH = "rewards[" + "9" * 5000 + "].weight"


def test_an_index_too_long_to_convert_is_refused_as_past_the_runs_rewards():
    with pytest.raises(RunError) as refused:
        parse({PATH: [1, 2]})
    assert refused.value.field == "sweep" and "the run has 2 rewards" in refused.value.message


def test_a_short_index_still_names_its_reward():
    [axis] = parse({"rewards[1].weight": [0.5, 1]})
    assert axis.path == "rewards[1].weight" and axis.values == (0.5, 1.0)


def test_the_page_says_so_and_launches_nothing(client, project, sent):
    response = client.post(new_url(project), sweep_data(project, {PATH: [1, 2]}))
    assert response.status_code == 400
    assert "rewards" in " ".join(response.context["form"].errors["sweep"])
    assert not Run.objects.exists() and sent == []


def test_the_api_answers_400_on_sweep_and_launches_nothing(sent):
    from tests.webapp.api.conftest import api_user, token_client

    owner = api_user()
    project = make_project(owner=owner)
    body = {"name": "g", "kind": "policy", "policy": make_policy(project).id, "dataset": make_dataset(project).id,
            "config": {"rewards": [{"name": "exact_answer"}]}, "sweep": {PATH: [1, 2]}}
    response = token_client(owner).post(f"/api/v1/projects/{project.id}/runs/sweep/", data=json.dumps(body),
                                        content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "sweep" in response.json()["error"]["fields"]
    assert not Run.objects.exists() and sent == []
