"""Every route × every role × two projects: nobody reaches what is not theirs.

The caller holds a role in project A. Against A's objects the answer follows the role
matrix of docs/api.md; against project B's objects (where the caller has no membership) it
is always 404, never 403, so another project's objects are not even revealed to exist.
"""

import json
import re
import uuid
from dataclasses import dataclass

import pytest
from django.conf import settings

from tests.factories import make_dataset, make_policy, make_project, make_run
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.artifacts import artifact_put
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import Checkpoint, RunKind, RunStatus, Trajectory
from webapp.feedback.models import Candidate, ComparisonTask, PreferenceLabel
from webapp.feedback.services import rubric_create
from webapp.rewards.models import PreferencePairSet, RewardModel

pytestmark = pytest.mark.django_db

ROLES = ["owner", "researcher", "annotator", "outsider"]


@dataclass
class ProjectObjects:
    project: int
    dataset: int
    unused_dataset: int
    run: int
    finished_run: int
    trajectory: int
    checkpoint: int
    rubric: int
    task: int
    open_task: int
    label: int
    researcher_label: int
    reward_model: int
    pair_set: int
    annotator_user: int
    policy: int


def make_task(project, rubric=None) -> ComparisonTask:
    task = ComparisonTask.objects.create(project=project, prompt_text="2+2?",
                                         rubric_version=rubric.latest_version() if rubric else None)
    Candidate.objects.bulk_create([Candidate(task=task, position=i, text=t) for i, t in enumerate(["4", "5"])])
    return task


def make_label(task, user) -> PreferenceLabel:
    return PreferenceLabel.objects.create(task=task, annotator=user, ranking=[[0], [1]],
                                          submission_key=uuid.uuid4().hex)


def populate(users: dict) -> ProjectObjects:
    project = make_project(owner=users["owner"], researcher=users["researcher"], annotator=users["annotator"])
    run = make_run(project, kind=RunKind.EXTERNAL, config={"trainer": "test"})
    metric_points_upsert(run_id=run.id, points=[("reward", s, 0.1 * s) for s in range(5)])
    trajectory = Trajectory.objects.create(run=run, step=1, group_index=0, sample_index=0, prompt_text="p",
                                           completion="c", reward=1.0, length=1)
    folder = settings.STEER_CHECKPOINT_DIR / f"run-{run.id}-{uuid.uuid4().hex}" / "step-1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    checkpoint = Checkpoint.objects.create(run=run, step=1, path=str(folder), size_bytes=2)
    artifact_put(run_id=run.id, path="eval/report.json", chunks=[b'{"accuracy": 1}'])
    rubric = rubric_create(project=project, name="Helpful", criteria=[{"name": "Correct", "scale": "binary"}])
    task = make_task(project, rubric)
    dataset = make_dataset(project)
    return ProjectObjects(
        project=project.id, dataset=dataset.id, unused_dataset=make_dataset(project).id, run=run.id,
        trajectory=trajectory.id,
        finished_run=make_run(project, kind=RunKind.EXTERNAL, status=RunStatus.SUCCEEDED, dataset=dataset).id,
        checkpoint=checkpoint.id, rubric=rubric.id, task=task.id, open_task=make_task(project).id,
        label=make_label(task, users["annotator"]).id, researcher_label=make_label(task, users["researcher"]).id,
        reward_model=RewardModel.objects.create(project=project, name="rm", backbone="tiny",
                                                path=str(folder.parent)).id,  # saved: its download answers
        pair_set=PreferencePairSet.objects.create(project=project, name="ps", pair_count=1, pairs=[
            {"prompt": "p", "chosen": "a", "rejected": "b"}]).id,
        annotator_user=users["annotator"].id, policy=make_policy(project).id,
    )


@pytest.fixture
def world():
    users = {role: api_user() for role in ROLES}
    other_users = {role: api_user() for role in ROLES}
    return users, populate(users), populate(other_users)


def criteria():
    return [{"name": "Correct", "scale": "binary"}]


