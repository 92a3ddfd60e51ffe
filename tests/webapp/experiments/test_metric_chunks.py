"""Points stored as chunks: one row per series per batch, disjoint ranges, last write wins, exact timestamps."""

import random
from datetime import datetime, timezone

import pytest

from tests.factories import make_project, make_run
from webapp.experiments.metric_rollups import metric_rollups_rebuild
from webapp.experiments.metrics import MAX_STEP, MetricPointError, chunk_pieces, metric_points_upsert
from webapp.experiments.models import MAX_CHUNK_SPAN, MetricChunk, MetricPoint, MetricRollup

pytestmark = pytest.mark.django_db

T0, T1, NOW = (datetime(2026, 1, 1, h, tzinfo=timezone.utc) for h in (1, 2, 3))


def points(run, key=None):
    rows = MetricPoint.objects.filter(run=run)
    if key:
        rows = rows.filter(key=key)
    return {(k, s): v for k, s, v in rows.values_list("key", "step", "value")}


def assert_disjoint(run):
    by_key = {}
    for key, lo, hi, stored in MetricChunk.objects.filter(run=run).values_list("key", "step_min", "step_max", "points"):
        steps = [s for s, _ in stored]
        assert steps == sorted(set(steps)) and (lo, hi) == (steps[0], steps[-1])
        assert hi - lo < MAX_CHUNK_SPAN
        by_key.setdefault(key, []).append((lo, hi))
    for ranges in by_key.values():
        ranges.sort()
        assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:])), ranges


def test_pieces_keep_new_values_and_each_point_s_recorded_at():
    stored = [([[1, 1.0], [3, 3.0], [5, 5.0]], T0), ([[7, 7.0], [9, 9.0]], T1)]
    pieces = chunk_pieces([(3, -3.0), (4, -4.0), (7, -7.0)], NOW, stored)
    assert pieces == [([[1, 1.0]], T0), ([[3, -3.0], [4, -4.0]], NOW), ([[5, 5.0]], T0),
                      ([[7, -7.0]], NOW), ([[9, 9.0]], T1)]


def test_an_appended_batch_is_one_chunk_per_series():
    run = make_run(make_project())
    for start in range(0, 300, 100):
        metric_points_upsert(run_id=run.id, points=[(k, s, 0.5) for s in range(start, start + 100)
                                                    for k in ("reward", "kl")])
    assert MetricChunk.objects.filter(run=run).count() == 6
    assert len(points(run)) == 600


def test_interleaved_writes_keep_every_point_and_the_untouched_points_timestamps():
    run = make_run(make_project())
    metric_points_upsert(run_id=run.id, points=[("reward", s, 1.0) for s in range(0, 20, 2)])
    before = dict(MetricPoint.objects.filter(run=run).values_list("step", "recorded_at"))
    metric_points_upsert(run_id=run.id, points=[("reward", s, 2.0) for s in range(1, 20, 2)])
    assert points(run) == {("reward", s): 1.0 if s % 2 == 0 else 2.0 for s in range(20)}
    after = dict(MetricPoint.objects.filter(run=run).values_list("step", "recorded_at"))
    assert all(after[s] == before[s] for s in before)
    assert all(after[s] > before[0] for s in range(1, 20, 2))
    assert_disjoint(run)


def test_random_batches_store_what_a_dict_would_and_the_rollups_of_a_rebuild():
    rng = random.Random(11)
    run = make_run(make_project())
    expected = {}
    for _ in range(40):
        key = rng.choice(["reward", "kl", "loss"])
        lo = rng.randrange(0, 3000)
        steps = rng.sample(range(lo, lo + rng.randrange(1, 400)), rng.randrange(1, 50)) if rng.random() < 0.5 \
            else list(range(lo, lo + rng.randrange(1, 200)))
        batch = [(key, s, float(rng.randint(-9, 9))) for s in steps]
        metric_points_upsert(run_id=run.id, points=batch)
        expected.update({(k, s): v for k, s, v in batch})
    assert points(run) == expected
    assert_disjoint(run)
    fields = ("key", "level", "bucket", "n", "first_step", "first_value", "last_step", "last_value",
              "min_step", "min_value", "max_step", "max_value")
    stored = sorted(MetricRollup.objects.filter(run=run).values_list(*fields))
    metric_rollups_rebuild(run_id=run.id)
    assert stored == sorted(MetricRollup.objects.filter(run=run).values_list(*fields))


def test_a_step_range_filter_reads_only_the_overlapping_chunks():
    run = make_run(make_project())
    for start in range(0, 1000, 100):
        metric_points_upsert(run_id=run.id, points=[("reward", s, float(s)) for s in range(start, start + 100)])
    rows = MetricPoint.objects.filter(run=run, key="reward", chunk_step_max__gte=250, chunk_step_min__lte=260,
                                      step__gte=250, step__lte=260)
    assert sorted(rows.values_list("step", flat=True)) == list(range(250, 261))


def test_a_sparse_batch_is_cut_into_chunks_of_bounded_span():
    run = make_run(make_project())
    steps = [0, 1, MAX_CHUNK_SPAN - 1, MAX_CHUNK_SPAN, 10 * MAX_CHUNK_SPAN, 10 * MAX_CHUNK_SPAN + 5]
    metric_points_upsert(run_id=run.id, points=[("reward", s, float(s)) for s in steps])
    assert sorted(MetricChunk.objects.filter(run=run).values_list("step_min", "step_max")) == [
        (0, MAX_CHUNK_SPAN - 1), (MAX_CHUNK_SPAN, MAX_CHUNK_SPAN), (10 * MAX_CHUNK_SPAN, 10 * MAX_CHUNK_SPAN + 5)]
    metric_points_upsert(run_id=run.id, points=[("reward", s, -1.0) for s in range(2, 3 * MAX_CHUNK_SPAN, 97)])
    assert_disjoint(run)
    expected = {("reward", s): float(s) for s in steps}
    expected.update({("reward", s): -1.0 for s in range(2, 3 * MAX_CHUNK_SPAN, 97)})
    assert points(run) == expected


def test_steps_up_to_the_largest_storable_are_stored_and_rewritten():
    run = make_run(make_project())
    top = MAX_STEP
    metric_points_upsert(run_id=run.id, points=[("reward", top - 1, 1.0), ("reward", top, 2.0)])
    metric_points_upsert(run_id=run.id, points=[("reward", top, 3.0)])
    assert points(run) == {("reward", top - 1): 1.0, ("reward", top): 3.0}
    rows = MetricPoint.objects.filter(run=run, chunk_step_max__gte=top, step__gte=top)
    assert list(rows.values_list("value", flat=True)) == [3.0]
    with pytest.raises(MetricPointError, match="at most"):
        metric_points_upsert(run_id=run.id, points=[("reward", MAX_STEP + 1, 1.0)])
