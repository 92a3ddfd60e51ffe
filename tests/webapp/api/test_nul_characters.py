"""Text PostgreSQL cannot store (NUL, U+0000; in jsonb also its escape) answers 400 naming the
field, and the line and the place within it for an import, and stores nothing. It reached the
database on some routes (a 500, or a 400 naming no field), or was stripped without a word."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import make_project, make_run, make_task
from webapp.datasets.models import PromptDataset
from webapp.experiments.models import Run, RunKind
from webapp.feedback.models import ComparisonTask, PreferenceLabel
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


# ---------------------------------------------------------------- a run's config, a sweep's

@pytest.mark.parametrize("config, message", [
    ({"note": {"why": ["a", "b\u0000"]}}, f"'note.why[1]' {NUL}"),
    ({"no\u0000te": "x"}, f"the key 'no\\x00te' {NUL}"),
])
def test_a_run_config_holding_nul_answers_400_naming_config(api, project, config, message):
    """The database refused it: a 400 under non_field_errors, "unsupported Unicode escape sequence"."""
    response = post(api, f"/api/v1/projects/{project.id}/runs/", {"name": "r", "kind": "external", "config": config})
    assert refused(response) == {"config": [message]}
    assert not Run.objects.exists()


@pytest.mark.parametrize("field, value", [
    ("config", {"rollout": {"stop": ["\u0000"]}}),
    ("sweep", {"optim.lr": [1e-6, 2e-6], "x\u0000": [1, 2]}),
])
def test_a_sweep_holding_nul_answers_400_naming_the_field(api, project, field, value):
    body = {"name": "s", "kind": "policy", "sweep": {"optim.lr": [1e-6, 2e-6]}, field: value}
    response = post(api, f"/api/v1/projects/{project.id}/runs/sweep/", body)
    assert list(refused(response)) == [field]
    assert "NUL character" in refused(response)[field][0]
    assert not Run.objects.exists()


# ---------------------------------------------------------------- plain text fields (DRF refuses them)

def test_plain_text_fields_of_every_writing_route_refuse_nul_naming_the_field(api, project):
    run = make_run(project, kind=RunKind.EXTERNAL, name="kept")
    task = make_task(project, completions=["a", "b"])
    p = project.id
    cases = [
        (f"/api/v1/projects/{p}/datasets/", {"name": "d", "description": "a\u0000", "content": '{"prompt": "x"}'},
         "description"),
        (f"/api/v1/projects/{p}/runs/", {"name": "r\u0000", "kind": "external"}, "name"),
        (f"/api/v1/projects/{p}/rubrics/", {"name": "R", "criteria": [{"name": "c", "description": "\u0000"}]},
         "criteria.0.description"),
        ("/api/v1/projects/", {"name": "P\u0000"}, "name"),
        (f"/api/v1/projects/{p}/policies/", {"name": "p\u0000", "source": "tiny"}, "name"),
        (f"/api/v1/tasks/{task.id}/labels/", {"ranking": [[0], [1]], "critique": "\u0000",
                                              "submission_key": "key-00000001"}, "critique"),
    ]
    for url, body, field in cases:
        assert field in refused(post(api, url, body)), url
    for body, field in [({"description": "\u0000"}, "description"), ({"tags": ["ok", "t\u0000"]}, "tags.1")]:
        assert field in refused(api.patch(f"/api/v1/runs/{run.id}/", json.dumps(body),
                                          content_type="application/json"))
    assert "path" in refused(api.put(f"/api/v1/runs/{run.id}/artifacts/a%00b", b"x",
                                     content_type="application/octet-stream"))
    assert not PromptDataset.objects.exists() and not PreferenceLabel.objects.exists()
    assert list(Run.objects.values_list("name", "description")) == [("kept", "")]
