"""A run's metric charts as a researcher reads them: smoothing of a long series."""

import pytest

from tests.browser.session import log_in
from tests.factories import make_project, make_run, make_user
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def project(page, live_server):
    user = make_user()
    project = make_project(owner=user)
    log_in(page, live_server, user)
    return project


def legend_values(page, key: str, fractions) -> list[str]:
    """The legend's value of each series at points across the chart's plot (as the mouse shows them)."""
    box = page.locator(f".chart[data-key='{key}'] .u-over").bounding_box()
    shown = []
    for fraction in fractions:
        page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
        shown.append({page.locator(f".chart[data-key='{key}'] .u-legend .u-series").nth(i)
                      .locator(".u-label").text_content(): page.locator(f".chart[data-key='{key}'] .u-legend .u-series")
                      .nth(i).locator(".u-value").text_content()
                      for i in range(page.locator(f".chart[data-key='{key}'] .u-legend .u-series").count())})
    return shown


def test_the_smoothed_line_of_a_long_spiky_series_stays_at_its_level(page, live_server, project):
    """2,000 steps are downsampled to each bucket's first, last, min and max: smoothing all four read
    a grad norm of 1 with a spike of 50 every 8 steps as about 17; the first and last alone read 1."""
    run = make_run(project, name="long", status=RunStatus.SUCCEEDED)
    metric_points_upsert(run_id=run.id, points=[("grad_norm", s, 50.0 if s % 8 == 3 else 1.0) for s in range(2000)])
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{run.id}/")
    page.wait_for_selector(".chart[data-key=grad_norm] .chart-summary:not(:empty)")
    smoothed = [values["long (EMA)"] for values in legend_values(page, "grad_norm", [i / 20 for i in range(1, 20)])]
    assert "1" in smoothed
    assert set(smoothed) <= {"1", "--"}  # "--": a spike itself, which the smoothed line passes over
