"""A finished run's charts compared with a run still going keep following that run."""

import pytest

from tests.browser.session import log_in
from tests.factories import make_project, make_run, make_user
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_compared_live_run_keeps_drawing_on_a_finished_runs_charts(page, live_server):
    user = make_user()
    project = make_project(owner=user)
    log_in(page, live_server, user)
    baseline = make_run(project, name="baseline", status=RunStatus.SUCCEEDED)
    live = make_run(project, name="live", status=RunStatus.RUNNING, current_step=1)
    metric_points_upsert(run_id=baseline.id, points=[("reward", s, s / 10) for s in range(1, 4)])
    metric_points_upsert(run_id=live.id, points=[("reward", 1, 0.5)])
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{baseline.id}/")
    page.wait_for_selector(".chart[data-key=reward] .chart-summary:not(:empty)")
    page.click("details.compare > summary")
    page.check(f"input[name=compare][value='{live.id}']")
    page.wait_for_function("() => document.querySelector('.chart[data-key=reward] .chart-summary')"
                           ".textContent.includes('live, 1 step')")
    metric_points_upsert(run_id=live.id, points=[("reward", 2, 0.75)])  # the live run's next step
    page.wait_for_function("() => document.querySelector('.chart[data-key=reward] .chart-summary')"
                           ".textContent.includes('live, 2 steps from 1 to 2, last 0.75')")
    assert page.text_content("#chart-state") == "final · following 1 compared run"
    live.status = RunStatus.SUCCEEDED
    live.save(update_fields=["status"])
    page.wait_for_function("() => document.getElementById('chart-state').textContent === 'final'")


def test_runs_ticked_on_the_polling_list_open_overlaid_and_the_address_follows_the_ticks(page, live_server):
    """The ticks survive the list's poll (hx-preserve), Compare opens the first run's page with the
    others ticked and drawn, and a tick changed there is written to the address (?compare=)."""
    user = make_user()
    project = make_project(owner=user)
    log_in(page, live_server, user)
    first = make_run(project, name="first", status=RunStatus.SUCCEEDED)
    second = make_run(project, name="second", status=RunStatus.SUCCEEDED)
    make_run(project, name="going", status=RunStatus.RUNNING)  # the list polls while it shows this one
    metric_points_upsert(run_id=first.id, points=[("reward", s, s / 10) for s in range(1, 4)])
    metric_points_upsert(run_id=second.id, points=[("reward", s, s / 5) for s in range(1, 3)])
    page.goto(f"{live_server.url}/projects/{project.id}/runs/")
    page.check(f"#compare-{first.id}")
    page.check(f"#compare-{second.id}")
    with page.expect_response(lambda r: r.url.endswith(f"/projects/{project.id}/runs/") and
                              r.request.headers.get("hx-request") == "true"):
        pass  # one poll of the table has swapped it
    page.wait_for_timeout(200)
    assert page.is_checked(f"#compare-{first.id}") and page.is_checked(f"#compare-{second.id}")
    page.click("#compare-form button")
    page.wait_for_url(f"**/runs/{second.id}/?compare={first.id}#charts")
    assert page.is_checked(f"input[name=compare][value='{first.id}']")
    page.wait_for_function("() => (document.querySelector('.chart[data-key=reward] .chart-summary') || {})"
                           ".textContent?.includes('first')")
    page.uncheck(f"input[name=compare][value='{first.id}']")
    page.wait_for_function("() => !location.search.includes('compare=')")
    page.check(f"input[name=compare][value='{first.id}']")
    page.wait_for_function(f"() => location.search === '?compare={first.id}'")


def test_a_compared_run_deleted_while_the_page_is_open_is_said_by_its_name(page, live_server):
    user = make_user()
    project = make_project(owner=user)
    log_in(page, live_server, user)
    baseline = make_run(project, name="baseline", status=RunStatus.RUNNING, current_step=1)
    other = make_run(project, name='<b>sweep "2"</b> & co', status=RunStatus.SUCCEEDED)
    metric_points_upsert(run_id=baseline.id, points=[("reward", 1, 0.1)])
    metric_points_upsert(run_id=other.id, points=[("reward", 1, 0.5)])
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{baseline.id}/?compare={other.id}")
    page.wait_for_function("() => (document.querySelector('.chart[data-key=reward] .chart-summary') || {})"
                           ".textContent?.includes('sweep')")
    assert page.is_hidden("#compare-deleted")
    other_id = other.id
    other.delete()  # elsewhere, while this page polls
    page.wait_for_selector("#compare-deleted:not([hidden])")
    said = page.text_content("#compare-deleted")
    assert said == f'Run {other_id} you compared ("<b>sweep "2"</b> & co") was deleted; its curves are no longer shown.'
    assert page.locator("#compare-deleted b").count() == 0  # text, not markup
    page.wait_for_function("() => !document.querySelector('.chart[data-key=reward] .chart-summary')"
                           ".textContent.includes('sweep')")
    assert not page.is_checked(f"input[name=compare][value='{other_id}']")
    page.wait_for_function("() => !location.search.includes('compare=')")
