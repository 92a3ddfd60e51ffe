"""SteerClient's methods against a live Steer server: each works, and each refusal is a SteerError
that carries the API's error (or, for input JSON cannot carry, a ValueError naming the point)."""

import re
import time
from datetime import UTC, date, datetime

import pytest

from steer_client.client import SteerClient, SteerError
from tests.factories import make_project, make_user
from webapp.accounts.services import api_token_create
from webapp.experiments.models import Run, RunKind, RunStatus, Trajectory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def project_and_client(live_server):
    user = make_user()
    project = make_project(owner=user)
    client = SteerClient(live_server.url, api_token_create(user=user, name="client")[1], retries=1)
    yield project, client
    client.close()


def test_every_method_round_trips_through_the_api(project_and_client):
    project, client = project_and_client
    assert client.project_id(project.slug) == client.project_id(project.name) == project.id
    run = client.run_create(project=project.slug, name="scripted")
    assert run["kind"] == RunKind.EXTERNAL and run["status"] == RunStatus.QUEUED
    assert client.run_status(run["id"], "running", total_steps=4)["status"] == RunStatus.RUNNING
    assert client.metrics_log(run["id"], [("reward", s, s / 4) for s in range(4)]) == 4
    records = [{"step": 1, "group_index": 0, "sample_index": i, "prompt": "p", "completion": c, "reward": 1.0}
               for i, c in enumerate("ab")]
    assert client.trajectories_log(run["id"], records) == 2
    [series] = client.metric_history([run["id"]], ["reward"], max_points=10)
    assert series["steps"] == [0, 1, 2, 3] and series["values"] == [0.0, 0.25, 0.5, 0.75]
    done = client.run_status(run["id"], "succeeded", current_step=4)
    assert done["status"] == RunStatus.SUCCEEDED and done["progress"] == 1.0
    assert Trajectory.objects.filter(run_id=run["id"]).count() == 2


def test_every_raw_point_and_the_latest_values_read_back_past_the_charts_downsampling(project_and_client):
    project, client = project_and_client
    run = client.run_create(project=project.id, name="long")
    client.metrics_log(run["id"], [(key, s, s / 2) for key in ("loss", "reward") for s in range(2500)])
    assert len(client.metric_history([run["id"]], ["loss"], max_points=100)[0]["steps"]) <= 100
    points = list(client.metrics(run["id"], "loss"))  # three pages of 1,000
    assert [p["step"] for p in points] == list(range(2500)) and points[-1]["value"] == 1249.5
    assert {p["key"] for p in points} == {"loss"}
    assert [p["step"] for p in client.metrics(run["id"], step_min=2498)] == [2498, 2499, 2498, 2499]
    assert [(p["key"], p["step"]) for p in client.metrics(run["id"], "reward", step_min=10, step_max=11)] == [
        ("reward", 10), ("reward", 11)]
    assert client.metric_latest([run["id"]], ["reward"]) == [
        {"run": run["id"], "key": "reward", "step": 2499, "value": 1249.5}]


def test_refusals_are_steer_errors_carrying_the_apis_error(project_and_client, live_server):
    project, client = project_and_client
    run = client.run_create(project=project.id, name="r")
    with pytest.raises(SteerError) as refused:
        client.metrics_log(run["id"], [("reward", -1, 0.5)])
    assert refused.value.status == 400 and "points[0]" in refused.value.error["fields"]
    with pytest.raises(SteerError) as unknown:
        client.project_id("no-such-project")
    assert unknown.value.status == 404
    with pytest.raises(SteerError) as illegal:
        client.run_status(run["id"], "succeeded")  # queued -> succeeded is not a legal move
    assert illegal.value.status == 409 and illegal.value.error["code"] == "conflict"
    with pytest.raises(SteerError) as unauthenticated:
        SteerClient(live_server.url, "steer_not-a-token", retries=0).run_create(project=project.id, name="x")
    assert unauthenticated.value.status == 401


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_a_value_json_cannot_carry_raises_at_once_naming_the_point(project_and_client, value):
    project, client = project_and_client
    run = client.run_create(project=project.id, name="r")
    client.retries = 3  # a retried failure would sleep 0.5 + 1 + 2 s
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"points\[1\]: value must be a finite number"):
        client.metrics_log(run["id"], [("loss", 0, 1.0), ("loss", 1, value)])
    assert time.monotonic() - started < 1.0
    assert client.metric_history([run["id"]], ["loss"]) == []


def test_a_project_named_with_digits_is_found_by_its_name_and_digits_else_are_an_id(project_and_client):
    project, client = project_and_client
    named = make_project(owner=project.memberships.get().user, name="2024")
    assert client.project_id("2024") == named.id  # not project id 2024
    assert client.project_id(str(project.id)) == project.id  # e.g. from an environment variable
    assert client.project_id(project.id) == project.id