# (name, method, path, body, expected status for owner / researcher / annotator of the project)
ROUTES = [
    ("project detail", "get", "/api/v1/projects/{project}/", None, (200, 200, 200)),
    ("member list", "get", "/api/v1/projects/{project}/members/", None, (200, 200, 403)),
    ("member add", "post", "/api/v1/projects/{project}/members/",
     lambda: {"username": api_user().username, "role": "annotator"}, (201, 403, 403)),
    ("member detail", "get", "/api/v1/projects/{project}/members/{annotator_user}/", None, (200, 200, 403)),
    ("member role", "patch", "/api/v1/projects/{project}/members/{annotator_user}/",
     lambda: {"role": "researcher"}, (200, 403, 403)),
    ("member remove", "delete", "/api/v1/projects/{project}/members/{annotator_user}/", None, (204, 403, 403)),
    ("dataset list", "get", "/api/v1/projects/{project}/datasets/", None, (200, 200, 403)),
    ("dataset import", "post", "/api/v1/projects/{project}/datasets/",
     lambda: {"name": f"ds-{uuid.uuid4().hex[:6]}", "content": '{"prompt": "hi"}\n'}, (201, 201, 403)),
    ("dataset detail", "get", "/api/v1/datasets/{dataset}/", None, (200, 200, 404)),
    ("prompt list", "get", "/api/v1/datasets/{dataset}/prompts/", None, (200, 200, 404)),
    ("unused dataset delete", "delete", "/api/v1/datasets/{unused_dataset}/", None, (204, 204, 404)),
    ("used dataset delete", "delete", "/api/v1/datasets/{dataset}/", None, (409, 409, 404)),
    ("run list", "get", "/api/v1/projects/{project}/runs/", None, (200, 200, 403)),
    ("run create", "post", "/api/v1/projects/{project}/runs/",
     lambda: {"name": "ext", "kind": "external", "config": {"trainer": "x"}}, (201, 201, 403)),
    ("run sweep", "post", "/api/v1/projects/{project}/runs/sweep/",
     lambda: {"name": "grid", "kind": "policy", "policy": "{policy}", "dataset": "{dataset}",
              "sweep": {"optim.lr": [1e-6, 1e-5]}}, (201, 201, 403)),
    ("run detail", "get", "/api/v1/runs/{run}/", None, (200, 200, 404)),
    ("run notes", "patch", "/api/v1/runs/{run}/", lambda: {"tags": ["baseline"]}, (200, 200, 404)),
    ("run status", "post", "/api/v1/runs/{run}/status/", lambda: {"status": "running"}, (200, 200, 404)),
    ("run cancel", "post", "/api/v1/runs/{run}/cancel/", None, (200, 200, 404)),
    ("run delete", "delete", "/api/v1/runs/{finished_run}/", None, (204, 204, 404)),
    ("active run delete", "delete", "/api/v1/runs/{run}/", None, (409, 409, 404)),
    ("metric points", "get", "/api/v1/runs/{run}/metrics/", None, (200, 200, 404)),
    ("metric ingest", "post", "/api/v1/runs/{run}/metrics/", lambda: {"points": [["loss", 9, 1.0]]}, (201, 201, 404)),
    ("trajectory export", "get", "/api/v1/runs/{run}/exports/trajectories.jsonl", None, (200, 200, 404)),
    ("trajectory parquet", "get", "/api/v1/runs/{run}/exports/trajectories.parquet", None, (200, 200, 404)),
    ("metric export", "get", "/api/v1/runs/{run}/exports/metrics.csv", None, (200, 200, 404)),
    ("metric history", "get", "/api/v1/metrics/history/?run={run}", None, (200, 200, 404)),
    ("metric latest", "get", "/api/v1/metrics/latest/?run={run}", None, (200, 200, 404)),
    ("trajectory list", "get", "/api/v1/runs/{run}/trajectories/", None, (200, 200, 404)),
    ("trajectory ingest", "post", "/api/v1/runs/{run}/trajectories/",
     lambda: {"records": [{"step": 2, "prompt": "p", "completion": "c", "reward": 0.5}]}, (201, 201, 404)),
    ("trajectory detail", "get", "/api/v1/trajectories/{trajectory}/", None, (200, 200, 404)),
    ("held-out answers", "get", "/api/v1/runs/{run}/held-out/", None, (200, 200, 404)),
    ("checkpoint list", "get", "/api/v1/runs/{run}/checkpoints/", None, (200, 200, 404)),
    ("checkpoint download", "get", "/api/v1/checkpoints/{checkpoint}/download/", None, (200, 200, 404)),
    ("artifact list", "get", "/api/v1/runs/{run}/artifacts/", None, (200, 200, 404)),
    ("artifact upload", "put", "/api/v1/runs/{run}/artifacts/notes.json", lambda: {"note": "x"}, (201, 201, 404)),
    ("artifact download", "get", "/api/v1/runs/{run}/artifacts/eval/report.json", None, (200, 200, 404)),
    ("artifact delete", "delete", "/api/v1/runs/{run}/artifacts/eval/report.json", None, (204, 204, 404)),
    ("rubric list", "get", "/api/v1/projects/{project}/rubrics/", None, (200, 200, 200)),
    ("rubric create", "post", "/api/v1/projects/{project}/rubrics/",
     lambda: {"name": f"r-{uuid.uuid4().hex[:6]}", "criteria": criteria()}, (201, 201, 403)),
    ("rubric detail", "get", "/api/v1/rubrics/{rubric}/", None, (200, 200, 200)),
    ("rubric update", "put", "/api/v1/rubrics/{rubric}/",
     lambda: {"name": "Helpful", "criteria": criteria() + [{"name": "Brief"}]}, (200, 200, 403)),
    ("task list", "get", "/api/v1/projects/{project}/tasks/", None, (200, 200, 200)),
    ("task create", "post", "/api/v1/projects/{project}/tasks/",
     lambda: {"content": json.dumps({"prompt": "q", "completions": ["a", "b"]})}, (201, 201, 403)),
    ("task detail", "get", "/api/v1/tasks/{task}/", None, (200, 200, 200)),
    ("label create", "post", "/api/v1/tasks/{open_task}/labels/",
     lambda: {"ranking": [[1], [0]], "submission_key": uuid.uuid4().hex}, (201, 201, 201)),
    ("label list", "get", "/api/v1/projects/{project}/labels/", None, (200, 200, 200)),
    ("own label detail", "get", "/api/v1/labels/{label}/", None, (200, 200, 200)),
    ("someone else's label", "get", "/api/v1/labels/{researcher_label}/", None, (200, 200, 404)),
    ("label withdraw", "delete", "/api/v1/labels/{label}/", None, (403, 403, 204)),
    ("label reject", "post", "/api/v1/labels/{label}/reject/", lambda: {"reason": "spam"}, (200, 200, 403)),
    ("someone else's label reject", "post", "/api/v1/labels/{researcher_label}/reject/", None, (200, 200, 404)),
    ("label restore", "post", "/api/v1/labels/{label}/restore/", None, (200, 200, 403)),
    ("annotator labels reject", "post", "/api/v1/projects/{project}/labels/reject/",
     lambda: {"annotator": "{annotator_user}", "reason": "spam"}, (200, 200, 403)),
    ("reward model list", "get", "/api/v1/projects/{project}/reward-models/", None, (200, 200, 403)),
    ("reward model detail", "get", "/api/v1/reward-models/{reward_model}/", None, (200, 200, 404)),
    ("reward model download", "get", "/api/v1/reward-models/{reward_model}/download/", None, (200, 200, 404)),
    ("reward model delete", "delete", "/api/v1/reward-models/{reward_model}/", None, (204, 204, 404)),
    ("pair set list", "get", "/api/v1/projects/{project}/pair-sets/", None, (200, 200, 403)),
    ("pair set import", "post", "/api/v1/projects/{project}/pair-sets/",
     lambda: {"name": f"ps-{uuid.uuid4().hex[:6]}", "content": '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'},
     (201, 201, 403)),
    ("pair set detail", "get", "/api/v1/pair-sets/{pair_set}/", None, (200, 200, 404)),
    ("pair set pairs", "get", "/api/v1/pair-sets/{pair_set}/pairs/", None, (200, 200, 404)),
    ("pair set delete", "delete", "/api/v1/pair-sets/{pair_set}/", None, (204, 204, 404)),
    ("preference export", "get", "/api/v1/projects/{project}/exports/preferences.jsonl", None, (200, 200, 403)),
    ("label export", "get", "/api/v1/projects/{project}/exports/labels.jsonl", None, (200, 200, 403)),
    ("label parquet", "get", "/api/v1/projects/{project}/exports/labels.parquet", None, (200, 200, 403)),
    ("reward agreement", "get", "/api/v1/projects/{project}/reward-agreement/?run={run}", None, (200, 200, 403)),
    ("label quality", "get", "/api/v1/projects/{project}/quality/", None, (200, 200, 403)),
]


