import math

import pytest
from django.db import connection

from tests.factories import make_project, make_run, make_user
from webapp.experiments.metrics import (
    MetricBatchError,
    MetricPointError,
    metric_points_upsert,
    normalise_points,
)
from webapp.experiments.models import MetricPoint, MetricRollup, Run

pytestmark = pytest.mark.django_db


def test_upsert_writes_each_point_once():
    run = make_run(make_project(owner=make_user()))
    written = metric_points_upsert(run_id=run.id, points=[("reward", 1, 0.5), ("reward", 2, 0.75), ("kl", 1, 0.01)])
    assert written == 3
    assert MetricPoint.objects.filter(run=run).count() == 3


def test_upsert_replayed_batch_keeps_one_row_with_the_last_value():
    run = make_run(make_project(owner=make_user()))
    metric_points_upsert(run_id=run.id, points=[{"key": "reward", "step": 1, "value": 0.5}])
    metric_points_upsert(run_id=run.id, points=[{"key": "reward", "step": 1, "value": 0.9}])
    rows = list(MetricPoint.objects.filter(run=run).values_list("key", "step", "value"))
    assert rows == [("reward", 1, 0.9)]


def test_duplicate_points_within_one_batch_keep_the_last():
    assert normalise_points([("a", 1, 1.0), ("a", 1, 2.0)]) == [("a", 1, 2.0)]


@pytest.mark.parametrize(
    "point, message",
    [
        ({"key": "a", "step": 1}, "missing field 'value'"),
        ({"key": "a", "step": 1, "vaule": 1.0}, "unknown field 'vaule'; a point holds key, step and value"),
        ({"key": "a", "stpe": 1, "value": 1.0}, "unknown field 'stpe'; a point holds key, step and value"),
        ({"key": "a", "step": 1, "value": 1.0, "wall_time": 3.5}, "unknown field 'wall_time'"),
        ({"key": "a", "step": 1, "value": 1.0, "t": 1, "u": 2}, "unknown fields 't', 'u'"),
        (("", 1, 1.0), "key must be"),
        (("a", -1, 1.0), "step must be"),
        (("a", 1.5, 1.0), "step must be"),
        (("a", 1, math.nan), "finite number"),
        (("a", 1, "x"), "finite number"),
        ("nonsense", "must be an object"),
    ],
)
def test_bad_point_is_named_by_index_and_nothing_is_written(point, message):
    run = make_run(make_project(owner=make_user()))
    with pytest.raises(MetricPointError) as info:
        metric_points_upsert(run_id=run.id, points=[("ok", 1, 1.0), point])
    assert info.value.index == 1
    assert message in info.value.message
    assert not MetricPoint.objects.filter(run=run).exists()


def test_upsert_for_a_missing_run_raises_and_writes_nothing():
    run = make_run(make_project(owner=make_user()))
    with pytest.raises(Run.DoesNotExist):
        metric_points_upsert(run_id=run.id + 1000, points=[("reward", 1, 0.5)])
    assert not MetricPoint.objects.exists()
    assert not MetricRollup.objects.exists()


def test_deleting_a_run_deletes_its_points_and_rollups():
    project = make_project(owner=make_user())
    run, other = make_run(project), make_run(project)
    for r in (run, other):
        metric_points_upsert(run_id=r.id, points=[("reward", s, 0.1) for s in range(20)])
    run.delete()
    assert set(MetricPoint.objects.values_list("run_id", flat=True)) == {other.id}
    assert set(MetricRollup.objects.values_list("run_id", flat=True)) == {other.id}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the run-deletion trigger is PostgreSQL's")
def test_deleting_a_run_outside_the_orm_still_deletes_its_points_and_rollups():
    project = make_project(owner=make_user())
    run, other = make_run(project), make_run(project)
    for r in (run, other):
        metric_points_upsert(run_id=r.id, points=[("reward", s, 0.1) for s in range(20)])
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM experiments_run WHERE id = %s", [run.id])
    assert set(MetricPoint.objects.values_list("run_id", flat=True)) == {other.id}
    assert set(MetricRollup.objects.values_list("run_id", flat=True)) == {other.id}


def test_every_bad_point_is_counted_and_the_first_hundred_named():
    """normalise_series stopped at the first bad point, so the API could name that one alone."""
    run = make_run(make_project(owner=make_user()))
    with pytest.raises(MetricBatchError) as info:
        metric_points_upsert(run_id=run.id, points=[("ok", 1, 1.0)] + [("a", 1, math.inf)] * 150)
    assert info.value.count == 150 and [e.index for e in info.value.errors] == list(range(1, 101))
    assert str(info.value) == "points[1]: value must be a finite number (and 149 more bad points)"
    assert not MetricPoint.objects.filter(run=run).exists()
