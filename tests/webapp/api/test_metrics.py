import json

import pytest
from django.test import override_settings

from tests.factories import make_project, make_run
from webapp.experiments.models import MetricPoint, RunKind

pytestmark = pytest.mark.django_db


def post_points(api, run_id, points):
    return api.post(f"/api/v1/runs/{run_id}/metrics/", data=json.dumps({"points": points}),
                    content_type="application/json")


@pytest.fixture
def run(owner):
    return make_run(make_project(owner=owner), kind=RunKind.EXTERNAL)


def test_batch_of_objects_and_arrays_is_stored(api, run):
    response = post_points(api, run.id, [{"key": "reward", "step": 1, "value": 0.5}, ["kl", 1, 0.01]])
    assert response.status_code == 201, response.json()
    assert response.json() == {"written": 2}
    assert set(MetricPoint.objects.filter(run=run).values_list("key", "step", "value")) == {
        ("reward", 1, 0.5), ("kl", 1, 0.01)}


def test_bad_point_answers_400_naming_its_index_and_stores_nothing(api, run):
    response = post_points(api, run.id, [["reward", 1, 0.5], ["reward", -2, 0.5]])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["points[1]"]
    assert "step" in error["fields"]["points[1]"][0]
    assert not MetricPoint.objects.filter(run=run).exists()


@pytest.mark.parametrize("point, unknown", [
    ({"key": "reward", "step": 2, "vaule": 0.5}, "'vaule'"),
    ({"key": "reward", "stpe": 2, "value": 0.5}, "'stpe'"),
    ({"key": "reward", "step": 2, "value": 0.5, "timestamp": 1733280000}, "'timestamp'"),
])
def test_a_point_with_an_unknown_key_answers_400_naming_its_index_and_the_key_and_stores_nothing(
        api, run, point, unknown):
    """A misspelt or extra key of an object point was dropped without a word (with the value or
    step it carried, when misspelt); now the batch is refused, as a body's unknown key is."""
    response = post_points(api, run.id, [{"key": "reward", "step": 1, "value": 0.25}, ["kl", 1, 0.01], point])
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert list(error["fields"]) == ["points[2]"]
    assert f"unknown field {unknown}" in error["fields"]["points[2]"][0]
    assert "key, step and value" in error["fields"]["points[2]"][0]
    assert not MetricPoint.objects.filter(run=run).exists()


def test_replayed_batch_keeps_one_point_per_key_and_step(api, run):
    post_points(api, run.id, [["reward", 1, 0.5]])
    post_points(api, run.id, [["reward", 1, 0.7]])
    assert list(MetricPoint.objects.filter(run=run).values_list("value", flat=True)) == [0.7]


@override_settings(STEER_METRIC_BATCH_LIMIT=3)
def test_batch_over_the_limit_answers_413(api, run):
    response = post_points(api, run.id, [["reward", i, 0.5] for i in range(4)])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert not MetricPoint.objects.filter(run=run).exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_body_over_the_upload_limit_answers_413(api, run):
    response = post_points(api, run.id, [["reward", i, 0.5] for i in range(20)])
    assert response.status_code == 413