def filled(value, objects: dict):
    """A body's value "{name}" (a name of ``ProjectObjects``) is that object's id, as in a path."""
    name = re.fullmatch(r"\{(\w+)\}", value) if isinstance(value, str) else None
    return objects[name[1]] if name else value


def call(client, method, path, body, objects=None):
    payload = json.dumps({k: filled(v, objects or {}) for k, v in body().items()}) if body else None
    return getattr(client, method)(path, data=payload, content_type="application/json")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name, method, path, body, expected", ROUTES, ids=[r[0] for r in ROUTES])
def test_route_answers_by_role_in_own_project(world, role, name, method, path, body, expected):
    users, own, _ = world
    response = call(token_client(users[role]), method, path.format(**vars(own)), body, vars(own))
    wanted = 404 if role == "outsider" else dict(zip(ROLES, expected))[role]
    assert response.status_code == wanted, (name, role, response.content[:300])
    if wanted >= 400:
        assert set(response.json()["error"]) == {"code", "message", "fields"}


@pytest.mark.parametrize("role", ROLES[:3])
@pytest.mark.parametrize("name, method, path, body, expected", ROUTES, ids=[r[0] for r in ROUTES])
def test_route_answers_404_for_objects_of_another_project(world, role, name, method, path, body, expected):
    users, _, other = world
    response = call(token_client(users[role]), method, path.format(**vars(other)), body, vars(other))
    assert response.status_code == 404, (name, role, response.content[:300])
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("name, method, path, body, expected", ROUTES, ids=[r[0] for r in ROUTES])
def test_a_404_says_what_was_not_found_in_the_same_words_as_for_an_id_that_does_not_exist(
        world, name, method, path, body, expected):
    """The view's message ("No such run.") reached the caller as "Not found.", whatever was missing,
    and a message of get_object_or_404 names the thing in words, not by its model class."""
    users, _, other = world
    client = token_client(users["owner"])
    theirs = call(client, method, path.format(**vars(other)), body, vars(other)).json()["error"]["message"]
    missing = call(client, method, path.format(**dict.fromkeys(vars(other), 10**15)), body,
                   dict.fromkeys(vars(other), 10**15)).json()["error"]["message"]
    assert re.sub(r"\d+", "<id>", theirs) == re.sub(r"\d+", "<id>", missing), name
    assert theirs.startswith("No such ") and "matches the given query" not in theirs, (name, theirs)


