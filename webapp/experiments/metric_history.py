"""Downsampled metric history, computed from the rollups (or, for a short series, its points).

For a series and a step range [lo, hi] wider than ``max_points`` steps, the range is cut into
B = max_points // 4 equal output buckets and each keeps its first, last, min and max points
(at most 4 points, fewer when they coincide). The output buckets are aligned to the buckets
of the finest rollup level whose width is at least (hi - lo) / (16·B): the query merges at most
~16·B rollup rows, plus the raw points of the partial rollup buckets at the range's two edges.
A range of fewer than 16·B steps has no such level: its points (at most 16·B) are read from
their chunks and bucketed in Python, the same buckets the SQL over them gives: the SQL's nine
window sorts cost ~20 ms a series of 2,000 steps, and a chart asks for every metric of a run and
of the runs compared with it (60 metrics: 1.2 s, 0.33 s this way). All the series of a request
are read in a statement or two (a batch of ``SERIES_PER_QUERY``), not one a series.
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from datetime import UTC, datetime
from functools import reduce

import orjson
from django.db import connection
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from webapp.experiments.metric_rollups import (
    AGGREGATE_COLUMNS,
    ROLLUP_WIDTHS,
    ROLLUPS,
    STEPS_BETWEEN,
    TOP_LEVEL,
    merged_columns,
    raw_pieces,
    steps_between,
)
from webapp.experiments.models import MetricChunk


def series_bounds(*, run_ids: list[int], keys: list[str] | None) -> dict[tuple[int, str], tuple[int, int]]:
    """(run_id, key) → (first step, last step), read from the top rollup level (a few rows a series)."""
    return {(run_id, key): (lo, hi) for run_id, key, _, lo, hi in _top_level_series(run_ids=run_ids, keys=keys)}


def _top_level_series(*, run_ids: list[int], keys: list[str] | None) -> list[tuple[int, str, int, int, int]]:
    """(run_id, key, points, first step, last step) of each series, from the top rollup level."""
    if not run_ids:
        return []
    sql = (
        f"SELECT run_id, key, SUM(n), MIN(first_step), MAX(last_step) FROM {ROLLUPS} "
        f"WHERE level = %s AND run_id IN ({', '.join(['%s'] * len(run_ids))})"
    )
    params: list = [TOP_LEVEL, *run_ids]
    if keys:
        sql += f" AND key IN ({', '.join(['%s'] * len(keys))})"
        params += list(keys)
    sql += " GROUP BY run_id, key"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def choose_level(span: int, buckets: int) -> int:
    """The coarsest level whose width still leaves ≥ 1 rollup row per output bucket (0 = raw)."""
    level = 0
    for index, width in enumerate(ROLLUP_WIDTHS, start=1):
        if width * buckets <= span:
            level = index
    return level


def downsampled_series_sql(*, run_id: int, key: str, lo: int, hi: int, buckets: int) -> tuple[str, list]:
    """First/last/min/max of each of ``buckets`` aligned buckets over [lo, hi]: one row a bucket,
    (b, n, first step, first value, last step, last value, min step, min value, max step, max value)."""
    level = choose_level(hi - lo + 1, buckets)
    width = ROLLUP_WIDTHS[level - 1] if level else 1
    lo_aligned = lo // width * width
    span_aligned = (hi // width + 1) * width - lo_aligned
    out_width = -(-span_aligned // (buckets * width)) * width  # a multiple of width, ≥ span / buckets
    pieces = [f"{raw_pieces(f'(step - {lo_aligned}) / {out_width}')} WHERE run_id = %s AND key = %s AND {STEPS_BETWEEN}"]
    if level:
        full_first, full_last = -(-lo // width), (hi + 1) // width - 1  # rollup buckets inside [lo, hi]
        if full_first <= full_last:
            pieces = [
                (f"SELECT run_id, key, (bucket * {width} - {lo_aligned}) / {out_width} AS b, {AGGREGATE_COLUMNS} "
                 f"FROM {ROLLUPS} WHERE run_id = %s AND key = %s AND level = {level} AND bucket BETWEEN %s AND %s"),
                pieces[0],
                pieces[0],
            ]
            params = [
                run_id, key, full_first, full_last,
                run_id, key, *steps_between(lo, full_first * width - 1),
                run_id, key, *steps_between((full_last + 1) * width, hi),
            ]
        else:
            params = [run_id, key, *steps_between(lo, hi)]
    else:
        params = [run_id, key, *steps_between(lo, hi)]
    return f"SELECT DISTINCT b, {merged_columns('PARTITION BY b')} FROM ({' UNION ALL '.join(pieces)}) AS pieces", params


# Series read by one statement (its parameters stay far below SQLite's and PostgreSQL's limits).
SERIES_PER_QUERY = 100


def rollup_series_points(cursor, queries: list[tuple[str, list]]
                         ) -> list[tuple[list[tuple[int, float]], set[int]]]:
    """The points of each series, in step order, from the (sql, params) of ``downsampled_series_sql``:
    a statement a batch of ``SERIES_PER_QUERY`` series, not one a series. With each series, the
    steps among its points that are only a bucket's min or max (neither its first nor its last)."""
    points: list[dict[int, float]] = [{} for _ in queries]
    edges: list[set[int]] = [set() for _ in queries]
    for start in range(0, len(queries), SERIES_PER_QUERY):
        batch = queries[start:start + SERIES_PER_QUERY]
        cursor.execute(" UNION ALL ".join(f"SELECT {start + i}, * FROM ({sql}) AS series{i}"
                                          for i, (sql, _) in enumerate(batch)),
                       [p for _, params in batch for p in params])
        for s, _, _, fs, fv, ls, lv, mins, minv, maxs, maxv in cursor.fetchall():
            points[s].update({fs: fv, ls: lv, mins: minv, maxs: maxv})
            edges[s].update((fs, ls))
    return [(sorted(p.items()), set(p) - e) for p, e in zip(points, edges, strict=True)]


