"""POST /projects/<id>/runs/sweep/: a grid sweep over the API, as the launch pages' Sweep launches
one (webapp.experiments.sweeps): one tagged run per combination of values, all checked before any
is launched; the Idempotency-Key covers the whole sweep."""

import json

import pytest

from tests.factories import make_dataset, make_policy, make_project
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.models import Run, RunKind, RunStatus, RunTag
from webapp.experiments.sweeps import default_tag

pytestmark = pytest.mark.django_db

KEY = "2b7d1f0e-5a3c-4e8b-9f61-0c4d2a9e7b13"
LR_BETA = {"optim.lr": [1e-6, 1e-5], "algorithm.beta": [0, 0.04]}


@pytest.fixture
def project(owner):
    return make_project(owner=owner)


def policy_body(project, grid=LR_BETA, **changes):
    return {"name": "grpo", "kind": "policy", "policy": make_policy(project).id, "dataset": make_dataset(project).id,
            "config": {"train": {"total_steps": 3}}, "sweep": grid, **changes}


def sweep(api, project, body, key=KEY):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post(f"/api/v1/projects/{project.id}/runs/sweep/", data=json.dumps(body),
                    content_type="application/json", **headers)


def nothing_launched(sent=()):
    return not Run.objects.exists() and not RunTag.objects.exists() and list(sent) == []


def test_a_sweep_launches_one_tagged_run_per_point_with_its_values(api, project, sent,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = sweep(api, project, policy_body(project))
    assert response.status_code == 201, response.json()
    runs = response.json()
    assert [r["name"] for r in runs] == [
        "grpo · optim.lr=1e-06, algorithm.beta=0", "grpo · optim.lr=1e-06, algorithm.beta=0.04",
        "grpo · optim.lr=1e-05, algorithm.beta=0", "grpo · optim.lr=1e-05, algorithm.beta=0.04"]
    assert [(r["config"]["optim"]["lr"], r["config"]["algorithm"]["beta"]) for r in runs] == [
        (1e-6, 0.0), (1e-6, 0.04), (1e-5, 0.0), (1e-5, 0.04)]
    assert all(r["kind"] == RunKind.POLICY and r["status"] == RunStatus.QUEUED
               and r["config"]["train"]["total_steps"] == 3 for r in runs)
    assert {tuple(r["tags"]) for r in runs} == {(default_tag(KEY),)}
    assert sorted(r.id for r in Run.objects.filter(project=project)) == sorted(r["id"] for r in runs)
    assert sorted(args[0] for _, args in sent) == sorted(r["id"] for r in runs)
    one = api.get(f"/api/v1/runs/{runs[0]['id']}/").json()
    assert one == runs[0]  # the runs API's representation


def test_a_given_sweep_tag_is_every_runs_tag_and_finds_them(api, project, sent):
    runs = sweep(api, project, policy_body(project, {"optim.lr": [1e-6, 3e-6, 1e-5]}, sweep_tag="lr-scan")).json()
    assert [r["tags"] for r in runs] == [["lr-scan"]] * 3
    listed = api.get(f"/api/v1/projects/{project.id}/runs/?tag=LR-SCAN").json()["results"]
    assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in runs)


def test_without_a_key_each_sweep_launches_anew_with_a_tag_of_its_own(api, project, sent):
    body = policy_body(project, {"optim.lr": [1e-6, 1e-5]})
    first, second = sweep(api, project, body, key=None), sweep(api, project, body, key=None)
    assert (first.status_code, second.status_code) == (201, 201)
    assert Run.objects.count() == 4
    assert first.json()[0]["tags"] != second.json()[0]["tags"]


def test_a_resent_sweep_answers_the_same_runs_and_launches_nothing(api, project, sent,
                                                                   django_capture_on_commit_callbacks):
    body = policy_body(project)
    with django_capture_on_commit_callbacks(execute=True):
        first = sweep(api, project, body)
        again = sweep(api, project, dict(reversed(body.items())))  # the body's keys reordered
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Run.objects.count() == 4 and RunTag.objects.count() == 4 and len(sent) == 4


