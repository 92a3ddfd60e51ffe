"""run_delete: a finished run goes with its trajectories, checkpoints, metrics and folder; human work stays."""

import pytest
from django.db import connection
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_run, make_user
from webapp.experiments.errors import RunError
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import (
    Checkpoint,
    MetricChunk,
    MetricPoint,
    MetricRollup,
    Run,
    RunKind,
    RunStatus,
    Trajectory,
)
from webapp.experiments.services import run_delete
from webapp.feedback.labelling import label_submit
from webapp.feedback.models import Candidate, ComparisonTask, PreferenceLabel
from webapp.feedback.services import comparison_tasks_from_run
from webapp.rewards.models import RewardModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(settings, tmp_path):
    settings.STEER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.STEER_CHECKPOINT_DIR.mkdir()
    return settings.STEER_CHECKPOINT_DIR


def finished_run(project, status=RunStatus.SUCCEEDED, **fields):
    """A run with metrics, two prompt groups of trajectories, a checkpoint row and its folder on disk."""
    run = make_run(project, status=status, **fields)
    metric_points_upsert(run_id=run.id, points=[(key, s, s / 10) for key in ("reward", "kl") for s in range(50)])
    for group in range(2):
        for sample in range(2):
            Trajectory.objects.create(run=run, step=0, group_index=group, sample_index=sample,
                                      prompt_text=f"prompt {group}", completion=f"answer {group}.{sample}",
                                      reward=sample, length=2)
    folder = run.checkpoint_dir / "step-1"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    Checkpoint.objects.create(run=run, step=1, path=str(folder), size_bytes=7)
    return run


