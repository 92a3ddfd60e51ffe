import json

import pytest

from tests.factories import make_dataset, make_policy, make_project, make_run
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import Run, RunKind, RunStatus, Trajectory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(owner):
    return make_project(owner=owner)


def post(api, path, body):
    return api.post(path, data=json.dumps(body), content_type="application/json")


def test_launched_policy_run_is_queued_for_a_worker_and_its_metrics_read_back(
        api, project, monkeypatch, django_capture_on_commit_callbacks):
    from workers.celery_app import app

    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, args: sent.append((name, args)))
    body = {"name": "grpo-1", "kind": "policy", "dataset": make_dataset(project).id,
            "policy": make_policy(project).id, "config": {"train": {"total_steps": 3}}}
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api, f"/api/v1/projects/{project.id}/runs/", body)
    assert response.status_code == 201, response.json()
    run = response.json()
    assert run["status"] == RunStatus.QUEUED and run["config"]["train"]["total_steps"] == 3
    assert sent == [("workers.tasks.run_policy", [run["id"]])]

    metric_points_upsert(run_id=run["id"], points=[["reward", s, s / 10] for s in range(1, 4)])  # as its worker
    # The API takes reports from external trainers only: the worker's records stay as they are.
    for path, body in (("metrics", {"points": [["reward", 2, 9.0]]}),
                       ("trajectories", {"records": [{"step": 1, "group_index": 0, "sample_index": 0,
                                                      "prompt": "p", "completion": "c", "reward": 1}]})):
        response = post(api, f"/api/v1/runs/{run['id']}/{path}/", body)
        assert response.status_code == 409, response.json()
        assert response.json()["error"]["message"].startswith(f"only external runs report {path} over the API")
    assert not Trajectory.objects.filter(run_id=run["id"]).exists()
    history = api.get("/api/v1/metrics/history/", {"run": run["id"], "key": "reward"}).json()["results"]
    assert history == [{"run": run["id"], "key": "reward", "steps": [1, 2, 3], "values": [0.1, 0.2, 0.3],
                        "downsampled": False, "extremes": []}]


def test_bad_config_answers_400_naming_the_field_and_stores_nothing(api, project):
    body = {"name": "bad", "kind": "policy", "dataset": make_dataset(project).id, "policy": make_policy(project).id,
            "config": {"algorithm": {"estimator": "nonsense"}}}
    response = post(api, f"/api/v1/projects/{project.id}/runs/", body)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["config.algorithm.estimator"]
    assert not Run.objects.exists()


def test_a_size_beyond_the_engine_bounds_answers_400_before_any_worker_sees_it(api, project, sent):
    body = {"name": "huge", "kind": "policy", "dataset": make_dataset(project).id, "policy": make_policy(project).id,
            "config": {"rollout": {"num_generations": 1e10}}}
    response = post(api, f"/api/v1/projects/{project.id}/runs/", body)
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "config.rollout.num_generations": ["must be at most 1,024 (got 10,000,000,000)"]}
    assert not Run.objects.exists() and sent == []


def test_dataset_of_another_project_answers_400_without_revealing_it(api, project):
    stranger = make_dataset(make_project())
    body = {"name": "x", "kind": "policy", "dataset": stranger.id, "policy": make_policy(project).id}
    response = post(api, f"/api/v1/projects/{project.id}/runs/", body)
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"dataset": [f"no dataset with id {stranger.id} in this project"]}


def test_external_run_goes_running_then_succeeded_through_the_status_endpoint(api, project):
    run = post(api, f"/api/v1/projects/{project.id}/runs/",
               {"name": "trl", "kind": "external", "config": {"trainer": "trl"}}).json()
    running = post(api, f"/api/v1/runs/{run['id']}/status/", {"status": "running", "total_steps": 10}).json()
    assert running["status"] == "running" and running["started_at"] and running["total_steps"] == 10
    done = post(api, f"/api/v1/runs/{run['id']}/status/", {"status": "succeeded", "current_step": 10}).json()
    assert done["status"] == "succeeded" and done["progress"] == 1.0 and done["finished_at"]


@pytest.mark.parametrize("config", [{}, None])
def test_an_external_run_needs_no_config(api, project, config):
    """The schema makes ``config`` optional; an external run without one was refused with
    'config: This field cannot be blank.' (the model's check of an empty JSON object)."""
    body = {"name": "my-loop", "kind": "external"} | ({"config": config} if config is not None else {})
    response = post(api, f"/api/v1/projects/{project.id}/runs/", body)
    assert response.status_code == 201, response.json()
    assert response.json()["config"] == {} and Run.objects.get(pk=response.json()["id"]).config == {}


