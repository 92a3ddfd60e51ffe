"""A prompt import reads, checks and writes its file a batch of rows at a time, in one
transaction: it holds one batch, not the file's rows, and a bad line anywhere still stores
nothing and is named by its number."""

import json
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import make_project
from tests.webapp.watched_upload import Watched
from webapp.core.uploads import upload_text
from webapp.datasets import parsing, services
from webapp.datasets.errors import DatasetError, DatasetImportError
from webapp.datasets.models import Prompt, PromptDataset
from webapp.datasets.services import dataset_import

pytestmark = pytest.mark.django_db


def jsonl(n: int, size: int = 20) -> bytes:
    return "".join(json.dumps({"prompt": f"q{i} " + "x" * size, "answer": str(i)}) + "\n" for i in range(n)).encode()


def test_prompts_are_written_a_batch_at_a_time_while_the_file_is_read(monkeypatch):
    monkeypatch.setattr(services, "IMPORT_BATCH", 4)
    content = Watched(SimpleUploadedFile("p.jsonl", jsonl(10)), model=Prompt)
    dataset = dataset_import(project=make_project(), name="d", filename="p.jsonl", content=content)
    # The 5th line is read after the first batch of 4 was written, the 9th after the second
    assert content.stored_when_read == [0, 0, 0, 0, 4, 4, 4, 4, 8, 8]
    assert list(dataset.prompts.order_by("index").values_list("index", "text", "reference")) == [
        (i, f"q{i} " + "x" * 20, str(i)) for i in range(10)]


@pytest.mark.parametrize("filename", ["p.jsonl", "p.csv"])
def test_a_bad_line_after_batches_were_written_stores_nothing_and_names_every_bad_line(monkeypatch, filename):
    monkeypatch.setattr(services, "IMPORT_BATCH", 3)
    if filename.endswith(".csv"):
        data = "prompt,answer\n" + "".join(f"q{i},{i}\n" for i in range(10)) + ",11\nq,12,extra\nq13,13\n"
        bad = [12, 13]  # the lines the bad rows end on (the header is line 1)
    else:
        data = jsonl(10).decode() + '{"prompt": ""}\n{not json\n{"prompt": "q13"}\n'
        bad = [11, 12]
    project = make_project()
    with pytest.raises(DatasetImportError) as caught:
        dataset_import(project=project, name="d", filename=filename, content=data)
    assert [n for n, _ in caught.value.errors] == bad
    assert "a prompt needs text" in caught.value.errors[0][1]
    assert not PromptDataset.objects.filter(project=project).exists()
    assert not Prompt.objects.exists()


def test_too_many_rows_stores_nothing(monkeypatch):
    monkeypatch.setattr(services, "IMPORT_BATCH", 2)
    monkeypatch.setattr(services, "MAX_ROWS", 5)
    monkeypatch.setattr(parsing, "MAX_ROWS", 5)
    with pytest.raises(DatasetImportError) as caught:
        dataset_import(project=make_project(), name="d", filename="p.jsonl", content=jsonl(7).decode())
    assert caught.value.errors == [(6, "at most 5 prompts per import")]
    assert not Prompt.objects.exists() and not PromptDataset.objects.exists()


def test_the_file_errors_still_come_before_a_name_another_import_took(monkeypatch):
    project = make_project()
    PromptDataset.objects.create(project=project, name="D")
    monkeypatch.setattr(services, "dataset_name_check", lambda **kwargs: None)  # as if both were checked first
    with pytest.raises(DatasetImportError) as caught:
        dataset_import(project=project, name="d", filename="p.jsonl", content=jsonl(3).decode() + "{bad\n")
    assert [n for n, _ in caught.value.errors] == [4]
    with pytest.raises(DatasetError) as refused:  # a good file: then the name is what is wrong
        dataset_import(project=project, name="d", filename="p.jsonl", content=jsonl(3).decode())
    assert refused.value.field == "name"
    assert list(PromptDataset.objects.values_list("name", flat=True)) == ["D"] and not Prompt.objects.exists()


def test_an_import_holds_a_batch_of_rows_not_the_file_s(monkeypatch):
    """Traced memory while importing a 6 MB file of 2 KB prompts, 50 at a time: a few batches'
    worth (a batch is about 100 KB of text), not the file's 3,000 rows."""
    monkeypatch.setattr(services, "IMPORT_BATCH", 50)
    project = make_project()
    content = upload_text(SimpleUploadedFile("p.jsonl", jsonl(3000, size=2000)))
    Prompt.objects.exists()  # the connection opened before tracing
    tracemalloc.start()
    try:
        dataset_import(project=project, name="d", filename="p.jsonl", content=content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert Prompt.objects.count() == 3000
    assert peak < 1.5 * 2**20, f"peak {peak / 2**20:.1f} MiB"
