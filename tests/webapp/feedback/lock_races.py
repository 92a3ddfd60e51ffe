"""Two requests racing for a comparison task's row lock, in two threads with connections of
their own (tests marked ``django_db(transaction=True)``, PostgreSQL only: row locks, and
pg_stat_activity to see the wait)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction


def first_holds_second_waits(first_call, second_call) -> dict:
    """Run ``first_call`` in a transaction kept open until ``second_call`` (another thread) waits on
    a lock (the task row's, which the first holds); then let the first commit. Returns
    {"first": ..., "second": ...}, an exception raised by the second as its outcome."""
    stored, release = threading.Event(), threading.Event()
    outcome = {}

    def first():
        try:
            with transaction.atomic():  # done, its transaction not yet committed
                outcome["first"] = first_call()
                stored.set()
                release.wait(10)
        finally:
            connections.close_all()

    def second():
        try:
            outcome["second"] = second_call()
        except Exception as exc:  # noqa: BLE001 (the outcome under test)
            outcome["second"] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    try:
        assert stored.wait(10)
        threads[1].start()
        deadline = time.monotonic() + 10
        with connection.cursor() as cursor:  # until the second is waiting on the task row's lock
            while time.monotonic() < deadline:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND wait_event_type = 'Lock'")
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the second did not wait for the first")
    finally:
        release.set()
        for thread in threads:
            thread.join(15)
    return outcome
