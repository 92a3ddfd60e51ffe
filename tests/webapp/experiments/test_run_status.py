"""The status panel and the runs list of a run no worker has started: what is true (queued,
waiting for a worker; the steps planned where they are known before it starts), never "step 0 of ?"."""

import pytest
from django.urls import reverse

from tests.factories import (
    PASSWORD,
    make_dataset,
    make_policy,
    make_project,
    make_run,
    make_user,
    tiny_run_config,
)
from webapp.experiments.models import RunKind, RunStatus
from webapp.experiments.services import run_launch

pytestmark = pytest.mark.django_db

COUNTED_LATER = "its steps are counted once the worker has read the preference data"


@pytest.fixture
def researcher(client):
    user = make_user()
    project = make_project(owner=user)
    client.login(username=user.username, password=PASSWORD)
    return project


def status_panel(client, run) -> str:
    response = client.get(reverse("experiments:status", args=[run.project_id, run.id]), HTTP_HX_REQUEST="true")
    assert response.status_code in (200, 286)  # 286: an ended run's panel, htmx stops polling
    return response.content.decode()


def runs_list(client, project) -> str:
    return client.get(reverse("experiments:list", args=[project.id]), HTTP_HX_REQUEST="true").content.decode()


def test_a_queued_policy_run_waits_for_a_gpu_worker_with_the_steps_its_config_plans(client, researcher):
    run = make_run(researcher, kind=RunKind.POLICY, config={"train": {"total_steps": 40}})
    panel = status_panel(client, run)
    assert "waiting for a GPU worker to start it · 40 steps planned" in panel
    assert "step 0" not in panel and "of ?" not in panel and "<progress" not in panel
    assert "waiting for a GPU worker · 40 steps" in runs_list(client, researcher)
    chart = client.get(reverse("experiments:chart_data", args=[researcher.id, run.id])).json()["run"]
    assert chart["status"] == "queued" and chart["steps_planned"] == 40


def test_a_launched_evaluation_knows_its_steps_before_a_worker_starts_it(client, researcher, sent):
    config = tiny_run_config()
    config["rollout"] = {**config["rollout"], "prompts_per_step": 2}
    run = run_launch(project=researcher, user=None, name="eval", kind=RunKind.EVALUATION, config=config,
                     dataset=make_dataset(researcher, n=5), policy=make_policy(researcher))
    assert run.status == RunStatus.QUEUED and run.total_steps == 3  # 5 prompts, 2 a step
    panel = status_panel(client, run)
    assert "waiting for a GPU worker to start it · 3 steps planned" in panel and "of ?" not in panel
    assert "waiting for a GPU worker · 3 steps" in runs_list(client, researcher)


@pytest.mark.parametrize("kind", [RunKind.REWARD_MODEL, RunKind.DPO])
def test_a_queued_preference_run_says_when_its_steps_are_counted(client, researcher, kind):
    run = make_run(researcher, kind=kind, config={"data": {"source": "labels"}, "epochs": 2})
    panel = status_panel(client, run)
    assert f"waiting for a GPU worker to start it · {COUNTED_LATER}" in panel
    assert "step 0" not in panel and "of ?" not in panel
    table = runs_list(client, researcher)
    assert "waiting for a GPU worker</span>" in table and "0/?" not in table


def test_a_queued_sft_run_says_when_its_steps_are_counted(client, researcher):
    run = make_run(researcher, kind=RunKind.SFT, config={"data": {"source": "labels"}, "sft": {"epochs": 1}})
    panel = status_panel(client, run)
    assert "waiting for a GPU worker to start it · its steps are counted once the worker has read the training examples" in panel
    assert "step 0" not in panel and "of ?" not in panel


def test_a_queued_external_run_waits_for_its_trainer_not_for_a_worker(client, researcher):
    run = make_run(researcher, kind=RunKind.EXTERNAL)
    panel = status_panel(client, run)
    assert "waiting for its trainer to report over the API" in panel and "GPU worker" not in panel
    assert "waiting for its trainer</span>" in runs_list(client, researcher)


def test_a_run_back_in_the_queue_says_from_which_step_it_resumes(client, researcher):
    run = make_run(researcher, kind=RunKind.DPO, status=RunStatus.QUEUED, attempts=1, current_step=5,
                   total_steps=8, progress=5 / 8)
    panel = status_panel(client, run)
    assert "waiting for a GPU worker to resume it from step 5 of 8" in panel and "<progress" in panel
    assert "5/8" in runs_list(client, researcher)


def test_a_running_run_whose_worker_has_not_counted_its_steps_shows_the_step_alone(client, researcher):
    run = make_run(researcher, kind=RunKind.REWARD_MODEL, status=RunStatus.RUNNING, attempts=1)
    panel = status_panel(client, run)
    assert '<span id="run-progress">step 0</span>' in panel and "of ?" not in panel
    run.total_steps = 12
    run.save()
    assert '<span id="run-progress">step 0 of 12</span>' in status_panel(client, run)


def project_overview(client, project) -> str:
    return client.get(reverse("projects:overview", args=[project.id])).content.decode()


def test_an_external_run_that_succeeded_without_reporting_a_step_shows_no_full_bar(client, researcher):
    # what the API leaves after "running" then "succeeded" with no current_step: progress 1, step 0
    run = make_run(researcher, kind=RunKind.EXTERNAL, status=RunStatus.SUCCEEDED, progress=1.0)
    panel = status_panel(client, run)
    assert '<span id="run-progress">step not reported</span>' in panel
    assert "<progress" not in panel and "step 0" not in panel
    for page in (runs_list(client, researcher), project_overview(client, researcher)):
        assert "step not reported" in page and "<progress" not in page


def test_a_running_external_run_without_a_reported_step_shows_an_indeterminate_bar(client, researcher):
    run = make_run(researcher, kind=RunKind.EXTERNAL, status=RunStatus.RUNNING, total_steps=50)
    panel = status_panel(client, run)
    # no value: an indeterminate progressbar (no aria-valuenow), named by the text beside it
    assert '<progress aria-labelledby="run-progress"></progress>' in panel
    assert '<span id="run-progress">step not reported · 50 steps planned</span>' in panel
    table = runs_list(client, researcher)
    assert f'<progress aria-label="Progress of {run.name}: step not reported"></progress>' in table
    assert "step not reported · 50 steps" in table and "0/50" not in table
    chart = client.get(reverse("experiments:chart_data", args=[researcher.id, run.id])).json()["run"]
    assert chart["step_unreported"] is True and chart["current_step"] == 0  # the charts say "live · step not reported"


def test_an_external_run_that_reported_its_step_keeps_its_bar(client, researcher):
    run = make_run(researcher, kind=RunKind.EXTERNAL, status=RunStatus.SUCCEEDED, progress=1.0,
                   current_step=10, total_steps=10)
    panel = status_panel(client, run)
    assert '<progress max="1" value="1.0" aria-labelledby="run-progress"></progress>' in panel
    assert '<span id="run-progress">step 10 of 10</span>' in panel and "not reported" not in panel
    table = runs_list(client, researcher)
    assert f'<progress max="1" value="1.0" aria-label="Progress of {run.name}"></progress>' in table
    assert "10/10" in table and "not reported" not in table
    assert client.get(reverse("experiments:chart_data", args=[researcher.id, run.id])).json()["run"]["step_unreported"] is False