def rows_of(run_id: int) -> dict[str, int]:
    """Rows keyed by the run in every table that has them, the points view read with raw SQL too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM experiments_metricpoint WHERE run_id = %s", [run_id])
        raw_points = cursor.fetchone()[0]
    return {
        "chunks": MetricChunk.objects.filter(run_id=run_id).count(),
        "rollups": MetricRollup.objects.filter(run_id=run_id).count(),
        "points": MetricPoint.objects.filter(run_id=run_id).count(),
        "raw points": raw_points,
        "trajectories": Trajectory.objects.filter(run_id=run_id).count(),
        "checkpoints": Checkpoint.objects.filter(run_id=run_id).count(),
    }


def test_a_finished_run_goes_with_every_row_keyed_by_it(root, django_capture_on_commit_callbacks):
    project = make_project()
    run, other = finished_run(project), finished_run(project)
    before = rows_of(run.id)
    assert all(before.values()), before

    with django_capture_on_commit_callbacks(execute=True):
        run_delete(run_id=run.id)

    assert not Run.objects.filter(pk=run.id).exists()
    assert rows_of(run.id) == dict.fromkeys(before, 0)
    assert rows_of(other.id) == before  # the other run of the project keeps everything


@pytest.mark.parametrize("status", [RunStatus.FAILED, RunStatus.CANCELLED])
def test_failed_and_cancelled_runs_can_be_deleted(root, status):
    run = finished_run(make_project(), status=status)
    run_delete(run_id=run.id)
    assert not Run.objects.filter(pk=run.id).exists()


def test_the_checkpoint_folder_is_removed_once_the_deletion_commits(root, django_capture_on_commit_callbacks):
    project = make_project()
    run, other = finished_run(project), finished_run(project)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run_delete(run_id=run.id)
    assert run.checkpoint_dir.is_dir()  # not before the commit: a rollback would leave rows without files
    for callback in callbacks:
        callback()
    assert not run.checkpoint_dir.exists()
    assert (other.checkpoint_dir / "step-1" / "model.safetensors").read_bytes() == b"weights"


def test_links_out_of_the_checkpoint_root_are_not_followed(root, tmp_path, django_capture_on_commit_callbacks):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the run's")
    linked, inside = finished_run(make_project()), finished_run(make_project())
    # one run's folder is itself a link out of the root; the other holds a link out of it
    (root / f"run-{linked.id}").rename(tmp_path / "moved")
    (root / f"run-{linked.id}").symlink_to(outside, target_is_directory=True)
    (inside.checkpoint_dir / "step-1" / "escape").symlink_to(outside, target_is_directory=True)

    with django_capture_on_commit_callbacks(execute=True):
        run_delete(run_id=linked.id)
        run_delete(run_id=inside.id)

    assert not (root / f"run-{linked.id}").is_symlink() and not inside.checkpoint_dir.exists()
    assert (outside / "keep.txt").read_text() == "not the run's"


def test_a_run_without_a_folder_is_deleted_all_the_same(root, django_capture_on_commit_callbacks):
    run = make_run(make_project(), status=RunStatus.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        run_delete(run_id=run.id)
    assert not Run.objects.filter(pk=run.id).exists()


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_an_active_run_is_refused_naming_its_status_and_nothing_changes(root, status,
                                                                       django_capture_on_commit_callbacks):
    run = finished_run(make_project(), status=status)
    before = rows_of(run.id)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RunError) as info:
        run_delete(run_id=run.id)
    assert info.value.field == "status"
    assert status in info.value.message and "cancel it first" in info.value.message
    assert Run.objects.filter(pk=run.id).exists() and rows_of(run.id) == before
    assert (run.checkpoint_dir / "step-1" / "model.safetensors").exists()


def test_the_run_that_trained_a_reward_model_is_refused_and_nothing_changes(root, django_capture_on_commit_callbacks):
    project = make_project()
    run = finished_run(project, kind=RunKind.REWARD_MODEL)
    RewardModel.objects.create(project=project, name="helpful-rm", backbone="tiny", training_run=run,
                               path=str(run.checkpoint_dir / "reward-model"))
    before = rows_of(run.id)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RunError) as info:
        run_delete(run_id=run.id)
    assert info.value.field == "reward_model" and "helpful-rm" in info.value.message
    assert Run.objects.filter(pk=run.id).exists() and rows_of(run.id) == before
    assert run.checkpoint_dir.is_dir()


def test_a_missing_run_raises_does_not_exist(root):
    with pytest.raises(Run.DoesNotExist):
        run_delete(run_id=987654321)


def test_labelled_tasks_made_from_the_run_keep_their_candidates_and_labels_and_still_render(
        root, client, django_capture_on_commit_callbacks):
    researcher, annotator = make_user(), make_user()
    project = make_project(owner=researcher, annotator=annotator)
    run = finished_run(project)
    tasks = comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=0, k=2)
    labelled = tasks[0]
    label = label_submit(task=labelled, annotator=annotator, ranking=[[1], [0]], critique="B is right",
                         submission_key="delete-run-label")
    texts = {task.id: list(task.candidates.order_by("position").values_list("text", flat=True)) for task in tasks}

    with django_capture_on_commit_callbacks(execute=True):
        run_delete(run_id=run.id)

    for task in tasks:
        task.refresh_from_db()
        assert task.source_run is None
        assert list(task.candidates.order_by("position").values_list("text", flat=True)) == texts[task.id]
    assert not Candidate.objects.filter(task__in=tasks, trajectory__isnull=False).exists()
    assert PreferenceLabel.objects.get(pk=label.pk).ranking == [[1], [0]]
    assert ComparisonTask.objects.get(pk=labelled.pk).label_count == 1

    client.login(username=researcher.username, password=PASSWORD)
    page = client.get(reverse("feedback:task_detail", args=[project.id, labelled.id]))
    assert page.status_code == 200
    body = page.content.decode()
    assert all(text in body for text in texts[labelled.id]) and "B is right" in body
    assert client.get(reverse("feedback:tasks", args=[project.id])).status_code == 200
    client.login(username=annotator.username, password=PASSWORD)
    page = client.get(reverse("feedback:annotate_task", args=[project.id, labelled.id]))
    assert page.status_code == 200
    assert all(text in page.content.decode() for text in texts[labelled.id])


def test_the_admin_leaves_run_deletion_to_the_service(rf):
    from django.contrib.admin.sites import site

    from webapp.experiments.models import Run

    assert site._registry[Run].has_delete_permission(rf.get("/"), None) is False
