"""A project's labels as Parquet: labels.jsonl's rows and values with a schema fixed before the
first row, streamed a row group at a time, loaded by pandas and ``datasets`` without a guess.

labels.jsonl's ``gold_ranking`` and ``rubric`` are null on the lines of plain tasks and set on
gold or rubric tasks; ``datasets.load_dataset("json", ...)`` infers a type per 10 MB block, so a
large file whose first block holds neither fails to load. The Parquet file has one type per
column from the start."""

import io
import json
import uuid

import datasets
import pandas
import pyarrow.parquet as pq
import pytest

from tests.factories import PASSWORD, make_project, make_rubric, make_task, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.feedback import exports
from webapp.feedback.services import label_submit

pytestmark = pytest.mark.django_db

PARQUET = "application/vnd.apache.parquet"


def submit(task, user, ranking, **kwargs):
    return label_submit(task=task, annotator=user, ranking=ranking, submission_key=uuid.uuid4().hex, **kwargs)


def chunks_of(response) -> list[bytes]:
    assert response.status_code == 200, response.content[:300]
    assert response.streaming
    return [bytes(chunk) for chunk in response.streaming_content]


def body(response) -> bytes:
    return b"".join(chunks_of(response))


def jsonl_rows(response) -> list[dict]:
    return [json.loads(line) for line in body(response).decode().splitlines()]


def parquet_rows(raw: bytes) -> list[dict]:
    """The file's rows with ``created_at`` as the JSONL writes it (ISO 8601)."""
    return [{**row, "created_at": row["created_at"].isoformat()} for row in pq.read_table(io.BytesIO(raw)).to_pylist()]


def a_labelled_project(owner, annotator):
    """Three plain tasks without gold or rubric labelled first, then a gold task and a rubric task."""
    project = make_project(owner=owner, annotator=annotator)
    for i in range(3):
        submit(make_task(project, prompt=f"plain {i}", completions=["a", "b"]), annotator, [[1], [0]])
    gold = make_task(project, prompt="2+2?", completions=["4", "5", "four"], gold_ranking=[[0, 2], [1]])
    submit(gold, annotator, [[0], [2], [1]], both_bad=False, time_spent_ms=1200)
    rubric = make_rubric(project)
    scored = make_task(project, prompt="Say hi.", completions=["Hi", "Go away"], rubric=rubric)
    correct = rubric.latest_version().criteria.get(name="Correct")
    submit(scored, annotator, [[0], [1]], critique="rude\nanswer", scores={0: {correct.pk: 1}, 1: {correct.pk: 0}})
    return project


def test_the_parquet_file_holds_the_jsonl_rows_typed_and_streams_a_row_group_at_a_time(monkeypatch):
    monkeypatch.setattr(exports, "CHUNK", 2)
    monkeypatch.setattr(exports, "PARQUET_ROW_GROUP", 2)  # five labels: three row groups, each sent when written
    owner, annotator = api_user(), make_user()
    project = a_labelled_project(owner, annotator)
    client = token_client(owner)
    response = client.get(f"/api/v1/projects/{project.id}/exports/labels.parquet", HTTP_ACCEPT=PARQUET)
    assert response["Content-Type"] == PARQUET
    assert response["Content-Disposition"] == f'attachment; filename="{project.slug}-labels.parquet"'
    chunks = chunks_of(response)
    assert len([c for c in chunks if c]) == 3  # two full row groups as written, then the last one with the footer
    raw = b"".join(chunks)
    assert raw[:4] == raw[-4:] == b"PAR1"
    assert pq.ParquetFile(io.BytesIO(raw)).num_row_groups == 3

    types = {field.name: str(field.type) for field in pq.read_schema(io.BytesIO(raw))}
    assert types["gold_ranking"] == types["ranking"] == "list<element: list<element: int64>>"
    assert types["rubric"] == "struct<name: string, version: int64>"
    assert types["scores"] == ("list<element: struct<candidate: int64, criterion: string, criterion_id: int64, "
                               "scale: string, weight: double, value: double>>")
    assert types["prompt"] == types["annotator"] == types["critique"] == "string"
    assert types["created_at"] == "timestamp[us, tz=UTC]"

    jsonl = jsonl_rows(client.get(f"/api/v1/projects/{project.id}/exports/labels.jsonl"))
    assert [list(row) for row in jsonl] == [exports.LABEL_COLUMNS] * 5
    assert parquet_rows(raw) == jsonl  # the same rows, order and values as the JSONL
    assert [row["gold_ranking"] for row in jsonl] == [None, None, None, [[0, 2], [1]], None]
    assert [row["rubric"] is None for row in jsonl] == [True] * 4 + [False]

    frame = pandas.read_parquet(io.BytesIO(raw))
    # sent without a time and without an assignment: unknown, null (NaN in pandas), not 0 ms
    assert [None if pandas.isna(v) else v for v in frame["time_spent_ms"].tolist()] == [None, None, None, 1200, None]
    assert str(frame["created_at"].dtype) == "datetime64[us, UTC]"