def test_body_that_is_not_json_answers_400(api, run):
    response = api.post(f"/api/v1/runs/{run.id}/metrics/", data="{nope", content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_body_without_points_list_answers_400(api, run):
    response = api.post(f"/api/v1/runs/{run.id}/metrics/", data=json.dumps([1, 2]), content_type="application/json")
    assert response.status_code == 400
    assert "points" in response.json()["error"]["fields"]


def test_points_list_filters_by_key_and_step_range(api, run):
    post_points(api, run.id, [["reward", s, s / 10] for s in range(10)] + [["kl", 3, 0.1]])
    response = api.get(f"/api/v1/runs/{run.id}/metrics/", {"key": "reward", "step_min": 2, "step_max": 4})
    assert response.status_code == 200
    assert [(p["step"], p["value"]) for p in response.json()["results"]] == [(2, 0.2), (3, 0.3), (4, 0.4)]
    # points come in (key, step) order: ?ordering=, which this list does not take, was ignored without a word
    refused = api.get(f"/api/v1/runs/{run.id}/metrics/", {"key": "reward", "ordering": "-step"})
    assert refused.status_code == 400 and list(refused.json()["error"]["fields"]) == ["ordering"]


def test_points_list_pages_with_a_cursor(api, run):
    post_points(api, run.id, [["reward", s, float(s)] for s in range(25)])
    first = api.get(f"/api/v1/runs/{run.id}/metrics/", {"page_size": 10}).json()
    second = api.get(first["next"]).json()
    assert [p["step"] for p in first["results"]] == list(range(10))
    assert [p["step"] for p in second["results"]] == list(range(10, 20))


def test_paging_through_many_keys_and_chunks_returns_every_point_once_in_key_step_order(api, run):
    for start in range(0, 60, 7):  # several chunks per key, some a single point
        post_points(api, run.id, [[f"k{k}", s, float(k * 100 + s)] for k in range(7) for s in range(start, min(start + 7, 60))])
    post_points(api, run.id, [["k3", s, -1.0] for s in range(10, 30, 3)])  # rewrites split chunks
    seen, url, params = [], f"/api/v1/runs/{run.id}/metrics/", {"page_size": 13}
    while url:
        page = api.get(url, params).json()
        seen += [(p["key"], p["step"]) for p in page["results"]]
        url, params = page["next"], None
    assert seen == sorted({(f"k{k}", s) for k in range(7) for s in range(60)})
    windowed = api.get(url or f"/api/v1/runs/{run.id}/metrics/", {"key": "k3", "step_min": 9, "step_max": 16}).json()
    assert [(p["step"], p["value"]) for p in windowed["results"]] == [
        (9, 309.0), (10, -1.0), (11, 311.0), (12, 312.0), (13, -1.0), (14, 314.0), (15, 315.0), (16, -1.0)]


def test_a_forged_cursor_answers_400(api, run):
    response = api.get(f"/api/v1/runs/{run.id}/metrics/", {"cursor": "bm90IGEgY3Vyc29y"})
    assert response.status_code == 400 and "cursor" in response.json()["error"]["fields"]


def test_latest_answers_the_last_value_of_each_key_for_many_runs(api, owner, run):
    other = make_run(run.project, kind=RunKind.EXTERNAL)
    post_points(api, run.id, [["reward", 1, 0.1], ["reward", 5, 0.5], ["kl", 2, 0.2]])
    post_points(api, other.id, [["reward", 3, 0.3]])
    response = api.get("/api/v1/metrics/latest/", {"run": [run.id, other.id], "key": ["reward"]})
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"run": run.id, "key": "reward", "step": 5, "value": 0.5},
        {"run": other.id, "key": "reward", "step": 3, "value": 0.3},
    ]


def test_latest_for_a_run_of_another_project_answers_404(api, run):
    stranger_run = make_run(make_project(), kind=RunKind.EXTERNAL)
    response = api.get("/api/v1/metrics/latest/", {"run": [run.id, stranger_run.id]})
    assert response.status_code == 404


def test_history_downsamples_a_long_series_to_max_points(api, run):
    post_points(api, run.id, [["reward", s, float(s % 7)] for s in range(2000)])
    response = api.get("/api/v1/metrics/history/", {"run": run.id, "key": "reward", "max_points": 100})
    assert response.status_code == 200, response.json()
    (series,) = response.json()["results"]
    assert series["run"] == run.id and series["key"] == "reward"
    assert series["downsampled"] is True
    assert 0 < len(series["steps"]) <= 100
    assert series["steps"][0] == 0 and series["steps"][-1] == 1999


