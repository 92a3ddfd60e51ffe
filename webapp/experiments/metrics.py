"""Metric ingestion: one statement per batch, idempotent on (run, key, step).

Engine callbacks and the REST ingest endpoint both write through ``metric_points_upsert``.
A point written twice (a retried request, a step replayed after a resume) keeps one row
holding the last value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timezone

from django.db import connection, transaction

from webapp.experiments.metric_rollups import metric_rollups_refresh, step_ranges
from webapp.experiments.models import MetricPoint

MAX_KEY_LENGTH = MetricPoint._meta.get_field("key").max_length


class MetricPointError(ValueError):
    """A point that cannot be stored; ``index`` is its position in the batch."""

    def __init__(self, index: int, message: str):
        self.index = index
        self.message = message
        super().__init__(f"points[{index}]: {message}")


def normalise_points(points: Iterable) -> list[tuple[str, int, float]]:
    """(key, step, value) triples from tuples or {"key", "step", "value"} dicts, last write wins.

    Raises MetricPointError naming the first bad point; NaN and infinities are refused
    because no chart or JSON consumer can use them.
    """
    latest: dict[tuple[str, int], float] = {}
    for i, point in enumerate(points):
        if isinstance(point, dict):
            try:
                key, step, value = point["key"], point["step"], point["value"]
            except KeyError as exc:
                raise MetricPointError(i, f"missing field {exc.args[0]!r}") from None
        else:
            try:
                key, step, value = point
            except (TypeError, ValueError):
                raise MetricPointError(i, "must be an object with key, step and value") from None
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise MetricPointError(i, f"key must be a non-empty string of at most {MAX_KEY_LENGTH} characters")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise MetricPointError(i, "step must be a non-negative integer")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MetricPointError(i, "value must be a finite number")
        latest[(key, step)] = float(value)
    return [(key, step, value) for (key, step), value in latest.items()]


def metric_points_upsert(*, run_id: int, points: Iterable) -> int:
    """Store a batch of points for one run in one statement; returns how many were written."""
    rows = normalise_points(points)
    if not rows:
        return 0
    now = datetime.now(timezone.utc)
    table = MetricPoint._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            keys, steps, values = zip(*rows)
            cursor.execute(
                f"INSERT INTO {table} (run_id, key, step, value, recorded_at) "
                "SELECT %s, k, s, v, %s FROM unnest(%s::text[], %s::bigint[], %s::float8[]) AS t(k, s, v) "
                "ON CONFLICT (run_id, key, step) DO UPDATE SET value = EXCLUDED.value, "
                "recorded_at = EXCLUDED.recorded_at",
                [run_id, now, list(keys), list(steps), list(values)],
            )
        else:
            cursor.executemany(
                f"INSERT INTO {table} (run_id, key, step, value, recorded_at) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, "
                "recorded_at = excluded.recorded_at",
                [(run_id, key, step, value, now) for key, step, value in rows],
            )
        keys = {key for key, _, _ in rows}
        for step_min, step_max in step_ranges(step for _, step, _ in rows):
            metric_rollups_refresh(run_id=run_id, keys=keys, step_min=step_min, step_max=step_max)
    return len(rows)
