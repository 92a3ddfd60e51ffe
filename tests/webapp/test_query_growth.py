"""The number of queries a page or an API list costs does not grow with what the project holds.

Every page of ``webapp/*/urls.py`` a researcher or an annotator opens (GET), and every API list
and detail route, is read once for a project with 3 of everything and once for one with 30
(``tests/webapp/big_project.py``); a count that differs is a read per row (N+1).
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from tests.webapp.big_project import big_project

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _pages(big) -> list[tuple[str, str, str]]:
    """(route, who, url) of every page that lists or shows the project's things."""
    p, r = big.project.id, big.run.id
    owner = [
        ("projects:list", []),
        ("projects:overview", [p]),
        ("projects:settings", [p]),
        ("projects:members", [p]),
        ("accounts:tokens", []),
        ("datasets:list", [p]),
        ("datasets:detail", [p, big.dataset.id]),
        ("datasets:import", [p]),
        ("datasets:delete", [p, big.dataset.id]),
        ("experiments:list", [p]),
        ("experiments:new", [p]),
        ("experiments:new_evaluation", [p]),
        ("experiments:new_dpo", [p]),
        ("experiments:new_sft", [p]),
        ("experiments:detail", [p, r]),
        ("experiments:status", [p, r]),
        ("experiments:chart_data", [p, r]),
        ("experiments:trajectories", [p, r]),
        ("experiments:held_out", [p, r]),
        ("experiments:delete", [p, r]),
        ("policies:list", [p]),
        ("policies:new", [p]),
        ("feedback:rubrics", [p]),
        ("feedback:rubric_create", [p]),
        ("feedback:rubric_detail", [p, big.rubric.id]),
        ("feedback:rubric_edit", [p, big.rubric.id]),
        ("feedback:tasks", [p]),
        ("feedback:task_import", [p]),
        ("feedback:task_from_run", [p]),
        ("feedback:task_head_to_head", [p]),
        ("feedback:task_detail", [p, big.task.id]),
        ("feedback:quality", [p]),
        ("feedback:annotator_reject", [p, big.annotator.id]),
        ("rewards:list", [p]),
        ("rewards:train", [p]),
        ("rewards:import_pairs", [p]),
        ("rewards:pairs_from_run", [p]),
        ("rewards:delete", [p, big.reward_model.id]),
        ("rewards:delete_pairs", [p, big.pair_set.id]),
    ]
    annotator = [
        ("feedback:annotate", [p]),
        ("feedback:my_rejected", [p]),
        ("feedback:annotate_task", [p, big.task.id]),
    ]
    compared = "&".join(f"compare={i}" for i in big.compared)
    return (
        [(name, "owner", reverse(name, args=args)) for name, args in owner]
        + [
            (f"{name} compared", "owner", f"{reverse(name, args=[p, r])}?{compared}")
            for name in ("experiments:detail", "experiments:chart_data")
        ]
        + [(name, "annotator", reverse(name, args=args)) for name, args in annotator]
    )


API_ROUTES = [
    "projects/",
    "projects/{project}/",
    "projects/{project}/members/",
    "projects/{project}/datasets/",
    "projects/{project}/runs/",
    "projects/{project}/runs/?page_size=1000",
    "projects/{project}/policies/",
    "projects/{project}/rubrics/",
    "projects/{project}/tasks/",
    "projects/{project}/tasks/?page_size=1000",
    "projects/{project}/labels/",
    "projects/{project}/labels/?page_size=1000",
    "projects/{project}/reward-models/",
    "projects/{project}/pair-sets/",
    "datasets/{dataset}/",
    "datasets/{dataset}/prompts/",
    "policies/{policy}/",
    "runs/{run}/",
    "runs/{run}/metrics/",
    "runs/{run}/trajectories/",
    "runs/{run}/held-out/",
    "runs/{run}/checkpoints/",
    "runs/{run}/artifacts/",
    "projects/{project}/reward-agreement/",
    "projects/{project}/quality/",
    "trajectories/{trajectory}/",
    "metrics/history/?run={run}&{compared}",
    "metrics/latest/?run={run}&{compared}",
    "rubrics/{rubric}/",
    "tasks/{task}/",
    "labels/{label}/",
    "reward-models/{reward_model}/",
    "pair-sets/{pair_set}/",
    "pair-sets/{pair_set}/pairs/",
]


def _query_counts(client, big) -> dict[str, int]:
    """Queries each page and API route costs, by route."""
    counts = {}
    users = {"owner": big.owner, "annotator": big.annotator}
    for route, who, url in _pages(big):
        client.force_login(users[who])
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code in (200, 286), (
                url
            )  # 286: a finished run stops the polling
        counts[f"{who} {route}"] = len(queries)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {big.token}")
    ids = {
        name: getattr(big, name).pk
        for name in (
            "project",
            "dataset",
            "policy",
            "run",
            "trajectory",
            "rubric",
            "task",
            "label",
            "reward_model",
            "pair_set",
        )
    }
    for route in API_ROUTES:
        url = "/api/v1/" + route.format(
            **ids, compared="&".join(f"run={i}" for i in big.compared)
        )
        with CaptureQueriesContext(connection) as queries:
            assert api.get(url).status_code == 200, url
        counts[route] = len(queries)
    return counts


def test_no_page_or_api_route_costs_more_queries_for_a_bigger_project(client):
    """Runs, trajectories, tasks, labels, metric keys, rubrics, policies … ×10: the same queries."""
    # 8: two runs of each kind, so that a run's page offers others of its kind to compare with at
    # both sizes (with none the Compare picker asks once more whether the project has any run)
    small, large = big_project(8, prefix="small"), big_project(30, prefix="large")
    few, many = _query_counts(client, small), _query_counts(client, large)
    # A page of raw points (/runs/<id>/metrics/) reads its keys 1, 2, 4 … at a time until the page
    # is full: a few more queries for many small metrics, by design (test_metric_points_page.py).
    grows = {
        route: (few[route], many[route])
        for route in few
        if few[route] != many[route] and route != "runs/{run}/metrics/"
    }
    assert grows == {}
