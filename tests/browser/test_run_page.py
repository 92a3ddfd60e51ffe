"""A run's page in a real browser: polling panels, cancel, downloads, no console errors."""

import json

import pytest
from django.utils import timezone

from tests.browser.session import log_in
from tests.factories import make_project, make_run, make_user
from webapp.experiments.models import RunKind, RunStatus, Trajectory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def researcher(page, live_server):
    user = make_user()
    project = make_project(owner=user)
    log_in(page, live_server, user)
    return project


def console_errors(page):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_an_opened_checkpoint_list_stays_open_through_the_status_polls(page, live_server, researcher):
    run = make_run(researcher, status=RunStatus.RUNNING, heartbeat_at=timezone.now(), current_step=3)
    run.checkpoints.create(step=2, path="/ckpt/run/step-2", size_bytes=1024)
    errors = console_errors(page)
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    page.click("#run-checkpoints > summary")
    assert page.eval_on_selector("#run-checkpoints", "d => d.open")
    with page.expect_response(lambda r: "/status/" in r.url):  # a poll replaced the panel
        pass
    page.wait_for_timeout(300)
    assert page.eval_on_selector("#run-checkpoints", "d => d.open")
    assert errors == []


def test_cancel_asks_first(page, live_server, researcher):
    run = make_run(researcher, status=RunStatus.QUEUED)
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    asked = []

    def answer(dialog, accept):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, accept=False))
    page.click("text=Cancel run")
    page.wait_for_timeout(500)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and "cannot be resumed" in asked[0]
    page.once("dialog", lambda d: answer(d, accept=True))
    page.click("text=Cancel run")
    page.wait_for_selector("#run-status[data-status=cancelled]")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_an_external_run_shows_the_trajectories_its_trainer_reported(page, live_server, researcher):
    run = make_run(researcher, kind=RunKind.EXTERNAL, status=RunStatus.RUNNING)
    errors = console_errors(page)
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    page.wait_for_selector("#trajectories")  # no steps yet: no console error from the poll
    Trajectory.objects.create(run=run, step=1, group_index=0, sample_index=0, prompt_text="2+2?",
                              completion="<b>4</b>", rewards={"acc": 1.0}, reward=1.0, length=3)
    page.wait_for_selector("#trajectories pre.model-text:has-text('<b>4</b>')", timeout=15_000)
    assert errors == []


def test_a_finished_runs_checkpoint_becomes_a_policy_and_the_next_run_starts_from_it(page, live_server, researcher):
    run = make_run(researcher, status=RunStatus.SUCCEEDED, name="sft", current_step=4)
    run.checkpoints.create(step=4, path="/ckpt/run/step-4", size_bytes=2048)
    errors = console_errors(page)
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    page.click("text=Register as a policy…")
    assert page.locator("input[name=source][value=checkpoint]").is_checked()
    assert page.locator("select[name=checkpoint] option:checked").inner_text() == "sft · step 4 (succeeded)"
    page.fill("input[name=name]", "sft, step 4")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/{researcher.id}/policies/")
    assert "Registered policy “sft, step 4”." in page.content()
    page.click("text=Train from it")
    assert page.locator("select[name=policy] option:checked").inner_text() == "sft, step 4"
    assert errors == []


def test_comparing_runs_shows_the_settings_they_differ_in_as_text(page, live_server, researcher):
    from webapp.experiments.metrics import metric_points_upsert

    run = make_run(researcher, name="mine", status=RunStatus.SUCCEEDED, config={"algorithm": {"beta": 0.0}})
    other = make_run(researcher, name="<b>baseline</b>", status=RunStatus.SUCCEEDED, config={"algorithm": {"beta": 0.04}})
    for r in (run, other):
        metric_points_upsert(run_id=r.id, points=[("reward", s, s / 10) for s in range(1, 4)])
    errors = console_errors(page)
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    page.wait_for_selector(".chart[data-key=reward]")
    assert page.is_hidden("#compare-differences")
    page.click("details.compare > summary")
    page.check(f"input[name=compare][value='{other.id}']")
    page.wait_for_selector("table.settings-differences")
    headers = page.locator("table.settings-differences thead th").all_text_contents()
    assert headers == ["Setting", "mine", "<b>baseline</b>"]  # a run's name is text, never markup
    assert page.locator("table.settings-differences tbody tr > *").all_text_contents() == ["algorithm.beta", "0.0", "0.04"]
    page.uncheck(f"input[name=compare][value='{other.id}']")
    page.wait_for_selector("#compare-differences", state="hidden")
    assert errors == []


