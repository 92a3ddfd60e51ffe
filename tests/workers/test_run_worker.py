"""Runs executed by a real `celery worker` process (not eager mode) on a tiny model.

The worker subprocess shares the test database (transactional_db commits, so it sees the
rows), the var/ folder (checkpoints, the filesystem broker's queue) and the broker URL.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from tests.factories import PASSWORD, make_dataset, make_policy, make_project, make_user, tiny_run_form_data
from webapp.experiments.models import MetricPoint, Run, RunStatus, Trajectory
from workers.engine.checkpoint import latest_checkpoint

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def database_url() -> str:
    """The test database as a URL for the worker: the live connection's, not the settings' name."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Worker:
    """A celery worker subprocess consuming the default and gpu queues."""

    def __init__(self, name: str, pool: str = "solo", concurrency: int = 1):
        self.name = name
        env = dict(os.environ)
        env.update(STEER_VAR_DIR=str(settings.STEER_VAR_DIR), DATABASE_URL=database_url(),
                   CELERY_BROKER_URL=settings.CELERY_BROKER_URL if not settings.STEER_USES_EMBEDDED_BROKER else "")
        if settings.STEER_USES_EMBEDDED_BROKER:
            env.pop("CELERY_BROKER_URL")
        self.log = open(Path(settings.STEER_VAR_DIR) / f"worker-{name.split('@')[0]}.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "default,gpu",
             "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "INFO", "-n", name, "--without-gossip",
             "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def worker_factory():
    started = []

    def start(name: str = "steer-test@%h", **options) -> Worker:
        worker = Worker(name, **options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate, worker: Worker, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert worker.process.poll() is None, f"the worker exited:\n{worker.output()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{worker.output()}"
        time.sleep(0.2)


def launch_through_the_form(client, total_steps: int, checkpoint_every: int = 1) -> Run:
    user = make_user()
    project = make_project(owner=user)
    policy, dataset = make_policy(project), make_dataset(project, n=6)
    client.login(username=user.username, password=PASSWORD)
    response = client.post(reverse("experiments:new", args=[project.id]),
                           tiny_run_form_data(policy, dataset, total_steps=total_steps,
                                              checkpoint_every=checkpoint_every))
    assert response.status_code == 302, response.content.decode()[:3000]
    return Run.objects.get(project=project)


def run_state(run: Run) -> Run:
    run.refresh_from_db()
    return run


def test_a_run_launched_from_the_form_is_trained_by_a_worker_and_shown(client, worker_factory):
    worker = worker_factory()
    run = launch_through_the_form(client, total_steps=3)
    wait_for(lambda: run_state(run).is_terminal, worker, 120, "the run to finish")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.worker.startswith("steer-test@") and run.attempts == 1
    assert sorted(MetricPoint.objects.filter(run=run, key="reward").values_list("step", flat=True)) == [1, 2, 3]
    assert Trajectory.objects.filter(run=run).count() == 3 * 2 * 2

    page = client.get(reverse("experiments:detail", args=[run.project_id, run.id])).content.decode()
    assert "Succeeded" in page and 'id="charts"' in page
    data = client.get(reverse("experiments:chart_data", args=[run.project_id, run.id])).json()
    keys = {s["key"] for s in data["series"]}
    assert {"reward", "loss", "kl", "entropy", "completions/mean_length"} <= keys
    reward = next(s for s in data["series"] if s["key"] == "reward")
    assert reward["steps"] == [1, 2, 3] and data["run"]["terminal"] is True
    trajectories = client.get(reverse("experiments:trajectories", args=[run.project_id, run.id]) + "?step=2")
    assert trajectories.content.decode().count('class="card group"') == 2


def test_an_evaluation_launched_from_its_form_is_run_by_a_worker_and_summed_up(client, worker_factory):
    worker = worker_factory()
    user = make_user()
    project = make_project(owner=user)
    policy, dataset = make_policy(project), make_dataset(project, n=5)
    client.login(username=user.username, password=PASSWORD)
    data = {k: v for k, v in tiny_run_form_data(policy, dataset, name="eval").items()
            if not k.startswith(("algorithm__", "optim__", "train__checkpoint", "train__total", "train__log"))}
    response = client.post(reverse("experiments:new_evaluation", args=[project.id]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    run = Run.objects.get(project=project)
    wait_for(lambda: run_state(run).is_terminal, worker, 120, "the evaluation to finish")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert Trajectory.objects.filter(run=run).count() == 5 * 2  # tiny_run_form_data: G = 2
    page = client.get(reverse("experiments:detail", args=[project.id, run.id])).content.decode()
    assert 'class="evaluation-results"' in page and '<th class="mono">accuracy</th>' in page


def test_cancel_mid_run_stops_the_run_within_one_step(client, worker_factory):
    worker = worker_factory()
    run = launch_through_the_form(client, total_steps=200, checkpoint_every=50)
    wait_for(lambda: run_state(run).current_step >= 2, worker, 120, "two steps")
    response = client.post(reverse("experiments:cancel", args=[run.project_id, run.id]))
    assert response.status_code == 302
    step_when_asked = run_state(run).current_step
    wait_for(lambda: run_state(run).is_terminal, worker, 60, "the run to stop")
    assert run.status == RunStatus.CANCELLED
    assert step_when_asked <= run.current_step <= step_when_asked + 1
    assert run.current_step < 200


def test_a_killed_worker_s_run_resumes_from_its_checkpoint_on_restart(client, worker_factory):
    steps = 30  # long enough that the kill after step 3 always lands mid-run, even on a busy machine
    first = worker_factory("steer-kill@%h")
    run = launch_through_the_form(client, total_steps=steps, checkpoint_every=2)
    wait_for(lambda: run_state(run).current_step >= 3, first, 120, "three steps")
    first.kill()
    killed_at = timezone.now()
    assert run_state(run).status == RunStatus.RUNNING  # the dead worker could not say otherwise
    recorded_before = dict(MetricPoint.objects.filter(run=run, key="reward").values_list("step", "recorded_at"))
    # A step's metrics are written before its checkpoint is saved, so the resume point is the
    # newest complete checkpoint folder on disk, not the newest step with metrics.
    saved = latest_checkpoint(run.checkpoint_dir)
    assert saved is not None, "checkpoint_every=2 and three steps done: step 2 was saved"
    resumed_from = saved[0]

    second = worker_factory("steer-kill@%h")  # the same node restarts and reclaims its orphaned run
    wait_for(lambda: run_state(run).is_terminal, second, 120, "the resumed run to finish")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempts == 2
    for key in MetricPoint.objects.filter(run=run).values_list("key", flat=True).distinct():
        assert sorted(MetricPoint.objects.filter(run=run, key=key).values_list("step", flat=True)) == list(
            range(1, steps + 1)), key
    assert sorted(set(Trajectory.objects.filter(run=run).values_list("step", flat=True))) == list(range(1, steps + 1))
    # Steps up to the last checkpoint before the kill were not trained again: their rows are untouched.
    after = dict(MetricPoint.objects.filter(run=run, key="reward").values_list("step", "recorded_at"))
    assert all(after[s] == recorded_before[s] for s in range(1, resumed_from + 1))
    assert all(after[s] > killed_at for s in range(resumed_from + 1, steps + 1))


def test_a_worker_stopped_with_sigterm_releases_its_run_which_resumes_where_it_stopped(client, worker_factory):
    """A warm shutdown (docker compose stop, Ctrl-C) does not wait for the whole run: the run
    stops after its current step with a checkpoint there, goes back to the queue, and the next
    worker resumes it from that step, not from an older checkpoint."""
    steps = 40
    first = worker_factory("steer-release@%h")
    run = launch_through_the_form(client, total_steps=steps, checkpoint_every=1000)
    wait_for(lambda: run_state(run).current_step >= 3, first, 120, "three steps")
    first.process.send_signal(signal.SIGTERM)
    first.process.wait(timeout=60)
    run = run_state(run)
    assert run.status == RunStatus.QUEUED and run.released_by.startswith("steer-release@"), first.output()
    assert 3 <= run.current_step < steps
    stopped_at = run.current_step
    assert latest_checkpoint(run.checkpoint_dir)[0] == stopped_at  # checkpoint_every=1000: saved on release
    assert "go back to the queue" in first.output()

    second = worker_factory("steer-release-2@%h")
    wait_for(lambda: run_state(run).is_terminal, second, 120, "the released run to finish")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.attempts, run.lost_attempts, run.released_by) == (2, 0, "")
    for key in MetricPoint.objects.filter(run=run).values_list("key", flat=True).distinct():
        assert sorted(MetricPoint.objects.filter(run=run, key=key).values_list("step", flat=True)) == list(
            range(1, steps + 1)), key


def test_a_task_delivered_again_to_another_process_of_a_prefork_pool_leaves_the_run_to_the_first(
        client, worker_factory):
    """--concurrency 2: the run's message, sent again while one pool process trains the run, reaches
    the pool's other process on the same node. It used to take the run over (the node's name
    matched), so both trained it at once until the first one's next write; now it is skipped."""
    from workers.celery_app import app

    worker = worker_factory("steer-pool@%h", pool="prefork", concurrency=2)
    log = Path(worker.log.name)
    logged_before = log.stat().st_size
    run = launch_through_the_form(client, total_steps=40, checkpoint_every=20)
    wait_for(lambda: run_state(run).current_step >= 1, worker, 120, "a first step")
    app.send_task("workers.tasks.run_policy", args=[run.id])  # the duplicate
    wait_for(lambda: b"'skipped'" in log.read_bytes()[logged_before:], worker, 60, "the duplicate to be skipped")
    wait_for(lambda: run_state(run).is_terminal, worker, 180, "the run to finish")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempts == 1 and run.lost_attempts == 0
    assert sorted(MetricPoint.objects.filter(run=run, key="reward").values_list("step", flat=True)) == list(
        range(1, 41))
