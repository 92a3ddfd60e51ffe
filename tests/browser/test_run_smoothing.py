"""The charts' smoothing is a window of steps, not of points (W&B's time-weighted EMA): a run that
logged every step and one that logged every tenth step, compared on one chart, are smoothed alike,
where a per-point EMA smoothed the sparse one over ten times as many steps."""

import pytest

from tests.browser.session import log_in
from tests.factories import make_project, make_run, make_user
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def ramp(steps):
    return [("reward", s, s / 100) for s in steps]


def smoothed_where_both_logged(page, key: str, first: int, last: int, span: int) -> dict[int, tuple[float, float]]:
    """{step: (dense EMA, sparse EMA)} at the steps from ``first`` to ``last`` where both runs have a
    point, read from the legend as the mouse moves across the plot (whose steps run from 0 to ``span``)."""
    over = page.locator(f".chart[data-key='{key}'] .u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    legend = page.locator(f".chart[data-key='{key}'] .u-legend .u-series")
    labels = [legend.nth(i).locator(".u-label").text_content() for i in range(legend.count())]
    found = {}
    x = box["x"] + box["width"] * first / span
    while x <= box["x"] + box["width"] * last / span:
        page.mouse.move(x, box["y"] + box["height"] / 2)
        shown = dict(zip(labels, (legend.nth(i).locator(".u-value").text_content() for i in range(len(labels))),
                         strict=True))
        if "(step" not in shown["sparse (EMA)"] and "--" not in shown.values():
            found[int(shown["step"])] = (float(shown["dense (EMA)"]), float(shown["sparse (EMA)"]))
        x += 1
    return found


def test_a_run_logged_every_step_and_one_every_tenth_are_smoothed_over_the_same_steps(page, live_server):
    """A ramp smoothed over a window of steps lags it by about that many steps, whatever the run's
    points: both runs' smoothed lines agree. A per-point EMA lagged the sparse run ten times as far."""
    user = make_user()
    project = make_project(owner=user)
    log_in(page, live_server, user)
    dense = make_run(project, name="dense", status=RunStatus.SUCCEEDED)
    sparse = make_run(project, name="sparse", status=RunStatus.SUCCEEDED)
    metric_points_upsert(run_id=dense.id, points=ramp(range(400)))
    metric_points_upsert(run_id=sparse.id, points=ramp(range(0, 400, 10)))
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{dense.id}/?compare={sparse.id}&ema=0.99")
    page.wait_for_function("() => document.querySelectorAll('.chart[data-key=reward] .chart-stats tbody tr').length === 2")
    found = smoothed_where_both_logged(page, "reward", 5, 395, 399)
    assert {100, 200, 300, 390} <= set(found)
    for step, (dense_ema, sparse_ema) in found.items():
        assert abs(dense_ema - sparse_ema) < 0.1, (step, dense_ema, sparse_ema)
        assert step < 100 or dense_ema < step / 100 - 0.2  # smoothed: behind the ramp
    assert found[300][0] > 2.3  # by about 40 steps, the window 0.99 makes of a thousandth of the chart's steps


def test_the_smoothing_still_leaves_out_a_downsampled_buckets_extremes(page, live_server):
    """Compared with a short run, a long run's spikes (each bucket's max) do not lift its smoothed line."""
    user = make_user()
    project = make_project(owner=user)
    log_in(page, live_server, user)
    short = make_run(project, name="short", status=RunStatus.SUCCEEDED)
    long = make_run(project, name="long", status=RunStatus.SUCCEEDED)
    metric_points_upsert(run_id=short.id, points=[("grad_norm", s, 1.0) for s in range(0, 2000, 100)])
    # 2,000 steps come as 250 buckets of 8: the spikes are the buckets' maxima, none a first or last point
    metric_points_upsert(run_id=long.id, points=[("grad_norm", s, 50.0 if s % 8 == 3 else 1.0) for s in range(2000)])
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{short.id}/?compare={long.id}&ema=0.9")
    page.wait_for_function(
        "() => document.querySelectorAll('.chart[data-key=grad_norm] .chart-stats tbody tr').length === 2")
    over = page.locator(".chart[data-key=grad_norm] .u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    legend = page.locator(".chart[data-key=grad_norm] .u-legend .u-series")
    labels = [legend.nth(i).locator(".u-label").text_content() for i in range(legend.count())]
    seen = set()
    for i in range(1, 20):
        page.mouse.move(box["x"] + box["width"] * i / 20, box["y"] + box["height"] / 2)
        seen.add(legend.nth(labels.index("long (EMA)")).locator(".u-value").text_content().split(" (step ")[0])
    assert seen == {"1"}