def test_the_same_key_with_another_grid_answers_409_and_launches_nothing(api, project, sent):
    body = policy_body(project)
    assert sweep(api, project, body).status_code == 201
    response = sweep(api, project, {**body, "sweep": {"optim.lr": [1e-6, 1e-5]}})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "already launched a sweep of 4 runs" in response.json()["error"]["message"]
    assert Run.objects.count() == 4


def test_a_key_that_created_a_run_launches_no_sweep(api, project, sent):
    body = policy_body(project)
    single = {k: v for k, v in body.items() if k != "sweep"}
    run = api.post(f"/api/v1/projects/{project.id}/runs/", data=json.dumps(single), content_type="application/json",
                   HTTP_IDEMPOTENCY_KEY=KEY).json()
    response = sweep(api, project, body)
    assert response.status_code == 409
    assert f"already created run {run['id']}" in response.json()["error"]["message"]
    assert list(Run.objects.values_list("id", flat=True)) == [run["id"]]


def test_a_key_that_launched_a_sweep_creates_no_run(api, project, sent):
    body = policy_body(project)
    assert sweep(api, project, body).status_code == 201
    single = {k: v for k, v in body.items() if k != "sweep"}
    response = api.post(f"/api/v1/projects/{project.id}/runs/", data=json.dumps(single),
                        content_type="application/json", HTTP_IDEMPOTENCY_KEY=KEY)
    assert response.status_code == 409
    assert "already launched a sweep" in response.json()["error"]["message"]
    assert Run.objects.count() == 4


# ---------------------------------------------------------------- what a refused key is told

@pytest.mark.parametrize("key", ["short", "has space in it"])
def test_a_malformed_key_is_said_to_be_made_once_per_sweep(api, project, sent, key):
    [message] = sweep(api, project, policy_body(project), key=key).json()["error"]["fields"]["Idempotency-Key"]
    assert message == ("the Idempotency-Key header must be 8–64 letters, digits or - _ . : (a UUID, say), made once "
                       "per sweep to launch")


def test_a_key_reused_with_another_grid_is_told_of_the_key_and_how_to_launch_this_sweep(api, project, sent):
    body = policy_body(project)
    assert sweep(api, project, body).status_code == 201
    response = sweep(api, project, {**body, "sweep": {"optim.lr": [1e-6, 1e-5]}})
    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        "this Idempotency-Key already launched a sweep of 4 runs with other settings; nothing was launched: send a "
        "new Idempotency-Key to launch this sweep, or that sweep's own request to get its runs again")


def test_a_key_that_created_a_run_is_told_to_have_created_that_run_not_a_sweep(api, project, sent):
    body = policy_body(project)
    single = {k: v for k, v in body.items() if k != "sweep"}
    run = api.post(f"/api/v1/projects/{project.id}/runs/", data=json.dumps(single), content_type="application/json",
                   HTTP_IDEMPOTENCY_KEY=KEY).json()
    response = sweep(api, project, body)
    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        f"this Idempotency-Key already created run {run['id']} (“grpo”), not a sweep; nothing was launched: send a "
        "new Idempotency-Key to launch this sweep")


def delete_run(api, run_id):
    Run.objects.filter(pk=run_id).update(status=RunStatus.CANCELLED)
    assert api.delete(f"/api/v1/runs/{run_id}/").status_code == 204


def test_a_sweep_resent_after_one_of_its_runs_was_deleted_answers_409_naming_that_run(api, project, sent):
    body = policy_body(project)
    runs = sweep(api, project, body).json()
    delete_run(api, runs[1]["id"])
    response = sweep(api, project, body)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert error["message"] == (
        "this Idempotency-Key launched this sweep, but its run 2 of 4 (“grpo · optim.lr=1e-06, algorithm.beta=0.04”) "
        "was deleted since, so the sweep cannot be answered as it was launched; nothing was launched: send a new "
        "Idempotency-Key to launch the sweep again")
    assert Run.objects.count() == 3
    anew = sweep(api, project, body, key=KEY + "-2")
    assert anew.status_code == 201 and len(anew.json()) == 4 and Run.objects.count() == 7


