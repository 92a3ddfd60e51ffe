"""Metric ingestion: one statement per batch, idempotent on (run, key, step).

Engine callbacks and the REST ingest endpoint both write through ``metric_points_upsert``.
A point written twice (a retried request, a step replayed after a resume) keeps one row
holding the last value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime, timezone

from django.db import connection, transaction

from webapp.experiments.metric_rollups import (
    AGGREGATE_COLUMNS, FANOUT, ROLLUP_WIDTHS, ROLLUPS, metric_rollups_refresh, step_ranges,
)
from webapp.experiments.models import MetricPoint, Run

MAX_KEY_LENGTH = MetricPoint._meta.get_field("key").max_length
MAX_STEP = 2**63 - 1  # a BIGINT column
RUNS = Run._meta.db_table


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
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
            raise MetricPointError(i, f"key must be a non-empty string of at most {MAX_KEY_LENGTH} characters, without NUL")
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
            raise MetricPointError(i, "step must be a non-negative integer (below 2**63)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MetricPointError(i, "value must be a finite number")
        latest[(key, step)] = float(value)
    return [(key, step, value) for (key, step), value in latest.items()]


def metric_points_upsert(*, run_id: int, points: Iterable) -> int:
    """Store a batch of points for one run, with its chart rollups; returns how many were written.

    Raises ``Run.DoesNotExist`` (writing nothing) when the run does not exist.

    On PostgreSQL the common case (every point new) costs two statements: the points, and
    the rollup buckets of every level merged from the batch's own aggregates. A batch that
    rewrote any existing point refreshes the touched buckets from the stored points instead
    (a replaced value may have been a bucket's min or max).
    """
    rows = normalise_points(points)
    if not rows:
        return 0
    now = datetime.now(timezone.utc)
    table = MetricPoint._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The batch travels as one JSON text that PostgreSQL unpacks in C: Django's client-side
            # binding would otherwise quote three Python lists element by element (a third of
            # the request's CPU). JSON floats round-trip exactly.
            # The run row is locked FOR KEY SHARE once per batch (what a foreign-key check does
            # per row; the column has no FK constraint, see MetricPoint.run): a concurrent
            # deletion of the run waits for this commit, then its trigger deletes these points,
            # or it went first and the batch finds no run and writes nothing.
            cursor.execute(
                f"WITH run AS (SELECT id FROM {RUNS} WHERE id = %s FOR KEY SHARE), "
                f"written AS (INSERT INTO {table} (run_id, key, step, value, recorded_at) "
                "SELECT run.id, e->>0, (e->>1)::bigint, (e->>2)::float8, %s FROM run, json_array_elements(%s::json) AS e "
                "ON CONFLICT (run_id, key, step) DO UPDATE SET value = EXCLUDED.value, "
                "recorded_at = EXCLUDED.recorded_at RETURNING xmax) "
                "SELECT (SELECT count(*) FROM run), (SELECT count(*) FROM written WHERE xmax <> 0)",
                [run_id, now, json.dumps(rows)],
            )
            found, rewritten = cursor.fetchone()
            if not found:
                raise Run.DoesNotExist(f"run {run_id} does not exist")
            if rewritten == 0:
                merge_fresh_rollups(cursor, run_id=run_id, rows=rows)
                return len(rows)
        else:  # SQLite: writers are serialised, so checking the run once is enough
            cursor.execute(f"SELECT 1 FROM {RUNS} WHERE id = %s", [run_id])
            if cursor.fetchone() is None:
                raise Run.DoesNotExist(f"run {run_id} does not exist")
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


def _bucket_aggregates(rows: list[tuple[str, int, float]]) -> dict[tuple[str, int, int], list]:
    """{(key, level, bucket): [n, first_step, first_value, last_step, last_value, min_step, min_value,
    max_step, max_value]} of the batch alone, level 1 from the points, each higher level from the
    one below. Ties break as in ``metric_rollups``: the lowest step wins."""
    out: dict[tuple[str, int, int], list] = {}
    width = ROLLUP_WIDTHS[0]
    for key, step, value in rows:
        agg = out.get((key, 1, step // width))
        if agg is None:
            out[(key, 1, step // width)] = [1, step, value, step, value, step, value, step, value]
        else:
            _merge_into(agg, [1, step, value, step, value, step, value, step, value])
    below = out
    for level in range(2, len(ROLLUP_WIDTHS) + 1):
        current: dict[tuple[str, int, int], list] = {}
        for (key, _, bucket), agg in below.items():
            slot = (key, level, bucket // FANOUT)
            if slot in current:
                _merge_into(current[slot], agg)
            else:
                current[slot] = list(agg)
        out.update(current)
        below = current
    return out


def _merge_into(a: list, b: list) -> None:
    a[0] += b[0]
    if b[1] < a[1]:
        a[1], a[2] = b[1], b[2]
    if b[3] > a[3]:
        a[3], a[4] = b[3], b[4]
    if (b[6], b[5]) < (a[6], a[5]):
        a[5], a[6] = b[5], b[6]
    if (-b[8], b[7]) < (-a[8], a[7]):
        a[7], a[8] = b[7], b[8]


def merge_fresh_rollups(cursor, *, run_id: int, rows: list[tuple[str, int, float]]) -> None:
    """Fold a batch of points that were all new into the stored rollups, every level in one statement.

    Exact only because no point was replaced: a bucket's stored aggregate and the batch's
    aggregate then cover disjoint points, and merging them is what a full refresh computes.
    """
    aggregates = _bucket_aggregates(rows)
    payload = json.dumps([[key, level, bucket, *agg] for (key, level, bucket), agg in aggregates.items()])
    r, e = ROLLUPS, "EXCLUDED"
    types = ["text", "smallint", "bigint", "int", "bigint", "float8", "bigint", "float8", "bigint", "float8",
             "bigint", "float8"]
    fields = ", ".join(f"(a->>{i})::{t}" for i, t in enumerate(types))
    cursor.execute(
        f"INSERT INTO {r} (run_id, key, level, bucket, {AGGREGATE_COLUMNS}) "
        f"SELECT %s, {fields} FROM json_array_elements(%s::json) AS a "
        f"ON CONFLICT (run_id, key, level, bucket) DO UPDATE SET n = {r}.n + {e}.n, "
        f"first_step = LEAST({r}.first_step, {e}.first_step), "
        f"first_value = CASE WHEN {e}.first_step < {r}.first_step THEN {e}.first_value ELSE {r}.first_value END, "
        f"last_step = GREATEST({r}.last_step, {e}.last_step), "
        f"last_value = CASE WHEN {e}.last_step > {r}.last_step THEN {e}.last_value ELSE {r}.last_value END, "
        f"min_step = CASE WHEN ({e}.min_value, {e}.min_step) < ({r}.min_value, {r}.min_step) "
        f"THEN {e}.min_step ELSE {r}.min_step END, "
        f"min_value = LEAST({r}.min_value, {e}.min_value), "
        f"max_step = CASE WHEN {e}.max_value > {r}.max_value OR "
        f"({e}.max_value = {r}.max_value AND {e}.max_step < {r}.max_step) THEN {e}.max_step ELSE {r}.max_step END, "
        f"max_value = GREATEST({r}.max_value, {e}.max_value)",
        [run_id, payload],
    )
