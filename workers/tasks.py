"""Celery tasks: thin shells that take ids, re-read state and call services or the engine.

``run_policy``, ``run_evaluation`` and ``train_reward_model`` are routed to the ``gpu`` queue, acknowledged late
and rejected (so redelivered) when their worker is lost; they are idempotent: a terminal run
returns at once, a run another live worker holds is left to it, a resumed one continues from
its last checkpoint. When this worker starts it hands back to the queue the runs orphaned by a
dead worker (``webapp.experiments.execution.recover_orphaned_runs``).
"""

import logging
import re
import socket
import threading

from celery.signals import worker_ready, worker_shutdown
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


@app.task(bind=True, name="workers.tasks.run_policy", acks_late=True, reject_on_worker_lost=True)
def run_policy(self, run_id: int) -> str:
    """Train the policy run ``run_id``."""
    from webapp.experiments.services import run_execute

    return run_execute(run_id=int(run_id), worker=self.request.hostname or socket.gethostname())


@app.task(bind=True, name="workers.tasks.run_evaluation", acks_late=True, reject_on_worker_lost=True)
def run_evaluation(self, run_id: int) -> str:
    """Evaluate the policy of the evaluation run ``run_id`` on its dataset."""
    from webapp.experiments.services import run_execute

    return run_execute(run_id=int(run_id), worker=self.request.hostname or socket.gethostname())


@app.task(bind=True, name="workers.tasks.train_reward_model", acks_late=True, reject_on_worker_lost=True)
def train_reward_model(self, run_id: int) -> str:
    """Train the reward-model run ``run_id`` and register the model it saves."""
    from webapp.experiments.services import run_execute

    return run_execute(run_id=int(run_id), worker=self.request.hostname or socket.gethostname())


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


@worker_shutdown.connect
def stop_reaper(**kwargs) -> None:
    _reaper_stop.set()
