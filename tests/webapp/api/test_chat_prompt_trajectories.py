"""An external trainer's chat prompt is kept as messages: its tasks, pairs and exports stay
conversational (it was flattened to "user: ..." text, so a DPO or reward-model export of the
labels lost the chat structure and the chat template)."""

import json

import pytest

from tests.factories import make_project, make_run
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.models import RunKind, Trajectory
from webapp.feedback.models import ComparisonTask
from webapp.rewards.services import pair_set_from_run

pytestmark = pytest.mark.django_db

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2? <b>x</b>"}]


@pytest.fixture
def world():
    owner = api_user()
    project = make_project(owner=owner)
    run = make_run(project, kind=RunKind.EXTERNAL, name="trl")
    return owner, project, run, token_client(owner)


def post(api, run, records):
    return api.post(f"/api/v1/runs/{run.id}/trajectories/", {"records": records}, format="json")


def records(prompt):
    return [{"step": 0, "group_index": 0, "sample_index": s, "prompt": prompt, "completion": c,
             "reward": r, "rewards": {"exact": r}} for s, (c, r) in enumerate([("4", 1.0), ("5", 0.0)])]


def test_a_chat_prompt_is_stored_as_messages_with_its_text_and_read_back(world):
    owner, project, run, api = world
    assert post(api, run, records(CHAT)).status_code == 201
    stored = Trajectory.objects.get(run=run, sample_index=0)
    assert stored.prompt_messages == CHAT
    assert stored.prompt_text == "system: Be brief.\n\nuser: 2+2? <b>x</b>"
    listed = api.get(f"/api/v1/runs/{run.id}/trajectories/").json()["results"]
    assert [t["prompt_messages"] for t in listed] == [CHAT, CHAT]
    detail = api.get(f"/api/v1/trajectories/{stored.id}/").json()
    assert detail["prompt_messages"] == CHAT and detail["prompt_text"] == stored.prompt_text
    # a text prompt reported again into the same slot replaces the messages
    assert post(api, run, records("2+2?")).status_code == 201
    stored.refresh_from_db()
    assert (stored.prompt_messages, stored.prompt_text) == (None, "2+2?")


@pytest.mark.parametrize(("prompt", "words"), [
    ([], "non-empty list"),
    ([{"role": "user"}], "exactly 'role' and 'content'"),
    ([{"role": "wizard", "content": "hi"}], "has role 'wizard'"),
    ([{"role": {}, "content": "hi"}], "has role {}"),  # found by tests/webapp/api/test_schema_fuzz.py: a 500
    ([{"role": "user", "content": ["part"]}], "content must be a string"),
    ([{"role": "user", "content": "x" * 200_001}], "longer than 200000 characters"),
    (7, "must be a string or a list"),
])
def test_a_bad_chat_prompt_is_refused_naming_the_record_and_nothing_is_stored(world, prompt, words):
    owner, project, run, api = world
    batch = records("fine") + [{"step": 1, "prompt": prompt, "completion": "c", "reward": 0.0}]
    response = post(api, run, batch)
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    key = next(iter(fields))
    assert key.startswith("records[2].prompt") and words in fields[key][0]
    assert not Trajectory.objects.filter(run=run).exists()


def test_tasks_pairs_and_exports_from_the_run_keep_the_messages(world):
    owner, project, run, api = world
    assert post(api, run, records(CHAT)).status_code == 201
    response = api.post(f"/api/v1/projects/{project.id}/tasks/", {"run": run.id, "k": 2}, format="json")
    assert response.status_code == 201, response.content
    task = ComparisonTask.objects.get(project=project)
    assert task.prompt_messages == CHAT
    pair_set = pair_set_from_run(project=project, run=run, name="rule", step_min=0, step_max=0, rule="exact")
    assert pair_set.pairs[0]["prompt"] == CHAT
    lines = b"".join(api.get(f"/api/v1/runs/{run.id}/exports/trajectories.jsonl").streaming_content)
    assert [json.loads(line)["prompt_messages"] for line in lines.splitlines()] == [CHAT, CHAT]
