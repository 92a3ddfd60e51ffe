"""Deleting a reward model: refused while a run uses it, optionally with its training run, and
never reachable from another project."""

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_dataset, make_policy, make_project, make_run, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunKind, RunStatus
from webapp.experiments.services import run_launch
from webapp.rewards.errors import RewardModelError
from webapp.rewards.models import RewardModel
from webapp.rewards.selectors import runs_using_reward_model
from webapp.rewards.services import reward_model_delete

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def checkpoint_root(settings, tmp_path, monkeypatch):
    from workers.celery_app import app

    monkeypatch.setattr(app, "send_task", lambda name, args: None)
    settings.STEER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.STEER_CHECKPOINT_DIR.mkdir()
    return settings.STEER_CHECKPOINT_DIR


def trained(project, name="helpful-rm") -> RewardModel:
    """A finished reward-model run with the model saved in its folder, as the worker leaves it."""
    run = make_run(project, kind=RunKind.REWARD_MODEL, status=RunStatus.SUCCEEDED, name=f"train {name}")
    folder = run.checkpoint_dir / "reward-model"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    return RewardModel.objects.create(project=project, name=name, backbone="tiny", training_run=run, path=str(folder))


def user_of(reward_model, status, name=None, path=None) -> Run:
    """A policy run whose (resolved) config uses the reward model as a reward."""
    rewards = [{"name": "exact_match"}, {"name": "reward_model", "path": path or reward_model.path, "label": "rm"}]
    return make_run(reward_model.project, status=status, name=name or f"uses {reward_model.name}",
                    config={"rewards": rewards})


def test_a_reward_model_goes_and_its_training_run_stays_with_its_files(django_capture_on_commit_callbacks):
    project = make_project()
    rm = trained(project)
    finished = user_of(rm, RunStatus.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        reward_model_delete(reward_model_id=rm.id)
    assert not RewardModel.objects.filter(pk=rm.id).exists()
    run = Run.objects.get(pk=rm.training_run_id)
    assert (run.checkpoint_dir / "reward-model" / "model.safetensors").read_bytes() == b"weights"
    finished.refresh_from_db()  # a finished run that used it keeps its config
    assert finished.config["rewards"][1]["path"] == rm.path


def test_with_its_training_run_the_run_and_the_models_files_go_too(django_capture_on_commit_callbacks):
    project = make_project()
    rm, kept = trained(project), trained(project, name="other-rm")
    with django_capture_on_commit_callbacks(execute=True):
        reward_model_delete(reward_model_id=rm.id, with_training_run=True)
    assert not RewardModel.objects.filter(pk=rm.id).exists()
    assert not Run.objects.filter(pk=rm.training_run_id).exists()
    assert not rm.training_run.checkpoint_dir.exists()
    assert RewardModel.objects.filter(pk=kept.id).exists() and kept.training_run.checkpoint_dir.is_dir()


def test_once_deleted_its_run_can_be_deleted_and_no_new_run_can_name_its_folder():
    from webapp.experiments.services import run_delete

    project = make_project()
    rm = trained(project)
    with pytest.raises(RunError) as info:
        run_delete(run_id=rm.training_run_id)
    assert info.value.field == "reward_model" and "delete the reward model first" in info.value.message
    reward_model_delete(reward_model_id=rm.id)
    for reward in ({"name": "reward_model", "path": rm.path}, {"name": "reward_model", "reward_model": rm.id}):
        with pytest.raises(RunError) as info:
            run_launch(project=project, user=None, name="x", kind=RunKind.POLICY, dataset=make_dataset(project),
                       policy=make_policy(project), config={"rewards": [reward]})
        assert info.value.field.startswith("config.rewards[0]")
    run_delete(run_id=rm.training_run_id)
    assert not Run.objects.filter(pk=rm.training_run_id).exists()


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
@pytest.mark.parametrize("with_training_run", [False, True])
def test_an_active_run_using_it_refuses_the_deletion_by_name_and_nothing_changes(
        status, with_training_run, django_capture_on_commit_callbacks):
    project = make_project()
    rm = trained(project)
    user_of(rm, RunStatus.SUCCEEDED, name="old run")
    user_of(rm, status, name="live run", path=rm.path + "/")  # the same folder, spelt differently
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RewardModelError) as info:
        reward_model_delete(reward_model_id=rm.id, with_training_run=with_training_run)
    assert info.value.field == "runs"
    assert f"“live run” ({status})" in info.value.message and "old run" not in info.value.message
    assert RewardModel.objects.filter(pk=rm.id).exists() and Run.objects.filter(pk=rm.training_run_id).exists()
    assert (rm.training_run.checkpoint_dir / "reward-model").is_dir()


