"""Running a run on a worker: claiming it, the engine callbacks that record it, and its end.

A run is *claimed* under a row lock: queued → running, ``attempts`` + 1. The attempt number
is the run's lease: every write a worker makes (heartbeat, progress, the final status) is
conditioned on it, so a worker that lost its run to another (after it was presumed dead)
stops at its next step and writes nothing more. The claim also names the process that executes
the attempt (``Run.executor``), so that a second delivery of the task to the same node (another
process of a prefork pool) leaves the run alone while that process lives. Metrics, trajectories and checkpoints are
idempotent on their natural keys, so a step replayed after a resume overwrites itself.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import psutil
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from webapp.experiments.metrics import metric_points_discard_after, metric_points_upsert
from webapp.experiments.models import Checkpoint, HeldOutAnswer, Run, RunKind, RunStatus, Trajectory
from webapp.experiments.services import run_transition
from webapp.experiments.trajectories import model_text_storable

log = logging.getLogger(__name__)
T = TypeVar("T")

HEARTBEAT_INTERVAL_S = 5.0
ERROR_EXCERPT_CHARS = 4000
TRAJECTORY_FIELDS = ["prompt", "prompt_text", "completion", "rewards", "reward", "advantage", "length",
                     "finish_reason"]


class LeaseLost(Exception):
    """Another worker holds the run now; this one must stop writing."""


@dataclass(frozen=True)
class Claim:
    run_id: int
    attempt: int


def heartbeat_is_stale(run: Run, now=None) -> bool:
    if run.heartbeat_at is None:
        return True
    now = now or timezone.now()
    return now - run.heartbeat_at > timedelta(seconds=settings.STEER_HEARTBEAT_TIMEOUT_S)


def process_name(process: psutil.Process) -> str:
    """'pid@start time' of a process on this machine: the start time tells it apart from a later
    process given the same pid (a restarted container numbers its processes from 1 again)."""
    return f"{process.pid}@{process.create_time():.2f}"


def this_process() -> str:
    return process_name(psutil.Process(os.getpid()))


def process_is_alive(name: str) -> bool:
    """Whether the process named by ``process_name`` still runs on this machine (a zombie, killed
    but not yet reaped by its parent, does not)."""
    try:
        process = psutil.Process(int(name.partition("@")[0]))
        return process_name(process) == name and process.status() != psutil.STATUS_ZOMBIE
    except (ValueError, psutil.Error):  # no such process (or not one this worker may see: not its own)
        return False


def holder_is_gone(run: Run, *, worker: str) -> bool:
    """Whether the run was held by a process of this worker node that no longer runs: the node
    restarted, or the pool process executing it was killed (its task is then redelivered to the
    node at once). A run held by another node is judged by its heartbeat alone."""
    return run.worker == worker and not process_is_alive(run.executor)


def run_claim(*, run_id: int, worker: str, executor: str | None = None) -> Claim | None:
    """Take the run for this worker process (``executor``, by default the calling one), or None
    when there is nothing to do.

    Terminal runs are left alone (a redelivered message). A queued run asked to cancel is
    cancelled here. A run still marked running is taken over only when its previous worker
    is gone: its heartbeat is stale, or it was held on this very worker node by a process
    that no longer runs (``holder_is_gone``). Otherwise a live process runs it, on another
    node or on this one (another process of the pool, given a duplicate or redelivered
    message), and this delivery is a duplicate: taking over there would train the run twice
    at once until the first process's next write.
    """
    executor = executor or this_process()
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_terminal:
            return None
        if run.status == RunStatus.QUEUED and run.cancel_requested:
            run_transition(run_id=run_id, to=RunStatus.CANCELLED)
            return None
        if run.status == RunStatus.RUNNING:
            if not (heartbeat_is_stale(run) or holder_is_gone(run, worker=worker)):
                return None
            run_transition(run_id=run_id, to=RunStatus.QUEUED)
        # An earlier attempt of a run that has not finished was lost with its worker, unless that
        # worker released it while shutting down.
        lost = run.lost_attempts + 1 if run.attempts and not run.released_by else run.lost_attempts
        if lost >= settings.STEER_MAX_LOST_ATTEMPTS:
            run_transition(run_id=run_id, to=RunStatus.FAILED, lost_attempts=lost, error=lost_attempts_error(run, lost))
            return None
        run = run_transition(run_id=run_id, to=RunStatus.RUNNING, worker=worker, executor=executor,
                             attempts=run.attempts + 1, lost_attempts=lost, released_by="",
                             heartbeat_at=timezone.now(), error="")
    return Claim(run_id=run.id, attempt=run.attempts)


def lost_attempts_error(run: Run, lost: int) -> str:
    return (f"its worker was lost {lost} times in a row before the run got any further (last on {run.worker}): "
            "the process was killed (often by the system, out of memory) or stopped each time; the run is "
            "stopped here rather than started again forever. Look at that worker's log and its memory, then "
            "launch the run again")


def _leased(claim: Claim):
    return Run.objects.filter(pk=claim.run_id, attempts=claim.attempt, status=RunStatus.RUNNING)


def run_finish(*, claim: Claim, to: str, **fields) -> bool:
    """Move the claimed run to its final status, unless the lease was lost meanwhile."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=claim.run_id)
        if run.attempts != claim.attempt or run.status != RunStatus.RUNNING:
            return False
        run_transition(run_id=claim.run_id, to=to, **fields)
    return True