def test_a_sweep_resent_after_its_last_runs_were_deleted_names_them_all(api, project, sent):
    body = policy_body(project)
    runs = sweep(api, project, body).json()
    for run in runs[2:]:
        delete_run(api, run["id"])
    response = sweep(api, project, body)
    assert response.status_code == 409
    assert response.json()["error"]["message"].startswith(
        "this Idempotency-Key launched this sweep, but 2 of its 4 runs (“grpo · optim.lr=1e-05, algorithm.beta=0”, "
        "“grpo · optim.lr=1e-05, algorithm.beta=0.04”) were deleted since")
    assert Run.objects.count() == 2


def test_a_longer_grid_under_the_key_of_a_sweep_is_another_sweep_not_a_deleted_run(api, project, sent):
    body = policy_body(project, {"optim.lr": [1e-6, 1e-5]})
    assert sweep(api, project, body).status_code == 201
    longer = policy_body(project, {"optim.lr": [1e-6, 1e-5, 1e-4]})  # the first two points as the sweep's
    longer["policy"], longer["dataset"] = body["policy"], body["dataset"]
    response = sweep(api, project, longer)
    assert response.status_code == 409
    assert "already launched a sweep of 2 runs with other settings" in response.json()["error"]["message"]
    assert Run.objects.count() == 2


def test_another_body_resent_after_a_run_was_deleted_is_told_of_other_settings(api, project, sent):
    body = policy_body(project)
    runs = sweep(api, project, body).json()
    delete_run(api, runs[0]["id"])
    response = sweep(api, project, {**body, "name": "other"})
    assert response.status_code == 409
    assert "already launched a sweep of 4 runs with other settings" in response.json()["error"]["message"]
    assert Run.objects.count() == 3


@pytest.mark.parametrize("key", ["short", "x" * 65, "has space in it"])
def test_a_malformed_key_answers_400_naming_the_header(api, project, sent, key):
    response = sweep(api, project, policy_body(project), key=key)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["Idempotency-Key"]
    assert nothing_launched(sent)


@pytest.mark.parametrize(("grid", "message"), [
    ({"optim.lr": [1e-6, -1]}, "nothing was launched: optim.lr = -1: "),
    ({"optim.lr": [1e-6, 1e-5], "rollout.num_generations": [4, 1]}, "rollout.num_generations = 1: "),
    ({"optim.lrr": [1e-6, 1e-5]}, "unknown setting 'optim.lrr'"),
    ({"optim.lr": [1e-6]}, "optim.lr: 1 value; a swept setting takes 2 to 8"),
    ({"optim.lr": [1e-6, "fast"]}, "optim.lr = fast: expected a finite number"),
    ({"optim.lr": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2], "algorithm.beta": [0, 0.01, 0.02, 0.04]}, "makes 20 runs"),
    ({"optim.lr": [1e-6, 1e-5], "algorithm.beta": [0, 0.04], "dpo.beta": [0.1, 0.2]}, "at most 2 settings"),
    ({"rewards[1].weight": [0.5, 1]}, "the run has 0 rewards"),
    ({}, "a sweep needs at least one setting with two values or more"),
])
def test_a_bad_grid_answers_400_naming_it_and_launches_nothing(api, project, sent, grid, message):
    response = sweep(api, project, policy_body(project, grid))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and list(error["fields"]) == ["sweep"]
    assert message in error["fields"]["sweep"][0]
    assert nothing_launched(sent)


@pytest.mark.parametrize(("changes", "field"), [
    ({"sweep": [1e-6, 1e-5]}, "sweep"),
    ({"sweep_tag": "lr, beta"}, "sweep_tag"),
    ({"config": []}, "config"),
    ({"policy": 10**12}, "policy"),
    ({"dataset": None}, "dataset"),
    ({"swep": {"optim.lr": [1e-6, 1e-5]}}, "swep"),
])
def test_a_bad_input_beside_the_grid_answers_400_naming_it_and_launches_nothing(api, project, sent, changes, field):
    response = sweep(api, project, policy_body(project, **changes))
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"], response.json()
    assert nothing_launched(sent)


def test_a_config_every_point_shares_is_refused_naming_the_setting_at_each_point(api, project, sent):
    body = policy_body(project, {"optim.lr": [1e-6, 1e-5]}, config={"rollout": {"num_generations": 1}})
    response = sweep(api, project, body)
    assert response.status_code == 400
    [message] = response.json()["error"]["fields"]["sweep"]
    assert message.startswith("nothing was launched: at optim.lr=1e-06: rollout.num_generations: ")
    assert "; at optim.lr=1e-05: rollout.num_generations: " in message
    assert nothing_launched(sent)