def test_runs_of_other_projects_and_other_rewards_do_not_count_as_users():
    project = make_project()
    rm, other = trained(project), trained(project, name="other-rm")
    user_of(other, RunStatus.RUNNING)
    make_run(project, status=RunStatus.RUNNING, config={"rewards": [{"name": "exact_match"}]})
    make_run(project, status=RunStatus.RUNNING, config={"rewards": "not a list"})
    make_run(make_project(), status=RunStatus.RUNNING,
             config={"rewards": [{"name": "reward_model", "path": rm.path}]})
    assert runs_using_reward_model(reward_model=rm) == []
    reward_model_delete(reward_model_id=rm.id)
    assert not RewardModel.objects.filter(pk=rm.id).exists()


def test_a_launch_that_resolved_a_reward_model_deleted_before_it_committed_is_refused(monkeypatch):
    """The launch resolves folders first, then locks the rows: a deletion in between is caught."""
    from webapp.experiments import local_folders

    project = make_project()
    rm = trained(project)
    resolve = local_folders.resolve_local_folders

    def resolve_then_lose_the_model(**kwargs):
        config = resolve(**kwargs)
        reward_model_delete(reward_model_id=rm.id)  # another request, between resolution and the lock
        return config

    monkeypatch.setattr(local_folders, "resolve_local_folders", resolve_then_lose_the_model)
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=None, name="late", kind=RunKind.POLICY, dataset=make_dataset(project),
                   policy=make_policy(project), config={"rewards": [{"name": "reward_model", "reward_model": rm.id}]})
    assert info.value.field == "config.rewards[0]" and "deleted" in info.value.message
    assert not Run.objects.filter(name="late").exists()


# ---------------------------------------------------------------- the page


@pytest.fixture
def researcher(client):
    user = make_user()
    project = make_project(owner=user)
    assert client.login(username=user.username, password=PASSWORD)
    return project


def test_the_list_links_each_model_to_its_deletion_page(client, researcher):
    rm = trained(researcher)
    body = client.get(reverse("rewards:list", args=[researcher.id])).content.decode()
    assert reverse("rewards:delete", args=[researcher.id, rm.id]) in body


def test_the_page_says_what_goes_and_the_post_deletes_with_the_run_when_asked(
        client, researcher, django_capture_on_commit_callbacks):
    rm = trained(researcher)
    user_of(rm, RunStatus.SUCCEEDED, name="<b>old</b> run")
    url = reverse("rewards:delete", args=[researcher.id, rm.id])
    page = client.get(url)
    body = page.content.decode()
    assert page.status_code == 200 and 'name="with_training_run"' in body
    assert "&lt;b&gt;old&lt;/b&gt; run" in body and "<b>old</b>" not in body  # run names are escaped
    assert rm.training_run.name in body

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"with_training_run": "on"})
    assert response.status_code == 302 and response.url == reverse("rewards:list", args=[researcher.id])
    assert not RewardModel.objects.filter(pk=rm.id).exists() and not Run.objects.filter(pk=rm.training_run_id).exists()
    assert "Deleted reward model “helpful-rm” and its training run." in client.get(response.url).content.decode()


