"""The charts' x-axis in time as well as in steps (W&B's and MLflow's relative and wall time): two
runs started an hour apart line up at their start on relative time, a run that logs more slowly
reaches a step later, and a run whose points were all sent at once says so."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.browser.session import log_in
from tests.browser.test_run_charts import legend_values
from tests.factories import make_project, make_run, make_user
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import MetricChunk, RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def log_steps(run, seconds_apart: int, start: datetime) -> None:
    """``loss`` = step at steps 0..4, each step a batch of its own, ``seconds_apart`` after the last."""
    for step in range(5):
        before = set(MetricChunk.objects.filter(run_id=run.id).values_list("id", flat=True))
        metric_points_upsert(run_id=run.id, points=[("loss", step, float(step))])
        (MetricChunk.objects.filter(run_id=run.id).exclude(id__in=before)
         .update(recorded_at=start + timedelta(seconds=seconds_apart * step)))


@pytest.fixture
def project(page, live_server):
    user = make_user()
    project = make_project(owner=user)
    log_in(page, live_server, user)
    return project


def legend_at(page, fraction: float) -> dict[str, str]:
    """The legend (label: value) with the mouse at ``fraction`` of the loss chart's width."""
    return legend_values(page, "loss", [fraction])[0]


def test_runs_line_up_on_relative_time_and_the_choice_is_kept_in_the_address(page, live_server, project):
    fast = make_run(project, name="fast", status=RunStatus.SUCCEEDED)
    slow = make_run(project, name="slow", status=RunStatus.SUCCEEDED)
    log_steps(fast, 30, START)  # steps 0..4 over 2 minutes
    log_steps(slow, 60, START + timedelta(hours=1))  # an hour later, over 4 minutes
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{fast.id}/?compare={slow.id}&ema=0")
    page.wait_for_selector(".chart[data-key=loss] .chart-summary:not(:empty)")
    assert legend_at(page, 0.999) == {"step": "4", "fast": "4", "slow": "4"}  # both reach step 4

    page.select_option("#x-axis", "relative")
    page.wait_for_selector(".chart[data-key=loss] .u-legend .u-series:first-child .u-label:text-is('time since start')")
    assert "x=relative" in page.url
    # at 4 minutes the slow run is at its step 4; the fast one ended at 2 minutes
    assert legend_at(page, 0.999) == {"time since start": "4m", "fast": "--", "slow": "4"}
    # at 1m 30s the fast run is at step 3, the slow one between steps 1 (at 1m) and 2 (at 2m)
    assert legend_at(page, 90 / 240) == {"time since start": "1m 30s", "fast": "3", "slow": "1 (at 1m)"}
    # at their start the two runs, an hour apart on the clock, stand side by side
    assert legend_at(page, 0.001) == {"time since start": "0s", "fast": "0", "slow": "0"}

    page.reload()  # the address keeps the axis
    page.wait_for_selector(".chart[data-key=loss] .u-legend .u-series:first-child .u-label:text-is('time since start')")
    assert page.input_value("#x-axis") == "relative"

    page.select_option("#x-axis", "wall")
    page.wait_for_selector(".chart[data-key=loss] .u-legend .u-series:first-child .u-label:text-is('time')")
    shown = legend_at(page, 0.999)
    assert "2026" in shown["time"] and shown["slow"] == "4"  # an hour and 4 minutes after the fast run began
    assert legend_at(page, 0.001)["fast"] == "0"

    page.select_option("#x-axis", "step")
    page.wait_for_selector(".chart[data-key=loss] .u-legend .u-series:first-child .u-label:text-is('step')")
    assert "x=" not in page.url
    assert page.is_hidden(".chart[data-key=loss] .chart-note")
    assert errors == []


def test_an_imported_run_compared_with_smoothing_on_stands_at_one_instant_and_says_so(page, live_server, project):
    """3,000 steps sent in one batch come downsampled (each bucket's first, last, min and max) and all
    stand at one x on a time axis: the smoothed line still shows the value drawn there."""
    run = make_run(project, name="fast", status=RunStatus.SUCCEEDED)
    log_steps(run, 30, START)
    imported = make_run(project, name="<i>imported</i>", status=RunStatus.SUCCEEDED)
    # a saw-tooth, so that each bucket's min and max are points of their own, kept beside its first and last
    metric_points_upsert(run_id=imported.id, points=[("loss", s, float(s % 7)) for s in range(3000)])
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{run.id}/?compare={imported.id}&x=relative")
    page.wait_for_selector(".chart[data-key=loss] .chart-note:visible")
    assert page.text_content(".chart[data-key=loss] .chart-note") == (
        "\u201c<i>imported</i>\u201d has every point recorded at one instant (sent in one batch, as an import "
        "does): on a time axis it stands at that instant.")
    assert page.locator(".chart-note i").count() == 0  # the name is text, never markup
    shown = legend_at(page, 0.001)
    assert shown["time since start"] == "0s" and shown["fast (EMA)"] == "0"
    assert shown["<i>imported</i> (EMA)"] == "3"  # the last point sent (2999 % 7), not "--"
    assert errors == []


def test_relative_time_counts_from_when_a_worker_started_the_run(page, live_server, project):
    run = make_run(project, name="worked", status=RunStatus.SUCCEEDED, started_at=START - timedelta(minutes=1))
    log_steps(run, 30, START)  # the first metric a minute after the start (loading the model, say)
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{run.id}/?x=relative&ema=0")
    page.wait_for_selector(".chart[data-key=loss] .chart-summary:not(:empty)")
    assert legend_at(page, 0.001) == {"time since start": "1m", "worked": "0"}
    assert legend_at(page, 0.999) == {"time since start": "3m", "worked": "4"}
    title = page.get_attribute(".chart[data-key=loss] .chart-stats tbody tr:first-child td", "title")
    assert title == "at step 4, 3m"