def test_the_sweep_is_required(api, project, sent):
    body = {k: v for k, v in policy_body(project).items() if k != "sweep"}
    response = sweep(api, project, body)
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["sweep"]
    assert nothing_launched(sent)


@pytest.mark.parametrize("kind", ["external", "reward_model"])
def test_a_sweep_of_a_kind_the_pages_do_not_sweep_is_refused(api, project, sent, kind):
    response = sweep(api, project, policy_body(project, {"rollout.temperature": [0.7, 1.0]}, kind=kind))
    assert response.status_code == 400
    [message] = response.json()["error"]["fields"]["kind"]
    assert message == f"a sweep launches policy, dpo, sft or evaluation runs, not {kind} runs"
    assert nothing_launched(sent)


def test_another_projects_sweep_answers_404_and_launches_nothing(api, project, sent):
    other = make_project(owner=api_user())
    response = sweep(api, other, policy_body(other))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["message"] == "No such project."
    assert nothing_launched(sent)
    assert sweep(api, project, policy_body(project)).status_code == 201  # the route is there: the project is not


def test_an_annotator_is_refused_and_a_researcher_may_launch(project, sent):
    annotator, researcher = api_user(), api_user()
    project.memberships.create(user=annotator, role="annotator")
    project.memberships.create(user=researcher, role="researcher")
    refused = sweep(token_client(annotator), project, policy_body(project))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert nothing_launched(sent)
    assert sweep(token_client(researcher), project, policy_body(project)).status_code == 201


def test_a_dpo_sweep_over_the_api(api, project, sent):
    from tests.webapp.experiments.test_dpo_runs import pairs_jsonl
    from webapp.rewards.services import pair_set_import

    pair_set = pair_set_import(project=project, name="toy", content=pairs_jsonl())
    body = {"name": "dpo", "kind": "dpo", "policy": make_policy(project).id, "sweep": {"dpo.beta": [0.1, 0.5]},
            "config": {"data": {"source": "pairs", "pair_set": pair_set.id}, "dpo": {"device": "cpu"}}}
    runs = sweep(api, project, body).json()
    assert [(r["name"], r["kind"], r["config"]["dpo"]["beta"]) for r in runs] == [
        ("dpo · dpo.beta=0.1", "dpo", 0.1), ("dpo · dpo.beta=0.5", "dpo", 0.5)]
    bad = sweep(api, project, {**body, "sweep": {"dpo.beta": [0.1, -1]}}, key=KEY + "-2")
    assert bad.status_code == 400 and "dpo.beta = -1: " in bad.json()["error"]["fields"]["sweep"][0]
    assert Run.objects.count() == 2


def test_an_sft_sweep_over_the_api(api, project, sent):
    from tests.webapp.experiments.test_sft_runs import toy_dataset

    body = {"name": "sft", "kind": "sft", "policy": make_policy(project).id,
            "sweep": {"optim.lr": [1e-5, 2e-5], "sft.epochs": [1, 2]},
            "config": {"data": {"source": "dataset", "dataset": toy_dataset(project).id}}}
    runs = sweep(api, project, body).json()
    assert [(r["config"]["optim"]["lr"], r["config"]["sft"]["epochs"]) for r in runs] == [
        (1e-5, 1), (1e-5, 2), (2e-5, 1), (2e-5, 2)]
    assert all(r["kind"] == "sft" and r["dataset"] is not None for r in runs)
    unknown = sweep(api, project, {**body, "sweep": {"dpo.beta": [0.1, 0.2]}}, key=KEY + "-2")
    assert unknown.status_code == 400 and "unknown setting 'dpo.beta'" in unknown.json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
def test_a_sweep_the_broker_refuses_answers_503_and_leaves_no_run(api, project, monkeypatch):
    from kombu.exceptions import OperationalError

    from workers.celery_app import app

    def refuse(name, args):
        raise OperationalError("Connection refused.")

    monkeypatch.setattr(app, "send_task", refuse)
    response = sweep(api, project, policy_body(project))
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    assert nothing_launched()