def test_a_post_without_the_box_keeps_the_run(client, researcher):
    rm = trained(researcher)
    response = client.post(reverse("rewards:delete", args=[researcher.id, rm.id]))
    assert response.status_code == 302
    assert not RewardModel.objects.filter(pk=rm.id).exists() and Run.objects.filter(pk=rm.training_run_id).exists()


def test_the_page_shows_why_an_active_user_blocks_it_and_a_post_answers_409(client, researcher):
    rm = trained(researcher)
    user_of(rm, RunStatus.RUNNING, name="live run")
    url = reverse("rewards:delete", args=[researcher.id, rm.id])
    body = client.get(url).content.decode()
    assert "cannot be deleted" in body and "“live run” (running)" in body and "Delete reward model</button>" not in body
    response = client.post(url, {"with_training_run": "on"})
    assert response.status_code == 409 and "cannot be deleted" in response.content.decode()
    assert RewardModel.objects.filter(pk=rm.id).exists()


def test_the_run_deletion_page_links_to_the_reward_model_it_trained(client, researcher):
    rm = trained(researcher)
    body = client.get(reverse("experiments:delete", args=[researcher.id, rm.training_run_id])).content.decode()
    assert reverse("rewards:delete", args=[researcher.id, rm.id]) in body


def test_another_projects_reward_model_and_an_annotator_get_404(client, researcher):
    theirs = trained(make_project(owner=make_user()))
    assert client.get(reverse("rewards:delete", args=[researcher.id, theirs.id])).status_code == 404
    assert client.post(reverse("rewards:delete", args=[researcher.id, theirs.id])).status_code == 404
    assert client.post(reverse("rewards:delete", args=[theirs.project_id, theirs.id])).status_code == 404
    annotator = make_user()
    project = make_project(owner=make_user(), annotator=annotator)
    rm = trained(project)
    client.login(username=annotator.username, password=PASSWORD)
    assert client.post(reverse("rewards:delete", args=[project.id, rm.id])).status_code in (403, 404)
    assert RewardModel.objects.filter(pk__in=[theirs.id, rm.id]).count() == 2


# ---------------------------------------------------------------- the API


def test_api_delete_answers_204_and_with_training_run_removes_the_run(django_capture_on_commit_callbacks):
    user = api_user()
    project = make_project(owner=user)
    kept, gone = trained(project, name="kept-run"), trained(project, name="gone-run")
    api = token_client(user)
    assert api.delete(f"/api/v1/reward-models/{kept.id}/").status_code == 204
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/reward-models/{gone.id}/?with_training_run=true").status_code == 204
    assert Run.objects.filter(pk=kept.training_run_id).exists()
    assert not Run.objects.filter(pk=gone.training_run_id).exists()
    assert api.get(f"/api/v1/reward-models/{kept.id}/").status_code == 404
    assert api.delete(f"/api/v1/reward-models/{kept.id}/").status_code == 404


def test_api_delete_answers_409_while_a_run_uses_it_and_400_for_a_bad_flag():
    user = api_user()
    project = make_project(owner=user)
    rm = trained(project)
    user_of(rm, RunStatus.QUEUED, name="queued run")
    api = token_client(user)
    response = api.delete(f"/api/v1/reward-models/{rm.id}/")
    assert response.status_code == 409 and "“queued run” (queued)" in response.json()["error"]["message"]
    response = api.delete(f"/api/v1/reward-models/{rm.id}/?with_training_run=maybe")
    assert response.status_code == 400 and "with_training_run" in response.json()["error"]["fields"]
    assert RewardModel.objects.filter(pk=rm.id).exists()


def test_the_schema_documents_reward_model_delete_and_its_flag():
    from drf_spectacular.generators import SchemaGenerator

    operation = SchemaGenerator().get_schema(public=True)["paths"]["/api/v1/reward-models/{reward_model_id}/"]["delete"]
    assert "204" in operation["responses"]
    assert [p["name"] for p in operation["parameters"] if p["in"] == "query"] == ["with_training_run"]
