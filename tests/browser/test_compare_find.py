"""The run page's Compare picker: a baseline older than the runs it offers, or of another kind,
is found by typing a part of its name or a tag, ticked and overlaid, the runs already ticked kept."""

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.session import log_in
from tests.factories import make_project, make_run, make_user
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import RunKind, RunStatus, RunTag

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_old_baseline_is_found_as_you_type_ticked_and_overlaid(page, live_server):
    user = make_user()
    project = make_project(owner=user)
    log_in(page, live_server, user)
    baseline = make_run(project, name="grpo <b>baseline</b>", kind=RunKind.EXTERNAL, status=RunStatus.SUCCEEDED)
    RunTag.objects.create(run=baseline, name="paper")
    newer = [make_run(project, name=f"policy {i}", status=RunStatus.SUCCEEDED) for i in range(22)]
    run, recent = newer[-1], newer[-2]
    metric_points_upsert(run_id=run.id, points=[("reward", s, s / 10) for s in range(1, 4)])
    metric_points_upsert(run_id=baseline.id, points=[("reward", s, s / 20) for s in range(1, 4)])
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{run.id}/?compare={recent.id}")
    page.wait_for_selector(".chart[data-key=reward] .chart-summary:not(:empty)")
    assert page.locator(f"input[name=compare][value='{baseline.id}']").count() == 0  # not among the 20 newest
    page.fill("#compare-find", "pap")  # a part of its tag
    box = page.locator(f"input[name=compare][value='{baseline.id}']")
    box.wait_for()
    assert page.is_checked(f"input[name=compare][value='{recent.id}']")  # the tick survives the search
    assert page.locator("#compare-candidates b").count() == 0  # the name is text, never markup
    box.check()
    page.wait_for_function("() => document.querySelector('.chart[data-key=reward] .chart-summary')"
                           ".textContent.includes('grpo <b>baseline</b>, 3 steps')")
    query = parse_qs(urlsplit(page.url).query)
    assert sorted(query["compare"]) == sorted([str(recent.id), str(baseline.id)])  # in the address
    page.fill("#compare-find", "nothing like it")
    page.wait_for_selector("#compare-candidates .compare-found:has-text('No other run')")
    assert page.is_checked(f"input[name=compare][value='{baseline.id}']")  # still ticked, still drawn
    page.reload()
    page.wait_for_selector(".chart[data-key=reward] .chart-summary:not(:empty)")
    assert page.is_checked(f"input[name=compare][value='{baseline.id}']")


def test_the_search_works_without_javascript_as_a_plain_form(browser, live_server):
    user = make_user()
    project = make_project(owner=user)
    old = make_run(project, name="old baseline", kind=RunKind.DPO)
    run = make_run(project, name="mine")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, live_server, user)
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{run.id}/")
    page.click("details.compare > summary")
    page.fill("#compare-find", "baseline")
    page.click("form[role=search] button")
    page.wait_for_url("**/?find=baseline#charts")
    assert page.locator(f"input[name=compare][value='{old.id}']").count() == 1
    context.close()