@pytest.mark.parametrize("name, method, path, body, expected", ROUTES, ids=[r[0] for r in ROUTES])
def test_route_answers_401_without_credentials(world, name, method, path, body, expected):
    from rest_framework.test import APIClient

    _, own, _ = world
    response = call(APIClient(), method, path.format(**vars(own)), body, vars(own))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_project_list_holds_only_the_callers_projects(world):
    users, own, _ = world
    for role in ROLES[:3]:
        ids = [p["id"] for p in token_client(users[role]).get("/api/v1/projects/").json()["results"]]
        assert ids == [own.project]
    assert token_client(users["outsider"]).get("/api/v1/projects/").json()["results"] == []


def test_annotator_lists_only_their_own_labels(world):
    users, own, _ = world
    listed = token_client(users["annotator"]).get(f"/api/v1/projects/{own.project}/labels/").json()["results"]
    assert [label["id"] for label in listed] == [own.label]
    listed = token_client(users["researcher"]).get(f"/api/v1/projects/{own.project}/labels/").json()["results"]
    assert sorted(label["id"] for label in listed) == sorted([own.label, own.researcher_label])


def test_annotator_does_not_see_gold_answers(world):
    users, own, _ = world
    ComparisonTask.objects.filter(pk=own.task).update(is_gold=True, gold_ranking=[[0], [1]])
    as_annotator = token_client(users["annotator"]).get(f"/api/v1/tasks/{own.task}/").json()
    as_owner = token_client(users["owner"]).get(f"/api/v1/tasks/{own.task}/").json()
    assert "gold_ranking" not in as_annotator and "is_gold" not in as_annotator
    assert as_owner["gold_ranking"] == [[0], [1]]
