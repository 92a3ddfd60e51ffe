"""A run's trajectories as Parquet: the JSONL's rows with a schema fixed before the first row,
streamed a row group at a time, read by pandas and ``datasets`` without guessing a type."""

import io
import json

import datasets
import pandas
import pyarrow.parquet as pq
import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_run, make_user
from tests.webapp.api.conftest import api_user, token_client
from tests.webapp.api.test_run_exports import a_run_with_trajectories, body
from webapp.experiments import exports
from webapp.experiments.models import RunKind, Trajectory

pytestmark = pytest.mark.django_db

PARQUET = "application/vnd.apache.parquet"


def parquet_chunks(response) -> list[bytes]:
    assert response.status_code == 200, response.content[:300]
    assert response.streaming
    return [bytes(chunk) for chunk in response.streaming_content]


def test_the_parquet_file_holds_the_jsonl_rows_typed_and_streams_a_row_group_at_a_time(monkeypatch):
    monkeypatch.setattr(exports, "CHUNK", 2)
    monkeypatch.setattr(exports, "PARQUET_ROW_GROUP", 2)  # six rows: three row groups, each sent when written
    owner = api_user()
    project = make_project(owner=owner)
    run, chat, plain = a_run_with_trajectories(project)
    client = token_client(owner)
    response = client.get(f"/api/v1/runs/{run.id}/exports/trajectories.parquet", HTTP_ACCEPT=PARQUET)
    assert response["Content-Type"] == PARQUET
    assert response["Content-Disposition"] == f'attachment; filename="grpo-math-v2-{run.id}-trajectories.parquet"'
    chunks = parquet_chunks(response)
    assert len([c for c in chunks if c]) == 4  # three row groups, then the footer
    raw = b"".join(chunks)
    assert raw[:4] == raw[-4:] == b"PAR1"
    table = pq.read_table(io.BytesIO(raw))
    assert table.num_rows == 6 and pq.ParquetFile(io.BytesIO(raw)).num_row_groups == 3
    assert table.column_names == exports.TRAJECTORY_COLUMNS
    types = {field.name: str(field.type) for field in table.schema}
    assert types["step"] == types["prompt"] == types["length"] == "int64"
    assert types["reward"] == types["advantage"] == "double"
    assert types["rewards"] == "struct<correct: double, format: double>"
    assert types["prompt_messages"] == "list<element: struct<role: string, content: string>>"

    jsonl = [json.loads(line) for line in body(client.get(f"/api/v1/runs/{run.id}/exports/trajectories.jsonl"))
             .decode().splitlines()]
    assert table.to_pylist() == jsonl  # the same rows, order and values as the JSONL

    frame = pandas.read_parquet(io.BytesIO(raw))
    assert frame["advantage"].isna().tolist() == [False, False, False, True, False, False]
    assert frame["prompt"].isna().tolist() == [False] * 4 + [True] * 2  # text an external trainer sent


def test_a_column_null_in_its_first_rows_and_filled_later_loads_with_datasets(tmp_path):
    """The JSONL's limit: ``datasets`` types a column from its first block, so an advantage or a
    reward component that first shows up later does not load. The Parquet schema is fixed."""
    owner = api_user()
    project = make_project(owner=owner)
    run = make_run(project, kind=RunKind.EXTERNAL, name="late")
    Trajectory.objects.bulk_create([
        Trajectory(run=run, step=step, group_index=0, sample_index=0, prompt_text="p", completion="c",
                   reward=float("nan") if step == 1 else 1.0 * step,
                   rewards={"judge": 0.5} if step >= 3 else {}, advantage=0.25 if step >= 3 else None,
                   length=0)
        for step in range(5)])
    raw = b"".join(parquet_chunks(token_client(owner).get(f"/api/v1/runs/{run.id}/exports/trajectories.parquet")))
    path = tmp_path / "late.parquet"
    path.write_bytes(raw)
    loaded = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert loaded.features["advantage"].dtype == "float64"
    assert loaded.features["rewards"] == {"judge": datasets.Value("float64")}
    assert loaded["advantage"] == [None, None, None, 0.25, 0.25]
    assert loaded["rewards"] == [{"judge": None}] * 3 + [{"judge": 0.5}] * 2
    assert loaded["reward"] == [0.0, None, 2.0, 3.0, 4.0]  # a worker's NaN is null, as in the JSONL
    assert loaded["prompt_messages"] == [None] * 5


def test_an_empty_run_and_a_run_without_components_give_valid_files(api, owner):
    project = make_project(owner=owner)
    empty = make_run(project, kind=RunKind.EXTERNAL, name="empty")
    table = pq.read_table(io.BytesIO(body(api.get(f"/api/v1/runs/{empty.id}/exports/trajectories.parquet"))))
    assert table.num_rows == 0 and table.column_names == exports.TRAJECTORY_COLUMNS
    bare = make_run(project, kind=RunKind.EXTERNAL, name="bare")
    Trajectory.objects.create(run=bare, step=0, group_index=0, sample_index=0, prompt_text="p", completion="c",
                              reward=1.0, length=3)
    table = pq.read_table(io.BytesIO(body(api.get(f"/api/v1/runs/{bare.id}/exports/trajectories.parquet"))))
    assert str(table.schema.field("rewards").type) == "null" and table.column("rewards").to_pylist() == [None]


def test_a_step_range_narrows_the_rows_and_a_bad_bound_is_named(api, owner):
    project = make_project(owner=owner)
    run, _, _ = a_run_with_trajectories(project)
    url = f"/api/v1/runs/{run.id}/exports/trajectories.parquet"
    table = pq.read_table(io.BytesIO(body(api.get(url, {"step_min": 1, "step_max": 2}))))
    assert table.column("step").to_pylist() == [1, 2, 2]
    response = api.get(url, {"step_max": "-1"}, HTTP_ACCEPT=PARQUET)
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["step_max"]


def test_only_the_runs_researchers_get_the_file_from_the_api_and_the_run_page(client):
    researcher, annotator, stranger = make_user(), make_user(), make_user()
    project = make_project(researcher=researcher, annotator=annotator)
    make_project(owner=stranger)
    run, _, _ = a_run_with_trajectories(project)
    for user, expected in ((annotator, 404), (stranger, 404)):
        response = token_client(user).get(f"/api/v1/runs/{run.id}/exports/trajectories.parquet")
        assert response.status_code == expected and response.json()["error"]["code"] == "not_found"
    url = reverse("experiments:export_trajectories_parquet", args=[project.id, run.id])
    client.login(username=researcher.username, password=PASSWORD)
    page = client.get(reverse("experiments:detail", args=[project.id, run.id])).content.decode()
    assert f'href="{url}" download' in page
    assert pq.read_table(io.BytesIO(body(client.get(url)))).num_rows == 6
    client.login(username=annotator.username, password=PASSWORD)
    assert client.get(url).status_code == 403
    client.login(username=stranger.username, password=PASSWORD)
    assert client.get(url).status_code == 404
