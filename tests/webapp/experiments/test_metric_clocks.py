"""When a run's metrics were recorded, for the charts' time axis: ``metric_history.run_clocks`` and
the chart data's ``clocks`` (asked for with ?x=relative or ?x=wall)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import make_project, make_run, make_user
from webapp.experiments.metric_history import clock_series, clock_targets, run_clocks
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import MetricChunk

pytestmark = pytest.mark.django_db

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def log_at(run, key: str, steps, when: datetime) -> None:
    """Points of ``key`` at ``steps`` (value = step), recorded at ``when``."""
    before = set(MetricChunk.objects.filter(run_id=run.id).values_list("id", flat=True))
    metric_points_upsert(run_id=run.id, points=[(key, s, float(s)) for s in steps])
    MetricChunk.objects.filter(run_id=run.id).exclude(id__in=before).update(recorded_at=when)


def test_clock_targets_spread_over_the_range_ends_included():
    assert clock_targets(3, 7, 10) == [3, 4, 5, 6, 7]
    assert clock_targets(0, 999, 5) == [0, 250, 500, 749, 999]
    assert clock_targets(5, 5, 3) == [5]
    assert clock_targets(0, 10, 1) == [0, 10]  # two at least: both ends
    top = 2**63 - 1  # integer arithmetic: exact at the largest step
    assert clock_targets(top - 2**60, top, 3) == [top - 2**60, top - 2**59, top]


def test_each_batch_gives_its_last_step_and_when_it_arrived():
    """A batch is sent after its last step was computed: that step is the one its time belongs to."""
    run = make_run(make_project(owner=make_user()))
    for i, steps in enumerate([range(1, 4), range(4, 7), range(7, 10)]):
        log_at(run, "loss", steps, START + timedelta(minutes=i))
    assert run_clocks(run_ids=[run.id]) == {run.id: [
        (3, START.timestamp()), (6, START.timestamp() + 60), (9, START.timestamp() + 120)]}


def test_a_run_s_clock_is_its_series_of_most_points_and_at_most_the_points_asked():
    run = make_run(make_project(owner=make_user()))
    for step in range(0, 100):  # a trainer's loss every step, a minute apart
        log_at(run, "loss", [step], START + timedelta(minutes=step))
    # as wide as the loss (the first and the last step) and first by name, but two points sent at once
    log_at(run, "eval/accuracy", [0, 99], START)
    log_at(run, "lr", [50], START)
    assert clock_series(run_ids=[run.id]) == {run.id: ("loss", 0, 99)}
    clock = run_clocks(run_ids=[run.id], points=10)[run.id]
    assert [step for step, _ in clock] == [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]
    assert all(t == START.timestamp() + 60 * step for step, t in clock)


def test_of_series_with_as_many_points_the_widest_then_the_first_key_is_the_clock():
    run = make_run(make_project(owner=make_user()))
    log_at(run, "b", [0, 1, 2], START)
    log_at(run, "c", [0, 5, 9], START)
    log_at(run, "a", [1, 2, 3], START)
    log_at(run, "d", [0, 4, 9], START)
    assert clock_series(run_ids=[run.id]) == {run.id: ("c", 0, 9)}


def test_after_a_gap_the_next_batch_is_read_and_steps_strictly_increase():
    run = make_run(make_project(owner=make_user()))
    log_at(run, "loss", [0, 1], START)
    log_at(run, "loss", [90, 91], START + timedelta(hours=1))
    log_at(run, "loss", [99], START + timedelta(hours=2))
    clock = run_clocks(run_ids=[run.id], points=4)[run.id]  # targets 0, 33, 66 and 99
    assert clock == [(1, START.timestamp()), (91, START.timestamp() + 3600), (99, START.timestamp() + 7200)]
    steps = [step for step, _ in clock]
    assert steps == sorted(set(steps))


def test_runs_without_metrics_have_no_clock_and_each_run_takes_one_statement():
    project = make_project(owner=make_user())
    runs = [make_run(project) for _ in range(3)]
    for run in runs[:2]:
        log_at(run, "loss", range(5), START)
    with CaptureQueriesContext(connection) as queries:
        clocks = run_clocks(run_ids=[r.id for r in runs])
    assert set(clocks) == {runs[0].id, runs[1].id}
    assert len(queries) == 1 + 2  # the series' bounds, then one statement a run with metrics


def test_chart_data_has_clocks_only_for_a_time_axis_and_only_of_runs_it_shows(client, researcher):
    run, other = make_run(researcher, name="mine"), make_run(researcher, name="baseline")
    foreign = make_run(make_project(owner=make_user()))
    for i, r in enumerate((run, other, foreign)):
        log_at(r, "reward", range(1, 6), START + timedelta(hours=i))
    url = reverse("experiments:chart_data", args=[researcher.id, run.id])
    asked = {"compare": [other.id, foreign.id]}
    assert "clocks" not in client.get(url, asked).json()
    assert "clocks" not in client.get(url, {**asked, "x": "step"}).json()
    run.started_at = START - timedelta(minutes=2)  # the worker began before the first metric
    run.save(update_fields=["started_at"])
    for axis in ("relative", "wall"):
        data = client.get(url, {**asked, "x": axis}).json()
        assert data["clocks"] == {str(run.id): [[5, START.timestamp()]],
                                  str(other.id): [[5, START.timestamp() + 3600]]}
        assert data["starts"] == {str(run.id): START.timestamp() - 120, str(other.id): None}