def test_each_chart_says_in_words_what_it_draws(page, live_server, researcher):
    """The canvas is a picture: beside it, text a screen reader reads (each run's steps, last value, range)."""
    from webapp.experiments.metrics import metric_points_upsert

    run = make_run(researcher, name="mine", status=RunStatus.SUCCEEDED)
    other = make_run(researcher, name="<b>baseline</b>", status=RunStatus.SUCCEEDED)
    metric_points_upsert(run_id=run.id, points=[("reward", s, v) for s, v in [(1, 0.25), (2, 0.75), (3, 0.5)]])
    metric_points_upsert(run_id=other.id, points=[("reward", 1, 0.125)])
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    page.wait_for_selector(".chart[data-key=reward] .chart-summary:not(:empty)")
    assert page.text_content(".chart[data-key=reward] .chart-summary") == (
        "reward: mine, 3 steps from 1 to 3, last 0.5, lowest 0.25, highest 0.75.")
    page.click("details.compare > summary")
    page.check(f"input[name=compare][value='{other.id}']")
    page.wait_for_function("() => document.querySelector('.chart[data-key=reward] .chart-summary')"
                           ".textContent.includes('baseline')")
    assert page.text_content(".chart[data-key=reward] .chart-summary").endswith(
        "; <b>baseline</b>, 1 step from 1 to 1, last 0.125, lowest 0.125, highest 0.125.")


def focused_text(page) -> str:
    return page.evaluate("document.activeElement.textContent.trim()")


def test_keyboard_focus_stays_put_through_the_polls(page, live_server, researcher):
    """A live run's panels are replaced every few seconds: whatever the keyboard was on (a run's
    link, Cancel, the checkpoints toggle, the step picker) is still focused after each poll."""
    run = make_run(researcher, name="live one", status=RunStatus.RUNNING, heartbeat_at=timezone.now(), current_step=3)
    run.checkpoints.create(step=2, path="/ckpt/run/step-2", size_bytes=1024)
    Trajectory.objects.create(run=run, step=1, group_index=0, sample_index=0, prompt_text="2+2?",
                              completion="4", rewards={"acc": 1.0}, reward=1.0, length=3)
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/")
    page.focus("#run-table a:has-text('live one')")
    with page.expect_response(lambda r: r.url.endswith("/runs/") and r.request.headers.get("hx-request")):
        pass
    page.wait_for_timeout(100)
    assert focused_text(page) == "live one"
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    page.wait_for_selector("#trajectories select[name=step]")
    for selector, text in [("#run-status button:has-text('Cancel run')", "Cancel run"),
                           ("#run-checkpoints > summary", "Checkpoints (1)")]:
        page.focus(selector)
        with page.expect_response(lambda r: "/status/" in r.url):
            pass
        page.wait_for_timeout(100)
        assert focused_text(page) == text
    page.focus("#trajectories select[name=step]")
    with page.expect_response(lambda r: "/trajectories/" in r.url, timeout=15_000):
        pass
    page.wait_for_timeout(100)
    assert page.evaluate("document.activeElement.name") == "step"


def test_an_open_step_picker_stays_open_with_its_step_through_the_polls(page, live_server, researcher):
    """The trajectories of a live run are polled every 5 s: the step picker the researcher has
    opened stays open on the step they chose, while the list of steps grows under it."""
    run = make_run(researcher, status=RunStatus.RUNNING, heartbeat_at=timezone.now(), current_step=2)
    for step in (1, 2):
        Trajectory.objects.create(run=run, step=step, group_index=0, sample_index=0, prompt_text="2+2?",
                                  completion=f"answer at step {step}", rewards={}, reward=1.0, length=3)
    errors = console_errors(page)
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    with page.expect_response(lambda r: "/trajectories/" in r.url):
        page.select_option("#trajectory-step", "1")
    page.wait_for_selector("#trajectories pre.model-text:has-text('answer at step 1')")
    page.click("#trajectory-step")  # opens its list of steps
    assert page.eval_on_selector("#trajectory-step", "s => s.matches(':open')")
    Trajectory.objects.create(run=run, step=3, group_index=0, sample_index=0, prompt_text="2+2?",
                              completion="answer at step 3", rewards={}, reward=1.0, length=3)
    for _ in range(2):
        with page.expect_response(lambda r: "/trajectories/" in r.url, timeout=15_000):
            pass
    page.wait_for_function("() => document.querySelector('#trajectory-step option').textContent === 'latest (3)'")
    page.wait_for_timeout(300)
    assert page.eval_on_selector("#trajectory-step", "s => s.matches(':open')")
    assert page.eval_on_selector("#trajectory-step", "s => s.value") == "1"
    assert page.is_visible("#trajectories pre.model-text:has-text('answer at step 1')")
    assert errors == []


