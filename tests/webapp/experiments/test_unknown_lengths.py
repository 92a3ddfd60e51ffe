"""A trajectory whose length its trainer did not report: stored as null, not 0, and shown as "—"
(unknown) in the trajectory browser's Tokens column; a real 0 stays 0 (the API stored 0 for a
length left out, and the run page showed those completions as 0 tokens long)."""

import io
import json

import pyarrow.parquet as pq
import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_run, make_user
from tests.migrations import leaf_nodes, migrate
from tests.webapp.api.conftest import token_client
from webapp.experiments.evaluation import summarize
from webapp.experiments.models import RunKind, RunStatus, Trajectory

UNKNOWN = '<span class="muted" title="unknown"><span aria-hidden="true">—</span><span class="visually-hidden">unknown</span></span>'


@pytest.mark.django_db
def test_a_length_left_out_or_null_is_unknown_and_a_zero_is_zero(client):
    user = make_user()
    project = make_project(owner=user)
    run = make_run(project, kind=RunKind.EXTERNAL, status=RunStatus.RUNNING, name="trl")
    records = [{"step": 1, "sample_index": i, "prompt": "p", "completion": text, "reward": 0.0} | extra
               for i, (text, extra) in enumerate([("left out", {}), ("null", {"length": None}),
                                                  ("", {"length": 0}), ("seven", {"length": 7})])]
    api = token_client(user)
    response = api.post(f"/api/v1/runs/{run.id}/trajectories/", {"records": records}, format="json")
    assert response.status_code == 201, response.content
    stored = dict(Trajectory.objects.filter(run=run).values_list("sample_index", "length"))
    assert stored == {0: None, 1: None, 2: 0, 3: 7}
    read = api.get(f"/api/v1/runs/{run.id}/trajectories/").json()["results"]
    assert [t["length"] for t in read] == [None, None, 0, 7]
    exported = b"".join(api.get(f"/api/v1/runs/{run.id}/exports/trajectories.jsonl").streaming_content)
    assert [json.loads(line)["length"] for line in exported.splitlines()] == [None, None, 0, 7]
    parquet = b"".join(api.get(f"/api/v1/runs/{run.id}/exports/trajectories.parquet").streaming_content)
    assert pq.read_table(io.BytesIO(parquet)).column("length").to_pylist() == [None, None, 0, 7]

    client.login(username=user.username, password=PASSWORD)
    page = client.get(reverse("experiments:trajectories", args=[project.id, run.id]), {"step": 1}).content.decode()
    cells = page.split("<th>Tokens</th>")[1]
    assert cells.count(UNKNOWN) == 2
    assert "<td>0</td>" in cells and "<td>7</td>" in cells


@pytest.mark.django_db
def test_a_negative_length_is_still_refused(client):
    user = make_user()
    run = make_run(make_project(owner=user), kind=RunKind.EXTERNAL, status=RunStatus.RUNNING)
    response = token_client(user).post(f"/api/v1/runs/{run.id}/trajectories/", {"records": [
        {"step": 1, "prompt": "p", "completion": "c", "reward": 0.0, "length": -1}]}, format="json")
    assert response.status_code == 400
    assert not Trajectory.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_makes_the_zero_lengths_an_external_trainer_left_out_unknown():
    old = migrate([("experiments", "0020_run_artifact")])
    Project, Run, Stored = (old.get_model(*name) for name in (
        ("projects", "Project"), ("experiments", "Run"), ("experiments", "Trajectory")))
    project = Project.objects.create(name="p", slug="p")
    external = Run.objects.create(project=project, name="trl", kind="external")
    steer = Run.objects.create(project=project, name="grpo", kind="policy")
    row = {"step": 1, "group_index": 0, "prompt_text": "p", "reward": 0.0, "length": 0}
    Stored.objects.create(run=external, sample_index=0, completion="some text", **row)  # 0: left out
    Stored.objects.create(run=external, sample_index=1, completion="", **row)  # empty: 0 tokens indeed
    Stored.objects.create(run=steer, sample_index=0, completion="text", **row)  # a worker counted it
    new = migrate(leaf_nodes("experiments"))
    lengths = new.get_model("experiments", "Trajectory").objects.order_by("run_id", "sample_index")
    assert list(lengths.values_list("length", flat=True)) == [None, 0, 0]
    back = migrate([("experiments", "0020_run_artifact")])
    assert set(back.get_model("experiments", "Trajectory").objects.values_list("length", flat=True)) == {0}
    migrate(leaf_nodes("experiments"))


def test_the_mean_length_counts_the_known_lengths_only():
    rows = [(1, 0, 1.0, {}, 4, "stop"), (1, 0, 0.0, {}, None, ""), (1, 0, 0.5, {}, 0, "stop")]
    assert summarize(rows, accuracy_key=None, keys=[])["eval/mean_length"] == 2.0
    assert "eval/mean_length" not in summarize([(1, 0, 1.0, {}, None, "")], accuracy_key=None, keys=[])
