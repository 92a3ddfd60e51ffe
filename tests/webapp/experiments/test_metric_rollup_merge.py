"""The fast rollup merge of all-new batches must equal a full rebuild from the stored points."""

import random

import pytest

from tests.factories import make_project, make_run
from webapp.experiments.metric_rollups import TOP_LEVEL, metric_rollups_rebuild
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import MetricRollup

pytestmark = pytest.mark.django_db

FIELDS = ("key", "level", "bucket", "n", "first_step", "first_value", "last_step", "last_value",
          "min_step", "min_value", "max_step", "max_value")


def rollups(run):
    return sorted(MetricRollup.objects.filter(run=run).values_list(*FIELDS))


def test_batches_of_new_points_in_any_order_give_the_rollups_of_a_rebuild():
    rng = random.Random(3)
    run = make_run(make_project())
    steps = list(range(5000))
    rng.shuffle(steps)
    for start in range(0, len(steps), 700):  # batches straddle buckets, steps out of order
        chunk = steps[start:start + 700]
        metric_points_upsert(run_id=run.id, points=[(key, s, float(rng.randint(0, 5))) for s in chunk
                                                    for key in ("reward", "kl")])
    merged = rollups(run)
    metric_rollups_rebuild(run_id=run.id)
    assert merged == rollups(run)


def test_a_batch_that_replaces_points_still_gives_the_rollups_of_a_rebuild():
    run = make_run(make_project())
    metric_points_upsert(run_id=run.id, points=[("reward", s, 10.0) for s in range(100)])
    metric_points_upsert(run_id=run.id, points=[("reward", s, -1.0) for s in range(50, 150)])
    replaced = rollups(run)
    metric_rollups_rebuild(run_id=run.id)
    assert replaced == rollups(run)
    assert MetricRollup.objects.get(run=run, key="reward", level=TOP_LEVEL, bucket=0).max_value == 10.0
