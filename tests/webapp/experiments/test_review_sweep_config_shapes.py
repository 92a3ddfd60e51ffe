"""Review: a sweep over a config whose section or reward is not a JSON object. A reward given as
something else ("exact_answer", null) with its weight swept failed the sweep API and the launch
pages with a TypeError (500); a section given as something else ({"optim": 5}) was silently
replaced by the swept values, so runs launched from a config that one launch refuses. Both are now
the engine's refusal on the sweep field, nothing launched."""

import json

import pytest

from tests.factories import make_dataset, make_policy, make_project
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.models import Run
from webapp.experiments.sweeps import SweepAxis, point_config, sweep_points

pytestmark = pytest.mark.django_db


def test_point_config_leaves_a_non_object_section_or_reward_as_given():
    config = {"optim": 5, "rewards": ["exact_answer", {"name": "length"}]}
    [point, _] = sweep_points([SweepAxis("optim.lr", (1e-6, 2e-6)), SweepAxis("rewards[0].weight", (1.0,))])
    assert point_config(config, point) == config
    [point, _] = sweep_points([SweepAxis("rewards[1].weight", (0.5, 2.0))])
    assert point_config(config, point) == {"optim": 5, "rewards": ["exact_answer", {"name": "length", "weight": 0.5}]}
    assert point_config({}, (("algorithm.beta", 0.04),)) == {"algorithm": {"beta": 0.04}}, "missing sections are made"


def sweep(config, grid):
    owner = api_user()
    project = make_project(owner=owner)
    body = {"name": "g", "kind": "policy", "policy": make_policy(project).id, "dataset": make_dataset(project).id,
            "config": config, "sweep": grid}
    return token_client(owner).post(f"/api/v1/projects/{project.id}/runs/sweep/", data=json.dumps(body),
                                    content_type="application/json")


@pytest.mark.parametrize("reward", ["exact_answer", None, 5, [1]])
def test_a_swept_weight_of_a_reward_that_is_no_object_is_refused_naming_it(sent, reward):
    response = sweep({"rewards": [reward]}, {"rewards[0].weight": [1, 2]})
    assert response.status_code == 400, response.content[:300]
    assert "rewards[0].name" in response.json()["error"]["fields"]["sweep"][0]
    assert not Run.objects.exists() and sent == []


@pytest.mark.parametrize("section", [5, None, [1], "x"])
def test_a_section_that_is_no_object_is_refused_not_replaced(sent, section):
    response = sweep({"optim": section}, {"optim.lr": [1e-6, 2e-6]})
    assert response.status_code == 400, response.content[:300]
    assert "optim: expected an object" in response.json()["error"]["fields"]["sweep"][0]
    assert not Run.objects.exists() and sent == []