def _steps(run, *steps):
    for step in steps:
        Trajectory.objects.create(run=run, step=step, group_index=0, sample_index=0, prompt_text="2+2?",
                                  completion=f"answer at step {step}", rewards={}, reward=1.0, length=3)


class _Holds:
    """One route over the trajectories' requests for the whole test: the first request with an
    HX-Target that ``hold`` armed waits in that target's list until the test lets it go on;
    every other request goes on at once. (Unrouting the last route turns Playwright's
    interception off, which lets a held request go on by itself: re-routing between two holds
    raced with that, and now and then released the held poll before the step was picked.)"""

    def __init__(self, page):
        self.held: dict[str, list] = {}
        page.route("**/trajectories/**", self._route)

    def hold(self, target: str) -> list:
        self.held[target] = []
        return self.held[target]

    def _route(self, route) -> None:
        held = self.held.get(route.request.headers.get("hx-target"))
        if held is not None and not held:
            held.append(route)
        else:
            route.continue_()


def _release(route) -> None:
    try:
        route.continue_()
    except Exception:  # noqa: BLE001, S110 (the page aborted it: nothing left to answer)
        pass


def _wait_for(page, held: list) -> None:
    for _ in range(150):
        if held:
            return
        page.wait_for_timeout(100)
    raise AssertionError("the request was not sent")


ABORTED = ["htmx:afterRequest", "htmx:sendAbort"]  # what htmx logs (console.error) of a request it aborts

# The page's own record of its requests, read synchronously with page.evaluate: which request
# htmx aborted, and, when an assertion fails, what the page sent, aborted and swapped, and when.
REQUEST_LOG = """
window.__requests = [];
for (const name of ["htmx:beforeRequest", "htmx:sendAbort", "htmx:afterSwap", "htmx:oobAfterSwap"]) {
  document.addEventListener(name, (event) => {
    const elt = event.detail && event.detail.elt;
    const path = event.detail && event.detail.requestConfig ? event.detail.requestConfig.path : "";
    window.__requests.push([Math.round(performance.now()), name, (elt && (elt.id || elt.tagName)) || "", path]);
  });
}
"""


def record_requests(page) -> None:
    page.add_init_script(REQUEST_LOG)


def requests_seen(page) -> list[list]:
    return page.evaluate("window.__requests")


def seen(page) -> str:
    """The record as lines, for an assertion's message (pytest would cut a list short)."""
    return "the page's requests (ms, event, element, path):\n" + "\n".join(map(str, requests_seen(page)))


def aborted(page) -> list[str]:
    """The ids of the elements whose requests the page aborted, in order."""
    return [elt for _, name, elt, _ in requests_seen(page) if name == "htmx:sendAbort"]


def _shown(page) -> tuple[str, list[str]]:
    """The step picked, and the completions the groups show."""
    return (page.eval_on_selector("#trajectory-step", "s => s.value"),
            page.eval_on_selector_all("#trajectory-groups pre.model-text:not(.prompt)", "ps => ps.map(p => p.textContent)"))


