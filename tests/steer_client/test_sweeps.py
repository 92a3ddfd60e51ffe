"""SteerClient.sweep_create against a live Steer server: a grid sweep launched from a script, its
runs answered in the grid's order and found by their tag; a lost answer retried launches it once;
refusals are SteerErrors naming the input."""

import pytest

from steer_client.client import SteerClient, SteerError
from tests.factories import make_dataset, make_policy, make_project, make_user
from tests.steer_client.test_client import lose_the_first_answer
from webapp.accounts.services import api_token_create
from webapp.experiments.models import Run, RunKind

pytestmark = pytest.mark.django_db(transaction=True)

LR_BETA = {"optim.lr": [1e-6, 1e-5], "algorithm.beta": [0, 0.04]}


@pytest.fixture
def project_and_client(live_server, sent):
    user = make_user()
    project = make_project(owner=user)
    client = SteerClient(live_server.url, api_token_create(user=user, name="client")[1], retries=1)
    yield project, client
    client.close()


def inputs(project) -> dict:
    return {"policy": make_policy(project).id, "dataset": make_dataset(project).id,
            "config": {"train": {"total_steps": 3}}}


def test_a_sweep_launches_its_runs_which_are_found_by_its_tag(project_and_client, sent):
    project, client = project_and_client
    runs = client.sweep_create(project=project.slug, name="grpo", sweep=LR_BETA, sweep_tag="lr-beta",
                               **inputs(project))
    assert [(r["config"]["optim"]["lr"], r["config"]["algorithm"]["beta"]) for r in runs] == [
        (1e-6, 0.0), (1e-6, 0.04), (1e-5, 0.0), (1e-5, 0.04)]
    assert runs[0]["name"] == "grpo · optim.lr=1e-06, algorithm.beta=0"
    assert all(r["kind"] == RunKind.POLICY and r["tags"] == ["lr-beta"] for r in runs)
    assert sorted(r["id"] for r in client.runs(project=project.id, tag="lr-beta")) == sorted(r["id"] for r in runs)
    assert sorted(args[0] for _, args in sent) == sorted(r["id"] for r in runs)  # each sent to a worker


def test_a_sweep_whose_answer_is_lost_is_retried_and_launched_once(project_and_client, monkeypatch, sent):
    project, client = project_and_client
    monkeypatch.setattr("steer_client.client.time.sleep", lambda s: None)
    keys = lose_the_first_answer(client, f"/projects/{project.id}/runs/sweep/")
    runs = client.sweep_create(project=project.id, name="grpo", sweep=LR_BETA, **inputs(project))
    assert sorted(project.runs.values_list("id", flat=True)) == sorted(r["id"] for r in runs)
    assert len(runs) == 4 and len(sent) == 4
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) == 36  # one UUID for the call and its retry


def test_each_call_launches_its_own_sweep_unless_given_the_same_key(project_and_client):
    project, client = project_and_client
    body = {"project": project.id, "name": "grpo", "sweep": {"optim.lr": [1e-6, 1e-5]}, **inputs(project)}
    first, second = client.sweep_create(**body), client.sweep_create(**body)
    assert {r["id"] for r in first}.isdisjoint(r["id"] for r in second)
    assert first[0]["tags"] != second[0]["tags"]
    again = [client.sweep_create(**body, idempotency_key="sweep-of-lr-0001") for _ in range(2)]
    assert again[0] == again[1] and Run.objects.count() == 6


def test_a_bad_grid_is_a_steer_error_naming_the_sweep_and_launches_nothing(project_and_client):
    project, client = project_and_client
    with pytest.raises(SteerError) as refused:
        client.sweep_create(project=project.id, name="grpo", sweep={"optim.lr": [1e-6, -1]}, **inputs(project))
    assert refused.value.status == 400
    assert refused.value.error["fields"]["sweep"][0].startswith("nothing was launched: optim.lr = -1: ")
    assert not Run.objects.exists()


def test_a_reward_model_is_not_swept(project_and_client):
    project, client = project_and_client
    with pytest.raises(SteerError) as refused:
        client.sweep_create(project=project.id, name="rm", kind="reward_model",
                            sweep={"lr": [1e-5, 2e-5]}, **inputs(project))
    assert refused.value.status == 400 and list(refused.value.error["fields"]) == ["kind"]
    assert not Run.objects.exists()


def test_an_evaluation_sweep_launches_one_evaluation_per_temperature(project_and_client, sent):
    project, client = project_and_client
    runs = client.sweep_create(project=project.id, name="base", kind="evaluation", sweep_tag="temperature",
                               sweep={"rollout.temperature": [0.7, 1.3]}, **inputs(project))
    assert [(r["name"], r["kind"], r["config"]["rollout"]["temperature"]) for r in runs] == [
        ("base · rollout.temperature=0.7", "evaluation", 0.7), ("base · rollout.temperature=1.3", "evaluation", 1.3)]
    assert sorted(r["id"] for r in client.runs(project=project.id, tag="temperature", kind="evaluation")) == sorted(
        r["id"] for r in runs)
    with pytest.raises(SteerError) as refused:
        client.sweep_create(project=project.id, name="base", kind="evaluation", sweep={"optim.lr": [1e-6, 1e-5]},
                            **inputs(project))
    assert refused.value.status == 400 and "'optim.lr' is no setting of an evaluation" in str(refused.value)
    assert Run.objects.count() == 2