def raw_series_points(wanted: list[tuple[int, str, int, int]]) -> list[list[tuple[int, float]]]:
    """Every point in [lo, hi] of each (run_id, key, lo, hi), in step order, read from the stored
    chunks (a statement a batch of ``SERIES_PER_QUERY`` series) and unpacked here: the points
    view unpacks them row by row, ~10 ms for a series of 2,000 points, where one parse of the
    chunks' JSON costs well under one."""
    found: list[list[tuple[int, int, str]]] = [[] for _ in wanted]
    for start in range(0, len(wanted), SERIES_PER_QUERY):
        batch = wanted[start:start + SERIES_PER_QUERY]
        index = {(run_id, key): start + i for i, (run_id, key, _, _) in enumerate(batch)}
        chunks = MetricChunk.objects.filter(reduce(operator.or_, (
            Q(run_id=run_id, key=key, step_max__gte=lo, step_max__lte=steps_between(lo, hi)[1], step_min__lte=hi)
            for run_id, key, lo, hi in batch)))
        for run_id, key, step_min, step_max, points in chunks.values_list(
                "run_id", "key", "step_min", "step_max", Cast("points", TextField())):
            found[index[(run_id, key)]].append((step_min, step_max, points))
    out = []
    for (_, _, lo, hi), chunks in zip(wanted, found, strict=True):
        series: list[tuple[int, float]] = []
        for step_min, step_max, points in sorted(chunks):
            if lo <= step_min and step_max <= hi:  # most chunks: every point inside
                series += [(step, float(value)) for step, value in orjson.loads(points)]
            else:
                series += [(step, float(value)) for step, value in orjson.loads(points) if lo <= step <= hi]
        out.append(series)
    return out