def test_a_poll_sent_before_the_researcher_picks_a_step_never_shows_its_older_view(page, live_server, researcher):
    """The groups poll every 5 s with the picker's values. One sent before the researcher picks a
    step (so asking for the newest) and answered while their own request is still on its way
    used to put the newest step's groups and the step list set to "latest" back; their request
    now aborts it (hx-sync), and no poll is sent while theirs is on its way."""
    run = make_run(researcher, status=RunStatus.RUNNING, heartbeat_at=timezone.now(), current_step=3)
    _steps(run, 1, 2, 3)
    errors = console_errors(page)
    record_requests(page)
    holds = _Holds(page)
    polls = holds.hold("trajectory-groups")
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    page.wait_for_selector("#trajectories pre.model-text:has-text('answer at step 3')")
    _wait_for(page, polls)  # the first poll (step: latest) is on its way, held
    mine = holds.hold("trajectories")
    page.select_option("#trajectory-step", "1")
    _wait_for(page, mine)  # the researcher's request is on its way, held
    assert aborted(page) == ["trajectory-groups"], seen(page)  # the poll, by the researcher's request
    _release(polls[0])  # the poll's answer would come first: there is none
    page.wait_for_timeout(500)
    assert page.eval_on_selector("#trajectory-step", "s => s.value") == "1"
    assert not page.is_visible("#trajectories pre.model-text:has-text('answer at step 1')")  # not yet
    with page.expect_response(lambda r: r.request.headers.get("hx-target") == "trajectories"):
        _release(mine[0])
    page.wait_for_selector("#trajectories pre.model-text:has-text('answer at step 1')")
    assert _shown(page) == ("1", ["answer at step 1"])
    with page.expect_response(lambda r: r.request.headers.get("hx-target") == "trajectory-groups", timeout=15_000):
        pass  # the next poll asks for the chosen step
    page.wait_for_timeout(300)
    assert _shown(page) == ("1", ["answer at step 1"])
    assert aborted(page) == ["trajectory-groups"], seen(page)
    assert set(errors) <= set(ABORTED) and not page.is_visible("#request-error")  # htmx's log of that abort, nothing else


def test_the_last_step_picked_wins_over_one_picked_before_it_was_answered(page, live_server, researcher):
    """Two steps picked in a row, the first not yet answered: the second is shown. (A second
    request waited for the first, whose answer replaced the picker that was to send it.)"""
    run = make_run(researcher, status=RunStatus.SUCCEEDED, current_step=3)
    _steps(run, 1, 2, 3)
    errors = console_errors(page)
    record_requests(page)
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    page.wait_for_selector("#trajectories pre.model-text:has-text('answer at step 3')")
    mine = _Holds(page).hold("trajectories")
    page.select_option("#trajectory-step", "1")
    _wait_for(page, mine)  # held
    page.select_option("#trajectory-step", "2")
    _release(mine[0])
    page.wait_for_timeout(500)  # every answer in
    page.wait_for_function("() => !document.querySelector('.htmx-request')")
    assert _shown(page) == ("2", ["answer at step 2"])
    assert aborted(page) == ["trajectory-picker"], seen(page)  # the first request, by the second
    assert set(errors) <= set(ABORTED) and not page.is_visible("#request-error")


def test_a_queued_run_says_it_waits_for_a_worker_in_its_panel_and_its_charts(page, live_server, researcher):
    run = make_run(researcher, kind=RunKind.DPO, config={"data": {"source": "labels"}})
    errors = console_errors(page)
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    assert page.text_content("#run-progress").startswith("waiting for a GPU worker to start it")
    page.wait_for_selector("#chart-state:has-text('queued, not started')")
    assert "?" not in page.text_content("#run-status") + page.text_content("#chart-state")
    assert errors == []


def test_the_download_form_sends_the_apis_filters_without_javascript(browser, live_server, researcher):
    run = make_run(researcher, kind=RunKind.EXTERNAL, status=RunStatus.SUCCEEDED)
    for step in (1, 2, 3):
        Trajectory.objects.create(run=run, step=step, group_index=0, sample_index=0, prompt_text="2+2?",
                                  completion=f"answer {step}", rewards={}, reward=1.0, length=3)
    context = browser.new_context(java_script_enabled=False, accept_downloads=True)
    try:
        page = context.new_page()
        log_in(page, live_server, researcher.memberships.get().user)
        page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
        page.get_by_label("from step").fill("2")
        page.get_by_label("to step").fill("2")
        with page.expect_download() as download:
            page.click("form.export-filters button:has-text('Download JSONL')")
        with open(download.value.path()) as f:
            assert [json.loads(line)["completion"] for line in f] == ["answer 2"]
        page.get_by_label("from step").fill("3")
        page.click("form.export-filters button:has-text('Download Parquet')")  # 3 to 2: refused, named
        assert page.text_content("p.errors").startswith("step_max: must not be below step_min (3)")
        assert "/exports/trajectories.parquet?step_min=3&step_max=2" in page.url
    finally:
        context.close()
