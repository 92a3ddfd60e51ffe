"""Table headers that are symbols or names read as written. The style sheet uppercases headers,
which turned the quality page's τ-b into "Τ-B" (a capital tau, read as T-B) and Krippendorff's α
into "Α" (a capital alpha, read as the letter A), a run's reward names into EXACT_ANSWER (not the
name a config uses) and the compared runs' names into capitals."""

import pytest

from tests.browser.test_run_page import researcher  # noqa: F401 (a fixture: an owner logged in, their project)
from tests.factories import make_run
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import RunStatus, Trajectory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOWN = "els => els.map(e => e.innerText.trim())"  # innerText: as rendered, case and all



def test_the_greek_headers_of_the_quality_page_keep_their_case(page, live_server, researcher):
    page.goto(f"{live_server.url}/projects/{researcher.id}/feedback/quality/")
    shown = page.eval_on_selector_all("th", SHOWN)
    assert "τ-b" in shown and "α" in shown
    assert "ANNOTATOR" in shown  # the other headers are still uppercased


def test_reward_names_and_compared_run_names_are_shown_as_written(page, live_server, researcher):
    run = make_run(researcher, name="grpo-Baseline", status=RunStatus.SUCCEEDED, config={"algorithm": {"beta": 0.0}})
    other = make_run(researcher, name="grpo-KL", status=RunStatus.SUCCEEDED, config={"algorithm": {"beta": 0.04}})
    for r in (run, other):
        metric_points_upsert(run_id=r.id, points=[("reward", s, s / 10) for s in range(1, 4)])
    Trajectory.objects.create(run=run, step=1, group_index=0, sample_index=0, prompt_text="2+2?", completion="4",
                              rewards={"exact_answer": 1.0}, reward=1.0, length=1)
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    page.wait_for_selector("#trajectories th")
    assert "exact_answer" in page.eval_on_selector_all("#trajectories th", SHOWN)
    page.wait_for_selector(".chart[data-key=reward]")
    page.click("details.compare > summary")
    page.check(f"input[name=compare][value='{other.id}']")
    page.wait_for_selector("table.settings-differences")
    assert page.eval_on_selector_all("table.settings-differences thead th", SHOWN) == ["Setting", "grpo-Baseline", "grpo-KL"]
