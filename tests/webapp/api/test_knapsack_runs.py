"""Knapsack RL's rollout budget over the REST API: a policy run takes it, an evaluation refuses it."""

import pytest

from tests.factories import make_dataset, make_policy
from tests.webapp.api.test_runs import post, project  # noqa: F401 (project: a fixture, the owner's project)
from webapp.experiments.models import Run

pytestmark = pytest.mark.django_db


def _body(project, kind, rollout):
    return {"name": "k", "kind": kind, "dataset": make_dataset(project).id, "policy": make_policy(project).id,
            "config": {"rollout": {"num_generations": 4, **rollout}, "train": {"total_steps": 2}}}


def test_a_policy_run_takes_the_knapsack_budget(api, project, sent):
    response = post(api, f"/api/v1/projects/{project.id}/runs/", _body(
        project, "policy", {"budget_allocation": "knapsack", "min_generations": 3}))
    assert response.status_code == 201, response.json()
    rollout = response.json()["config"]["rollout"]
    assert rollout["budget_allocation"] == "knapsack" and rollout["min_generations"] == 3
    assert "max_generations" not in rollout  # at its default, as in any config


@pytest.mark.parametrize("kind, rollout, field", [
    ("policy", {"budget_allocation": "knapsack", "min_generations": 5}, "config.rollout.min_generations"),
    ("policy", {"budget_allocation": "knapsack", "max_generations": 2}, "config.rollout.max_generations"),
    ("evaluation", {"budget_allocation": "knapsack"}, "config.rollout.budget_allocation"),
])
def test_a_bad_budget_answers_400_on_its_field_and_stores_nothing(api, project, kind, rollout, field):
    response = post(api, f"/api/v1/projects/{project.id}/runs/", _body(project, kind, rollout))
    assert response.status_code == 400, response.json()
    assert list(response.json()["error"]["fields"]) == [field]
    assert not Run.objects.exists()