def test_an_external_run_reports_its_progress_while_it_runs(api, project):
    """A second "running" answered 409 ('a running run cannot become running'), so a trainer
    could not move the run's progress bar, which stood at 0 until the run ended."""
    run = post(api, f"/api/v1/projects/{project.id}/runs/", {"name": "trl", "kind": "external"}).json()
    started = post(api, f"/api/v1/runs/{run['id']}/status/", {"status": "running", "total_steps": 10}).json()
    for _ in range(2):  # a retried report answers the same
        halfway = post(api, f"/api/v1/runs/{run['id']}/status/", {"status": "running", "current_step": 5})
        assert halfway.status_code == 200, halfway.json()
        body = halfway.json()
        assert (body["status"], body["current_step"], body["total_steps"], body["progress"]) == ("running", 5, 10, 0.5)
        assert body["started_at"] == started["started_at"] and body["finished_at"] is None
    done = post(api, f"/api/v1/runs/{run['id']}/status/", {"status": "succeeded", "current_step": 10}).json()
    assert done["status"] == "succeeded" and done["progress"] == 1.0
    late = post(api, f"/api/v1/runs/{run['id']}/status/", {"status": "running", "current_step": 11})
    assert late.status_code == 409 and Run.objects.get(pk=run["id"]).current_step == 10


def test_illegal_status_move_answers_409(api, project):
    run = make_run(project, kind=RunKind.EXTERNAL, status=RunStatus.SUCCEEDED)
    response = post(api, f"/api/v1/runs/{run.id}/status/", {"status": "running"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_status_of_a_steer_run_cannot_be_set_over_the_api(api, project):
    run = make_run(project, kind=RunKind.POLICY)
    response = post(api, f"/api/v1/runs/{run.id}/status/", {"status": "running"})
    assert response.status_code == 400
    assert Run.objects.get(pk=run.id).status == RunStatus.QUEUED


def test_cancel_of_a_queued_run_cancels_it_and_a_second_cancel_answers_409(api, project):
    run = make_run(project)
    assert post(api, f"/api/v1/runs/{run.id}/cancel/", {}).json()["status"] == "cancelled"
    assert post(api, f"/api/v1/runs/{run.id}/cancel/", {}).status_code == 409


def test_cancel_of_a_running_run_asks_its_worker_to_stop(api, project):
    run = make_run(project, status=RunStatus.RUNNING)
    body = post(api, f"/api/v1/runs/{run.id}/cancel/", {}).json()
    assert body["status"] == "running" and body["cancel_requested"] is True


def test_run_list_filters_by_status(api, project):
    make_run(project, status=RunStatus.RUNNING)
    queued = make_run(project)
    listed = api.get(f"/api/v1/projects/{project.id}/runs/", {"status": "queued"}).json()["results"]
    assert [r["id"] for r in listed] == [queued.id]


def test_unknown_filter_value_answers_400_naming_the_parameter(api, project):
    response = api.get(f"/api/v1/projects/{project.id}/runs/", {"status": "sleeping"})
    assert response.status_code == 400
    assert "status" in response.json()["error"]["fields"]


def test_trajectories_filter_by_step_and_reward(api, project):
    run = make_run(project, kind=RunKind.EXTERNAL)
    records = [{"step": s, "group_index": 0, "sample_index": i, "prompt": "p", "completion": f"c{i}",
                "reward": float(i)} for s in (1, 2) for i in range(3)]
    assert post(api, f"/api/v1/runs/{run.id}/trajectories/", {"records": records}).json() == {"written": 6}
    listed = api.get(f"/api/v1/runs/{run.id}/trajectories/",
                     {"step": 2, "reward_min": 1, "ordering": "-reward"}).json()["results"]
    assert [(t["step"], t["reward"]) for t in listed] == [(2, 2.0), (2, 1.0)]


def test_bad_trajectory_record_answers_400_naming_index_and_field(api, project):
    run = make_run(project, kind=RunKind.EXTERNAL)
    records = [{"step": 1, "prompt": "p", "completion": "c", "reward": 1.0},
               {"step": 1, "sample_index": 1, "prompt": "p", "completion": 7, "reward": 1.0}]
    response = post(api, f"/api/v1/runs/{run.id}/trajectories/", {"records": records})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["records[1].completion"]
    assert not run.trajectories.exists()


@pytest.mark.parametrize("field", ["step", "group_index", "sample_index", "length"])
def test_a_trajectory_count_beyond_32_bits_is_refused_naming_the_bound(api, project, field):
    """A step of 2**31 answered "must be a non-negative integer", which it is: the message did
    not say what was wrong (the bound), where a metric point's step names its own."""
    run = make_run(project, kind=RunKind.EXTERNAL)
    record = {"step": 1, "prompt": "p", "completion": "c", "reward": 1.0, field: 2**31}
    response = post(api, f"/api/v1/runs/{run.id}/trajectories/", {"records": [record]})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        f"records[0].{field}": ["must be a non-negative integer of at most 2147483647 (2**31 - 1)"]}
    assert post(api, f"/api/v1/runs/{run.id}/trajectories/",
                {"records": [{**record, field: 2**31 - 1}]}).json() == {"written": 1}


def test_two_records_of_a_batch_in_one_slot_answer_400_and_a_retried_batch_is_harmless(api, project):
    run = make_run(project, kind=RunKind.EXTERNAL)
    url = f"/api/v1/runs/{run.id}/trajectories/"
    unnumbered = [{"step": 10, "prompt": "p", "completion": c, "reward": 1.0} for c in ("first", "second")]
    response = post(api, url, {"records": unnumbered})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"records[1].sample_index": [
        ("repeats the slot of records[0] (step 10, group_index 0, sample_index 0); number each completion "
         "of a step by group_index (its prompt) and sample_index")]}
    assert not run.trajectories.exists()
    numbered = [{**r, "sample_index": i} for i, r in enumerate(unnumbered)]
    assert post(api, url, {"records": numbered}).json() == {"written": 2}
    assert post(api, url, {"records": numbered}).json() == {"written": 2}  # a retry
    assert sorted(run.trajectories.values_list("completion", flat=True)) == ["first", "second"]


