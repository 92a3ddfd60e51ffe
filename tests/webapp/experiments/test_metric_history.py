"""Downsampled history from the rollups, checked against a plain Python computation over every point."""

import random

import pytest

from tests.factories import make_project, make_run, make_user
from webapp.experiments.metric_history import choose_level
from webapp.experiments.metric_rollups import ROLLUP_WIDTHS, metric_rollups_rebuild, step_ranges
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import MetricChunk
from webapp.experiments.selectors import metric_history_downsampled, metric_keys, metric_latest

pytestmark = pytest.mark.django_db


def store(run, key, points, batch=1000):
    for start in range(0, len(points), batch):
        metric_points_upsert(run_id=run.id, points=[(key, s, v) for s, v in points[start:start + batch]])


def reference(points, lo, hi, max_points, edges=None):
    """The same buckets computed from every raw point in Python; the steps that are a bucket's
    first or last are added to ``edges`` when given."""
    inside = [(s, v) for s, v in points if lo <= s <= hi]
    if hi - lo + 1 <= max_points:
        return inside
    buckets = max_points // 4
    level = choose_level(hi - lo + 1, buckets)
    width = ROLLUP_WIDTHS[level - 1] if level else 1
    lo_aligned = lo // width * width
    span = (hi // width + 1) * width - lo_aligned
    out_width = -(-span // (buckets * width)) * width
    groups = {}
    for s, v in inside:
        groups.setdefault((s - lo_aligned) // out_width, []).append((s, v))
    kept = {}
    for group in groups.values():
        if edges is not None:
            edges.update((group[0][0], group[-1][0]))
        for s, v in (group[0], group[-1], min(group, key=lambda p: (p[1], p[0])),
                     min(group, key=lambda p: (-p[1], p[0]))):
            kept[s] = v
    return sorted(kept.items())


@pytest.fixture
def series():
    rng = random.Random(7)
    steps = sorted(rng.sample(range(0, 9000), 6000))  # gaps, so buckets are uneven
    return [(s, rng.uniform(-5, 5)) for s in steps]


def test_small_series_comes_back_whole():
    run = make_run(make_project(owner=make_user()))
    store(run, "kl", [(1, 0.5), (2, 0.25), (3, 0.125)])
    [out] = metric_history_downsampled(run_ids=[run.id], keys=["kl"], max_points=10)
    assert out == {"run_id": run.id, "key": "kl", "steps": [1, 2, 3], "values": [0.5, 0.25, 0.125],
                   "downsampled": False, "extremes": []}


def test_long_series_keeps_first_last_min_and_max_of_every_bucket(series):
    run = make_run(make_project(owner=make_user()))
    store(run, "reward", series)
    [out] = metric_history_downsampled(run_ids=[run.id], keys=["reward"], max_points=40)
    assert out["downsampled"]
    assert len(out["steps"]) <= 40
    expected = reference(series, series[0][0], series[-1][0], 40)
    assert list(zip(out["steps"], out["values"])) == expected


def test_a_downsampled_series_names_the_points_kept_only_as_a_buckets_min_or_max(series):
    """A chart's smoothed line follows a bucket's first and last points, ordinary samples of it, and
    skips the ones kept only as its min or max: an EMA over those reads a spiky series far too high."""
    run = make_run(make_project(owner=make_user()))
    store(run, "reward", series)
    [out] = metric_history_downsampled(run_ids=[run.id], keys=["reward"], max_points=40)
    edges = set()
    reference(series, series[0][0], series[-1][0], 40, edges)
    assert out["extremes"] == [i for i, step in enumerate(out["steps"]) if step not in edges]
    assert 0 < len(out["extremes"]) < len(out["steps"])


def test_spikes_are_extremes_and_the_samples_around_them_are_not():
    run = make_run(make_project(owner=make_user()))
    store(run, "grad_norm", [(s, 50.0 if s % 8 == 3 else 1.0) for s in range(2000)])  # a spike in every 8 steps
    [out] = metric_history_downsampled(run_ids=[run.id], keys=["grad_norm"], max_points=1000)
    assert out["downsampled"]
    assert [out["values"][i] for i in out["extremes"]] == [50.0] * 250
    assert {v for i, v in enumerate(out["values"]) if i not in set(out["extremes"])} == {1.0}


@pytest.mark.parametrize("window", [(1, 8999), (37, 5003), (700, 2100), (4000, 4100)])
def test_step_windows_cut_through_rollup_buckets_exactly(series, window):
    run = make_run(make_project(owner=make_user()))
    store(run, "reward", series)
    lo, hi = window
    [out] = metric_history_downsampled(run_ids=[run.id], keys=["reward"], max_points=24, step_min=lo, step_max=hi)
    expected = reference(series, max(lo, series[0][0]), min(hi, series[-1][0]), 24)
    assert list(zip(out["steps"], out["values"])) == expected


def test_the_extremes_of_a_series_survive_downsampling(series):
    run = make_run(make_project(owner=make_user()))
    store(run, "reward", series)
    [out] = metric_history_downsampled(run_ids=[run.id], keys=["reward"], max_points=8)
    values = dict(series)
    assert max(out["values"]) == max(values.values())
    assert min(out["values"]) == min(values.values())
    assert out["steps"][0] == series[0][0] and out["steps"][-1] == series[-1][0]


def test_rewritten_point_changes_the_history():
    run = make_run(make_project(owner=make_user()))
    store(run, "loss", [(s, 1.0) for s in range(1, 2001)])
    metric_points_upsert(run_id=run.id, points=[("loss", 1234, 99.0)])
    [out] = metric_history_downsampled(run_ids=[run.id], keys=["loss"], max_points=20)
    assert dict(zip(out["steps"], out["values"]))[1234] == 99.0


def test_history_of_several_runs_and_all_keys_when_none_are_named():
    project = make_project(owner=make_user())
    a, b = make_run(project), make_run(project)
    metric_points_upsert(run_id=a.id, points=[("reward", 1, 1.0), ("kl", 1, 0.1)])
    metric_points_upsert(run_id=b.id, points=[("reward", 1, 2.0)])
    out = metric_history_downsampled(run_ids=[a.id, b.id], keys=None, max_points=100)
    assert [(s["run_id"], s["key"]) for s in out] == [(a.id, "kl"), (a.id, "reward"), (b.id, "reward")]


def test_keys_and_latest_values_come_from_the_rollups():
    run = make_run(make_project(owner=make_user()))
    store(run, "reward", [(s, float(s)) for s in range(1, 40_001, 7)])
    metric_points_upsert(run_id=run.id, points=[("kl", 3, 0.5)])
    assert metric_keys(run_ids=[run.id]) == ["kl", "reward"]
    latest = metric_latest(run_ids=[run.id])
    assert latest[run.id]["reward"] == {"step": 39_999, "value": 39_999.0}
    assert latest[run.id]["kl"] == {"step": 3, "value": 0.5}


def test_rebuild_restores_rollups_of_points_written_around_the_upsert(series):
    run = make_run(make_project(owner=make_user()))
    pieces = [series[i:i + 500] for i in range(0, len(series), 500)]  # chunks written past the upsert
    MetricChunk.objects.bulk_create([MetricChunk(run=run, key="reward", step_min=p[0][0], step_max=p[-1][0],
                                                 points=[list(point) for point in p]) for p in pieces])
    assert metric_history_downsampled(run_ids=[run.id], keys=["reward"], max_points=40) == []
    metric_rollups_rebuild(run_id=run.id)
    [out] = metric_history_downsampled(run_ids=[run.id], keys=["reward"], max_points=40)
    assert list(zip(out["steps"], out["values"])) == reference(series, series[0][0], series[-1][0], 40)


def test_sparse_batches_refresh_only_the_ranges_they_touch():
    assert step_ranges([5, 1, 3]) == [(1, 5)]
    assert step_ranges([1, 2, 10**6, 10**6 + 4]) == [(1, 2), (10**6, 10**6 + 4)]
    assert len(step_ranges(range(0, 10**8, 10**6), max_ranges=4)) == 4
