"""Metric ingestion: a few statements per batch, idempotent on (run, key, step).

Engine callbacks and the REST ingest endpoint both write through ``metric_points_upsert``.
A point written twice (a retried request, a step replayed after a resume) keeps one value,
the last. Points are stored as ``MetricChunk`` rows, one per series per batch; ``MetricPoint``
is the view that reads them back one point a row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

import orjson
from django.db import connection, transaction

from webapp.experiments.metric_rollups import (
    AGGREGATE_COLUMNS, FANOUT, ROLLUP_WIDTHS, ROLLUPS, metric_rollups_refresh, step_ranges, steps_between,
)
from webapp.experiments.models import MAX_CHUNK_SPAN, MetricChunk, MetricPoint, MetricRollup, Run

MAX_KEY_LENGTH = MetricPoint._meta.get_field("key").max_length


def metric_key_is_valid(key: object) -> bool:
    """A key a metric can be stored under: a non-empty string of at most MAX_KEY_LENGTH
    characters, without NUL (which PostgreSQL's text refuses)."""
    return isinstance(key, str) and 0 < len(key) <= MAX_KEY_LENGTH and "\x00" not in key


# A BIGINT column, less one: the exclusion constraint's closed range int8range(lo, hi, '[]') is
# stored as [lo, hi + 1), which must fit in a BIGINT too.
MAX_STEP = 2**63 - 2
RUNS = Run._meta.db_table
CHUNKS = MetricChunk._meta.db_table
KEYS_PER_QUERY = 500

Series = dict[str, list[tuple[int, float]]]  # key -> [(step, value)], steps ascending


class MetricPointError(ValueError):
    """A point that cannot be stored; ``index`` is its position in the batch."""

    def __init__(self, index: int, message: str):
        self.index = index
        self.message = message
        super().__init__(f"points[{index}]: {message}")


NAMED_POINT_ERRORS = 100  # bad points a refused batch names one by one; the others are counted


class MetricBatchError(MetricPointError):
    """A batch with bad points: the first as ``index`` and ``message``; ``errors`` the first
    NAMED_POINT_ERRORS of them, in batch order, ``count`` how many there are in all. So that a
    trainer can send the batch again without them, every bad point is named, not just the first."""

    def __init__(self, errors: list[MetricPointError], count: int):
        self.errors, self.count = errors, count
        super().__init__(errors[0].index, errors[0].message)
        if count > 1:
            self.args = (f"{self.args[0]} (and {count - 1:,} more bad points)",)


POINT_FIELDS = frozenset({"key", "step", "value"})


def _point_fields_check(i: int, point: dict) -> None:
    """MetricPointError naming an object point's keys other than key, step and value (a typo such
    as ``"vaule"``, or a field a point does not have, as a timestamp): its data would be lost."""
    unknown = [repr(str(k)[:100]) for k in point if k not in POINT_FIELDS]
    if unknown:
        shown = ", ".join(unknown[:20]) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
        raise MetricPointError(i, f"unknown field{'s' if len(unknown) > 1 else ''} {shown}; "
                                  "a point holds key, step and value")


def normalise_series(points: Iterable) -> Series:
    """Points from (key, step, value) tuples or {"key", "step", "value"} dicts, grouped by key.

    Last write wins within the batch. Raises MetricBatchError naming every bad point (the first
    NAMED_POINT_ERRORS, and how many in all); NaN and infinities are refused because no chart or
    JSON consumer can use them, and an object point with a key beside key, step and value (a
    misspelt ``"vaule"``) because its data would be dropped without a word.
    """
    by_key: dict[str, dict[int, float]] = {}
    errors: list[MetricPointError] = []
    count = 0
    for i, point in enumerate(points):
        try:  # inline, not a function per point: this loop is the ingest's hot path
            if type(point) is list and len(point) == 3:  # the wire format, checked first
                key, step, value = point
            elif isinstance(point, dict):
                if len(point) != 3 or not POINT_FIELDS.issuperset(point):  # a misspelt or extra key would be lost
                    _point_fields_check(i, point)
                try:
                    key, step, value = point["key"], point["step"], point["value"]
                except KeyError as exc:
                    raise MetricPointError(i, f"missing field {exc.args[0]!r}") from None
            else:
                try:
                    key, step, value = point
                except (TypeError, ValueError):
                    raise MetricPointError(i, "must be an object with key, step and value") from None
            values = by_key.get(key) if type(key) is str else None
            if values is None:  # a key not seen yet in this batch (or not a string)
                if not metric_key_is_valid(key):
                    raise MetricPointError(
                        i, f"key must be a non-empty string of at most {MAX_KEY_LENGTH} characters, without NUL")
                values = by_key.setdefault(key, {})
            if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
                raise MetricPointError(i, f"step must be a non-negative integer of at most {MAX_STEP} (2**63 - 2)")
            if type(value) is not float:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise MetricPointError(i, "value must be a finite number")
                try:
                    value = float(value)
                except OverflowError:
                    raise MetricPointError(i, "value must be a finite number") from None
            if value - value != 0.0:  # NaN or an infinity
                raise MetricPointError(i, "value must be a finite number")
            values[step] = value
        except MetricPointError as exc:  # go on, so that the answer names every bad point
            count += 1
            if len(errors) < NAMED_POINT_ERRORS:
                errors.append(exc)
    if errors:
        raise MetricBatchError(errors, count)
    return {key: sorted(values.items()) for key, values in by_key.items()}


def normalise_points(points: Iterable) -> list[tuple[str, int, float]]:
    """(key, step, value) triples of ``normalise_series``, key by key in step order."""
    return [(key, step, value) for key, series in normalise_series(points).items() for step, value in series]


# PostgreSQL's common case, in one statement: insert every series of the batch as a chunk unless
# one of them overlaps a stored chunk of its series (then nothing is inserted and the caller
# merges). Chunks of a series are disjoint, so only the first chunk ending at or after a new
# chunk's first step can overlap it: one LIMIT 1 probe of the (run, key, step_max) index per new
# chunk, whatever the length of the run (a hash join over the run's chunks was linear in it).
PG_INSERT_UNLESS_OVERLAP = (
    "WITH new AS (SELECT e->>0 AS key, (e->>1)::bigint AS lo, (e->>2)::bigint AS hi, e->3 AS points "
    "FROM jsonb_array_elements(%s::jsonb) AS e), "
    "clash AS (SELECT 1 FROM new CROSS JOIN LATERAL ("
    f"SELECT c.step_min FROM {CHUNKS} c WHERE c.run_id = %s AND c.key = new.key AND c.step_max >= new.lo "
    "ORDER BY c.step_max LIMIT 1) AS first_after WHERE first_after.step_min <= new.hi LIMIT 1), "
    f"ins AS (INSERT INTO {CHUNKS} (run_id, key, step_min, step_max, points, recorded_at) "
    "SELECT %s, key, lo, hi, points, %s FROM new WHERE NOT EXISTS (SELECT 1 FROM clash) RETURNING 1) "
    "SELECT count(*) FROM ins"
)
# Serialises the metric writers of one run (their chunks must not overlap) without blocking the
# run row's own updates (heartbeat, progress); the row itself is only share-locked, as a foreign
# key check would, so a concurrent deletion of the run waits for this batch (its trigger then
# deletes the chunks) or went first (then the batch finds no run and writes nothing).
PG_LOCK_RUN = (
    f"WITH writer AS (SELECT pg_advisory_xact_lock(%s)) SELECT 1 FROM writer, {RUNS} r "
    "WHERE r.id = %s FOR KEY SHARE OF r"
)


def _lock_run(cursor, run_id: int) -> None:
    """Writers of one run's metrics go one at a time; raises Run.DoesNotExist for a missing run."""
    if connection.vendor == "postgresql":
        cursor.execute(PG_LOCK_RUN, [run_id, run_id])
    else:  # SQLite: writers are serialised already
        cursor.execute(f"SELECT 1 FROM {RUNS} WHERE id = %s", [run_id])
    if cursor.fetchone() is None:
        raise Run.DoesNotExist(f"run {run_id} does not exist")


def _overlapping_chunks(cursor, *, run_id: int, series: Series) -> dict[str, list[tuple[int, list, object]]]:
    """{key: [(chunk id, points, recorded_at)]} of the stored chunks that overlap the batch's ranges."""
    found: dict[str, list[tuple[int, list, object]]] = {}
    keys = list(series)
    for start in range(0, len(keys), KEYS_PER_QUERY):
        part = keys[start:start + KEYS_PER_QUERY]
        params: list = []
        for key in part:
            lo, hi = series[key][0][0], series[key][-1][0]
            params += [key, lo, hi, steps_between(lo, hi)[1]]  # reach: the last step_max that can overlap
        values = f"WITH n(key, lo, hi, reach) AS (VALUES {', '.join(['(%s, %s, %s, %s)'] * len(part))}) "
        if connection.vendor == "postgresql":  # one bounded index range per series, never a join over the run
            sql = (f"{values}SELECT c.id, c.key, c.points, c.recorded_at FROM n CROSS JOIN LATERAL ("
                   f"SELECT * FROM {CHUNKS} WHERE run_id = %s AND key = n.key AND step_max BETWEEN n.lo AND n.reach "
                   "AND step_min <= n.hi) AS c")
        else:  # SQLite loops over the few rows of n and probes the index
            sql = (f"{values}SELECT c.id, c.key, c.points, c.recorded_at FROM {CHUNKS} c JOIN n ON c.key = n.key "
                   "AND c.step_max BETWEEN n.lo AND n.reach AND c.step_min <= n.hi WHERE c.run_id = %s")
        cursor.execute(sql, [*params, run_id])
        for chunk_id, key, points, recorded_at in cursor.fetchall():
            points = orjson.loads(points) if isinstance(points, str) else points
            found.setdefault(key, []).append((chunk_id, points, recorded_at))
    return found


def span_pieces(points: list) -> list[list]:
    """Ascending points cut into runs that each cover fewer than MAX_CHUNK_SPAN steps."""
    if points[-1][0] - points[0][0] < MAX_CHUNK_SPAN:  # the usual batch: one piece
        return [points]
    pieces, start = [], 0
    for i in range(1, len(points)):
        if points[i][0] - points[start][0] >= MAX_CHUNK_SPAN:
            pieces.append(points[start:i])
            start = i
    pieces.append(points[start:])
    return pieces


def chunk_pieces(new: list[tuple[int, float]], now, stored: list[tuple[list, object]]) -> list[tuple[list, object]]:
    """The chunks that replace ``stored`` chunks overlapping a batch's ``new`` points of one series.

    New points win over stored ones at the same step. Every point keeps the moment it was
    recorded, so the result is the maximal runs (in step order) of points recorded together,
    each under MAX_CHUNK_SPAN steps: [(points, recorded_at)], ranges disjoint.
    """
    rewritten = {step for step, _ in new}
    merged = [(step, value, now) for step, value in new]
    for points, recorded_at in stored:
        merged += [(step, value, recorded_at) for step, value in points if step not in rewritten]
    merged.sort(key=lambda p: p[0])
    pieces: list[tuple[list, object]] = []
    for step, value, recorded_at in merged:
        if pieces and pieces[-1][1] == recorded_at and step - pieces[-1][0][0][0] < MAX_CHUNK_SPAN:
            pieces[-1][0].append([step, value])
        else:
            pieces.append(([[step, value]], recorded_at))
    return pieces


def _write_chunks(cursor, *, run_id: int, series: Series, now) -> None:
    """Store the batch's series, merging with any stored chunk they overlap (any database)."""
    overlapping = _overlapping_chunks(cursor, run_id=run_id, series=series)
    rows, replaced = [], []
    for key, points in series.items():
        stored = overlapping.get(key)
        if not stored:
            rows += [(run_id, key, piece[0][0], piece[-1][0], orjson.dumps(piece).decode(), now)
                     for piece in span_pieces(points)]
            continue
        replaced += [chunk_id for chunk_id, _, _ in stored]
        for piece, recorded_at in chunk_pieces(points, now, [(p, r) for _, p, r in stored]):
            rows.append((run_id, key, piece[0][0], piece[-1][0], orjson.dumps(piece).decode(), recorded_at))
    for start in range(0, len(replaced), KEYS_PER_QUERY):
        part = replaced[start:start + KEYS_PER_QUERY]
        cursor.execute(f"DELETE FROM {CHUNKS} WHERE id IN ({', '.join(['%s'] * len(part))})", part)
    cursor.executemany(
        f"INSERT INTO {CHUNKS} (run_id, key, step_min, step_max, points, recorded_at) "
        "VALUES (%s, %s, %s, %s, %s, %s)", rows)


def metric_points_upsert(*, run_id: int, points: Iterable) -> int:
    """Store a batch of points for one run, with its chart rollups; returns how many were written.

    Raises ``Run.DoesNotExist`` (writing nothing) when the run does not exist.

    On PostgreSQL the common case (the batch's steps lie beyond, or between, the stored chunks
    of each series) costs three statements: the run lock, the chunks, and the rollup buckets of
    every level merged from the batch's own aggregates. A batch that overlaps stored chunks is
    merged with them and refreshes the touched buckets from the stored points (a replaced value
    may have been a bucket's min or max).
    """
    series = normalise_series(points)
    if not series:
        return 0
    written = sum(len(s) for s in series.values())
    now = datetime.now(timezone.utc)
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_run(cursor, run_id)
        if connection.vendor == "postgresql":
            # The batch travels as one JSON text that PostgreSQL unpacks in C: Django's client-side
            # binding would otherwise quote Python lists element by element. JSON floats round-trip exactly.
            payload = orjson.dumps([[key, piece[0][0], piece[-1][0], piece] for key, s in series.items()
                                    for piece in span_pieces(s)]).decode()
            cursor.execute(PG_INSERT_UNLESS_OVERLAP, [payload, run_id, run_id, now])
            if cursor.fetchone()[0]:
                merge_fresh_rollups(cursor, run_id=run_id, series=series)
                return written
        _write_chunks(cursor, run_id=run_id, series=series, now=now)
        keys = set(series)
        for step_min, step_max in step_ranges(step for s in series.values() for step, _ in s):
            metric_rollups_refresh(run_id=run_id, keys=keys, step_min=step_min, step_max=step_max)
    return written


def metric_points_discard_after(*, run_id: int, step: int) -> int:
    """Delete the run's points at steps after ``step``, with the chart rollups they went into;
    returns how many points were deleted. Idempotent; raises ``Run.DoesNotExist`` for a missing run.

    A chunk that straddles ``step`` keeps its points up to it (its recorded_at too); the rollup
    buckets from the one that holds ``step`` on are deleted at every level and that one is
    computed again from the points that remain.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_run(cursor, run_id)
        chunks = MetricChunk.objects.filter(run_id=run_id, step_max__gt=step)
        keys = sorted(set(chunks.values_list("key", flat=True)))
        if not keys:
            return 0
        deleted = 0
        for chunk in chunks.filter(step_min__lte=step):  # at most one per series
            kept = [p for p in chunk.points if p[0] <= step]
            deleted += len(chunk.points) - len(kept)
            MetricChunk.objects.filter(pk=chunk.pk).update(points=kept, step_max=kept[-1][0])
        deleted += sum(len(points) for points in chunks.filter(step_min__gt=step).values_list("points", flat=True))
        chunks.filter(step_min__gt=step).delete()
        for level, width in enumerate(ROLLUP_WIDTHS, start=1):
            MetricRollup.objects.filter(run_id=run_id, level=level, bucket__gte=step // width).delete()
        for start in range(0, len(keys), 50):
            metric_rollups_refresh(run_id=run_id, keys=keys[start:start + 50], step_min=step, step_max=step)
    return deleted


def _bucket_aggregates(series: Series) -> dict[tuple[str, int, int], list]:
    """{(key, level, bucket): [n, first_step, first_value, last_step, last_value, min_step, min_value,
    max_step, max_value]} of the batch alone, level 1 from the points, each higher level from the
    one below. Ties break as in ``metric_rollups``: the lowest step wins."""
    out: dict[tuple[str, int, int], list] = {}
    width = ROLLUP_WIDTHS[0]
    for key, points in series.items():
        agg, open_bucket = None, None
        for step, value in points:  # ascending: a bucket's points are consecutive
            bucket = step // width
            if bucket != open_bucket:
                open_bucket = bucket
                agg = out[(key, 1, bucket)] = [1, step, value, step, value, step, value, step, value]
                continue
            agg[0] += 1
            agg[3], agg[4] = step, value
            if value < agg[6]:
                agg[5], agg[6] = step, value
            if value > agg[8]:
                agg[7], agg[8] = step, value
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


def merge_fresh_rollups(cursor, *, run_id: int, series: Series) -> None:
    """Fold a batch of points that were all new into the stored rollups, every level in one statement.

    Exact only because no point was replaced: a bucket's stored aggregate and the batch's
    aggregate then cover disjoint points, and merging them is what a full refresh computes.
    """
    aggregates = _bucket_aggregates(series)
    payload = orjson.dumps([[key, level, bucket, *agg] for (key, level, bucket), agg in aggregates.items()]).decode()
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