def test_an_answer_cut_off_on_the_way_back_is_retried(monkeypatch):
    """A proxy or server that drops a response mid-body raises ChunkedEncodingError, a network
    failure like a refused connection: a GET or an idempotent write is sent again."""
    import requests

    client = SteerClient("http://steer.invalid", "steer_x", retries=1)
    answers = [requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"), "ok"]

    def send(method, url, **kwargs):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        response = requests.models.Response()
        response.status_code, response._content = 200, b'{"results": []}'
        return response

    monkeypatch.setattr(client.session, "request", send)
    monkeypatch.setattr("steer_client.client.time.sleep", lambda s: None)
    assert client.request("GET", "/projects/") == {"results": []}
    assert answers == []


def lose_the_first_answer(client, path_end: str) -> list[str]:
    """Make the first request whose path ends with ``path_end`` reach the server, which acts on it,
    and its answer be lost on the way back; returns the Idempotency-Key each such request sent."""
    import requests

    send, keys = client.session.request, []

    def request(method, url, **kwargs):
        response = send(method, url, **kwargs)
        if url.endswith(path_end):
            keys.append((kwargs.get("headers") or {}).get("Idempotency-Key"))
            if len(keys) == 1:
                raise requests.ConnectionError("Connection reset by peer")
        return response
    client.session.request = request
    return keys


def test_a_run_creation_whose_answer_is_lost_is_retried_and_makes_one_run(project_and_client, monkeypatch):
    project, client = project_and_client
    monkeypatch.setattr("steer_client.client.time.sleep", lambda s: None)
    keys = lose_the_first_answer(client, f"/projects/{project.id}/runs/")
    run = client.run_create(project=project.id, name="trl-1")
    assert list(project.runs.values_list("id", flat=True)) == [run["id"]]
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) == 36  # one UUID for the call and its retry


def test_each_run_create_call_has_a_key_of_its_own_unless_given_one(project_and_client):
    project, client = project_and_client
    first = client.run_create(project=project.id, name="a")
    second = client.run_create(project=project.id, name="a")
    assert first["id"] != second["id"]
    assert client.run_create(project=project.id, name="b", idempotency_key="retry-of-b-0001")["id"] == \
        client.run_create(project=project.id, name="b", idempotency_key="retry-of-b-0001")["id"]


def test_numpy_and_torch_scalars_are_logged_as_numbers(project_and_client):
    """A custom loop's np.float32 was refused as 'value must be a finite number, got
    np.float32(0.5)', and a numpy step failed in json ('int64 is not JSON serializable')."""
    import numpy as np
    import torch

    project, client = project_and_client
    run = client.run_create(project=project.id, name="numpy")
    points = [("loss", np.int64(0), np.float32(0.5)), ("loss", np.int32(1), torch.tensor(0.25)),
              ("acc", torch.tensor(2), np.float64(1.0))]
    assert client.metrics_log(run["id"], points) == 3
    history = {s["key"]: (s["steps"], s["values"]) for s in client.metric_history([run["id"]])}
    assert history == {"loss": ([0, 1], [0.5, 0.25]), "acc": ([2], [1.0])}


@pytest.mark.parametrize("point, words", [
    (("loss", 1.5, 0.1), r"points\[0\]: step must be a whole number"),
    (("loss", 1, "0.1"), r"points\[0\]: value must be a finite number"),
    (("loss", 1), r"points\[0\]: must be a \(key, step, value\) triple"),
])
def test_a_point_json_or_the_server_would_refuse_raises_before_sending(project_and_client, point, words):
    project, client = project_and_client
    run = client.run_create(project=project.id, name="bad")
    with pytest.raises(ValueError, match=words):
        client.metrics_log(run["id"], [point])
    assert client.metric_history([run["id"]]) == []


@pytest.mark.parametrize("status, content_type, body, words", [
    (200, "text/html", b"<html><form>Sign in</form></html>", "not JSON: is http://steer.invalid/api/v1 Steer's API?"),
    (502, "application/json", b'["bad gateway"]', "bad gateway"),
    (503, "application/json", b'{"error": "maintenance"}', "maintenance"),
])
def test_an_answer_that_is_not_steers_raises_a_steer_error_saying_what_came(monkeypatch, status, content_type, body,
                                                                            words):
    """A login page answered 200 raised json's 'Expecting value: line 1 column 1', and a JSON
    error body that was not Steer's ({"error": "..."} or a list) an AttributeError."""
    import requests

    client = SteerClient("http://steer.invalid", "steer_x", retries=0)

    def send(method, url, **kwargs):
        response = requests.models.Response()
        response.status_code, response._content, response.url = status, body, url
        response.headers["Content-Type"] = content_type
        return response

    monkeypatch.setattr(client.session, "request", send)
    with pytest.raises(SteerError, match=re.escape(words)) as refused:
        client.request("GET", "/projects/")
    assert refused.value.status == status