def test_a_value_the_database_cannot_store_answers_400_not_500(api, project):
    body = {"name": "nul", "kind": "external", "config": {"note": "a\u0000b"}}
    response = post(api, f"/api/v1/projects/{project.id}/runs/", body)
    assert response.status_code in (201, 400)  # SQLite stores NUL; PostgreSQL's jsonb refuses it
    if response.status_code == 400:
        assert not Run.objects.exists()


# ---------------------------------------------------------------- delete

@pytest.fixture
def checkpoint_root(settings, tmp_path):
    settings.STEER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    return settings.STEER_CHECKPOINT_DIR


def test_delete_of_a_finished_run_answers_204_and_the_run_and_its_metrics_are_gone(
        api, project, checkpoint_root, django_capture_on_commit_callbacks):
    from webapp.experiments.metrics import metric_points_upsert
    from webapp.experiments.models import MetricChunk, MetricRollup

    run = make_run(project, status=RunStatus.SUCCEEDED)
    metric_points_upsert(run_id=run.id, points=[("reward", s, 1.0) for s in range(4)])
    (run.checkpoint_dir / "step-4").mkdir(parents=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/api/v1/runs/{run.id}/")
    assert response.status_code == 204 and not response.content
    assert api.get(f"/api/v1/runs/{run.id}/").status_code == 404
    assert not MetricChunk.objects.filter(run_id=run.id).exists()
    assert not MetricRollup.objects.filter(run_id=run.id).exists()
    assert not run.checkpoint_dir.exists()
    assert api.delete(f"/api/v1/runs/{run.id}/").status_code == 404  # a second delete finds nothing


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_delete_of_an_active_run_answers_409_naming_its_status(api, project, checkpoint_root, status):
    run = make_run(project, status=status)
    response = api.delete(f"/api/v1/runs/{run.id}/")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict" and status in error["message"] and "cancel it first" in error["message"]
    assert Run.objects.filter(pk=run.id).exists()


def test_delete_of_the_run_that_trained_a_reward_model_answers_409(api, project, checkpoint_root):
    from webapp.rewards.models import RewardModel

    run = make_run(project, kind=RunKind.REWARD_MODEL, status=RunStatus.SUCCEEDED)
    RewardModel.objects.create(project=project, name="prefs-rm", backbone="tiny", training_run=run)
    response = api.delete(f"/api/v1/runs/{run.id}/")
    assert response.status_code == 409 and "prefs-rm" in response.json()["error"]["message"]
    assert Run.objects.filter(pk=run.id).exists()


def test_the_schema_documents_run_delete():
    from drf_spectacular.generators import SchemaGenerator

    operation = SchemaGenerator().get_schema(public=True)["paths"]["/api/v1/runs/{run_id}/"]["delete"]
    assert "204" in operation["responses"]
