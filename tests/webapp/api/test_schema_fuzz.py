"""Fuzz every operation of the OpenAPI schema with schemathesis: no input may cause a 5xx.

Path parameters point at real objects of the caller's project (random ids would only
exercise the 404 branch); query strings and bodies are generated from the schema, valid
and invalid. Examples per operation are bounded so the whole run stays well under a minute.
"""

import uuid

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from tests.factories import make_dataset, make_project, make_run
from tests.webapp.api.conftest import api_user
from webapp.accounts.services import api_token_create
from webapp.experiments.artifacts import artifact_put
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import Checkpoint, RunKind, RunStatus, Trajectory
from webapp.feedback.models import Candidate, ComparisonTask, PreferenceLabel
from webapp.feedback.services import rubric_create
from webapp.rewards.models import RewardModel
from webapp.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)


@pytest.fixture
def wsgi_keeps_the_test_connection():
    """Django's test client stops requests from closing the test's database connection; calls
    straight into the WSGI app need the same."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def real_ids(db, settings, wsgi_keeps_the_test_connection):
    user = api_user()
    project = make_project(owner=user, annotator=api_user())
    run = make_run(project, kind=RunKind.EXTERNAL, config={"trainer": "fuzz"})
    metric_points_upsert(run_id=run.id, points=[("reward", s, s / 10) for s in range(20)])
    trajectory = Trajectory.objects.create(run=run, step=1, group_index=0, sample_index=0, prompt_text="p",
                                           completion="c", reward=1.0, length=1)
    folder = settings.STEER_CHECKPOINT_DIR / f"run-{run.id}-{uuid.uuid4().hex}" / "step-1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    task = ComparisonTask.objects.create(project=project, prompt_text="q")
    Candidate.objects.bulk_create([Candidate(task=task, position=i, text=t) for i, t in enumerate("ab")])
    label = PreferenceLabel.objects.create(task=task, annotator=user, ranking=[[0], [1]], submission_key="fuzz-label")
    ids = {
        "project_id": project.id, "dataset_id": make_dataset(project).id, "run_id": run.id,
        "trajectory_id": trajectory.id,
        "checkpoint_id": Checkpoint.objects.create(run=run, step=1, path=str(folder)).id,
        "rubric_id": rubric_create(project=project, name="R", criteria=[{"name": "C"}]).id,
        "task_id": task.id, "label_id": label.id,
        "user_id": project.memberships.exclude(user=user).get().user_id,
        "reward_model_id": RewardModel.objects.create(project=project, name="rm", backbone="tiny",
                                                      path=str(folder.parent)).id,  # saved: it can be downloaded
        # an artifact of the run, downloaded (and deleted: later examples find it gone)
        "artifact_path": artifact_put(run_id=run.id, path="eval/report.json", chunks=[b"{}"])[0].path,
        # DELETE /runs/<id>/ gets a finished run, so the deletion itself runs (later examples find it gone)
        "finished_run_id": make_run(project, kind=RunKind.EXTERNAL, status=RunStatus.SUCCEEDED).id,
    }
    return ids, api_token_create(user=user, name="fuzz")[1]


@schema.parametrize()
@hypothesis_settings(max_examples=12, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_answer_5xx(case, real_ids):
    ids, token = real_ids
    if case.path_parameters:
        deleting = case.method.upper() == "DELETE"
        case.path_parameters = {name: ids.get(f"finished_{name}" if deleting else name, ids.get(name, value))
                                for name, value in case.path_parameters.items()}
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error])
