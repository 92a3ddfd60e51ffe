"""A comparison-task import reads, checks and writes its file a batch of tasks at a time, in one
transaction: a bad line anywhere still stores nothing and is named by its number."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import make_project
from tests.webapp.watched_upload import Watched
from webapp.feedback import parsing, services
from webapp.feedback.models import Candidate, ComparisonTask
from webapp.feedback.parsing import TaskImportError
from webapp.feedback.services import comparison_tasks_import_jsonl

pytestmark = pytest.mark.django_db


def jsonl(n: int) -> str:
    return "".join(json.dumps({"prompt": f"q{i}", "completions": [f"a{i}", f"b{i}"], "metadata": {"i": i}}) + "\n"
                   for i in range(n))


def test_tasks_are_written_a_batch_at_a_time_while_the_file_is_read(monkeypatch):
    monkeypatch.setattr(services, "IMPORT_BATCH", 3)
    project = make_project()
    content = Watched(SimpleUploadedFile("t.jsonl", jsonl(7).encode()), model=ComparisonTask)
    tasks = comparison_tasks_import_jsonl(project=project, content=content, required_labels=2)
    assert content.stored_when_read == [0, 0, 0, 3, 3, 3, 6]
    assert [t.prompt_text for t in tasks] == [f"q{i}" for i in range(7)]
    stored = ComparisonTask.objects.filter(project=project).order_by("id")
    assert [(t.prompt_text, t.required_labels) for t in stored] == [(f"q{i}", 2) for i in range(7)]
    assert [(c.task.prompt_text, c.position, c.text, c.metadata) for c in
            Candidate.objects.filter(task__project=project).select_related("task").order_by("task_id", "position")] == [
        (f"q{i}", p, f"{'ab'[p]}{i}", {"i": i}) for i in range(7) for p in range(2)]


def test_a_bad_line_after_batches_were_written_stores_nothing_and_names_every_bad_line(monkeypatch):
    monkeypatch.setattr(services, "IMPORT_BATCH", 2)
    project = make_project()
    content = jsonl(5) + '{"prompt": "x", "completions": ["only"]}\n' + jsonl(2) + "{bad\n"
    with pytest.raises(TaskImportError) as caught:
        comparison_tasks_import_jsonl(project=project, content=content)
    assert [n for n, _ in caught.value.errors] == [6, 9]
    assert "2 to 10 completions" in caught.value.errors[0][1]
    assert not ComparisonTask.objects.exists() and not Candidate.objects.exists()


def test_too_many_tasks_store_nothing(monkeypatch):
    monkeypatch.setattr(services, "IMPORT_BATCH", 2)
    monkeypatch.setattr(services, "MAX_TASKS", 4)
    monkeypatch.setattr(parsing, "MAX_TASKS", 4)
    with pytest.raises(TaskImportError) as caught:
        comparison_tasks_import_jsonl(project=make_project(), content=jsonl(6))
    assert caught.value.errors == [(5, "at most 4 tasks per import")]
    assert not ComparisonTask.objects.exists()