def bucket_extremes(points: list[tuple[int, float]], *, lo: int, hi: int,
                    buckets: int) -> tuple[list[tuple[int, float]], set[int]]:
    """``downsampled_series_sql`` at level 0, over raw points in step order: the first, last, lowest
    and highest point (the earliest step among equal values) of each of ``buckets`` equal buckets
    of [lo, hi], in step order; and the steps among them that are only a bucket's min or max."""
    out_width = -(-(hi - lo + 1) // buckets)
    steps = [step for step, _ in points]
    kept: dict[int, float] = {}
    edges: set[int] = set()
    start = 0
    while start < len(points):
        end = bisect_left(steps, lo + ((steps[start] - lo) // out_width + 1) * out_width, start)
        group = points[start:end]
        # min and max keep the first of equal values: the earliest step, as the SQL's order does
        for step, value in (group[0], group[-1], min(group, key=_VALUE), max(group, key=_VALUE)):
            kept[step] = value
        edges.update((group[0][0], group[-1][0]))
        start = end
    return sorted(kept.items()), set(kept) - edges


_VALUE = operator.itemgetter(1)


def history(*, run_ids: list[int], keys: list[str] | None, max_points: int,
            step_min: int | None = None, step_max: int | None = None) -> list[dict]:
    """One dict per (run, key) series: {"run_id", "key", "steps", "values", "downsampled", "extremes"}.

    ``extremes`` holds the indices of the points kept only as a bucket's min or max: a smoothed
    line must skip them, since they are the bucket's outliers, where its first and last points are
    ordinary samples of it (an EMA over all four reads a spiky series' level far too high).

    A series of at most ``16 · max_points / 4`` steps is read whole and, if longer than
    ``max_points``, downsampled here; a longer one is merged from its rollups in SQL. Either way
    the reads of all series take a statement or two, not one a series."""
    max_points = max(4, int(max_points))
    buckets = max_points // 4
    out, raw, rolled = [], [], []
    bounds = series_bounds(run_ids=run_ids, keys=keys)
    for (run_id, key), (first, last) in sorted(bounds.items()):
        lo = first if step_min is None else max(first, step_min)
        hi = last if step_max is None else min(last, step_max)
        series = {"run_id": run_id, "key": key, "steps": [], "values": [],
                  "downsampled": lo <= hi and hi - lo + 1 > max_points, "extremes": []}
        out.append(series)
        if lo > hi:
            continue
        if choose_level(hi - lo + 1, buckets) == 0:
            raw.append((series, (run_id, key, lo, hi)))
        else:
            rolled.append((series, downsampled_series_sql(run_id=run_id, key=key, lo=lo, hi=hi, buckets=buckets)))
    for (series, (_, _, lo, hi)), points in zip(raw, raw_series_points([w for _, w in raw]), strict=True):
        extremes: set[int] = set()
        if series["downsampled"]:
            points, extremes = bucket_extremes(points, lo=lo, hi=hi, buckets=buckets)
        _fill(series, points, extremes)
    with connection.cursor() as cursor:
        for (series, _), (points, extremes) in zip(rolled, rollup_series_points(cursor, [q for _, q in rolled]),
                                                    strict=True):
            _fill(series, points, extremes)
    return out


def _fill(series: dict, points: list[tuple[int, float]], extremes: set[int]) -> None:
    series["steps"] = [step for step, _ in points]
    series["values"] = [value for _, value in points]
    series["extremes"] = [i for i, (step, _) in enumerate(points) if step in extremes]


CLOCK_POINTS = 200  # steps per run at which a chart's time axis reads when they were recorded


def clock_targets(lo: int, hi: int, points: int) -> list[int]:
    """Up to ``points`` (at least 2) steps spread evenly over [lo, hi], both ends included; integer
    arithmetic, exact for any BIGINT step."""
    if hi - lo + 1 <= points:
        return list(range(lo, hi + 1))
    gaps = max(points, 2) - 1
    return sorted({lo + (i * (hi - lo) + gaps // 2) // gaps for i in range(gaps + 1)})


def clock_series(*, run_ids: list[int]) -> dict[int, tuple[str, int, int]]:
    """run_id → (key, first step, last step) of the series a run's clock is read from: the one with
    the most points (read from the top rollup level), then the widest, then the first key. A
    metric logged at the first and last steps only spans as many steps as a loss logged at every
    step, and would make a clock of two instants."""
    best: dict[int, tuple] = {}
    for run_id, key, count, lo, hi in _top_level_series(run_ids=run_ids, keys=None):
        rank = (-int(count), -(hi - lo), key)
        if run_id not in best or rank < best[run_id][0]:
            best[run_id] = (rank, (key, lo, hi))
    return {run_id: series for run_id, (_, series) in best.items()}


def run_clocks(*, run_ids: list[int], points: int = CLOCK_POINTS) -> dict[int, list[tuple[int, float]]]:
    """run_id → [(step, seconds since the epoch)], strictly ascending in step: when each run's
    metrics were recorded, at up to ``points`` steps over its range, for a chart's time axis (W&B's
    and MLflow's "wall time" and "relative time"), which places the steps between two of them by
    interpolation.

    A run's clock is read off one series (``clock_series``): at each target step, the stored chunk
    that holds it (or the first after a gap) gives its last step and its time. A chunk's points
    arrived together, after its last step was computed, so that is the step the time belongs to.
    One statement a run, each target one probe of the (run, key, step_max) index, however long
    the series. Steps sent again later (a resumed run's) keep the time they were last sent at,
    so such a clock can go back in time. A run with no metrics has no clock."""
    table = MetricChunk._meta.db_table
    clocks: dict[int, list[tuple[int, float]]] = {}
    with connection.cursor() as cursor:
        for run_id, (key, lo, hi) in sorted(clock_series(run_ids=run_ids).items()):
            targets = clock_targets(lo, hi, points)
            values = f"WITH t(target) AS (VALUES {', '.join(['(%s)'] * len(targets))}) "
            if connection.vendor == "postgresql":  # one index probe a target
                sql = (f"{values}SELECT DISTINCT c.step_max, c.recorded_at FROM t CROSS JOIN LATERAL ("
                       f"SELECT step_max, recorded_at FROM {table} WHERE run_id = %s AND key = %s "
                       "AND step_max >= t.target ORDER BY step_max LIMIT 1) AS c ORDER BY c.step_max")
            else:  # SQLite evaluates the correlated subquery once a target, through the same index
                sql = (f"{values}SELECT c.step_max, c.recorded_at FROM {table} c WHERE c.id IN ("
                       f"SELECT (SELECT f.id FROM {table} f WHERE f.run_id = %s AND f.key = %s "
                       "AND f.step_max >= t.target ORDER BY f.step_max LIMIT 1) FROM t) ORDER BY c.step_max")
            cursor.execute(sql, [*targets, run_id, key])
            clocks[run_id] = [(step, _epoch(recorded_at)) for step, recorded_at in cursor.fetchall()]
    return clocks


def _epoch(moment: datetime) -> float:
    """Seconds since the epoch; a naive datetime (SQLite's raw rows) is UTC, as Django stores it."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
