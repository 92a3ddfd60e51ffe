"""A refused import keeps the first 100 of its bad lines and counts the rest: a file with an
error on each of its 200,000 lines held 200,000 messages (the page and the API's message showed
100 and 10 of them) until the import answered."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.core.line_errors import LineErrors
from webapp.datasets.errors import DatasetImportError
from webapp.datasets.models import PromptDataset
from webapp.datasets.services import dataset_import
from webapp.feedback.models import ComparisonTask
from webapp.feedback.parsing import TaskImportError
from webapp.feedback.services import comparison_tasks_import_jsonl
from webapp.rewards.errors import PairImportError
from webapp.rewards.models import PreferencePairSet
from webapp.rewards.services import pair_set_import

pytestmark = pytest.mark.django_db

BAD_LINES = 20_000
ALPACA = "".join(json.dumps({"instruction": f"Say hi {i}."}) + "\n" for i in range(BAD_LINES))  # no prompt


def test_line_errors_keep_the_first_hundred_and_count_them_all():
    errors = LineErrors()
    for n in range(1, 251):
        errors.append((n, f"bad {n}"))
    assert len(errors) == 100 and errors[-1] == (100, "bad 100") and (errors.total, errors.more) == (250, 150)
    errors[:] = [(1, "the file is one JSON array")]  # what a parser does for such a file
    assert list(errors) == [(1, "the file is one JSON array")] and (errors.total, errors.more) == (1, 0)


@pytest.mark.parametrize("filename, content", [
    ("p.jsonl", ALPACA),
    ("p.csv", "prompt,reference\n" + ",4\n" * BAD_LINES),  # an empty prompt on every line
])
def test_a_prompt_file_of_bad_lines_keeps_a_hundred_of_them(filename, content):
    with pytest.raises(DatasetImportError) as refused:
        dataset_import(project=make_project(), name="d", filename=filename, content=content)
    assert len(refused.value.errors) == 100 and refused.value.errors.total == BAD_LINES
    assert f"nothing imported, {BAD_LINES:,} bad line(s): " in str(refused.value)
    assert str(refused.value).endswith(f" … and {BAD_LINES - 10:,} more lines with errors")
    assert not PromptDataset.objects.exists()


def test_a_task_file_of_bad_lines_keeps_a_hundred_of_them():
    with pytest.raises(TaskImportError) as refused:
        comparison_tasks_import_jsonl(project=make_project(), content=ALPACA)
    assert len(refused.value.errors) == 100 and refused.value.errors.total == BAD_LINES
    assert str(refused.value).endswith(f" … and {BAD_LINES - 10:,} more lines with errors")
    assert not ComparisonTask.objects.exists()


def test_a_pair_file_of_bad_lines_keeps_a_hundred_of_them():
    with pytest.raises(PairImportError) as refused:
        pair_set_import(project=make_project(), name="p", content=ALPACA)
    assert len(refused.value.errors) == 100 and refused.value.errors.total == BAD_LINES
    assert str(refused.value).endswith(f" … and {BAD_LINES - 10:,} more lines with errors")
    assert not PreferencePairSet.objects.exists()


def test_a_parquet_file_of_bad_rows_keeps_a_hundred_of_them():
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    buffer = io.BytesIO()
    pq.write_table(pa.table({"instruction": [f"say {i}" for i in range(BAD_LINES)]}), buffer)
    owner = api_user()
    project = make_project(owner=owner)
    response = token_client(owner).post(f"/api/v1/projects/{project.id}/datasets/", {
        "name": "alpaca", "file": SimpleUploadedFile("p.parquet", buffer.getvalue())}, format="multipart")
    assert response.status_code == 400
    (message,) = response.json()["error"]["fields"]["file"]
    assert message.startswith(f"nothing imported, {BAD_LINES:,} bad row(s): row 1: ")
    assert message.endswith(f" … and {BAD_LINES - 10:,} more rows with errors")
    assert not PromptDataset.objects.exists()


@pytest.mark.parametrize("url, data", [
    ("datasets:import", {"name": "d"}),
    ("feedback:task_import", {"required_labels": 1}),
    ("rewards:import_pairs", {"name": "p"}),
])
def test_the_import_page_lists_a_hundred_bad_lines_and_counts_the_others(client, url, data):
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    upload = SimpleUploadedFile("p.jsonl", ALPACA.encode())
    response = client.post(reverse(url, args=[project.id]), {**data, "file": upload})
    body = response.content.decode()
    assert response.status_code == 400 and "Line 100: " in body and "Line 101: " not in body
    assert f"… and {BAD_LINES - 100:,} more bad lines." in body
