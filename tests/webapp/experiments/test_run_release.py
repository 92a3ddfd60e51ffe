"""A worker that shuts down releases its runs: each stops after its current step, keeps a
checkpoint and goes back to the queue; the next attempt resumes there and is not counted as lost.

Transactional: the release sends the run's task once the queued status is committed, as in
production, so a broker that refuses it is met after the commit.
"""

import pytest
from kombu.exceptions import OperationalError

from tests.factories import make_dataset, make_policy, make_project, make_run, make_user, tiny_run_config
from webapp.experiments import execution
from webapp.experiments.execution import run_claim, run_is_released_by, runs_release
from webapp.experiments.models import MetricPoint, Run, RunStatus
from webapp.experiments.services import run_cancel, run_execute, run_launch
from workers.engine.checkpoint import latest_checkpoint

pytestmark = pytest.mark.django_db(transaction=True)


def launch(total_steps: int = 10) -> Run:
    user = make_user()
    project = make_project(owner=user)
    return run_launch(project=project, user=user, name="tiny", kind="policy",
                      config=tiny_run_config(total_steps=total_steps, checkpoint_every=100),
                      dataset=make_dataset(project), policy=make_policy(project))


def release_after_step(monkeypatch, step_to_release: int, also=None):
    original = execution.RunRecorder.on_metrics

    def on_metrics(self, step, metrics):
        original(self, step, metrics)
        if step == step_to_release:
            assert runs_release(worker="w1@host", process="w1@host:1") == [self.claim.run_id]
            if also:
                also(self.claim.run_id)

    monkeypatch.setattr(execution.RunRecorder, "on_metrics", on_metrics)
    return original


def test_a_released_run_keeps_a_checkpoint_goes_back_to_the_queue_and_resumes_there(sent, monkeypatch):
    run = launch(total_steps=6)
    sent.clear()
    original = release_after_step(monkeypatch, 2)
    assert run_execute(run_id=run.id, worker="w1@host") == "released"
    run.refresh_from_db()
    assert (run.status, run.current_step, run.released_by, run.finished_at) == (RunStatus.QUEUED, 2, "w1@host:1", None)
    assert latest_checkpoint(run.checkpoint_dir)[0] == 2  # checkpoint_every=100: saved because it stopped
    assert sent == [("workers.tasks.run_policy", [run.id])]

    monkeypatch.setattr(execution.RunRecorder, "on_metrics", original)
    assert run_execute(run_id=run.id, worker="w2@host") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert (run.attempts, run.lost_attempts, run.released_by, run.worker) == (2, 0, "", "w2@host")
    assert sorted(MetricPoint.objects.filter(run=run, key="reward").values_list("step", flat=True)) == list(range(1, 7))


def test_a_cancel_asked_meanwhile_wins_over_the_release(sent, monkeypatch):
    run = launch()
    release_after_step(monkeypatch, 1, also=lambda run_id: run_cancel(run_id=run_id))
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.CANCELLED
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_a_release_the_broker_refuses_leaves_the_run_for_orphan_recovery(sent, monkeypatch):
    from workers.celery_app import app

    def refuse(name, args):
        raise OperationalError("Connection refused.")

    run = launch()
    monkeypatch.setattr(app, "send_task", refuse)
    release_after_step(monkeypatch, 1)
    assert run_execute(run_id=run.id, worker="w1@host") == "released"
    run.refresh_from_db()
    # Running and released, not queued behind a task that was never sent: the next worker to
    # start (or the reaper, once the heartbeat is stale) takes it back.
    assert (run.status, run.released_by, run.worker) == (RunStatus.RUNNING, "w1@host:1", "w1@host")


def test_only_this_nodes_running_runs_are_released_and_a_lost_attempt_still_counts(sent):
    project = make_project()
    mine = make_run(project, status=RunStatus.RUNNING, worker="w1@host", attempts=1)
    other = make_run(project, status=RunStatus.RUNNING, worker="w2@host", attempts=1)
    queued = make_run(project, status=RunStatus.QUEUED)
    assert runs_release(worker="w1@host", process="w1@host:7") == [mine.id]
    assert [Run.objects.get(pk=r.pk).released_by for r in (mine, other, queued)] == ["w1@host:7", "", ""]
    assert run_is_released_by(run_id=mine.id, process="w1@host:7")
    assert not run_is_released_by(run_id=mine.id, process="w1@host:8")  # the node restarted: a new process
    # w2 was lost, not released: taking its run over counts a lost attempt; w1's released one does not.
    assert run_claim(run_id=other.id, worker="w2@host") is not None
    assert run_claim(run_id=mine.id, worker="w1@host") is not None
    assert Run.objects.get(pk=other.pk).lost_attempts == 1
    assert (Run.objects.get(pk=mine.pk).lost_attempts, Run.objects.get(pk=mine.pk).released_by) == (0, "")
