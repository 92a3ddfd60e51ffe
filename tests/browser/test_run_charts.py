"""A run's metric charts as a researcher reads them: smoothing of a long series, the log scale, and
each run's last, lowest and highest value under the chart."""

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
    page.locator(f".chart[data-key='{key}'] .u-over").scroll_into_view_if_needed()  # below the controls
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
    # at a spike itself, which the smoothed line passes over, its nearest smoothed point: "1 (step 2)"
    assert {value.split(" (step ")[0] for value in smoothed} == {"1"}


def test_the_log_scale_leaves_out_values_at_or_below_zero_and_says_how_many(page, live_server, project):
    run = make_run(project, name="mine", status=RunStatus.SUCCEEDED)
    metric_points_upsert(run_id=run.id, points=[("loss", s, v) for s, v in [(1, 1.0), (2, 0.1), (3, 0.0), (4, 0.01)]])
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{run.id}/")
    page.wait_for_selector(".chart[data-key=loss] .chart-summary:not(:empty)")
    assert page.is_hidden(".chart[data-key=loss] .chart-note")
    assert legend_values(page, "loss", [2 / 3])[0]["mine (raw)"] == "0"
    page.check("#log-scale")
    page.wait_for_selector(".chart[data-key=loss] .chart-note:visible")
    assert page.text_content(".chart[data-key=loss] .chart-note") == (
        "1 value at or below 0 is not drawn on the log scale.")
    values = legend_values(page, "loss", [0.0, 2 / 3, 0.99])
    assert [v["mine (raw)"] for v in values] == ["1", "0.1 (step 2)", "0.01"]  # 0 is not drawn: its neighbour
    page.uncheck("#log-scale")
    page.wait_for_selector(".chart[data-key=loss] .chart-note", state="hidden")


def test_under_each_chart_every_runs_last_lowest_and_highest_value(page, live_server, project):
    run = make_run(project, name="mine", status=RunStatus.SUCCEEDED)
    other = make_run(project, name="<b>baseline</b>", status=RunStatus.SUCCEEDED)
    metric_points_upsert(run_id=run.id, points=[("reward", s, v) for s, v in [(1, 0.25), (2, 0.75), (3, 0.5)]])
    metric_points_upsert(run_id=other.id, points=[("reward", s, -s / 8) for s in range(1, 3000)])  # downsampled
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{run.id}/?compare={other.id}")
    page.wait_for_function(
        "() => document.querySelectorAll('.chart[data-key=reward] .chart-stats tbody tr').length === 2")
    rows = page.eval_on_selector_all(".chart[data-key=reward] .chart-stats tr",
                                     "rows => rows.map(r => Array.from(r.cells, c => c.textContent))")
    assert rows == [["Run", "Last", "Min", "Max"], ["mine", "0.5", "0.25", "0.75"],
                    ["<b>baseline</b>", "-374.9", "-374.9", "-0.125"]]
    assert page.get_attribute(".chart[data-key=reward] .chart-stats tbody tr:first-child td", "title") == "at step 3"
    assert page.locator(".chart-stats b").count() == 0  # the name is text, never markup
    # the words beside the canvas count a downsampled series' points as points, not as its steps
    summary = page.text_content(".chart[data-key=reward] .chart-summary")
    assert " of its points from 1 to 2999, last -374.9, lowest -374.9, highest -0.125." in summary


def test_the_legend_reads_a_compared_run_that_logged_other_steps_at_its_nearest_step(page, live_server, project):
    """One run logs every step, the other every fifth: at step 3 the legend shows the other's value
    of step 5 (the nearest), not "--"; past the other's last step, "--"."""
    run = make_run(project, name="every", status=RunStatus.SUCCEEDED)
    other = make_run(project, name="fifth", status=RunStatus.SUCCEEDED)
    metric_points_upsert(run_id=run.id, points=[("kl", s, s / 100) for s in range(13)])
    metric_points_upsert(run_id=other.id, points=[("kl", s, s / 10) for s in (0, 5, 10)])
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{run.id}/?compare={other.id}")
    page.wait_for_function("() => document.querySelectorAll('.chart[data-key=kl] .chart-stats tbody tr').length === 2")
    page.locator("#ema").evaluate("e => { e.value = 0; e.dispatchEvent(new Event('input')); }")  # plain lines
    at_3, at_5, at_12 = legend_values(page, "kl", [3 / 12, 5 / 12, 0.995])
    assert (at_3["step"], at_3["every"], at_3["fifth"]) == ("3", "0.03", "0.5 (step 5)")
    assert (at_5["every"], at_5["fifth"]) == ("0.05", "0.5")
    assert (at_12["step"], at_12["fifth"]) == ("12", "--")


def test_the_smoothing_and_the_log_scale_are_kept_in_the_address(page, live_server, project):
    """A reload, or the link sent to a colleague, shows the charts as they were set."""
    run = make_run(project, name="mine", status=RunStatus.SUCCEEDED)
    metric_points_upsert(run_id=run.id, points=[("loss", s, 1 / (s + 1)) for s in range(5)])
    url = f"{live_server.url}/projects/{project.id}/runs/{run.id}/"
    page.goto(url)
    page.wait_for_selector(".chart[data-key=loss] .chart-summary:not(:empty)")
    page.locator("#ema").evaluate("e => { e.value = 0.9; e.dispatchEvent(new Event('input')); }")
    page.check("#log-scale")
    assert page.url == url + "?ema=0.9&log=1"
    page.reload()
    page.wait_for_selector(".chart[data-key=loss] .chart-summary:not(:empty)")
    assert page.input_value("#ema") == "0.9" and page.text_content("#ema-value") == "0.90"
    assert page.is_checked("#log-scale")
    page.uncheck("#log-scale")
    page.locator("#ema").evaluate("e => { e.value = 0.6; e.dispatchEvent(new Event('input')); }")  # the default
    assert page.url == url
    page.goto(url + "?ema=0&log=0")  # no smoothing: one plain line a run
    page.wait_for_selector(".chart[data-key=loss] .chart-summary:not(:empty)")
    assert page.text_content("#ema-value") == "0.00" and not page.is_checked("#log-scale")
    labels = page.eval_on_selector_all(".chart[data-key=loss] .u-legend .u-series .u-label",
                                       "els => els.map(e => e.textContent)")
    assert labels == ["step", "mine"]