def test_lists_are_read_to_the_end_through_every_page_with_their_filters(project_and_client):
    """paginate follows each page's next link; runs() and trajectories() read every page."""
    project, client = project_and_client
    made = [client.run_create(project=project.id, name=f"run-{i}") for i in range(5)]
    client.run_status(made[0]["id"], "running")
    assert [r["id"] for r in client.paginate(f"/projects/{project.id}/runs/", page_size=2)] == [
        r["id"] for r in reversed(made)]  # newest first, over three pages
    assert [r["id"] for r in client.runs(project=project.slug, status="running")] == [made[0]["id"]]
    assert client.run(made[1]["id"])["name"] == "run-1"
    records = [{"step": s, "group_index": 0, "sample_index": i, "prompt": "p", "completion": f"{s}-{i}",
                "reward": float(i)} for s in range(3) for i in range(2)]
    client.trajectories_log(made[1]["id"], records)
    got = list(client.paginate(f"/runs/{made[1]['id']}/trajectories/", {"step_min": 1}, page_size=1))
    assert sorted(t["completion"] for t in got) == ["1-0", "1-1", "2-0", "2-1"]  # the filter kept on every page
    assert sorted(t["completion"] for t in client.trajectories(made[1]["id"], step=2, reward_min=1.0)) == ["2-1"]
    with pytest.raises(SteerError) as refused:
        list(client.runs(project=project.id, status="sleeping"))
    assert refused.value.status == 400


def test_a_runs_notes_and_tags_are_set_and_its_runs_found_by_tag_and_name(project_and_client):
    project, client = project_and_client
    run = client.run_create(project=project.id, name="sweep lr 1e-6")
    client.run_create(project=project.id, name="other")
    updated = client.run_update(run["id"], description="the *baseline*", tags=["baseline", "sweep"])
    assert (updated["description"], updated["tags"], updated["name"]) == ("the *baseline*", ["baseline", "sweep"],
                                                                          "sweep lr 1e-6")
    assert [r["id"] for r in client.runs(project=project.id, tag="BASELINE")] == [run["id"]]
    assert [r["id"] for r in client.runs(project=project.id, search="LR 1e")] == [run["id"]]
    assert client.run_update(run["id"], tags=[])["tags"] == []


def test_runs_are_found_by_their_settings_and_latest_metrics(project_and_client):
    project, client = project_and_client
    slow = client.run_create(project=project.id, name="slow", config={"optim": {"lr": 1e-6}})
    fast = client.run_create(project=project.id, name="fast", config={"optim": {"lr": 1e-5}})
    client.metrics_log(slow["id"], [("reward", 1, 0.2)])
    client.metrics_log(fast["id"], [("reward", 1, 0.9)])
    assert [r["id"] for r in client.runs(project=project.id, where="config.optim.lr < 5e-6")] == [slow["id"]]
    assert [r["id"] for r in client.runs(project=project.id, where="metrics.reward >= 0.5")] == [fast["id"]]
    with pytest.raises(SteerError) as refused:
        list(client.runs(project=project.id, where="lr < 1"))
    assert refused.value.status == 400 and "where" in refused.value.error["fields"]


def test_runs_are_found_by_when_they_were_created(project_and_client):
    project, client = project_and_client
    old = client.run_create(project=project.id, name="old")
    new = client.run_create(project=project.id, name="new")
    Run.objects.filter(pk=old["id"]).update(created_at=datetime(2026, 11, 2, 10, tzinfo=UTC))
    Run.objects.filter(pk=new["id"]).update(created_at=datetime(2026, 12, 2, 10, tzinfo=UTC))
    assert [r["id"] for r in client.runs(project=project.id, created_after=date(2026, 12, 1))] == [new["id"]]
    assert [r["id"] for r in client.runs(project=project.id, created_before="2026-11-02")] == [old["id"]]
    before = datetime(2026, 12, 2, 9, tzinfo=UTC)
    assert [r["id"] for r in client.runs(project=project.id, created_before=before)] == [old["id"]]
    with pytest.raises(SteerError) as refused:
        list(client.runs(project=project.id, created_after="yesterday"))
    assert refused.value.status == 400 and list(refused.value.error["fields"]) == ["created_after"]