def test_the_schema_states_the_operation_and_its_list_of_runs(api):
    operation = api.get("/api/v1/schema/?format=json").json()["paths"][
        "/api/v1/projects/{project_id}/runs/sweep/"]["post"]
    for status in ("200", "201"):
        body = operation["responses"][status]["content"]["application/json"]["schema"]
        assert body == {"type": "array", "items": {"$ref": "#/components/schemas/RunOutput"}}
    assert {"400", "403", "404", "409", "503"} <= set(operation["responses"])
    assert "Idempotency-Key" in [p["name"] for p in operation["parameters"]]


# ---------------------------------------------------------------- a sweep of evaluations

def evaluation_body(project, grid=None, **changes):
    return {"name": "base", "kind": "evaluation", "policy": make_policy(project).id,
            "dataset": make_dataset(project, n=5).id, "sweep": grid or {"rollout.temperature": [0.7, 1.3]},
            "config": {"rollout": {"num_generations": 2, "prompts_per_step": 2, "max_new_tokens": 4},
                       "train": {"device": "cpu"}}, **changes}


def test_an_evaluation_sweep_launches_one_evaluation_per_point(api, project, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = sweep(api, project, evaluation_body(project, {"rollout.temperature": [0.7, 1.3], "train.seed": [0, 1]},
                                                       sweep_tag="temperature"))
    assert response.status_code == 201, response.json()
    runs = response.json()
    assert [(r["name"], r["kind"], r["config"]["rollout"]["temperature"], r["config"]["train"]["seed"], r["tags"],
             r["total_steps"]) for r in runs] == [
        ("base · rollout.temperature=0.7, train.seed=0", "evaluation", 0.7, 0, ["temperature"], 3),
        ("base · rollout.temperature=0.7, train.seed=1", "evaluation", 0.7, 1, ["temperature"], 3),
        ("base · rollout.temperature=1.3, train.seed=0", "evaluation", 1.3, 0, ["temperature"], 3),
        ("base · rollout.temperature=1.3, train.seed=1", "evaluation", 1.3, 1, ["temperature"], 3)]
    assert sorted(sent) == [("workers.tasks.run_evaluation", [r["id"]]) for r in runs]
    listed = api.get(f"/api/v1/projects/{project.id}/runs/", {"tag": "temperature", "kind": "evaluation"}).json()
    assert sorted(r["id"] for r in listed["results"]) == [r["id"] for r in runs]


def test_an_evaluation_sweep_resent_under_its_key_answers_the_same_runs(api, project, sent):
    body = evaluation_body(project)
    first, second = sweep(api, project, body), sweep(api, project, body)
    assert (first.status_code, second.status_code) == (201, 200) and first.json() == second.json()
    other = sweep(api, project, {**body, "sweep": {"train.seed": [0, 1]}})
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"
    assert Run.objects.count() == 2


@pytest.mark.parametrize(("grid", "message"), [
    ({"optim.lr": [1e-6, 1e-5]}, "'optim.lr' is no setting of an evaluation, which samples and scores and trains "
                                 "nothing"),
    ({"rollout.temperature": [0.7, 1.0], "train.total_steps": [1, 2]}, "'train.total_steps' is no setting of an "
                                                                       "evaluation"),
    ({"rollout.temperature": [0.7, 0]}, "nothing was launched: rollout.temperature = 0: must be > 0"),
])
def test_an_evaluation_sweep_over_a_setting_it_does_not_read_or_a_bad_point_launches_nothing(
        api, project, sent, grid, message):
    response = sweep(api, project, evaluation_body(project, grid))
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["sweep"]
    assert response.json()["error"]["fields"]["sweep"][0].startswith(message)
    assert nothing_launched(sent)


def test_an_evaluation_sweep_that_would_rank_completions_by_a_tournament_is_refused(api, project, sent):
    body = evaluation_body(project)
    body["config"]["rewards"] = [{"name": "tournament", "judge": {"source": "tiny"}}]
    response = sweep(api, project, body)
    assert response.status_code == 400 and nothing_launched(sent)
    assert "cannot score an evaluation" in response.json()["error"]["fields"]["sweep"][0]
