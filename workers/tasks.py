"""Celery tasks: thin shells that take ids, re-read state and call services or the engine.

``run_policy``, ``run_evaluation``, ``train_reward_model``, ``train_dpo`` and ``train_sft`` are routed to the ``gpu``
queue, acknowledged late
and rejected (so redelivered) when their worker is lost; they are idempotent: a terminal run
returns at once, a run another live worker holds is left to it, a resumed one continues from
its last checkpoint. When this worker starts it hands back to the queue the runs orphaned by a
dead worker (``webapp.experiments.execution.recover_orphaned_runs``).
"""

import logging
import os
import re
import socket
import threading

from celery.exceptions import Reject
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down
from django.conf import settings

from workers.celery_app import app

NONCE = re.compile(r"^[0-9a-f]{8,64}$")
log = logging.getLogger(__name__)


@app.task(name="workers.tasks.ping", acks_late=True)
def ping(nonce: str) -> str:
    """Prove a worker consumes from the broker: write var/pings/<nonce> holding the host name."""
    if not NONCE.match(nonce):
        raise ValueError("nonce must be 8-64 lowercase hex characters")
    folder = settings.STEER_VAR_DIR / "pings"
    folder.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    (folder / nonce).write_text(host)
    return host


def worker_process(hostname: str) -> str:
    """'node:pid' of this worker's main process (the parent of a prefork pool's child)."""
    from billiard.process import current_process

    main = os.getpid() if current_process()._name == "MainProcess" else os.getppid()
    return f"{hostname}:{main}"


def _execute(task, run_id) -> str:
    """Execute the run, unless this worker is shutting down: then the message goes back to the
    broker for another worker, or for this one once it has restarted. (A run this worker has just
    released comes back to it while it waits for its last task: a solo pool knows it is shutting
    down; a prefork pool's child learns it from the run, released by its main process.)"""
    from celery.worker import state

    from webapp.experiments.execution import run_is_released_by
    from webapp.experiments.services import run_execute

    hostname = task.request.hostname or socket.gethostname()
    if any(flag is not None and flag is not False for flag in (state.should_stop, state.should_terminate)):  # EX_OK is 0
        raise Reject("this worker is shutting down", requeue=True)
    if run_is_released_by(run_id=int(run_id), process=worker_process(hostname)):
        raise Reject("this worker released the run as it shuts down", requeue=True)
    try:
        return run_execute(run_id=int(run_id), worker=hostname)
    finally:
        _release_models(run_id)


def _release_models(run_id) -> None:
    """Free the reward models and judges the run loaded (kept between its steps, not beyond)."""
    from workers.engine.rewards import release_cached_models

    try:
        held = release_cached_models()
    except Exception:  # the run's own outcome is already recorded; never mask it
        log.exception("run %s: could not release its cached models", run_id)
        return
    if held:
        log.info("run %s: released %d cached reward model(s) and judge(s)", run_id, held)


@app.task(bind=True, name="workers.tasks.run_policy", acks_late=True, reject_on_worker_lost=True)
def run_policy(self, run_id: int) -> str:
    """Train the policy run ``run_id``."""
    return _execute(self, run_id)


@app.task(bind=True, name="workers.tasks.run_evaluation", acks_late=True, reject_on_worker_lost=True)
def run_evaluation(self, run_id: int) -> str:
    """Evaluate the policy of the evaluation run ``run_id`` on its dataset."""
    return _execute(self, run_id)


@app.task(bind=True, name="workers.tasks.train_reward_model", acks_late=True, reject_on_worker_lost=True)
def train_reward_model(self, run_id: int) -> str:
    """Train the reward-model run ``run_id`` and register the model it saves."""
    return _execute(self, run_id)


@app.task(bind=True, name="workers.tasks.train_dpo", acks_late=True, reject_on_worker_lost=True)
def train_dpo(self, run_id: int) -> str:
    """Train the DPO run ``run_id`` on its preference pairs and register the policy it ends with."""
    return _execute(self, run_id)


@app.task(bind=True, name="workers.tasks.train_sft", acks_late=True, reject_on_worker_lost=True)
def train_sft(self, run_id: int) -> str:
    """Fine-tune the SFT run ``run_id`` on its examples and register the policy it ends with."""
    return _execute(self, run_id)


_reaper_stop = threading.Event()


@worker_ready.connect
def recover_runs_on_start(sender=None, **kwargs) -> None:
    """Requeue runs orphaned by a dead worker: at once those this node held before it restarted,
    then, every half heartbeat timeout, any whose heartbeat went stale."""
    from webapp.experiments.execution import recover_orphaned_runs

    hostname = getattr(sender, "hostname", None)
    try:
        recovered = recover_orphaned_runs(worker=hostname)
    except Exception:  # a worker that cannot recover runs yet must still serve its queues
        log.exception("recovering this node's orphaned runs failed; the reaper will retry")
    else:
        if recovered:
            log.warning("requeued runs orphaned by a dead worker: %s", recovered)

    def reap() -> None:
        from django.db import close_old_connections, connection

        try:
            while not _reaper_stop.wait(max(5.0, settings.STEER_HEARTBEAT_TIMEOUT_S / 2)):
                close_old_connections()
                try:
                    found = recover_orphaned_runs()
                    if found:
                        log.warning("requeued runs with a stale heartbeat: %s", found)
                except Exception:  # the next round retries
                    log.exception("recovering orphaned runs failed")
        finally:
            connection.close()

    threading.Thread(target=reap, name="steer-run-reaper", daemon=True).start()


@worker_shutting_down.connect
def release_runs_on_shutdown(sender=None, **kwargs) -> None:
    """A warm shutdown (Ctrl-C, SIGTERM) waits for the task in progress: ask this node's runs to
    stop after their current step, save a checkpoint and go back to the queue, rather than hold
    the shutdown for the rest of a run (or lose the steps since their last checkpoint when the
    worker is then killed)."""
    hostname = sender if isinstance(sender, str) else getattr(sender, "hostname", None)
    if not hostname:
        return

    def release() -> None:
        from django.db import connection

        from webapp.experiments.execution import runs_release

        try:
            released = runs_release(worker=hostname, process=f"{hostname}:{os.getpid()}")
        except Exception:  # a database out of reach must not stop the shutdown
            log.exception("could not release this node's runs; they resume from their checkpoints as orphans")
        else:
            if released:
                log.warning("shutting down: runs %s stop after their current step and go back to the queue",
                            released)
        finally:
            connection.close()

    # In a thread of its own, with its own database connection: this runs inside a signal handler,
    # which may have interrupted the main thread (a solo pool's task) between two queries.
    thread = threading.Thread(target=release, name="steer-release-runs")
    thread.start()
    thread.join(timeout=10)


@worker_shutdown.connect
def stop_reaper(**kwargs) -> None:
    _reaper_stop.set()
