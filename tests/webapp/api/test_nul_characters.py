"""Text PostgreSQL cannot store (NUL, U+0000; in jsonb also its escape) answers 400 naming the
field, and the line and the place within it for an import, and stores nothing. It reached the
database on some routes (a 500, or a 400 naming no field), or was stripped without a word."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import make_project
from webapp.datasets.models import PromptDataset
from webapp.feedback.models import ComparisonTask
from webapp.rewards.models import PreferencePairSet

pytestmark = pytest.mark.django_db

NUL = "holds a NUL character (\\u0000), which cannot be stored"


@pytest.fixture
def project(owner):
    return make_project(owner=owner)


def post(api, url, body):
    return api.post(url, json.dumps(body), content_type="application/json")


def refused(response) -> dict:
    assert response.status_code == 400, response.content
    return response.json()["error"]["fields"]


# ---------------------------------------------------------------- imports: the line and the place in it

@pytest.mark.parametrize("fmt, content, message", [
    ("jsonl", '{"prompt": "fine"}\n{"prompt": "p", "metadata": {"source": {"tags": ["a", "b\\u0000"]}}}\n',
     f"line 2: 'metadata.source.tags[1]' {NUL}"),
    ("jsonl", '{"prompt": "p", "metadata": {"k\\u0000": 1}}\n', f"line 1: the key 'k\\x00' of 'metadata' {NUL}"),
    ("jsonl", '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a\\u0000"}]}\n',
     f"line 1: 'messages[1].content' {NUL}"),
    ("jsonl", '{"prompt": "p", "reference": "4\\u0000"}\n', f"line 1: 'reference' {NUL}"),
    ("csv", 'prompt,metadata\np,"{""source"": ""a\\u0000""}"\n', f"line 2: 'metadata.source' {NUL}"),
    ("csv", 'prompt,reference\np,"4\x00"\n', f"line 2: 'reference' {NUL}"),
])
def test_a_prompt_import_names_the_line_and_the_place_of_a_nul(api, project, fmt, content, message):
    url = f"/api/v1/projects/{project.id}/datasets/"
    if "\x00" in content:  # raw NUL: in an uploaded file (the JSON body's content field refuses it)
        upload = SimpleUploadedFile(f"p.{fmt}", content.encode())
        response = api.post(url, {"name": "d", "file": upload}, format="multipart")
    else:
        response = post(api, url, {"name": "d", "format": fmt, "content": content})
    assert refused(response) == {"file": [f"nothing imported, 1 bad line(s): {message}"]}
    assert not PromptDataset.objects.exists()


@pytest.mark.parametrize("line, place", [
    ({"prompt": "p", "chosen": "a", "rejected": "b\u0000"}, "'rejected'"),
    ({"prompt": [{"role": "user", "content": "a\u0000"}], "chosen": "a", "rejected": "b"}, "'prompt[0].content'"),
    ({"prompt": "p", "chosen": "a", "rejected": "b", "metadata": {"k\u0000": {"x": "y"}}},
     "the key 'k\\x00' of 'metadata'"),
])
def test_a_pair_import_names_the_line_and_the_place_of_a_nul(api, project, line, place):
    content = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n" + json.dumps(line) + "\n"
    response = post(api, f"/api/v1/projects/{project.id}/pair-sets/", {"name": "pairs", "content": content})
    assert refused(response) == {"content": [f"nothing imported, 1 bad line(s): line 2: {place} {NUL}"]}
    assert not PreferencePairSet.objects.exists()


def test_a_task_import_names_the_line_and_the_place_of_a_nul(api, project):
    content = json.dumps({"prompt": "p", "completions": ["a", "b"], "metadata": {"judge": ["x\u0000"]}}) + "\n"
    response = post(api, f"/api/v1/projects/{project.id}/tasks/", {"content": content})
    assert refused(response) == {"content": [f"nothing imported, 1 bad line(s): line 1: 'metadata.judge[0]' {NUL}"]}
    assert not ComparisonTask.objects.exists()
