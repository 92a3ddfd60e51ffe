"""A page of a run's raw metric points: the same points as before, found in a few statements."""

import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import make_project, make_run, make_user
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.selectors import metric_points_page

pytestmark = pytest.mark.django_db


def _pages(run, limit, **window):
    """Every point, page after page of ``limit``, as a client following ``next`` reads them."""
    points, after = [], None
    while True:
        page = metric_points_page(run_id=run.id, limit=limit, after=after, **window)
        points += [(p["key"], p["step"], p["value"]) for p in page]
        if len(page) < limit:
            return points
        after = (page[-1]["key"], page[-1]["step"])


@pytest.mark.parametrize(
    "window", [{}, {"step_min": 10, "step_max": 400}, {"step_min": 7, "step_max": 7}]
)
@pytest.mark.parametrize("limit", [1, 3, 7, 50])
def test_pages_hold_every_point_in_key_and_step_order_once(window, limit):
    """Keys of one point, of many chunks, and one whose only chunk straddles the whole window
    (steps 0 and 500, nothing between): none skipped, none twice."""
    run = make_run(make_project(owner=make_user()))
    stored = []
    for k in range(12):
        steps = range(0, 500, 1 + k * 7)
        for start in range(0, 500, 60 + k):  # chunks of different spans
            batch = [
                (f"k{k:02}", s, float(s * k))
                for s in steps
                if start <= s < start + 60 + k
            ]
            if batch:
                metric_points_upsert(run_id=run.id, points=batch)
                stored += batch
    metric_points_upsert(run_id=run.id, points=[("gap", 0, 1.0), ("gap", 500, 2.0)])
    metric_points_upsert(run_id=run.id, points=[("one", 7, 3.0)])
    stored += [("gap", 0, 1.0), ("gap", 500, 2.0), ("one", 7, 3.0)]
    lo, hi = window.get("step_min", 0), window.get("step_max", math.inf)
    assert _pages(run, limit, **window) == sorted(p for p in stored if lo <= p[1] <= hi)


@pytest.mark.parametrize("keys", [3, 64])
def test_a_page_of_one_step_of_many_metrics_costs_a_few_queries_not_one_a_metric(keys):
    """The points of one step of every metric: a query per metric before (65 for 64 metrics);
    now the keys are read 1, 2, 4 … at a time, two statements a round."""
    run = make_run(make_project(owner=make_user()))
    metric_points_upsert(
        run_id=run.id,
        points=[(f"m/{k:03}", s, float(k)) for k in range(keys) for s in range(10)],
    )
    with CaptureQueriesContext(connection) as queries:
        page = metric_points_page(run_id=run.id, limit=100, step_min=5, step_max=5)
    assert [(p["key"], p["step"], p["value"]) for p in page] == [
        (f"m/{k:03}", 5, float(k)) for k in range(keys)
    ]
    rounds = math.ceil(math.log2(keys + 1))
    assert len(queries) <= 1 + 2 * rounds