def test_datasets_loads_the_file_whose_first_row_groups_have_no_gold_ranking_or_rubric(monkeypatch, tmp_path):
    monkeypatch.setattr(exports, "PARQUET_ROW_GROUP", 2)
    owner, annotator = make_user(), make_user()
    project = a_labelled_project(owner, annotator)
    path = tmp_path / "labels.parquet"
    path.write_bytes(b"".join(exports.raw_labels_parquet(project=project)))
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 5
    assert ds[3]["gold_ranking"] == [[0, 2], [1]] and ds[0]["gold_ranking"] is None
    assert ds[4]["rubric"] == {"name": ds[4]["rubric"]["name"], "version": 1}
    assert [s["value"] for s in ds[4]["scores"]] == [1.0, 0.0]
    assert ds[4]["critique"] == "rude\nanswer"


def test_a_project_with_chat_prompts_gives_every_prompt_as_messages_as_the_jsonl_does():
    owner, annotator = make_user(), make_user()
    project = make_project(owner=owner, annotator=annotator)
    submit(make_task(project, prompt="plain", completions=["a", "b"]), annotator, [[0], [1]])
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    submit(make_task(project, prompt_messages=chat, completions=["Hello", "Yo"]), annotator, [[1], [0]])
    raw = b"".join(exports.raw_labels_parquet(project=project))
    assert str(pq.read_schema(io.BytesIO(raw)).field("prompt").type) == (
        "list<element: struct<role: string, content: string>>")
    rows = parquet_rows(raw)
    assert [row["prompt"] for row in rows] == [[{"role": "user", "content": "plain"}], chat]
    assert rows == [json.loads(line) for line in exports.raw_labels_jsonl(project=project)]


def test_a_chat_task_made_while_a_plain_file_is_written_gives_its_text(monkeypatch):
    """The prompt column's type is chosen before the first row; a chat task labelled after that
    (here: the check answering as it would have a moment before) gives its prompt text, not a
    list the string column cannot hold."""
    owner, annotator = make_user(), make_user()
    project = make_project(owner=owner, annotator=annotator)
    submit(make_task(project, prompt="plain", completions=["a", "b"]), annotator, [[0], [1]])
    chat = make_task(project, prompt_messages=[{"role": "user", "content": "Hi there"}], completions=["Hello", "Yo"])
    submit(chat, annotator, [[1], [0]])
    monkeypatch.setattr(exports, "has_chat_prompts", lambda project: False)
    rows = pq.read_table(io.BytesIO(b"".join(exports.raw_labels_parquet(project=project)))).to_pylist()
    assert [row["prompt"] for row in rows] == ["plain", chat.prompt_text]
    assert "Hi there" in chat.prompt_text


def test_a_project_without_labels_gives_a_valid_empty_file_with_the_schema():
    project = make_project(owner=make_user())
    table = pq.read_table(io.BytesIO(b"".join(exports.raw_labels_parquet(project=project))))
    assert table.num_rows == 0
    assert table.column_names == exports.LABEL_COLUMNS


def test_the_comparison_tasks_page_links_the_download_and_it_answers_researchers_only(client):
    owner, annotator = make_user(), make_user()
    project = a_labelled_project(owner, annotator)
    client.login(username=owner.username, password=PASSWORD)
    url = f"/projects/{project.id}/feedback/export/labels.parquet"
    assert url in client.get(f"/projects/{project.id}/feedback/tasks/").content.decode()
    response = client.get(url)
    assert response["Content-Type"] == PARQUET
    assert response["Content-Disposition"] == f'attachment; filename="{project.slug}-labels.parquet"'
    assert pq.read_table(io.BytesIO(body(response))).num_rows == 5
    client.logout()
    client.login(username=annotator.username, password=PASSWORD)
    assert client.get(url).status_code == 403
    other = make_project(owner=make_user())
    client.logout()
    client.login(username=owner.username, password=PASSWORD)
    assert client.get(f"/projects/{other.id}/feedback/export/labels.parquet").status_code == 404
