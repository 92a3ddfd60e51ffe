"""Preference pairs over the API: list, import, build from a run, read, delete."""

import json

import pytest

from tests.factories import make_project, make_run
from tests.webapp.api.conftest import api_user, token_client
from tests.webapp.rewards.test_rule_pairs import recorded_run
from webapp.experiments.models import RunKind, RunStatus
from webapp.rewards.models import PreferencePairSet

pytestmark = pytest.mark.django_db

PAIRS = '{"prompt": "2+2?", "chosen": "4", "rejected": "5"}\n{"prompt": [{"role": "user", "content": "hi"}], "chosen": "hello", "rejected": "go away"}\n'


@pytest.fixture
def owner_api():
    user = api_user()
    project = make_project(owner=user)
    return project, token_client(user)


def test_an_import_is_listed_without_its_pairs_and_read_with_them(owner_api):
    project, api = owner_api
    created = api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": "prefs", "content": PAIRS}, format="json")
    assert created.status_code == 201 and created.json()["pair_count"] == 2
    listed = api.get(f"/api/v1/projects/{project.id}/pair-sets/").json()["results"]
    assert [(s["name"], s["pair_count"]) for s in listed] == [("prefs", 2)] and "pairs" not in listed[0]
    detail = api.get(f"/api/v1/pair-sets/{created.json()['id']}/").json()
    assert detail["pairs"][1] == {"prompt": [{"role": "user", "content": "hi"}], "chosen": "hello",
                                  "rejected": "go away"}


def test_a_bad_import_names_its_lines_and_stores_nothing(owner_api):
    project, api = owner_api
    response = api.post(f"/api/v1/projects/{project.id}/pair-sets/",
                        {"name": "bad", "content": '{"prompt": "p", "chosen": "a"}\nnot json\n'}, format="json")
    assert response.status_code == 400
    message = " ".join(response.json()["error"]["fields"]["content"])
    assert "line 1: missing rejected" in message and "line 2: not valid JSON" in message
    assert not PreferencePairSet.objects.exists()


def test_pairs_are_built_from_a_run_of_the_project_only(owner_api):
    project, api = owner_api
    run, theirs = recorded_run(project), recorded_run(make_project(), name="theirs")
    url = f"/api/v1/projects/{project.id}/pair-sets/from-run/"
    built = api.post(url, {"name": "rules", "run": run.id, "step_min": 1, "step_max": 2, "rule": "exact_answer"},
                     format="json")
    assert built.status_code == 201 and built.json()["pair_count"] == 8
    refused = api.post(url, {"name": "x", "run": theirs.id, "step_max": 2}, format="json")
    assert refused.status_code == 400 and "run" in refused.json()["error"]["fields"]
    bad_rule = api.post(url, {"name": "x", "run": run.id, "step_max": 2, "rule": "nope"}, format="json")
    assert bad_rule.status_code == 400 and "choose one of" in bad_rule.json()["error"]["fields"]["rule"][0]
    assert api.post(f"/api/v1/projects/{theirs.project_id}/pair-sets/from-run/",
                    {"name": "x", "run": theirs.id, "step_max": 2}, format="json").status_code == 404


def test_delete_answers_409_while_a_reward_model_run_trains_on_the_set(owner_api):
    project, api = owner_api
    pair_set = PreferencePairSet.objects.create(project=project, name="ps", pair_count=0, pairs=[])
    run = make_run(project, kind=RunKind.REWARD_MODEL, status=RunStatus.RUNNING, name="live rm",
                   config={"data": {"source": "pairs", "pair_set": pair_set.id}})
    response = api.delete(f"/api/v1/pair-sets/{pair_set.id}/")
    assert response.status_code == 409 and "“live rm” (running)" in response.json()["error"]["message"]
    run.status = RunStatus.SUCCEEDED
    run.save()
    assert api.delete(f"/api/v1/pair-sets/{pair_set.id}/").status_code == 204
    assert api.get(f"/api/v1/pair-sets/{pair_set.id}/").status_code == 404


def test_a_preference_export_with_a_line_separator_imports_back_as_a_pair_set(owner_api):
    from tests.webapp.api.test_feedback import import_tasks, label_as_annotator

    project, api = owner_api
    tasks = import_tasks(api, project, [{"prompt": "line one\u2028line two", "completions": ["a\u2029b", "c"]}])
    label_as_annotator(project, {tasks[0]["id"]: [[0], [1]]})
    exported = api.get(f"/api/v1/projects/{project.id}/exports/preferences.jsonl")
    content = b"".join(exported.streaming_content).decode()
    assert "\u2028" in content  # written raw, as json.dumps(ensure_ascii=False) does
    assert "task_id" in content  # imported as it is, with the export's bookkeeping
    created = api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": "again", "content": content},
                       format="json")
    assert created.status_code == 201, created.json()
    pairs = api.get(f"/api/v1/pair-sets/{created.json()['id']}/").json()["pairs"]
    assert pairs == [{"prompt": "line one\u2028line two", "chosen": "a\u2029b", "rejected": "c"}]


def test_a_chat_preference_export_imports_back_as_a_pair_set(owner_api):
    """TRL's conversational format, as the export writes it for a chat prompt: chosen and
    rejected as the assistant's messages."""
    from tests.webapp.api.test_feedback import import_tasks, label_as_annotator

    project, api = owner_api
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    tasks = import_tasks(api, project, [{"prompt": messages, "completions": ["4", "5"]}])
    label_as_annotator(project, {tasks[0]["id"]: [[1], [0]]})
    exported = api.get(f"/api/v1/projects/{project.id}/exports/preferences.jsonl")
    content = b"".join(exported.streaming_content).decode()
    assert json.loads(content)["chosen"] == [{"role": "assistant", "content": "5"}]
    created = api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": "chat", "content": content},
                       format="json")
    assert created.status_code == 201, created.json()
    pairs = api.get(f"/api/v1/pair-sets/{created.json()['id']}/").json()["pairs"]
    assert pairs == [{"prompt": messages, "chosen": "5", "rejected": "4"}]