def run_discard_after(*, claim: Claim, step: int) -> dict[str, int]:
    """Before an attempt resumes at ``step`` (its checkpoint's; 0 when it starts over), delete what
    lost attempts recorded after it: metric points and their rollups, trajectories, held-out
    answers and checkpoint rows. Otherwise a resumed run that stops, fails or is cancelled before
    it gets back there keeps steps its final model never took. One transaction, idempotent;
    LeaseLost (nothing deleted) when the attempt no longer holds the run.

    Comparison-task candidates made from discarded trajectories are unlinked, never deleted
    (``candidates_detach_discarded``): labels stay. A checkpoint row a policy starts from is kept.
    Returns the counts deleted (and detached), for the worker's log.
    """
    from webapp.feedback.services import candidates_detach_discarded  # noqa: PLC0415 (feedback imports experiments)

    with transaction.atomic():
        points = metric_points_discard_after(run_id=claim.run_id, step=step)
        run = Run.objects.select_for_update().get(pk=claim.run_id)
        if run.attempts != claim.attempt or run.status != RunStatus.RUNNING:
            raise LeaseLost(f"run {claim.run_id} is no longer held by attempt {claim.attempt}")
        detached = candidates_detach_discarded(run_id=claim.run_id, after_step=step)
        trajectories, _ = Trajectory.objects.filter(run_id=claim.run_id, step__gt=step).delete()
        held_out, _ = HeldOutAnswer.objects.filter(run_id=claim.run_id, step__gt=step).delete()
        checkpoints, _ = (Checkpoint.objects.filter(run_id=claim.run_id, step__gt=step, policies__isnull=True)
                          .delete())
        if run.current_step > step:
            total = max(1, run.total_steps)
            Run.objects.filter(pk=run.pk).update(current_step=step, progress=min(1.0, step / total))
    counts = {"metric points": points, "trajectories": trajectories, "held-out answers": held_out,
              "checkpoints": checkpoints, "candidates unlinked": detached}
    if any(counts.values()):
        log.warning("run %s resumes at step %s: discarded what lost attempts recorded after it (%s)", claim.run_id,
                    step, ", ".join(f"{n} {what}" for what, n in counts.items() if n))
    return counts


def error_excerpt(exc: BaseException) -> str:
    """The end of the traceback, where the cause is, within the stored length."""
    text = "".join(traceback.format_exception(exc))
    if len(text) > ERROR_EXCERPT_CHARS:
        text = "…" + text[-ERROR_EXCERPT_CHARS:]
    return text


class Heartbeat:
    """A daemon thread that stamps ``heartbeat_at`` every few seconds while the run trains,
    also in the middle of a long step; it dies with the worker, and the stamp goes stale."""

    def __init__(self, claim: Claim, interval_s: float = HEARTBEAT_INTERVAL_S):
        self.claim = claim
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-run-{claim.run_id}", daemon=True)

    def __enter__(self):
        # Inside a transaction (in-process tests) another connection could neither see the run
        # nor write it without waiting on this one; a Celery task never runs in one.
        if not connection.in_atomic_block:
            self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    _leased(self.claim).update(heartbeat_at=timezone.now())
                except Exception:  # a database hiccup must not kill the thread; the next beat retries
                    log.exception("heartbeat of run %s failed", self.claim.run_id)
        finally:
            connection.close()


