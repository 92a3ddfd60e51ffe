"""Benchmark: chart history of a 1,000,000-point metric series, downsampled to ≤ 1,000 points.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/steer_bench_h4 \\
        .venv/bin/python bench/metric_history.py [--points 1000000] [--repeat 200] [--per-write 10000]

Migrates the database, stores the series through ``metric_points_upsert`` (the same path
the worker and the REST ingest use, in batches of ``--per-write`` points (10,000: a REST
client's batches; 1: the worker, which writes each step as it goes), so the chunks and rollups
are built as in production) unless the run already holds it, then times ``metric_history_downsampled``:
the whole series, and random step windows. Prints p50/p95/max in milliseconds.
Not a test: run it by hand on the real stack. Notes in bench/metric_history.md.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from webapp.experiments.metrics import metric_points_upsert  # noqa: E402
from webapp.experiments.models import MetricChunk, MetricPoint, MetricRollup, Run, RunKind  # noqa: E402
from webapp.experiments.selectors import metric_history_downsampled  # noqa: E402
from webapp.projects.models import Project  # noqa: E402

KEY = "reward"


def bench_run(points: int, batch: int) -> Run:
    project, _ = Project.objects.get_or_create(slug="bench-metric-history", defaults={"name": "bench metric history"})
    run, _ = Run.objects.get_or_create(project=project, name=f"history-{points}-per-{batch}",
                                       defaults={"kind": RunKind.EXTERNAL})
    have = MetricPoint.objects.filter(run=run, key=KEY).count()
    if have != points:
        MetricChunk.objects.filter(run=run).delete()
        MetricRollup.objects.filter(run=run).delete()
        started = time.perf_counter()
        for start in range(1, points + 1, batch):
            steps = range(start, min(start + batch, points + 1))
            metric_points_upsert(run_id=run.id, points=[
                (KEY, s, math.sin(s / 5000.0) + random.random() * 0.1) for s in steps
            ])
        elapsed = time.perf_counter() - started
        print(f"ingested {points:,} points in {elapsed:.1f} s ({points / elapsed:,.0f} points/s, rollups included)")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE experiments_metricchunk; ANALYZE experiments_metricrollup")
    return run


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    print(f"{name:<44} n={len(samples):<4} p50={statistics.median(samples):6.1f} ms  "
          f"p95={p95:6.1f} ms  max={ordered[-1]:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--max-points", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--per-write", type=int, default=10_000, help="points per write call (1: as the worker)")
    args = parser.parse_args()

    print(f"database: {connection.vendor} {connection.settings_dict.get('NAME')}")
    call_command("migrate", verbosity=0)
    run = bench_run(args.points, args.per_write)

    def whole():
        [series] = metric_history_downsampled(run_ids=[run.id], keys=[KEY], max_points=args.max_points)
        assert len(series["steps"]) <= args.max_points
        return series

    series = whole()
    print(f"whole series: {len(series['steps'])} points returned, first {series['steps'][0]}, "
          f"last {series['steps'][-1]}, min {min(series['values']):.4f}, max {max(series['values']):.4f}")
    timed(whole, 5)  # warm caches
    report(f"whole series ({args.points:,} → ≤{args.max_points})", timed(whole, args.repeat))

    rng = random.Random(0)

    def window():
        lo = rng.randint(1, args.points // 2)
        hi = lo + rng.randint(args.max_points * 10, args.points // 2)
        [series] = metric_history_downsampled(run_ids=[run.id], keys=[KEY], max_points=args.max_points,
                                              step_min=lo, step_max=hi)
        assert len(series["steps"]) <= args.max_points

    report("random step windows (10k..500k steps)", timed(window, args.repeat))


if __name__ == "__main__":
    main()