def test_a_point_may_be_the_apis_own_dict_of_key_step_and_value(project_and_client):
    project, client = project_and_client
    run = client.run_create(project=project.id, name="dicts")
    points = [{"key": "loss", "step": 0, "value": 0.5}, ("loss", 1, 0.25), {"step": 2, "value": 0.125, "key": "loss"}]
    assert client.metrics_log(run["id"], points) == 3
    [series] = client.metric_history([run["id"]], ["loss"])
    assert series["steps"] == [0, 1, 2] and series["values"] == [0.5, 0.25, 0.125]


def _refusing_transport(client, monkeypatch):
    """Fail the test if anything is sent."""
    def send(method, url, **kwargs):
        raise AssertionError(f"{method} {url} was sent")
    monkeypatch.setattr(client.session, "request", send)


@pytest.mark.parametrize("point, words", [
    # one step's metrics, as a logger's dict: the two keys were unpacked as a point's three fields
    ({"step": 1, "loss": 0.5}, (r"points\[0\]: must be a \(key, step, value\) triple, or a dict "
                                r"\{\"key\": \.\.\., \"step\": \.\.\., \"value\": \.\.\.\}, got a dict with keys "
                                r"\['loss', 'step'\]; for one step's metrics .*metrics\.items\(\)")),
    # three keys were taken for key, step and value: "step must be a whole number, got 'loss'"
    ({"step": 1, "loss": 0.5, "kl": 0.1}, r"points\[0\]: must be .* got a dict with keys \['kl', 'loss', 'step'\]"),
    ({"key": "loss", "step": 1, "vaule": 0.5}, r"points\[0\]: must be .* keys \['key', 'step', 'vaule'\]$"),
    ({"key": "loss", "step": 1, "value": 0.5, "unit": "nats"}, r"points\[0\]: must be .*'unit'"),
    ((1, 1, 0.5), r"points\[0\]: key must be a metric's name \(a string\), got 1"),
    ({"key": 1, "step": 1, "value": 0.5}, r"points\[0\]: key must be a metric's name"),
])
def test_a_point_of_another_shape_raises_naming_the_shapes_before_sending(monkeypatch, point, words):
    client = SteerClient("http://steer.invalid", "steer_x", retries=0)
    _refusing_transport(client, monkeypatch)
    with pytest.raises(ValueError, match=words):
        client.metrics_log(7, [point])


@pytest.mark.parametrize("points, words", [
    ({"step": 1, "loss": 0.5}, r"points must be a list of \(key, step, value\) triples, got a dict; for one step's"),
    ("loss", r"points must be a list of \(key, step, value\) triples, got a str$"),
])
def test_points_that_are_not_a_list_raise_a_type_error_before_sending(monkeypatch, points, words):
    client = SteerClient("http://steer.invalid", "steer_x", retries=0)
    _refusing_transport(client, monkeypatch)
    with pytest.raises(TypeError, match=words):
        client.metrics_log(7, points)


def test_a_full_disk_is_not_retried_and_raises_the_servers_error(monkeypatch):
    """507 (the server's disk is full) was retried as a passing 5xx, with sleeps, though it
    answers the same until someone frees space."""
    import requests

    client = SteerClient("http://steer.invalid", "steer_x", retries=3)
    sent, slept = [], []

    def send(method, url, **kwargs):
        sent.append(url)
        response = requests.models.Response()
        response.status_code, response.url = 507, url
        response._content = (b'{"error": {"code": "insufficient_storage", "message": '
                             b'"The server\'s disk is full; nothing was stored.", "fields": {}}}')
        response.headers["Content-Type"] = "application/json"
        return response

    monkeypatch.setattr(client.session, "request", send)
    monkeypatch.setattr("steer_client.client.time.sleep", slept.append)
    with pytest.raises(SteerError, match=r"HTTP 507: The server's disk is full; nothing was stored\.") as refused:
        client.metrics_log(7, [("loss", 1, 0.5)])
    assert refused.value.status == 507 and refused.value.error["code"] == "insufficient_storage"
    assert len(sent) == 1 and slept == []


def test_other_5xx_answers_are_still_retried(monkeypatch):
    import requests

    client = SteerClient("http://steer.invalid", "steer_x", retries=2)
    statuses = [503, 500, 200]

    def send(method, url, **kwargs):
        response = requests.models.Response()
        response.status_code, response.url = statuses.pop(0), url
        response._content = b'{"written": 1}' if response.status_code == 200 else b'{"error": {"message": "x"}}'
        return response

    monkeypatch.setattr(client.session, "request", send)
    monkeypatch.setattr("steer_client.client.time.sleep", lambda s: None)
    assert client.metrics_log(7, [("loss", 1, 0.5)]) == 1
    assert statuses == []