class RunRecorder:
    """Engine callbacks that write what the run produces; one instance per claimed attempt."""

    def __init__(self, claim: Claim, *, total_steps: int, durable_steps: bool = False):
        self.claim = claim
        self.total_steps = max(1, total_steps)
        self.lease_lost = False
        # A run resumed after the last step recorded (an evaluation) has got further with each step;
        # a policy run, resumed from its checkpoint, only with each checkpoint.
        self.durable_steps = durable_steps
        self.system_metrics: tuple[int, dict] | None = None  # (step, system/* metrics) until its on_metrics

    # -- progress and the lease
    def _touch(self, **fields) -> None:
        if not _leased(self.claim).update(heartbeat_at=timezone.now(), **fields):
            self.lease_lost = True
            raise LeaseLost(f"run {self.claim.run_id} is no longer held by attempt {self.claim.attempt}")

    def on_system_metrics(self, step: int, metrics: dict) -> None:
        """The machine's state at the end of ``step`` (train.log_system_metrics), stored with the
        step's own metrics when they come: one write, under the same lease check."""
        self.system_metrics = (step, metrics)

    def on_metrics(self, step: int, metrics: dict) -> None:
        if self.system_metrics is not None and self.system_metrics[0] == step:
            metrics = {**self.system_metrics[1], **metrics}
        self.system_metrics = None
        points = [(key, step, float(value)) for key, value in metrics.items()
                  if isinstance(value, (int, float)) and math.isfinite(value)]
        with transaction.atomic():
            metric_points_upsert(run_id=self.claim.run_id, points=points)
            further = {"lost_attempts": 0} if self.durable_steps else {}
            self._touch(current_step=step, progress=min(1.0, step / self.total_steps), **further)

    def should_stop(self) -> bool:
        row = Run.objects.filter(pk=self.claim.run_id).values("cancel_requested", "attempts", "released_by").first()
        if row is None or row["attempts"] != self.claim.attempt:
            self.lease_lost = True
            return True
        return row["cancel_requested"] or bool(row["released_by"])


