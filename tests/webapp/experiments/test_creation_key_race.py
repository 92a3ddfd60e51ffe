"""One Idempotency-Key sent at the same moment with a run's creation and with a sweep: the two
look the key up and create under it one after the other (``services.creation_key_lock``), so the
second finds what the first made and creates nothing. A run stores the key itself and a sweep's
runs keys derived from it, which the unique constraint on the creation key cannot tell apart.

Each test pauses the first request just after it has stored its (first) run, before it commits,
sends the second from another thread, waits until that one is either waiting for the lock or
done, then lets the first commit."""

import threading
import time

import pytest
from django.db import connection, connections

from tests.factories import make_dataset, make_policy, make_project, make_user
from webapp.experiments import services
from webapp.experiments.errors import IdempotencyKeyReused
from webapp.experiments.models import Run
from webapp.experiments.sweeps import sweep_create, sweep_keys

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sent")]

KEY = "0b6f2d8e-7c41-4a95-b3e2-5d9a1c7f4e28"
GRID = {"optim.lr": [1e-6, 1e-5]}


@pytest.fixture
def inputs():
    user = make_user()
    project = make_project(owner=user)
    return {"project": project, "user": user, "idempotency_key": KEY, "name": "grpo", "kind": "policy",
            "config": {"train": {"total_steps": 3}}, "dataset": make_dataset(project), "policy": make_policy(project)}


def the_sweep(inputs):
    return sweep_create(**inputs, grid=GRID)


def the_run(inputs):
    return services.run_create_once(**inputs)


def waiting_for_a_lock() -> bool:
    """Whether a session waits for a lock: the creation key's, or a row's (a unique index entry)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0


def race(monkeypatch, first, second, *, first_key: str, inputs) -> dict:
    """Run ``first`` in a thread, paused once it has stored the run under ``first_key``; then
    ``second`` in another; each one's result (or exception) by name."""
    if connection.vendor != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's; SQLite runs one writer at a time")
    stored, go = threading.Event(), threading.Event()
    real_run_create = services.run_create

    def pausing_run_create(**kwargs):
        run = real_run_create(**kwargs)
        if kwargs["creation_key"] == first_key:
            stored.set()
            assert go.wait(20), "the test never let the first request commit"
        return run

    monkeypatch.setattr(services, "run_create", pausing_run_create)
    results = {}

    def call(name, fn):
        try:
            results[name] = fn(inputs)
        except Exception as exc:  # noqa: BLE001 (the test reads it)
            results[name] = exc
        finally:
            connections.close_all()

    one = threading.Thread(target=call, args=("first", first))
    one.start()
    try:
        assert stored.wait(20), results.get("first")
        two = threading.Thread(target=call, args=("second", second))
        two.start()
        deadline = time.monotonic() + 20
        while two.is_alive() and not waiting_for_a_lock() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        go.set()
        one.join(30)
    two.join(30)
    assert not one.is_alive() and not two.is_alive()
    return results


def test_a_run_sent_while_a_sweep_under_its_key_is_being_created_is_refused(monkeypatch, inputs):
    results = race(monkeypatch, the_sweep, the_run, first_key=sweep_keys(KEY, 2)[0], inputs=inputs)
    sweep = results["first"]
    assert sweep.created and len(sweep.runs) == 2, sweep
    refused = results["second"]
    assert isinstance(refused, IdempotencyKeyReused), refused
    assert refused.message.startswith("this Idempotency-Key already launched a sweep")
    assert sorted(Run.objects.values_list("pk", flat=True)) == sorted(run.pk for run in sweep.runs)


def test_a_sweep_sent_while_a_run_under_its_key_is_being_created_is_refused(monkeypatch, inputs):
    results = race(monkeypatch, the_run, the_sweep, first_key=KEY, inputs=inputs)
    run, created = results["first"]
    assert created
    refused = results["second"]
    assert isinstance(refused, IdempotencyKeyReused), refused
    assert refused.message.startswith(f"this Idempotency-Key already created run {run.pk} (“grpo”), not a sweep")
    assert list(Run.objects.values_list("pk", flat=True)) == [run.pk]


def test_the_same_run_sent_twice_at_once_is_created_once(monkeypatch, inputs):
    """As before the lock: the unique constraint made the second wait and then answer the first's run."""
    results = race(monkeypatch, the_run, the_run, first_key=KEY, inputs=inputs)
    (run, created), (again, created_again) = results["first"], results["second"]
    assert (created, created_again) == (True, False) and again.pk == run.pk
    assert Run.objects.count() == 1
