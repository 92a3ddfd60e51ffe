"""Deleting imported preference pairs: refused while a reward-model run trains on them."""

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_run, make_user
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunKind, RunStatus
from webapp.experiments.services import run_launch
from webapp.rewards.errors import RewardModelError
from webapp.rewards.models import PreferencePairSet
from webapp.rewards.services import pair_set_delete, pair_set_import

pytestmark = pytest.mark.django_db

PAIRS = '{"prompt": "2+2?", "chosen": "4", "rejected": "5"}\n{"prompt": "3+3?", "chosen": "6", "rejected": "9"}\n'


def imported(project, name="prefs") -> PreferencePairSet:
    return pair_set_import(project=project, name=name, content=PAIRS)


def trainer_on(pair_set, status, name="rm run") -> Run:
    return make_run(pair_set.project, kind=RunKind.REWARD_MODEL, status=status, name=name,
                    config={"data": {"source": "pairs", "pair_set": pair_set.id}})


def test_pairs_a_finished_run_trained_on_go_and_the_run_keeps_its_config():
    project = make_project()
    pairs, other = imported(project), imported(project, name="other")
    run = trainer_on(pairs, RunStatus.SUCCEEDED)
    trainer_on(other, RunStatus.RUNNING)  # a run on other pairs does not hold these
    pair_set_delete(pair_set_id=pairs.id)
    assert list(PreferencePairSet.objects.values_list("name", flat=True)) == ["other"]
    run.refresh_from_db()
    assert run.config["data"] == {"source": "pairs", "pair_set": pairs.id}


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_an_active_run_on_the_pairs_refuses_the_deletion_by_name(status):
    pairs = imported(make_project())
    trainer_on(pairs, status, name="live rm")
    with pytest.raises(RewardModelError) as info:
        pair_set_delete(pair_set_id=pairs.id)
    assert f"“live rm” ({status})" in info.value.message and info.value.field == "runs"
    assert PreferencePairSet.objects.filter(pk=pairs.id).exists()


def test_a_launch_on_pairs_deleted_before_it_committed_is_refused(monkeypatch):
    from webapp.experiments import local_folders
    from workers.celery_app import app

    monkeypatch.setattr(app, "send_task", lambda name, args: None)
    project = make_project()
    pairs = imported(project)
    resolve = local_folders.resolve_local_folders

    def resolve_then_lose_the_pairs(**kwargs):
        config = resolve(**kwargs)
        pair_set_delete(pair_set_id=pairs.id)  # another request, before the launch's transaction
        return config

    monkeypatch.setattr(local_folders, "resolve_local_folders", resolve_then_lose_the_pairs)
    config = {"backbone": "tiny", "batch_size": 4, "max_length": 32, "device": "cpu",
              "data": {"source": "pairs", "pair_set": pairs.id}}
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=None, name="late", kind=RunKind.REWARD_MODEL, config=config)
    assert info.value.field == "config.data"
    assert not Run.objects.filter(name="late").exists()


@pytest.fixture
def researcher(client):
    user = make_user()
    project = make_project(owner=user)
    assert client.login(username=user.username, password=PASSWORD)
    return project


def test_the_page_deletes_and_names_what_trained_on_the_pairs(client, researcher):
    pairs = imported(researcher, name="<b>prefs</b>")
    trainer_on(pairs, RunStatus.SUCCEEDED, name="old rm")
    listed = client.get(reverse("rewards:list", args=[researcher.id])).content.decode()
    url = reverse("rewards:delete_pairs", args=[researcher.id, pairs.id])
    assert url in listed
    body = client.get(url).content.decode()
    assert "the 2 imported pairs" in body and "old rm" in body and "&lt;b&gt;prefs&lt;/b&gt;" in body
    assert "<b>prefs</b>" not in body
    response = client.post(url)
    assert response.status_code == 302 and not PreferencePairSet.objects.filter(pk=pairs.id).exists()


def test_the_page_refuses_with_409_while_a_run_trains_and_other_projects_get_404(client, researcher):
    pairs = imported(researcher)
    trainer_on(pairs, RunStatus.RUNNING, name="live rm")
    url = reverse("rewards:delete_pairs", args=[researcher.id, pairs.id])
    assert "Delete pairs</button>" not in client.get(url).content.decode()
    response = client.post(url)
    assert response.status_code == 409 and "“live rm” (running)" in response.content.decode()
    theirs = imported(make_project())
    assert client.post(reverse("rewards:delete_pairs", args=[researcher.id, theirs.id])).status_code == 404
    assert client.post(reverse("rewards:delete_pairs", args=[theirs.project_id, theirs.id])).status_code == 404
    assert PreferencePairSet.objects.count() == 2
