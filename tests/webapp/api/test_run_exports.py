"""A run's trajectories as JSONL and its metrics as CSV, from the API and the run page: streamed
a chunk at a time, in order, filtered, loadable with ``datasets`` and ``pandas``, and only for
the project's researchers."""

import csv
import io
import json

import datasets
import pandas
import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_run, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.datasets.parsing import PromptRow
from webapp.datasets.services import dataset_create
from webapp.experiments import exports
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import RunKind, Trajectory

pytestmark = pytest.mark.django_db

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2? <b>ünï</b>"}]


def body(response) -> bytes:
    assert response.status_code == 200, response.content[:300]
    assert response.streaming
    return b"".join(response.streaming_content)


def a_run_with_trajectories(project):
    """Six trajectories over three steps, stored out of order: plain prompts first, a chat prompt,
    and, at step 2, prompts an external trainer sent as text only."""
    dataset = dataset_create(project=project, name="mixed", rows=[PromptRow(messages=CHAT), PromptRow(text="1+1?")])
    chat, plain = dataset.prompts.order_by("index")
    run = make_run(project, kind=RunKind.POLICY, name="GRPO «math» / v2", dataset=dataset)
    slots = [(2, 0, 1), (0, 1, 0), (2, 0, 0), (0, 0, 1), (1, 0, 0), (0, 0, 0)]
    Trajectory.objects.bulk_create([
        Trajectory(run=run, step=step, group_index=g, sample_index=s,
                   prompt=None if step == 2 else (chat if g == 1 else plain),
                   prompt_text=f"prompt {step}.{g}", completion=f"answer {step}.{g}.{s} \u2028\"",
                   rewards={"correct": float(s), "format": 0.5}, reward=s + 0.5 + 1 / 3,
                   advantage=None if step == 1 else s - 0.5, length=10 * step + s,
                   finish_reason="length" if s else ("" if step == 1 else "stop"))
        for step, g, s in slots])
    return run, chat, plain


def test_trajectories_come_out_one_line_per_completion_in_slot_order(tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK", 2)  # six rows: three fetches from the server-side cursor
    owner = api_user()
    project = make_project(owner=owner)
    run, chat, plain = a_run_with_trajectories(project)
    # with the Accept header a client generated from the schema sends
    response = token_client(owner).get(f"/api/v1/runs/{run.id}/exports/trajectories.jsonl",
                                       HTTP_ACCEPT="application/jsonl")
    raw = body(response)
    assert response["Content-Type"] == "application/jsonl"
    assert response["Content-Disposition"] == f'attachment; filename="grpo-math-v2-{run.id}-trajectories.jsonl"'
    assert "\u2028".encode() not in raw  # escaped: str.splitlines() would end a line there
    rows = [json.loads(line) for line in raw.decode().splitlines()]
    assert [(r["step"], r["group_index"], r["sample_index"]) for r in rows] == [
        (0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0), (2, 0, 0), (2, 0, 1)]
    assert list(rows[0]) == exports.TRAJECTORY_COLUMNS
    assert rows[1] == {"step": 0, "group_index": 0, "sample_index": 1, "prompt": plain.id, "prompt_text": "prompt 0.0",
                       # chat and plain prompts in one file: plain ones as one user message
                       "prompt_messages": [{"role": "user", "content": "prompt 0.0"}],
                       "completion": "answer 0.0.1 \u2028\"", "reward": 1 + 0.5 + 1 / 3,
                       "rewards": {"correct": 1.0, "format": 0.5}, "advantage": 0.5, "length": 1,
                       "finish_reason": "length"}
    assert rows[2]["prompt"] == chat.id and rows[2]["prompt_messages"] == CHAT
    assert rows[3]["advantage"] is None and rows[3]["finish_reason"] == ""
    assert rows[4]["prompt"] is None and rows[4]["prompt_messages"] == [{"role": "user", "content": "prompt 2.0"}]

    path = tmp_path / "trajectories.jsonl"
    path.write_bytes(raw)
    # blocks of a few lines, as a large file's 10 MB blocks: a list column null in the first
    # block would not load ("Couldn't cast array of type list<...> to null")
    loaded = datasets.load_dataset("json", data_files=str(path), split="train", chunksize=600)
    assert loaded.column_names == exports.TRAJECTORY_COLUMNS and len(loaded) == 6
    features = loaded.features
    assert features["prompt_text"].dtype == "string" and features["reward"].dtype == "float64"
    assert features["step"].dtype == "int64" and features["finish_reason"].dtype == "string"
    assert loaded[2]["prompt_messages"] == CHAT and loaded[4]["prompt_messages"][0]["content"] == "prompt 2.0"
    assert loaded[5]["rewards"] == {"correct": 1.0, "format": 0.5}


def test_a_step_range_narrows_the_trajectories_and_a_bad_bound_is_named(api, owner):
    project = make_project(owner=owner)
    run, _, _ = a_run_with_trajectories(project)
    url = f"/api/v1/runs/{run.id}/exports/trajectories.jsonl"
    lines = body(api.get(url, {"step_min": 1, "step_max": 1})).decode().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1]
    external = [json.loads(line) for line in body(api.get(url, {"step_min": 2})).decode().splitlines()]
    assert [r["step"] for r in external] == [2, 2]
    assert [r["prompt_messages"] for r in external] == [None, None]  # no chat prompt among them: plain text
    assert body(api.get(url, {"step_max": 0})).decode().count("\n") == 3
    for name, value in [("step_min", "x"), ("step_max", "-1"), ("step_min", str(2**63))]:
        response = api.get(url, {name: value}, HTTP_ACCEPT="application/jsonl")
        assert response.status_code == 400
        assert list(response.json()["error"]["fields"]) == [name]


