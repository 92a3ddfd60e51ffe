"""axe-core over every page a researcher and an annotator reach, with real content: no serious or
critical violation (unlabelled controls, unnamed buttons, text below 4.5:1 contrast, scroll boxes
the keyboard cannot reach, links told apart by colour alone …).

axe-core is the copy bundled in the ``axe-playwright-python`` wheel (pinned in requirements.txt),
so CI needs no npm. It is injected as an init script, which the pages' Content-Security-Policy
does not govern.
"""

import re

import pytest
from axe_playwright_python.base import AXE_SCRIPT

from tests.browser.session import crawl_links, log_in
from tests.browser.test_hostile_text import hostile_project
from tests.factories import make_project, make_rubric, make_run, make_task, make_user
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import Run, RunKind, RunStatus, Trajectory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE_RUN = """() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
  .filter(v => v.impact === 'serious' || v.impact === 'critical')
  .map(v => `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')))"""


def axe_violations(page) -> list[str]:
    """Serious and critical axe-core violations of the page as it stands now."""
    return page.evaluate(AXE_RUN)


@pytest.fixture
def axe_page(page):
    page.context.add_init_script(script=AXE_SCRIPT)
    return page


def crawl_with_axe(page, live_server, start: list[str], allowed: re.Pattern, limit: int = 120) -> dict:
    """{path: violations} for every page reachable by links from ``start`` whose path matches ``allowed``."""
    report = {}

    def visit(path, response) -> bool:
        if response.status != 200:
            return False
        if found := axe_violations(page):
            report[path] = found
        return True

    return {"pages": crawl_links(page, live_server, start, allowed, visit, limit), "report": report}


def test_every_page_a_member_reaches_has_no_serious_axe_violation(axe_page, live_server):
    page = axe_page
    owner, annotator = make_user(), make_user()
    pid, runs = hostile_project(owner, annotator)
    page.goto(f"{live_server.url}/accounts/login/")
    assert axe_violations(page) == []
    allowed = re.compile(rf"^/projects/{pid}/|^/accounts/(tokens|password)/$|^/projects/(new/)?$")
    log_in(page, live_server, owner)
    extra = [f"/projects/{pid}/runs/{r}/trajectories/" for r in runs]
    extra += [f"/projects/{pid}/feedback/tasks/head-to-head/?a={runs[0]}&b={runs[1]}"]
    result = crawl_with_axe(page, live_server, [f"/projects/{pid}/", *extra], allowed)
    assert len(result["pages"]) > 25, sorted(result["pages"])
    sft = Run.objects.get(project_id=pid, kind=RunKind.SFT)
    assert {f"/projects/{pid}/runs/new-sft/", f"/projects/{pid}/runs/{sft.id}/"} <= set(result["pages"])
    assert result["report"] == {}
    page.context.clear_cookies()
    log_in(page, live_server, annotator)
    result = crawl_with_axe(page, live_server, [f"/projects/{pid}/", f"/projects/{pid}/feedback/annotate/"], allowed)
    assert f"/projects/{pid}/feedback/annotate/" in result["pages"]
    assert result["report"] == {}


def test_the_workspace_in_each_state_has_no_serious_axe_violation(axe_page, live_server):
    """Ranking with a rubric and a tie, an error, the undo bar, a pair, the empty queue: the
    states a crawl of plain links never sees."""
    page = axe_page
    annotator = make_user()
    project = make_project(annotator=annotator)
    rubric = make_rubric(project)
    long_text = "\n".join(f"line {i} of a long completion" for i in range(200))
    ranked = make_task(project, prompt="Rank", completions=[long_text, "beta", "gamma"], rubric=rubric)
    make_task(project, prompt="Pair", completions=["4", long_text])
    log_in(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.id}/feedback/annotate/")
    page.keyboard.press("j")
    page.keyboard.press("=")  # the tie mark shows
    page.evaluate("document.getElementById('ranked').checked = false")
    page.keyboard.press("Enter")  # refused: the order is not confirmed, so the form asks (no request)
    assert axe_violations(page) == []
    page.fill("input[name=rank_0]", "9")  # the server refuses it: an error swapped in
    page.keyboard.press("Tab")  # a typed rank ticks "This order is my ranking"
    page.evaluate("document.querySelector('#label-form').noValidate = true")
    page.click("#submit-button")
    page.wait_for_selector("#workspace-error")
    # as below: the buttons stay dimmed as "sending" until htmx drops .htmx-request/.htmx-settling
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-settling')")
    assert axe_violations(page) == []
    page.fill("input[name=rank_0]", "1")
    page.keyboard.press("Tab")
    page.click("#submit-button")
    page.wait_for_function(f"() => document.getElementById('workspace').dataset.task !== '{ranked.id}'")
    # the request settled: until htmx drops .htmx-request the buttons are dimmed as "sending",
    # a state of a few milliseconds that a loaded machine let axe catch (contrast of #submit-button)
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-settling')")
    assert page.is_visible("#undo-button") and page.is_visible("input[name=choice]")
    assert axe_violations(page) == []
    page.keyboard.press("s")
    page.wait_for_selector("#queue-empty")
    assert axe_violations(page) == []


def test_the_run_pages_download_filters_opened_have_no_serious_axe_violation(axe_page, live_server):
    """The metric keys to download sit in a closed <details>, which a crawl's axe does not see."""
    page = axe_page
    owner = make_user()
    project = make_project(owner=owner)
    run = make_run(project, kind=RunKind.EXTERNAL, status=RunStatus.SUCCEEDED)
    metric_points_upsert(run_id=run.id, points=[("reward", 1, 0.5), ("<b>kl</b>", 1, 0.25)])
    Trajectory.objects.create(run=run, step=1, group_index=0, sample_index=0, prompt_text="2+2?",
                              completion="4", rewards={}, reward=1.0, length=1)
    log_in(page, live_server, owner)
    page.goto(f"{live_server.url}/projects/{project.id}/runs/{run.id}/")
    page.click("details.export-filters > summary")
    page.check("input[name=key][value='<b>kl</b>']")
    page.fill("input[name=step_min]", "1")
    assert page.is_visible("form.export-filters button:has-text('Download Parquet')")
    assert axe_violations(page) == []
