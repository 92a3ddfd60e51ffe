"""The run page's downloads take the API's filters (a step range for the trajectories, keys for
the metrics) from a GET form beside the links, parsed by the same serializers: a bad value is a
400 naming the parameter, as the API's is."""

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_run, make_user
from tests.webapp.api.conftest import token_client
from tests.webapp.api.test_run_exports import a_run_with_trajectories, body
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import RunKind

pytestmark = pytest.mark.django_db


def url(name, run, **query):
    return reverse(f"experiments:{name}", args=[run.project_id, run.id]), query


def test_a_step_range_narrows_both_trajectory_downloads(client, researcher):
    run, _, _ = a_run_with_trajectories(researcher)
    path, _ = url("export_trajectories", run)
    lines = body(client.get(path, {"step_min": "1", "step_max": "2"})).decode().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 2]
    # an empty field of the form is a filter left out
    assert len(body(client.get(path, {"step_min": "", "step_max": "0"})).splitlines()) == 3
    parquet, _ = url("export_trajectories_parquet", run)
    table = pq.read_table(io.BytesIO(body(client.get(parquet, {"step_min": "2"}))))
    assert table.column("step").to_pylist() == [2, 2]


def test_keys_narrow_the_metrics_download(client, researcher):
    run = make_run(researcher, kind=RunKind.EXTERNAL)
    metric_points_upsert(run_id=run.id, points=[("loss", 1, 0.5), ("reward,mean", 1, 0.25), ("kl", 1, 0.125)])
    path, _ = url("export_metrics", run)
    rows = list(csv.reader(io.StringIO(body(client.get(path, {"key": ["reward,mean", "loss"]})).decode())))
    assert rows == [["step", "key", "value"], ["1", "loss", "0.5"], ["1", "reward,mean", "0.25"]]
    assert len(body(client.get(path)).splitlines()) == 4  # no key: every key


@pytest.mark.parametrize("name, params, field", [
    ("export_trajectories", {"step_min": "x"}, "step_min"),
    ("export_trajectories", {"step_max": "-1"}, "step_max"),
    ("export_trajectories_parquet", {"step_min": str(2**63)}, "step_min"),
    ("export_trajectories", {"step_min": "3", "step_max": "1"}, "step_max"),
    ("export_metrics", {"key": "k" * 201}, "key"),
])
def test_a_bad_filter_is_a_400_naming_the_parameter_like_the_apis(client, researcher, name, params, field):
    run, _, _ = a_run_with_trajectories(researcher)
    path, _ = url(name, run)
    response = client.get(path, params)
    assert response.status_code == 400 and not response.streaming
    assert f"<code>{field}</code>:" in response.content.decode()
    api_name = {"export_trajectories": "trajectories.jsonl", "export_trajectories_parquet": "trajectories.parquet",
                "export_metrics": "metrics.csv"}[name]
    api = token_client(researcher.memberships.get().user).get(f"/api/v1/runs/{run.id}/exports/{api_name}", params)
    assert api.status_code == 400 and next(iter(api.json()["error"]["fields"])).split(".")[0] == field


def test_the_run_page_offers_the_filters_in_labelled_get_forms(client, researcher):
    run, _, _ = a_run_with_trajectories(researcher)
    metric_points_upsert(run_id=run.id, points=[("<b>loss</b>", 0, 0.25)])
    page = client.get(reverse("experiments:detail", args=[researcher.id, run.id])).content.decode()
    jsonl, _ = url("export_trajectories", run)
    parquet, _ = url("export_trajectories_parquet", run)
    metrics, _ = url("export_metrics", run)
    assert f'<form method="get" action="{jsonl}"' in page and f'formaction="{parquet}"' in page
    assert '<label>from step <input type="number" name="step_min"' in page
    assert '<label>to step <input type="number" name="step_max"' in page
    assert f'<form method="get" action="{metrics}">' in page
    assert '<input type="checkbox" name="key" value="&lt;b&gt;loss&lt;/b&gt;"> &lt;b&gt;loss&lt;/b&gt;</label>' in page


def test_another_projects_researcher_cannot_download_with_filters_either(client):
    owner, stranger = make_user(), make_user()
    project = make_project(owner=owner)
    make_project(owner=stranger)
    run, _, _ = a_run_with_trajectories(project)
    client.login(username=stranger.username, password=PASSWORD)
    for name in ("export_trajectories", "export_trajectories_parquet", "export_metrics"):
        path, _ = url(name, run)
        assert client.get(path, {"step_min": "x", "key": "k"}).status_code == 404
