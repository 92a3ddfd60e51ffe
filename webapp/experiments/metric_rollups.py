"""Pre-aggregated metric buckets, so chart history never scans a whole series.

A chart wants at most ~1,000 points of a series that may hold a million. Scanning the
million on every poll costs hundreds of milliseconds even from a covering index, so each
write of points also refreshes ``MetricRollup`` rows: level 1 holds one row per 16 steps
(first, last, min and max point of those steps), level 2 one row per 256 steps built from
level 1, and so on up to 65,536 steps. A history query then merges at most ~16 rows per
output bucket from the finest level that is coarse enough (see ``selectors``). A fan-out of
16 rather than 8 writes ~40 % fewer rollup rows per ingested batch (bench/metric_ingest.md)
for twice the rows merged per chart bucket (bench/metric_history.md).

Everything here is SQL that runs unchanged on PostgreSQL and SQLite (window functions,
``INSERT … SELECT … ON CONFLICT``). Steps are non-negative (``metric_points_upsert``
refuses others), so integer division is floor division on both.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction

from webapp.experiments.models import MAX_CHUNK_SPAN, MetricChunk, MetricPoint, MetricRollup

FANOUT = 16
ROLLUP_WIDTHS = (16, 256, 4096, 65536)  # steps per bucket at levels 1..4
TOP_LEVEL = len(ROLLUP_WIDTHS)

POINTS = MetricPoint._meta.db_table
ROLLUPS = MetricRollup._meta.db_table
# The view's points with lo <= step <= hi; its parameters come from ``steps_between(lo, hi)``.
# The chunk bounds are what the database can use an index for: a chunk spans fewer than
# MAX_CHUNK_SPAN steps, so those overlapping [lo, hi] end in [lo, hi + MAX_CHUNK_SPAN), one
# bounded range of the (run, key, step_max) index; only they are unpacked.
STEPS_BETWEEN = "chunk_step_max BETWEEN %s AND %s AND chunk_step_min <= %s AND step BETWEEN %s AND %s"


def steps_between(lo: int, hi: int) -> list[int]:
    """The parameters of STEPS_BETWEEN for [lo, hi] (the reach stops at the largest BIGINT)."""
    return [lo, min(hi + MAX_CHUNK_SPAN - 1, 2**63 - 1), hi, lo, hi]
AGGREGATE_COLUMNS = (
    "n, first_step, first_value, last_step, last_value, min_step, min_value, max_step, max_value"
)


def merged_columns(partition: str) -> str:
    """Select-list that merges pieces (rows with AGGREGATE_COLUMNS) within ``partition``.

    Used with SELECT DISTINCT: every row of a partition yields the same merged values.
    """
    p = partition
    return (
        f"SUM(n) OVER ({p}), "
        f"FIRST_VALUE(first_step) OVER ({p} ORDER BY first_step), "
        f"FIRST_VALUE(first_value) OVER ({p} ORDER BY first_step), "
        f"FIRST_VALUE(last_step) OVER ({p} ORDER BY last_step DESC), "
        f"FIRST_VALUE(last_value) OVER ({p} ORDER BY last_step DESC), "
        f"FIRST_VALUE(min_step) OVER ({p} ORDER BY min_value, min_step), "
        f"FIRST_VALUE(min_value) OVER ({p} ORDER BY min_value, min_step), "
        f"FIRST_VALUE(max_step) OVER ({p} ORDER BY max_value DESC, max_step), "
        f"FIRST_VALUE(max_value) OVER ({p} ORDER BY max_value DESC, max_step)"
    )


def raw_pieces(bucket_expr: str) -> str:
    """Raw points as one-point pieces: (run_id, key, b, AGGREGATE_COLUMNS…)."""
    return (
        f"SELECT run_id, key, {bucket_expr} AS b, 1 AS n, step AS first_step, value AS first_value, "
        "step AS last_step, value AS last_value, step AS min_step, value AS min_value, "
        f"step AS max_step, value AS max_value FROM {POINTS}"
    )


def _refresh_level(cursor, *, run_id: int, keys: list[str], level: int, step_min: int, step_max: int) -> None:
    """Recompute the level-``level`` buckets that hold steps [step_min, step_max] for ``keys``."""
    width = ROLLUP_WIDTHS[level - 1]
    first_bucket, last_bucket = step_min // width, step_max // width
    key_marks = ", ".join(["%s"] * len(keys))
    if level == 1:
        child = f"{raw_pieces(f'step / {width}')} WHERE run_id = %s AND key IN ({key_marks}) AND {STEPS_BETWEEN}"
        params = [run_id, *keys, *steps_between(first_bucket * width, (last_bucket + 1) * width - 1)]
    else:
        child = (
            f"SELECT run_id, key, bucket / {FANOUT} AS b, {AGGREGATE_COLUMNS} FROM {ROLLUPS} "
            f"WHERE run_id = %s AND key IN ({key_marks}) AND level = %s AND bucket BETWEEN %s AND %s"
        )
        params = [run_id, *keys, level - 1, first_bucket * FANOUT, (last_bucket + 1) * FANOUT - 1]
    updates = ", ".join(f"{c} = excluded.{c}" for c in AGGREGATE_COLUMNS.split(", "))
    cursor.execute(
        f"INSERT INTO {ROLLUPS} (run_id, key, level, bucket, {AGGREGATE_COLUMNS}) "
        f"SELECT DISTINCT run_id, key, {level}, b, {merged_columns('PARTITION BY run_id, key, b')} "
        f"FROM ({child}) AS c WHERE true "
        f"ON CONFLICT (run_id, key, level, bucket) DO UPDATE SET {updates}",
        params,
    )


def step_ranges(steps: Iterable[int], *, max_ranges: int = 16) -> list[tuple[int, int]]:
    """Sorted steps as at most ``max_ranges`` covering [lo, hi] ranges, closing the widest gaps last,
    so that a sparse batch (steps 1 and 10**6) does not refresh everything in between."""
    ordered = sorted(set(steps))
    if not ordered:
        return []
    gaps = sorted(range(1, len(ordered)), key=lambda i: ordered[i] - ordered[i - 1], reverse=True)
    cuts = sorted(i for i in gaps[: max_ranges - 1] if ordered[i] - ordered[i - 1] > ROLLUP_WIDTHS[-1])
    bounds = [0, *cuts, len(ordered)]
    return [(ordered[a], ordered[b - 1]) for a, b in zip(bounds, bounds[1:])]


def metric_rollups_refresh(*, run_id: int, keys: Iterable[str], step_min: int, step_max: int) -> None:
    """Bring every level up to date after points of ``keys`` in [step_min, step_max] were written.

    Cost: the raw points of the touched level-1 buckets plus at most 16 rows per touched
    bucket at each higher level. Call inside the transaction that wrote the points.
    """
    keys = sorted(set(keys))
    if not keys:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        for level in range(1, TOP_LEVEL + 1):
            _refresh_level(cursor, run_id=run_id, keys=keys, level=level, step_min=step_min, step_max=step_max)


def metric_rollups_rebuild(*, run_id: int) -> None:
    """Recompute all of a run's rollups from its points (after writes that bypassed the upsert)."""
    chunks = MetricChunk.objects.filter(run_id=run_id).order_by()
    keys = sorted(set(chunks.values_list("key", flat=True)))
    if not keys:
        return
    step_min = chunks.order_by("step_min").values_list("step_min", flat=True).first()
    step_max = chunks.order_by("-step_max").values_list("step_max", flat=True).first()
    for start in range(0, len(keys), 50):
        metric_rollups_refresh(run_id=run_id, keys=keys[start:start + 50], step_min=step_min, step_max=step_max)