def test_history_names_the_points_kept_only_as_a_buckets_min_or_max(api, run):
    """API users smoothing a downsampled series need what the run page's charts get: which points are
    a bucket's outliers (a spike every 8 steps), not samples of its level."""
    post_points(api, run.id, [["grad_norm", s, 50.0 if s % 8 == 3 else 1.0] for s in range(2000)])
    response = api.get("/api/v1/metrics/history/", {"run": run.id, "key": "grad_norm", "max_points": 1000})
    (series,) = response.json()["results"]
    assert series["downsampled"] is True
    assert [series["values"][i] for i in series["extremes"]] == [50.0] * 250
    assert {v for i, v in enumerate(series["values"]) if i not in set(series["extremes"])} == {1.0}


def test_history_honours_the_step_range(api, run):
    post_points(api, run.id, [["reward", s, float(s)] for s in range(50)])
    response = api.get("/api/v1/metrics/history/", {"run": run.id, "step_min": 10, "step_max": 12})
    (series,) = response.json()["results"]
    assert series["steps"] == [10, 11, 12] and series["values"] == [10.0, 11.0, 12.0]


def test_key_with_a_nul_character_answers_400(api, run):
    response = post_points(api, run.id, [["ok", 1, 1.0], ["bad\x00key", 1, 1.0]])
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["points[1]"]


@pytest.mark.parametrize("key", ["loss ", " loss", "\tloss"])
def test_a_key_with_surrounding_whitespace_reads_back_by_that_key(api, run, key):
    """It was stored as sent, but ?key= was trimmed, so no read found it (0 points, no series)."""
    assert post_points(api, run.id, [[key, 1, 0.5], [key, 2, 0.25], ["loss", 9, 9.0]]).status_code == 201
    points = api.get(f"/api/v1/runs/{run.id}/metrics/", {"key": key}).json()["results"]
    assert [(p["key"], p["step"]) for p in points] == [(key, 1), (key, 2)]
    [series] = api.get("/api/v1/metrics/history/", {"run": run.id, "key": key}).json()["results"]
    assert (series["key"], series["steps"]) == (key, [1, 2])
    [latest] = api.get("/api/v1/metrics/latest/", {"run": run.id, "key": key}).json()["results"]
    assert (latest["key"], latest["step"]) == (key, 2)
    csv = b"".join(api.get(f"/api/v1/runs/{run.id}/exports/metrics.csv", {"key": key}).streaming_content).decode()
    assert csv.splitlines()[1:] == [f"1,{key},0.5", f"2,{key},0.25"]


def test_every_bad_point_of_a_batch_is_named_by_index_so_a_trainer_can_send_the_rest_again(api, run):
    """Only the first bad point was named: a trainer could not tell the other bad points from the
    good ones, and sending the batch again without the first met the next one, a try per bad point."""
    points = [["reward", s, 0.5] for s in range(10)]
    points[2], points[5], points[7] = ["reward", -1, 0.5], ["", 5, 0.5], {"key": "kl", "step": 7, "vaule": 1.0}
    response = post_points(api, run.id, points)
    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error["fields"]) == ["points[2]", "points[5]", "points[7]"]
    assert "step must be" in error["fields"]["points[2]"][0] and "key must be" in error["fields"]["points[5]"][0]
    assert error["message"].startswith("points[2]: step must be")
    assert "3 of the batch's 10 points refused" in error["message"]
    assert not MetricPoint.objects.filter(run=run).exists()


def test_a_batch_of_many_bad_points_names_the_first_hundred_and_counts_the_rest(api, run):
    response = post_points(api, run.id, [["reward", -1 - s, 0.5] for s in range(250)] + [["reward", 1, 0.5]])
    error = response.json()["error"]
    assert response.status_code == 400 and len(error["fields"]) == 100
    assert list(error["fields"])[-1] == "points[99]"
    assert "250 of the batch's 251 points refused (150 more than fields names)" in error["message"]
    assert not MetricPoint.objects.filter(run=run).exists()