class PolicyRunRecorder(RunRecorder):
    def __init__(self, claim: Claim, *, total_steps: int, prompt_ids: set[int],
                 held_out_ids: set[int] = frozenset(), durable_steps: bool = False):
        super().__init__(claim, total_steps=total_steps, durable_steps=durable_steps)
        self.prompt_ids = prompt_ids
        self.held_out_ids = held_out_ids

    def on_held_out(self, step: int, records: list[dict]) -> None:
        """The greedy answers to the held-out prompts at an evaluated step; stored again (the
        same rows) when a resumed run evaluates that step again."""
        rows = [
            HeldOutAnswer(run_id=self.claim.run_id, step=step, prompt_id=r["prompt_id"],
                          completion=model_text_storable(r["completion_text"]), correct=bool(r["correct"]),
                          samples_correct=int(r["samples_correct"]), samples=int(r["samples"]),
                          length=int(r["length"]), finish_reason=r.get("finish_reason") or "")
            for r in records if r.get("prompt_id") in self.held_out_ids
        ]
        with transaction.atomic():  # written only while this attempt still holds the run
            HeldOutAnswer.objects.bulk_create(
                rows, batch_size=500, update_conflicts=True, unique_fields=["run", "step", "prompt"],
                update_fields=["completion", "correct", "samples_correct", "samples", "length", "finish_reason"],
            )
            self._touch()

    def on_rollouts(self, step: int, records: list[dict]) -> None:
        rows = [
            Trajectory(
                run_id=self.claim.run_id, step=step, group_index=r["group_index"], sample_index=r["sample_index"],
                prompt_id=r["prompt_id"] if r.get("prompt_id") in self.prompt_ids else None,
                prompt_text=model_text_storable(r["prompt_text"]),
                completion=model_text_storable(r["completion_text"]),
                rewards={k: float(v) for k, v in r["rewards"].items()}, reward=float(r["reward"]),
                advantage=float(r["advantage"]) if r.get("advantage") is not None else None,
                length=int(r["length"]), finish_reason=r.get("finish_reason") or "",
            )
            for r in records
        ]
        with transaction.atomic():  # written only while this attempt still holds the run
            Trajectory.objects.bulk_create(
                rows, batch_size=500, update_conflicts=True,
                unique_fields=["run", "step", "group_index", "sample_index"], update_fields=TRAJECTORY_FIELDS,
            )
            self._touch()

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Record the checkpoint and forget those the engine has pruned from disk."""
        path = Path(path)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        with transaction.atomic():
            Checkpoint.objects.update_or_create(run_id=self.claim.run_id, step=step,
                                                defaults={"path": str(path), "size_bytes": size})
            gone = [c.pk for c in Checkpoint.objects.filter(run_id=self.claim.run_id)
                    if not Path(c.path).exists()]
            Checkpoint.objects.filter(pk__in=gone).delete()
            self._touch(lost_attempts=0)  # a later attempt resumes from here


def run_failed(*, claim: Claim, exc: BaseException, user_error: bool) -> None:
    """A user-caused engine error keeps its one-line message; anything else its traceback."""
    message = str(exc) if user_error else error_excerpt(exc)
    run_finish(claim=claim, to=RunStatus.FAILED, error=message)


def run_stopped_or_done(*, claim: Claim, recorder: RunRecorder, stopped: bool, **fields) -> str:
    """The final status after the engine returned: cancelled, succeeded, back in the queue (its
    worker released it), or nothing if the lease was lost."""
    if recorder.lease_lost:
        return "lease lost"
    if stopped and run_requeue_released(claim=claim):
        return "released"
    if stopped:
        run_finish(claim=claim, to=RunStatus.CANCELLED, **fields)
        return RunStatus.CANCELLED
    run_finish(claim=claim, to=RunStatus.SUCCEEDED, progress=1.0, **fields)
    return RunStatus.SUCCEEDED


def runs_release(*, worker: str, process: str) -> list[int]:
    """Ask the runs this worker node is running to stop after their current step and go back to
    the queue (called as the worker shuts down: Ctrl-C, SIGTERM, ``docker compose stop``).
    ``process`` names the shutting-down worker process ('node:pid'), which must not take them
    back (``run_is_released_by``) while it waits for its last task to end."""
    with transaction.atomic():
        ids = list(Run.objects.select_for_update().filter(status=RunStatus.RUNNING, worker=worker)
                   .values_list("id", flat=True))
        Run.objects.filter(pk__in=ids).update(released_by=process)
    return ids


def run_is_released_by(*, run_id: int, process: str) -> bool:
    """Whether ``process`` (a shutting-down worker) released the run: its task is for another worker."""
    return Run.objects.filter(pk=run_id, released_by=process).exists()


def _back_to_queue(run_id: int, wanted: Callable[[Run], bool]) -> bool | None:
    """Under the row lock, move a running run back to the queue and send its task again if
    ``wanted(run)``: True when sent, False when not wanted. None when the broker refused the task
    (raised as the transaction commits, so the run was queued without one): it is put back to
    running, where orphan recovery finds it again."""
    from kombu.exceptions import OperationalError  # noqa: PLC0415 (as the services, which send the tasks)

    from webapp.experiments.services import run_enqueue  # noqa: PLC0415 (services import tasks lazily too)

    try:
        with transaction.atomic():
            run = Run.objects.select_for_update().get(pk=run_id)
            if run.status != RunStatus.RUNNING or not wanted(run):
                return False
            run_enqueue(run=run_transition(run_id=run_id, to=RunStatus.QUEUED))
    except OperationalError:
        log.exception("run %s: the broker refused its task; it stays running until orphan recovery sends it", run_id)
        Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(status=RunStatus.RUNNING)
        return None
    return True


def run_requeue_released(*, claim: Claim) -> bool:
    """Put a run its shutting-down worker released back in the queue (a cancel asked meanwhile
    wins). False if it was not released. If the broker refuses the task, the run stays running
    and released, and the next worker to start (or the reaper) takes it back as an orphan."""
    return _back_to_queue(claim.run_id, lambda run: bool(run.released_by) and not run.cancel_requested
                          and run.attempts == claim.attempt) is not False


def recover_orphaned_runs(*, worker: str | None = None) -> list[int]:
    """Hand runs whose worker is gone back to the queue (running → queued) and enqueue them again.

    A run is orphaned when its heartbeat is stale or, at a worker's start, when it was marked
    running by that same worker node and the process that held it is gone (the node has just
    restarted; a run that a process of the new start has already claimed is left to it). This is
    what brings back a run after ``kill -9``: kombu's filesystem transport deletes a message
    when it is fetched, and Redis only restores an unacknowledged one after its visibility
    timeout (hours), so neither broker redelivers it promptly by itself.
    """
    stale_before = timezone.now() - timedelta(seconds=settings.STEER_HEARTBEAT_TIMEOUT_S)
    # An external run is trained elsewhere and reports over the API: it has no worker, no
    # heartbeat and no task to send again.
    candidates = Run.objects.filter(status=RunStatus.RUNNING).exclude(kind=RunKind.EXTERNAL)
    orphaned = candidates.filter(heartbeat_at__lt=stale_before) | candidates.filter(heartbeat_at__isnull=True)
    if worker:
        orphaned = orphaned | candidates.filter(worker=worker)
    return [run_id for run_id in orphaned.values_list("id", flat=True)
            if _back_to_queue(run_id, lambda run: heartbeat_is_stale(run) or holder_is_gone(run, worker=worker))]


def engine_attempt(claim: Claim, body: Callable[[], T], *, label: str = "run") -> tuple[T | None, str | None]:
    """``(body(), None)``, or ``(None, the task's answer)`` when ``body`` (the engine's work for
    the claimed run) failed: "lease lost" when this worker no longer holds the run (nothing is
    written); otherwise the run ends as failed, with the one-line message of an EngineError (a
    user's mistake) or the traceback of anything else."""
    from workers.engine.errors import EngineError  # noqa: PLC0415 (no torch, but the engine is the worker's)

    try:
        return body(), None
    except LeaseLost:
        return None, "lease lost"
    except EngineError as exc:
        run_failed(claim=claim, exc=exc, user_error=True)
        return None, RunStatus.FAILED
    except Exception as exc:  # noqa: BLE001 (any crash of the engine ends the run as failed, with its traceback)
        log.exception("%s %s failed", label, claim.run_id)
        run_failed(claim=claim, exc=exc, user_error=False)
        return None, RunStatus.FAILED


def engine_run(claim: Claim, body: Callable[[], tuple], *, label: str = "run",
               on_succeeded: Callable[[object], None] | None = None) -> str:
    """The task's answer for the claimed run whose engine work is ``body``, which returns
    ``(result, recorder)`` (``result.stopped`` when it stopped early): a failure as
    ``engine_attempt`` ends it; otherwise the run ends as ``run_stopped_or_done`` says, and
    ``on_succeeded(result)`` (registering what it made) commits with the success or not at all."""
    done, failed = engine_attempt(claim, body, label=label)
    if failed:
        return failed
    result, recorder = done
    if on_succeeded is None or result.stopped or recorder.lease_lost:
        return run_stopped_or_done(claim=claim, recorder=recorder, stopped=result.stopped)
    with transaction.atomic():
        outcome = run_stopped_or_done(claim=claim, recorder=recorder, stopped=False)
        if outcome == RunStatus.SUCCEEDED:
            on_succeeded(result)
    return outcome


def policy_run_execute(*, run_id: int, worker: str) -> str:
    """Train a policy run with the engine, resuming from its latest checkpoint if it has one, and
    evaluate its held-out prompts (if it has them) every ``eval.every_steps`` steps."""
    claim = run_claim(run_id=run_id, worker=worker)
    if claim is None:
        return "skipped"
    run = Run.objects.select_related("dataset", "eval_dataset").get(pk=run_id)
    if claim.attempt == 1 and run.checkpoint_dir.exists():
        # A first attempt starts fresh: anything here was left by an earlier database's run with this id.
        shutil.rmtree(run.checkpoint_dir)
    from workers.engine import Callbacks, PromptRecord, TrainConfig, train  # noqa: PLC0415 (torch)

    from workers.engine.checkpoint import latest_checkpoint  # noqa: PLC0415 (torch)

    def attempt():
        config = TrainConfig.from_dict(run.config)
        prompts = [PromptRecord(p.engine_prompt(), p.reference or None, p.id)
                   for p in run.dataset.prompts.order_by("index")] if run.dataset else []
        held_out = [PromptRecord(p.engine_prompt(), p.reference or None, p.id)
                    for p in run.eval_dataset.prompts.order_by("index")] if run.eval_dataset else None
        Run.objects.filter(pk=run_id).update(total_steps=config.train.total_steps)
        if claim.attempt > 1:  # the engine resumes from the newest complete checkpoint, or from scratch
            found = latest_checkpoint(run.checkpoint_dir)
            run_discard_after(claim=claim, step=found[0] if found else 0)
        recorder = PolicyRunRecorder(claim, total_steps=config.train.total_steps,
                                     prompt_ids={p.id for p in prompts},
                                     held_out_ids={p.id for p in held_out or []})
        callbacks = Callbacks(on_metrics=recorder.on_metrics, on_rollouts=recorder.on_rollouts,
                              on_checkpoint=recorder.on_checkpoint, should_stop=recorder.should_stop,
                              on_held_out=recorder.on_held_out, on_system_metrics=recorder.on_system_metrics)
        with Heartbeat(claim):
            result = train(config, prompts, callbacks, output_dir=run.checkpoint_dir,
                           model_cache_dir=settings.STEER_MODEL_CACHE_DIR, eval_prompts=held_out)
        return result, recorder

    return engine_run(claim, attempt)
