"""Prompt datasets import Parquet as verl and the Hugging Face Hub ship them (it was refused
with 'convert it with pandas'): a row is read as a JSONL line is, structs as objects."""

import datetime as dt
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_user
from webapp.datasets.models import PromptDataset

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

pytestmark = pytest.mark.django_db


def parquet(table, *, row_group_size=None) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=row_group_size)
    return buffer.getvalue()


def verl_gsm8k(n=3) -> bytes:
    """The columns of verl's examples/data_preprocess/gsm8k.py output."""
    return parquet(pa.table({
        "data_source": ["openai/gsm8k"] * n,
        "prompt": [[{"role": "user", "content": f"What is {i} + {i}? Let's think step by step."}] for i in range(n)],
        "ability": ["math"] * n,
        "reward_model": [{"style": "rule", "ground_truth": str(2 * i)} for i in range(n)],
        "extra_info": [{"split": "train", "index": i, "asked_at": dt.date(2026, 1, 1 + i)} for i in range(n)],
    }), row_group_size=2)  # several row groups, read one at a time


@pytest.fixture
def api_project():
    from tests.webapp.api.conftest import api_user, token_client

    owner = api_user()
    return token_client(owner), make_project(owner=owner)


def test_a_verl_parquet_file_imports_with_its_chat_prompts_and_ground_truths(api_project):
    api, project = api_project
    upload = SimpleUploadedFile("train.parquet", verl_gsm8k(), content_type="application/octet-stream")
    response = api.post(f"/api/v1/projects/{project.id}/datasets/", {"name": "gsm8k", "file": upload},
                        format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["prompt_count"] == 3
    prompts = sorted(PromptDataset.objects.get().prompts.all(), key=lambda p: p.index)
    assert [p.reference for p in prompts] == ["0", "2", "4"]
    assert prompts[2].messages == [{"role": "user", "content": "What is 2 + 2? Let's think step by step."}]
    assert prompts[1].metadata["data_source"] == "openai/gsm8k"
    assert prompts[1].metadata["extra_info"] == {"split": "train", "index": 1, "asked_at": "2026-01-02"}


def test_a_hub_shard_named_otherwise_is_recognised_by_its_bytes():
    user = make_user()
    project = make_project(owner=user)
    from django.test import Client

    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    content = parquet(pa.table({"problem": ["2+2?", "3+3?"], "answer": ["4", "6"], "level": [1, 2]}))
    response = client.post(reverse("datasets:import", args=[project.id]),
                           {"name": "math", "file": SimpleUploadedFile("0000.shard", content)})
    assert response.status_code == 302, response.content.decode()[:2000]
    dataset = PromptDataset.objects.get()
    assert sorted((p.text, p.reference, p.metadata["level"]) for p in dataset.prompts.all()) == [
        ("2+2?", "4", 1), ("3+3?", "6", 2)]


@pytest.mark.parametrize("table, words", [
    (lambda: pa.table({"prompt": ["fine", None, "ok"]}), "row 2: 'prompt' is null; a prompt needs text"),
    (lambda: pa.table({"prompt": ["fine"], "score": [float("nan")]}), "row 1: column 'score' holds nan"),
    (lambda: pa.table({"prompt": ["fine"], "blob": [b"\x00\x01"]}), "row 1: column 'blob' holds bytes values"),
    (lambda: pa.table({"instruction": ["fine"]}), "row 1: no prompt: give one of the fields"),
    (lambda: pa.table({"prompt": ["a\x00b"]}), "row 1: column 'prompt': "),
])
def test_bad_rows_are_named_by_number_and_nothing_is_imported(api_project, table, words):
    api, project = api_project
    upload = SimpleUploadedFile("p.parquet", parquet(table()))
    response = api.post(f"/api/v1/projects/{project.id}/datasets/", {"name": "bad", "file": upload},
                        format="multipart")
    assert response.status_code == 400
    assert words in response.json()["error"]["fields"]["file"][0]
    assert not PromptDataset.objects.exists()


def test_the_page_names_bad_rows_as_rows():
    user = make_user()
    project = make_project(owner=user)
    from django.test import Client

    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    content = parquet(pa.table({"prompt": ["fine", ""]}))
    response = client.post(reverse("datasets:import", args=[project.id]),
                           {"name": "bad", "file": SimpleUploadedFile("p.parquet", content)})
    body = response.content.decode()
    assert response.status_code == 400
    assert "Fix these rows" in body and "Row 2: &#x27;prompt&#x27; is empty" in body


def test_a_truncated_parquet_file_is_refused_saying_so(api_project):
    api, project = api_project
    content = verl_gsm8k()
    broken = content[:20] + content[-8:]  # the magic bytes at both ends, the rest missing
    response = api.post(f"/api/v1/projects/{project.id}/datasets/",
                        {"name": "broken", "file": SimpleUploadedFile("p.parquet", broken)}, format="multipart")
    assert response.status_code == 400
    assert "not a Parquet file that can be read" in response.json()["error"]["fields"]["file"][0]
    assert not PromptDataset.objects.exists()


def test_every_bad_row_is_counted(api_project):
    api, project = api_project
    upload = SimpleUploadedFile("p.parquet", parquet(pa.table({"instruction": [f"say {i}" for i in range(150)]})))
    response = api.post(f"/api/v1/projects/{project.id}/datasets/", {"name": "alpaca", "file": upload},
                        format="multipart")
    assert "nothing imported, 150 bad row(s)" in response.json()["error"]["fields"]["file"][0]
