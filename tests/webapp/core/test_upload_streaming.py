"""An import reads its uploaded file a chunk at a time (Django keeps a large upload in a
temporary file): the web process never holds the file whole, and every check, error message
and line number is what it was when the file was read into one string."""

import io
import json

import pytest
from django.core.files.uploadedfile import InMemoryUploadedFile

from tests.factories import make_project
from webapp.core import uploads
from webapp.core.uploads import upload_text
from webapp.datasets.errors import DatasetImportError
from webapp.datasets.models import PromptDataset
from webapp.datasets.services import dataset_import
from webapp.feedback.models import ComparisonTask
from webapp.feedback.parsing import TaskImportError
from webapp.feedback.services import comparison_tasks_import_jsonl
from webapp.rewards.errors import PairImportError
from webapp.rewards.models import PreferencePairSet
from webapp.rewards.services import pair_set_import

CHUNK = 64 * 1024  # Django's chunk of an upload


class ChunksOnly(io.BytesIO):
    """A file that fails the test when read whole or in a piece larger than a chunk."""

    def read(self, size=-1):
        assert size is not None and 0 <= size <= CHUNK, f"read({size})"
        return super().read(size)


def upload(name: str, data: bytes) -> InMemoryUploadedFile:
    return InMemoryUploadedFile(ChunksOnly(data), "file", name, "application/octet-stream", len(data), None)


LONG = "x" * (3 * CHUNK)  # a line that spans several chunks
PROMPTS = "".join(json.dumps({"prompt": f"q{i} {LONG if i == 2 else ''}", "answer": str(i)}) + "\n"
                  for i in range(200))
CSV = "prompt,answer\n" + "".join(f'"q{i}, {LONG if i == 2 else ""}",{i}\r\n' for i in range(200))
TASKS = "".join(json.dumps({"prompt": f"q{i}", "completions": [f"a{i} {LONG if i == 2 else ''}", "b"]}) + "\n"
                for i in range(200))
PAIRS = "".join(json.dumps({"prompt": f"q{i}", "chosen": f"a{i} {LONG if i == 2 else ''}", "rejected": "b"}) + "\n"
                for i in range(200))


def stored_prompts(project, name, content):
    dataset = dataset_import(project=project, name="d", filename=name, content=content)
    return [(p.text, p.reference) for p in dataset.prompts.order_by("index")]


@pytest.mark.django_db
def test_every_import_reads_its_upload_a_chunk_at_a_time_and_stores_every_row():
    project = make_project()
    expected = [(f"q{i} {LONG if i == 2 else ''}", str(i)) for i in range(200)]
    assert stored_prompts(project, "p.jsonl", upload_text(upload("p.jsonl", PROMPTS.encode()))) == expected
    PromptDataset.objects.all().delete()
    expected_csv = [(f"q{i}, {LONG if i == 2 else ''}", str(i)) for i in range(200)]
    assert stored_prompts(project, "p.csv", upload_text(upload("p.csv", CSV.encode()))) == expected_csv
    tasks = comparison_tasks_import_jsonl(project=project, content=upload_text(upload("t.jsonl", TASKS.encode())))
    assert len(tasks) == 200 and ComparisonTask.objects.get(prompt_text="q2").candidates.get(position=0).text == \
        f"a2 {LONG}"
    pair_set = pair_set_import(project=project, name="s", content=upload_text(upload("s.jsonl", PAIRS.encode())))
    assert pair_set.pair_count == 200 and pair_set.pairs[2]["chosen"] == f"a2 {LONG}"


@pytest.mark.django_db
@pytest.mark.parametrize("importer, error, content", [
    (lambda project, text: dataset_import(project=project, name="d", filename="p.jsonl", content=text),
     DatasetImportError, PROMPTS),
    (lambda project, text: comparison_tasks_import_jsonl(project=project, content=text), TaskImportError, TASKS),
    (lambda project, text: pair_set_import(project=project, name="s", content=text), PairImportError, PAIRS),
])
def test_a_bad_line_after_a_long_one_is_named_by_its_number_and_nothing_is_stored(importer, error, content):
    project = make_project()
    lines = content.splitlines(keepends=True)
    lines[150] = "{not json\n"
    with pytest.raises(error) as info:
        importer(project, upload_text(upload("f.jsonl", "".join(lines).encode())))
    assert [line for line, _ in info.value.errors] == [151]
    assert not PromptDataset.objects.exists() and not ComparisonTask.objects.exists()
    assert not PreferencePairSet.objects.exists()


def test_a_byte_that_is_no_utf8_in_a_later_chunk_is_named_by_its_byte_line_and_column():
    data = PROMPTS.encode()
    start = data.index(b'"q150') + 2
    column = start - data.rindex(b"\n", 0, start)
    with pytest.raises(ValueError, match=rf"not UTF-8 text \(byte {start}, line 151, column {column}: 0xE9\)"):
        upload_text(upload("p.jsonl", data[:start] + b"\xe9" + data[start:]))


def test_a_csv_row_spanning_lines_in_a_quoted_field_is_read_whole():
    from webapp.datasets.parsing import parse_csv

    rows = parse_csv(upload_text(upload("p.csv", b'prompt,answer\n"two\nlines",4\n"one\xe2\x80\xa8more",5\n')))
    assert [(r.text, r.reference) for r in rows] == [("two\nlines", "4"), ("one\u2028more", "5")]


def test_a_json_array_upload_too_large_to_parse_whole_is_still_named_without_its_count(monkeypatch):
    from webapp.rewards.parsing import parse_pairs

    array = json.dumps([{"prompt": "2+2?", "chosen": "4", "rejected": "5"}] * 3, indent=2).encode()
    with pytest.raises(PairImportError) as info:
        parse_pairs(upload_text(upload("a.json", array)))
    assert info.value.errors[0][1].startswith("the file is one JSON array (of 3 items), as Label Studio's")
    monkeypatch.setattr(uploads, "MAX_ARRAY_CHECK_BYTES", 50)
    with pytest.raises(PairImportError) as info:
        parse_pairs(upload_text(upload("a.json", array)))
    assert info.value.errors == [(1, info.value.errors[0][1])]
    assert info.value.errors[0][1].startswith("the file is one JSON array, as Label Studio's")


@pytest.mark.django_db
def test_an_upload_over_2_5_mb_reaches_the_import_in_a_temporary_file_and_imports_whole(client, monkeypatch):
    """Django held an upload of up to 32 MB in the web process's memory (FILE_UPLOAD_MAX_MEMORY_SIZE)."""
    from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
    from django.urls import reverse

    from tests.factories import PASSWORD, make_user
    from webapp.datasets import forms

    seen = []
    monkeypatch.setattr(forms, "upload_form_text",
                        lambda file: seen.append(type(file)) or uploads.upload_form_text(file))
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    lines = "".join(json.dumps({"prompt": f"What is {i} + {i}? {'padding ' * 10}", "answer": str(2 * i)}) + "\n"
                    for i in range(30_000))
    assert len(lines.encode()) > 3 * 2**20
    response = client.post(reverse("datasets:import", args=[project.id]),
                           {"name": "big", "file": SimpleUploadedFile("p.jsonl", lines.encode())})
    assert response.status_code == 302
    assert seen == [TemporaryUploadedFile]
    assert PromptDataset.objects.get().prompts.count() == 30_000