def test_metrics_come_out_as_long_csv_with_every_digit_a_page_at_a_time(api, owner, monkeypatch):
    monkeypatch.setattr(exports, "METRIC_PAGE", 3)  # 7 points of "loss": three reads of the chunks
    project = make_project(owner=owner)
    run = make_run(project, kind=RunKind.EXTERNAL, name="ünï run")
    metric_points_upsert(run_id=run.id, points=[("loss", s, 1 / (s + 3)) for s in range(6, -1, -1)])
    metric_points_upsert(run_id=run.id, points=[("reward,mean", 0, 0.1 + 0.2), ("reward,mean", 5, -1e-300),
                                                ("a/b \"q\"", 10**12, 12345678901234567.0)])
    response = api.get(f"/api/v1/runs/{run.id}/exports/metrics.csv", HTTP_ACCEPT="text/csv")
    text = body(response).decode()
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == f'attachment; filename="uni-run-{run.id}-metrics.csv"'
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["step", "key", "value"]
    assert [(int(s), k, float(v)) for s, k, v in rows[1:]] == [
        (10**12, 'a/b "q"', 12345678901234567.0),
        *[(s, "loss", 1 / (s + 3)) for s in range(7)],
        (0, "reward,mean", 0.1 + 0.2), (5, "reward,mean", -1e-300)]
    assert rows[-2][2] == "0.30000000000000004"
    frame = pandas.read_csv(io.StringIO(text))
    assert list(frame.columns) == ["step", "key", "value"] and frame["value"].dtype == "float64"
    assert frame["value"].tolist()[1:8] == [1 / (s + 3) for s in range(7)]

    chosen = api.get(f"/api/v1/runs/{run.id}/exports/metrics.csv?key=reward,mean&key=loss&key=none")
    assert [r[1] for r in csv.reader(io.StringIO(body(chosen).decode()))] == ["key"] + ["loss"] * 7 + ["reward,mean"] * 2
    empty = make_run(project, kind=RunKind.EXTERNAL, name="")
    assert body(api.get(f"/api/v1/runs/{empty.id}/exports/metrics.csv")) == b"step,key,value\n"
    bad = api.get(f"/api/v1/runs/{run.id}/exports/metrics.csv", {"key": "k" * 201})
    assert bad.status_code == 400 and list(bad.json()["error"]["fields"]) == ["key.0"]


@pytest.mark.parametrize("export", ["trajectories.jsonl", "metrics.csv"])
def test_only_the_runs_researchers_may_export(export):
    owner, annotator, stranger = api_user(), api_user(), api_user()
    project = make_project(owner=owner, annotator=annotator)
    make_project(owner=stranger)
    run = make_run(project)
    url = f"/api/v1/runs/{run.id}/exports/{export}"
    assert token_client(owner).get(url).status_code == 200
    for user in (annotator, stranger):  # an annotator's and another project's researcher's: no such run
        response = token_client(user).get(url)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_the_run_page_links_both_downloads_for_researchers_only(client):
    researcher, annotator, stranger = make_user(), make_user(), make_user()
    project = make_project(researcher=researcher, annotator=annotator)
    make_project(owner=stranger)
    run, _, _ = a_run_with_trajectories(project)
    metric_points_upsert(run_id=run.id, points=[("loss", 0, 0.25)])
    jsonl = reverse("experiments:export_trajectories", args=[project.id, run.id])
    csv_url = reverse("experiments:export_metrics", args=[project.id, run.id])
    client.login(username=researcher.username, password=PASSWORD)
    page = client.get(reverse("experiments:detail", args=[project.id, run.id])).content.decode()
    assert f'href="{jsonl}" download' in page and f'href="{csv_url}" download' in page
    response = client.get(jsonl)
    assert len(body(response).splitlines()) == 6
    assert response["Content-Disposition"] == f'attachment; filename="grpo-math-v2-{run.id}-trajectories.jsonl"'
    assert body(client.get(csv_url)) == b"step,key,value\n0,loss,0.25\n"
    client.login(username=annotator.username, password=PASSWORD)
    assert client.get(jsonl).status_code == 403 and client.get(csv_url).status_code == 403
    client.login(username=stranger.username, password=PASSWORD)
    assert client.get(jsonl).status_code == 404 and client.get(csv_url).status_code == 404
