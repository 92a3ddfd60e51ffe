"""Deleting a dataset: only one no run used, with its prompts, on the page and over the API."""

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_dataset, make_policy, make_project, make_run, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.datasets.errors import DatasetInUse
from webapp.datasets.models import Prompt, PromptDataset
from webapp.datasets.services import dataset_delete
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunKind, RunStatus
from webapp.experiments.services import run_launch

pytestmark = pytest.mark.django_db


def test_an_unused_dataset_goes_with_its_prompts_and_others_stay():
    project = make_project()
    gone, kept = make_dataset(project, n=3), make_dataset(project, n=2)
    dataset_delete(dataset_id=gone.id)
    assert not PromptDataset.objects.filter(pk=gone.id).exists()
    assert not Prompt.objects.filter(dataset_id=gone.id).exists()
    assert Prompt.objects.filter(dataset=kept).count() == 2


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.RUNNING])
def test_a_dataset_a_run_used_is_refused_naming_the_run_and_nothing_changes(status):
    project = make_project()
    dataset = make_dataset(project, n=3)
    make_run(project, dataset=dataset, status=status, name="grpo on it")
    with pytest.raises(DatasetInUse) as info:
        dataset_delete(dataset_id=dataset.id)
    assert "1 run used it (to train, evaluate or hold out): “grpo on it”" in info.value.message
    then = ("delete those runs first" if status == RunStatus.SUCCEEDED  # a running run is cancelled before it is deleted
            else "cancel the ones still queued or running, then delete them once they have stopped")
    assert then in info.value.message
    assert Prompt.objects.filter(dataset=dataset).count() == 3


def test_many_runs_are_counted_and_five_named():
    project = make_project()
    dataset = make_dataset(project)
    for i in range(7):
        make_run(project, dataset=dataset, name=f"r{i}")
    with pytest.raises(DatasetInUse) as info:
        dataset_delete(dataset_id=dataset.id)
    assert info.value.message.startswith("7 runs used it (to train, evaluate or hold out): “r6”, “r5”, “r4”, “r3”, “r2” and 2 more")


def test_once_its_runs_are_deleted_the_dataset_can_be_deleted(settings, tmp_path):
    from webapp.experiments.services import run_delete

    settings.STEER_CHECKPOINT_DIR = tmp_path
    project = make_project()
    dataset = make_dataset(project)
    run = make_run(project, dataset=dataset, status=RunStatus.FAILED)
    run_delete(run_id=run.id)
    dataset_delete(dataset_id=dataset.id)
    assert not PromptDataset.objects.filter(pk=dataset.id).exists()


def test_a_launch_on_a_dataset_deleted_before_it_committed_is_refused_on_the_field(monkeypatch):
    from webapp.experiments import services
    from workers.celery_app import app

    monkeypatch.setattr(app, "send_task", lambda name, args: None)
    project = make_project()
    dataset = make_dataset(project)
    merge = services.policy_config_merged  # the launch's last step before its transaction

    def merge_then_lose_the_dataset(**kwargs):
        config = merge(**kwargs)
        dataset_delete(dataset_id=dataset.id)  # another request, before the launch's transaction
        return config

    monkeypatch.setattr(services, "policy_config_merged", merge_then_lose_the_dataset)
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=None, name="late", kind=RunKind.POLICY, dataset=dataset,
                   policy=make_policy(project), config={})
    assert info.value.field == "dataset" and "deleted" in info.value.message
    assert not Run.objects.filter(name="late").exists()


# ---------------------------------------------------------------- the pages


@pytest.fixture
def researcher(client):
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    return project


def test_the_list_and_the_dataset_link_to_its_deletion_page(client, researcher):
    dataset = make_dataset(researcher)
    url = reverse("datasets:delete", args=[researcher.id, dataset.id])
    assert url in client.get(reverse("datasets:list", args=[researcher.id])).content.decode()
    assert url in client.get(reverse("datasets:detail", args=[researcher.id, dataset.id])).content.decode()


def test_the_page_counts_the_prompts_and_the_post_deletes(client, researcher):
    dataset = make_dataset(researcher, n=3)
    url = reverse("datasets:delete", args=[researcher.id, dataset.id])
    body = client.get(url).content.decode()
    assert "its 3 prompts" in body and "Delete dataset</button>" in body
    response = client.post(url)
    assert response.status_code == 302 and response.url == reverse("datasets:list", args=[researcher.id])
    assert not PromptDataset.objects.filter(pk=dataset.id).exists()
    assert f"Deleted dataset “{dataset.name}” with its prompts." in client.get(response.url).content.decode()


def test_the_page_lists_the_runs_that_keep_it_escaped_and_a_post_answers_409(client, researcher):
    dataset = make_dataset(researcher)
    make_run(researcher, dataset=dataset, name="<i>run</i> one")
    url = reverse("datasets:delete", args=[researcher.id, dataset.id])
    body = client.get(url).content.decode()
    assert "cannot be deleted" in body and "&lt;i&gt;run&lt;/i&gt; one" in body and "<i>run</i>" not in body
    assert "Delete dataset</button>" not in body
    assert client.post(url).status_code == 409
    assert PromptDataset.objects.filter(pk=dataset.id).exists()


def test_another_projects_dataset_answers_404_and_an_annotator_cannot_delete(client, researcher):
    theirs = make_dataset(make_project())
    assert client.post(reverse("datasets:delete", args=[researcher.id, theirs.id])).status_code == 404
    assert client.post(reverse("datasets:delete", args=[theirs.project_id, theirs.id])).status_code == 404
    annotator = make_user()
    project = make_project(annotator=annotator)
    dataset = make_dataset(project)
    client.login(username=annotator.username, password=PASSWORD)
    assert client.post(reverse("datasets:delete", args=[project.id, dataset.id])).status_code in (403, 404)
    assert PromptDataset.objects.filter(pk__in=[theirs.id, dataset.id]).count() == 2


# ---------------------------------------------------------------- the API


def test_api_delete_answers_204_then_404_and_409_for_a_used_dataset():
    user = api_user()
    project = make_project(owner=user)
    unused, used = make_dataset(project), make_dataset(project)
    make_run(project, dataset=used, name="keeps it")
    api = token_client(user)
    assert api.delete(f"/api/v1/datasets/{unused.id}/").status_code == 204
    assert api.get(f"/api/v1/datasets/{unused.id}/").status_code == 404
    response = api.delete(f"/api/v1/datasets/{used.id}/")
    assert response.status_code == 409 and "“keeps it”" in response.json()["error"]["message"]
