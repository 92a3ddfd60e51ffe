"""Executing runs in-process (the worker tests in tests/workers/ do it through Celery)."""

import subprocess
import sys
from datetime import timedelta

import psutil
import pytest
from django.utils import timezone

import workers.engine
from tests.factories import (
    dead_process_name, make_dataset, make_policy, make_project, make_run, make_user, tiny_run_config,
)
from webapp.experiments.execution import process_is_alive, process_name, recover_orphaned_runs, run_claim, this_process
from webapp.experiments.models import Checkpoint, MetricPoint, Run, RunKind, RunStatus, Trajectory
from webapp.experiments.services import run_cancel, run_execute, run_launch

pytestmark = pytest.mark.django_db(transaction=False)


def launch(config=None, dataset_kwargs=None, **kwargs):
    user = make_user()
    project = make_project(owner=user)
    dataset = make_dataset(project, **(dataset_kwargs or {}))
    return run_launch(project=project, user=user, name="tiny", kind="policy", config=config or tiny_run_config(),
                      dataset=dataset, policy=make_policy(project), **kwargs)


@pytest.fixture
def other_process():
    """Another live process on this machine (as another process of a worker's pool), named as a
    claim names its executor; killed at the end."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield child
    if child.poll() is None:
        child.kill()
        child.wait(timeout=10)


@pytest.fixture
def dead_process():
    return dead_process_name()


def test_launch_sends_the_task_after_commit(sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = launch()
    assert sent == [("workers.tasks.run_policy", [run.id])]
    assert run.config["policy"]["source"] == "tiny"


def test_a_run_trains_and_records_metrics_trajectories_and_checkpoints(sent):
    run = launch()
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert (run.status, run.progress, run.current_step, run.total_steps, run.attempts) == ("succeeded", 1.0, 3, 3, 1)
    assert run.worker == "w1@host" and run.finished_at is not None
    steps = sorted(set(MetricPoint.objects.filter(run=run, key="reward").values_list("step", flat=True)))
    assert steps == [1, 2, 3]
    assert Trajectory.objects.filter(run=run).count() == 3 * 2 * 2  # steps × prompts × completions
    trajectory = Trajectory.objects.filter(run=run).first()
    assert set(trajectory.rewards) == {"exact_answer", "length"} and trajectory.prompt_id is not None
    assert list(Checkpoint.objects.filter(run=run).values_list("step", flat=True)) == [2, 3]  # keep_checkpoints=2


def test_a_finished_run_delivered_again_is_left_alone(sent):
    run = launch()
    run_execute(run_id=run.id, worker="w1@host")
    assert run_execute(run_id=run.id, worker="w2@host") == "skipped"
    run.refresh_from_db()
    assert run.attempts == 1 and run.worker == "w1@host"


def test_cancel_of_a_queued_run_is_immediate_and_its_task_does_nothing(sent):
    run = launch()
    assert run_cancel(run_id=run.id).status == RunStatus.CANCELLED
    assert run_execute(run_id=run.id, worker="w1@host") == "skipped"
    assert not MetricPoint.objects.filter(run=run).exists()


def test_cancel_requested_while_running_stops_before_the_next_step(sent, monkeypatch):
    run = launch(config=tiny_run_config(total_steps=10))
    from webapp.experiments import execution

    original = execution.RunRecorder.on_metrics

    def cancel_after_step_two(self, step, metrics):
        original(self, step, metrics)
        if step == 2:
            run_cancel(run_id=self.claim.run_id)

    monkeypatch.setattr(execution.RunRecorder, "on_metrics", cancel_after_step_two)
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.CANCELLED
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.current_step == 2


def test_an_engine_error_fails_the_run_with_its_message(sent):
    run = launch(config=tiny_run_config(policy={"source": "path", "path": "/nonexistent/model"}))
    run.config["policy"] = {"source": "path", "path": "/nonexistent/model"}
    Run.objects.filter(pk=run.pk).update(config=run.config)
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.FAILED
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "no model found at /nonexistent/model" in run.error


def test_a_crash_fails_the_run_with_a_traceback_excerpt(sent, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("CUDA went away")

    monkeypatch.setattr(workers.engine, "train", crash)
    run = launch()
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.FAILED
    run.refresh_from_db()
    assert "Traceback" in run.error and "RuntimeError: CUDA went away" in run.error


def test_a_run_held_by_a_live_worker_is_not_taken_over(sent):
    run = launch()
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, worker="other@host", attempts=1,
                                         heartbeat_at=timezone.now())
    assert run_claim(run_id=run.id, worker="w1@host") is None


def test_a_second_delivery_to_the_same_node_leaves_the_run_to_the_live_process_that_runs_it(sent, other_process):
    # A prefork pool (--concurrency 2): one process runs the run, and its message, delivered again,
    # reaches the other process of the same node while the heartbeat is fresh.
    run = launch()
    holder = process_name(psutil.Process(other_process.pid))
    assert run_claim(run_id=run.id, worker="w1@host", executor=holder).attempt == 1
    assert run_claim(run_id=run.id, worker="w1@host") is None
    run.refresh_from_db()
    assert (run.status, run.attempts, run.executor) == (RunStatus.RUNNING, 1, holder)

    other_process.kill()  # the holding process dies (killed by the system): its redelivered task takes over at once
    other_process.wait(timeout=10)
    claim = run_claim(run_id=run.id, worker="w1@host")
    assert claim.attempt == 2
    assert Run.objects.get(pk=run.pk).executor == this_process()


def test_a_claim_by_the_same_process_that_holds_the_run_is_a_duplicate_too(sent):
    run = launch()
    assert run_claim(run_id=run.id, worker="w1@host").attempt == 1
    assert run_claim(run_id=run.id, worker="w1@host") is None
    assert Run.objects.get(pk=run.pk).attempts == 1


def test_a_process_is_named_by_pid_and_start_time_so_a_reused_pid_is_not_taken_for_it(dead_process):
    assert process_is_alive(this_process())
    assert not process_is_alive(dead_process)
    pid, _, started = this_process().partition("@")
    assert not process_is_alive(f"{pid}@{float(started) - 60:.2f}")  # same pid, an earlier process
    assert not process_is_alive("")  # a run claimed before processes were recorded


def test_a_run_whose_heartbeat_is_stale_is_taken_over_with_a_new_attempt(sent, settings):
    run = launch()
    stale = timezone.now() - timedelta(seconds=settings.STEER_HEARTBEAT_TIMEOUT_S + 1)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, worker="dead@host", attempts=1, heartbeat_at=stale)
    claim = run_claim(run_id=run.id, worker="w1@host")
    assert claim.attempt == 2
    run.refresh_from_db()
    assert (run.status, run.worker) == (RunStatus.RUNNING, "w1@host")


def test_a_worker_that_lost_its_lease_stops_and_writes_no_status(sent, monkeypatch):
    run = launch(config=tiny_run_config(total_steps=6))
    from webapp.experiments import execution

    original = execution.RunRecorder.on_metrics

    def taken_over_after_step_one(self, step, metrics):
        original(self, step, metrics)
        Run.objects.filter(pk=self.claim.run_id).update(attempts=self.claim.attempt + 1, worker="new@host")

    monkeypatch.setattr(execution.RunRecorder, "on_metrics", taken_over_after_step_one)
    assert run_execute(run_id=run.id, worker="old@host") == "lease lost"
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.worker == "new@host"
    assert MetricPoint.objects.filter(run=run, key="reward").count() == 1
    assert not run.trajectories.exists()  # step 1's, reported after the takeover, were not written


def test_runs_of_a_restarted_worker_node_or_with_stale_heartbeats_are_requeued(sent, settings,
                                                                              django_capture_on_commit_callbacks):
    mine, stale, alive = launch(), launch(), launch()
    now = timezone.now()
    Run.objects.filter(pk=mine.pk).update(status=RunStatus.RUNNING, worker="me@host", heartbeat_at=now)
    Run.objects.filter(pk=stale.pk).update(status=RunStatus.RUNNING, worker="gone@host",
                                           heartbeat_at=now - timedelta(seconds=settings.STEER_HEARTBEAT_TIMEOUT_S + 5))
    Run.objects.filter(pk=alive.pk).update(status=RunStatus.RUNNING, worker="busy@host", heartbeat_at=now)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        recovered = recover_orphaned_runs(worker="me@host")
    assert sorted(recovered) == sorted([mine.id, stale.id])
    assert sorted(args[0] for _, args in sent) == sorted([mine.id, stale.id])
    assert Run.objects.get(pk=alive.pk).status == RunStatus.RUNNING
    assert Run.objects.get(pk=mine.pk).status == RunStatus.QUEUED


def test_a_restarted_node_leaves_alone_a_run_that_one_of_its_new_processes_already_runs(
        sent, other_process, django_capture_on_commit_callbacks):
    # The run's redelivered message reached a process of the restarted node before its recovery ran.
    before, now = launch(), launch()
    Run.objects.filter(pk=before.pk).update(status=RunStatus.RUNNING, worker="me@host", heartbeat_at=timezone.now(),
                                            executor="1@0.00")
    run_claim(run_id=now.id, worker="me@host", executor=process_name(psutil.Process(other_process.pid)))
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert recover_orphaned_runs(worker="me@host") == [before.id]
    assert [args[0] for _, args in sent] == [before.id]
    assert Run.objects.get(pk=now.pk).status == RunStatus.RUNNING


def test_a_running_external_run_is_not_taken_for_an_orphan(sent, settings, django_capture_on_commit_callbacks):
    """An external trainer's run has no heartbeat and no task: the recovery passes it by and
    still requeues the worker runs after it (it used to stop at it with a KeyError)."""
    external = make_run(make_project(), kind=RunKind.EXTERNAL, status=RunStatus.RUNNING, config={"trainer": "x"})
    stale = launch()
    Run.objects.filter(pk=stale.pk).update(status=RunStatus.RUNNING, worker="gone@host", heartbeat_at=None)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert recover_orphaned_runs(worker="me@host") == [stale.id]
    assert [args[0] for _, args in sent] == [stale.id]
    assert Run.objects.get(pk=external.pk).status == RunStatus.RUNNING


def test_a_run_whose_worker_dies_each_time_before_any_progress_fails_instead_of_restarting_forever(
        sent, settings, tmp_path, dead_process):
    # A pool process killed by the system (out of memory) at the same point of every attempt:
    # Celery redelivers the task to the same node at once, which takes the run over again.
    run = launch()
    for attempt in range(1, settings.STEER_MAX_LOST_ATTEMPTS + 1):
        claim = run_claim(run_id=run.id, worker="w1@host", executor=dead_process)
        assert claim.attempt == attempt  # ... and the process dies here, before a checkpoint
    assert run_claim(run_id=run.id, worker="w1@host") is None
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.attempts == settings.STEER_MAX_LOST_ATTEMPTS
    assert f"lost {settings.STEER_MAX_LOST_ATTEMPTS} times in a row" in run.error


def test_a_run_that_checkpoints_between_lost_workers_keeps_being_resumed(sent, settings, tmp_path, dead_process):
    from webapp.experiments.execution import PolicyRunRecorder

    run = launch()
    folder = tmp_path / "step-1"
    folder.mkdir()
    for attempt in range(1, settings.STEER_MAX_LOST_ATTEMPTS + 3):
        claim = run_claim(run_id=run.id, worker="w1@host", executor=dead_process)
        assert claim.attempt == attempt
        PolicyRunRecorder(claim, total_steps=3, prompt_ids=set()).on_checkpoint(attempt, folder)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.lost_attempts == 0


def test_cancel_of_a_run_whose_worker_is_lost_is_immediate_and_a_late_worker_writes_nothing(sent, settings):
    # With no worker left to requeue it, the run would stay "cancelling" (and undeletable) for good.
    run = launch()
    claim = run_claim(run_id=run.id, worker="dead@host")
    stale = timezone.now() - timedelta(seconds=settings.STEER_HEARTBEAT_TIMEOUT_S + 1)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=stale)
    assert run_cancel(run_id=run.id).status == RunStatus.CANCELLED
    from webapp.experiments.execution import LeaseLost, RunRecorder

    with pytest.raises(LeaseLost):  # the worker was only slow: it stops at its next write
        RunRecorder(claim, total_steps=3).on_metrics(1, {"reward": 1.0})
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert not MetricPoint.objects.filter(run=run).exists()


def test_cancel_of_a_run_whose_worker_is_alive_waits_for_that_worker(sent):
    run = launch()
    run_claim(run_id=run.id, worker="w1@host")
    run = run_cancel(run_id=run.id)
    assert run.status == RunStatus.RUNNING and run.cancel_requested
