"""The chart history of many series is read in a few statements, with the same points as before."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import make_project, make_run, make_user
from webapp.experiments.metric_history import (
    bucket_extremes,
    choose_level,
    downsampled_series_sql,
    raw_series_points,
)
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.selectors import metric_history_downsampled

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("keys", [3, 40])
def test_a_runs_charts_read_every_metric_in_the_same_few_queries(keys):
    """The chart data of a run and the runs compared with it, short series (read whole) and long
    ones (merged from rollups): one statement a series before, 300 a poll for 60 metrics × 5 runs."""
    project = make_project(owner=make_user())
    runs = [make_run(project) for _ in range(3)]
    for run in runs:
        metric_points_upsert(
            run_id=run.id,
            points=[
                (f"m/{k}", s, float(s % 7))
                for k in range(keys)
                for s in (range(200), range(0, 20, 10), range(4))[k % 3]
            ],
        )
    with CaptureQueriesContext(connection) as queries:
        series = metric_history_downsampled(
            run_ids=[r.id for r in runs], keys=[], max_points=8
        )
    assert len(series) == 3 * keys and {s["downsampled"] for s in series} == {
        True,
        False,
    }
    assert (
        len(queries) == 3
    )  # the series' bounds, the short ones' chunks, the long ones' rollups


@pytest.mark.parametrize("window", [(0, 999), (3, 170), (40, 41)])
def test_short_series_are_downsampled_as_the_database_does(window):
    """A series too short for the rollups is bucketed in Python: the same first, last, lowest and
    highest point (the earliest of equal values) of each bucket as the SQL over the raw points."""
    run = make_run(make_project(owner=make_user()))
    values = [
        float(v) for v in (3, 1, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8)
    ]
    points = [
        (s, values[s % len(values)] * (-1) ** (s // 50)) for s in range(0, 1000, 3)
    ]
    metric_points_upsert(run_id=run.id, points=[("m", s, v) for s, v in points])
    lo, hi = max(window[0], 0), min(window[1], 999)
    [raw] = raw_series_points([(run.id, "m", lo, hi)])
    assert raw == [(s, v) for s, v in points if lo <= s <= hi]
    level_0 = [
        b for b in (1, 2, 7, 11, 20, 63, 250) if choose_level(hi - lo + 1, b) == 0
    ]  # else rollups
    assert level_0
    for buckets in level_0:
        sql, params = downsampled_series_sql(
            run_id=run.id, key="m", lo=lo, hi=hi, buckets=buckets
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            expected, edges = {}, set()
            for _, _, fs, fv, ls, lv, mins, minv, maxs, maxv in cursor.fetchall():
                expected.update({fs: fv, ls: lv, mins: minv, maxs: maxv})
                edges.update((fs, ls))
        assert bucket_extremes(raw, lo=lo, hi=hi, buckets=buckets) == (
            sorted(expected.items()),
            set(expected) - edges,
        )
