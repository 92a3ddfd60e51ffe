"""Trajectories and checkpoints in the admin: listed and shown, never added, changed or deleted
there. A trajectory is the record of what its run sampled (comparison tasks point at it); a
checkpoint row stands for a folder of weights on disk that a policy may start from, and no service
deletes one checkpoint alone: both go with their run (``run_delete``)."""

import pytest
from django.urls import reverse

from tests.factories import make_project, make_run
from tests.webapp.feedback.test_admin import staff  # noqa: F401 (a fixture: a logged-in superuser)
from webapp.experiments.models import Checkpoint, PolicyModel, RunStatus, Trajectory

pytestmark = pytest.mark.django_db


@pytest.fixture
def run():
    return make_run(make_project(), status=RunStatus.SUCCEEDED)


def trajectory(run) -> Trajectory:
    return Trajectory.objects.create(run=run, step=1, group_index=0, sample_index=0, prompt_text="2+2?",
                                     completion="<b>4</b>", rewards={"exact_answer": 1.0}, reward=1.0, length=3,
                                     finish_reason="stop")


@pytest.fixture
def checkpoint(run, settings, tmp_path):
    settings.STEER_CHECKPOINT_DIR = tmp_path
    folder = run.checkpoint_dir / "step-4"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    return Checkpoint.objects.create(run=run, step=4, path=str(folder), size_bytes=7)


def refused_everything(client, model: str, obj, change_data: dict) -> None:
    change = reverse(f"admin:experiments_{model}_change", args=[obj.pk])
    page = client.get(change)
    assert page.status_code == 200 and f'name="{next(iter(change_data))}"' not in page.content.decode()  # not a form
    assert client.post(change, {**change_data, "_save": "Save"}).status_code == 403
    assert client.get(reverse(f"admin:experiments_{model}_add")).status_code == 403
    assert client.post(reverse(f"admin:experiments_{model}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    changelist = reverse(f"admin:experiments_{model}_changelist")
    assert client.get(changelist).status_code == 200
    client.post(changelist, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"})


def test_the_admin_neither_adds_changes_nor_deletes_a_trajectory(client, staff, run):
    kept = trajectory(run)
    before = Trajectory.objects.values().get(pk=kept.pk)
    refused_everything(client, "trajectory", kept, {"completion": "edited", "reward": 0.0, "run": run.pk, "step": 1,
                                                    "group_index": 0, "sample_index": 0, "prompt_text": "2+2?"})
    assert Trajectory.objects.values().get(pk=kept.pk) == before
    page = client.get(reverse("admin:experiments_trajectory_change", args=[kept.pk])).content.decode()
    assert "&lt;b&gt;4&lt;/b&gt;" in page and "<b>4</b>" not in page  # the completion is shown as text


def test_the_admin_neither_adds_changes_nor_deletes_a_checkpoint_and_its_files_stay(client, staff, run, checkpoint):
    policy = PolicyModel.objects.create(project=run.project, name="from step 4", source="checkpoint",
                                        reference=checkpoint.path, checkpoint=checkpoint)
    before = Checkpoint.objects.values().get(pk=checkpoint.pk)
    refused_everything(client, "checkpoint", checkpoint, {"path": "/elsewhere", "step": 5, "run": run.pk,
                                                          "size_bytes": 0})
    assert Checkpoint.objects.values().get(pk=checkpoint.pk) == before
    assert (run.checkpoint_dir / "step-4" / "model.safetensors").read_bytes() == b"weights"
    policy.refresh_from_db()
    assert policy.checkpoint_id == checkpoint.pk


@pytest.mark.parametrize("model", [Trajectory, Checkpoint])
def test_the_admin_grants_only_viewing(rf, staff, model):
    from django.contrib.admin.sites import site

    admin = site._registry[model]
    request = rf.get("/")
    request.user = staff
    assert not admin.has_add_permission(request)
    assert not admin.has_change_permission(request, None) and not admin.has_delete_permission(request, None)
    assert admin.has_view_permission(request, None)
