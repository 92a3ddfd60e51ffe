"""Downsampled metric history, computed in the database from the rollups.

For a series and a step range [lo, hi] wider than ``max_points`` steps, the range is cut into
B = max_points // 4 equal output buckets and each keeps its first, last, min and max points
(at most 4 points, fewer when they coincide). The output buckets are aligned to the buckets
of the finest rollup level whose width is at least (hi - lo) / (16·B): the query merges at most
~16·B rollup rows, plus the raw points of the partial rollup buckets at the range's two edges.
"""

from __future__ import annotations

from django.db import connection

from webapp.experiments.metric_rollups import (
    AGGREGATE_COLUMNS,
    POINTS,
    ROLLUP_WIDTHS,
    ROLLUPS,
    TOP_LEVEL,
    merged_columns,
    STEPS_BETWEEN,
    raw_pieces,
    steps_between,
)


def series_bounds(*, run_ids: list[int], keys: list[str] | None) -> dict[tuple[int, str], tuple[int, int]]:
    """(run_id, key) → (first step, last step), read from the top rollup level (a few rows a series)."""
    if not run_ids:
        return {}
    sql = (
        f"SELECT run_id, key, MIN(first_step), MAX(last_step) FROM {ROLLUPS} "
        f"WHERE level = %s AND run_id IN ({', '.join(['%s'] * len(run_ids))})"
    )
    params: list = [TOP_LEVEL, *run_ids]
    if keys:
        sql += f" AND key IN ({', '.join(['%s'] * len(keys))})"
        params += list(keys)
    sql += " GROUP BY run_id, key"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(run_id, key): (lo, hi) for run_id, key, lo, hi in cursor.fetchall()}


def raw_series(cursor, *, run_id: int, key: str, lo: int, hi: int) -> list[tuple[int, float]]:
    cursor.execute(f"SELECT step, value FROM {POINTS} WHERE run_id = %s AND key = %s AND {STEPS_BETWEEN} ORDER BY step",
                   [run_id, key, *steps_between(lo, hi)])
    return cursor.fetchall()


def choose_level(span: int, buckets: int) -> int:
    """The coarsest level whose width still leaves ≥ 1 rollup row per output bucket (0 = raw)."""
    level = 0
    for index, width in enumerate(ROLLUP_WIDTHS, start=1):
        if width * buckets <= span:
            level = index
    return level


def downsampled_series(cursor, *, run_id: int, key: str, lo: int, hi: int,
                       buckets: int) -> tuple[list[tuple[int, float]], set[int]]:
    """First/last/min/max of each of ``buckets`` aligned buckets over [lo, hi], in step order, and
    the steps among them that are only a bucket's min or max (neither its first nor its last)."""
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
                f"SELECT run_id, key, (bucket * {width} - {lo_aligned}) / {out_width} AS b, {AGGREGATE_COLUMNS} "
                f"FROM {ROLLUPS} WHERE run_id = %s AND key = %s AND level = {level} AND bucket BETWEEN %s AND %s",
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
    cursor.execute(
        f"SELECT DISTINCT b, {merged_columns('PARTITION BY b')} FROM ({' UNION ALL '.join(pieces)}) AS pieces",
        params,
    )
    points: dict[int, float] = {}
    edges: set[int] = set()
    for _, _, fs, fv, ls, lv, mins, minv, maxs, maxv in cursor.fetchall():
        points.update({fs: fv, ls: lv, mins: minv, maxs: maxv})
        edges.update((fs, ls))
    return sorted(points.items()), set(points) - edges


def history(*, run_ids: list[int], keys: list[str] | None, max_points: int,
            step_min: int | None = None, step_max: int | None = None) -> list[dict]:
    """One dict per (run, key) series: {"run_id", "key", "steps", "values", "downsampled", "extremes"}.

    ``extremes`` holds the indices of the points kept only as a bucket's min or max: a smoothed
    line must skip them, since they are the bucket's outliers, where its first and last points are
    ordinary samples of it (an EMA over all four reads a spiky series' level far too high)."""
    max_points = max(4, int(max_points))
    out = []
    bounds = series_bounds(run_ids=run_ids, keys=keys)
    with connection.cursor() as cursor:
        for (run_id, key), (first, last) in sorted(bounds.items()):
            lo = first if step_min is None else max(first, step_min)
            hi = last if step_max is None else min(last, step_max)
            extremes: set[int] = set()
            if lo > hi:
                rows, downsampled = [], False
            elif hi - lo + 1 <= max_points:
                rows, downsampled = raw_series(cursor, run_id=run_id, key=key, lo=lo, hi=hi), False
            else:
                rows, extremes = downsampled_series(cursor, run_id=run_id, key=key, lo=lo, hi=hi,
                                                    buckets=max_points // 4)
                downsampled = True
            out.append({
                "run_id": run_id,
                "key": key,
                "steps": [step for step, _ in rows],
                "values": [value for _, value in rows],
                "downsampled": downsampled,
                "extremes": [i for i, (step, _) in enumerate(rows) if step in extremes],
            })
    return out
