"""Migrations 0004-0005 move stored points into chunks and rebuild the rollups, and back."""

from datetime import datetime, timezone

import pytest

from tests.migrations import leaf_nodes, migrate
from webapp.experiments.metric_rollups import metric_rollups_rebuild

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("experiments", "0003_metric_fk_per_batch")]
ROLLUP_FIELDS = ("key", "level", "bucket", "n", "first_step", "first_value", "last_step", "last_value",
                 "min_step", "min_value", "max_step", "max_value")


def latest():
    return leaf_nodes("experiments")


def test_points_move_into_chunks_keep_their_timestamps_and_come_back():
    old = migrate(BEFORE)
    Project = old.get_model("projects", "Project")
    Run = old.get_model("experiments", "Run")
    OldPoint = old.get_model("experiments", "MetricPoint")
    run = Run.objects.create(project=Project.objects.create(name="p", slug="p"), name="r", kind="external")
    t1, t2 = datetime(2026, 1, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, 2, tzinfo=timezone.utc)
    rows = [OldPoint(run_id=run.id, key="reward", step=s, value=s / 10, recorded_at=t1 if s % 7 else t2)
            for s in range(0, 9000, 3)]
    rows += [OldPoint(run_id=run.id, key="kl", step=s, value=-s, recorded_at=t1) for s in range(5)]
    OldPoint.objects.bulk_create(rows)
    expected = {(p.key, p.step): (p.value, p.recorded_at) for p in rows}

    new = migrate(latest())
    Point, Chunk, Rollup = (new.get_model("experiments", m) for m in ("MetricPoint", "MetricChunk", "MetricRollup"))
    moved = {(k, s): (v, t) for k, s, v, t in Point.objects.values_list("key", "step", "value", "recorded_at")}
    assert moved == expected
    assert Chunk.objects.count() < len(rows) / 2  # islands of equal timestamps, not a row per point
    migrated = sorted(Rollup.objects.values_list(*ROLLUP_FIELDS))
    metric_rollups_rebuild(run_id=run.id)
    assert migrated == sorted(Rollup.objects.values_list(*ROLLUP_FIELDS))

    back = migrate(BEFORE)
    restored = back.get_model("experiments", "MetricPoint").objects.values_list("key", "step", "value", "recorded_at")
    assert {(k, s): (v, t) for k, s, v, t in restored} == expected
    migrate(latest())
