"""An annotator on a phone (390 px wide): no page of theirs is wider than the screen.

The tables (API tokens, labels rejected in review), the top bar (a longer username) and the
annotation page's keyboard help (its keys' column sized to their longest line) each pushed the page
sideways, past 390 px; and the top bar's link to the project shrank to nothing.
"""

import pytest

from tests.browser.session import log_in
from tests.factories import (
    make_dataset,
    make_policy,
    make_project,
    make_task,
    make_user,
)
from webapp.accounts.services import api_token_create
from webapp.feedback.models import PreferenceLabel
from webapp.feedback.review import label_reject

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def page_width_overflow(page) -> int:
    """How many pixels the page is wider than the window (0 when it fits)."""
    return page.evaluate("Math.max(0, document.documentElement.scrollWidth - window.innerWidth)")


def test_an_annotators_pages_fit_a_phone_screen(page, live_server):
    owner, annotator = make_user(), make_user("annotator-maria")
    project = make_project(owner=owner, annotator=annotator)
    rejected = make_task(project, prompt="Which is right?", completions=["4", "5", "four"])
    make_task(project, prompt="What is 2 + 2?", completions=["4", "5", "four"])
    label = PreferenceLabel.objects.create(task=rejected, annotator=annotator, ranking=[[1], [0], [2]])
    label_reject(label_id=label.id, project=project, by=owner, reason="4 is the right answer; rank it first.")
    api_token_create(user=annotator, name="phone notebook", expires_in_days=90)
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server, annotator)
    base = f"{live_server.url}/projects/{project.id}"

    page.goto(f"{live_server.url}/accounts/tokens/")
    assert page.locator("td", has_text="phone notebook").is_visible()
    assert page_width_overflow(page) == 0, "the API tokens page"

    # the top bar's link to the project was squeezed to no width at all by the user's links
    project_link = page.locator(".projects-nav a", has_text=project.name).bounding_box()
    assert project_link and project_link["width"] > 20 and project_link["x"] + project_link["width"] <= 390

    page.goto(f"{base}/feedback/annotate/rejected/")
    assert page.locator("td", has_text="rank it first").is_visible()
    assert page_width_overflow(page) == 0, "the labels rejected in review"

    page.goto(f"{base}/feedback/annotate/")
    page.wait_for_function("document.getElementById('workspace')?.dataset.ready === '1'")
    assert page_width_overflow(page) == 0, "the annotation page"
    page.locator("body").click()
    page.keyboard.press("?")  # opens the keyboard help
    assert page.locator("#keys-help dl").is_visible()
    assert page_width_overflow(page) == 0, "the annotation page with its keyboard help open"


def test_a_researchers_pages_fit_a_phone_screen(page, live_server):
    """A researcher's (an owner's) eleven project tabs stood on one line, 820 px wide, so every project
    page of theirs was wider than the screen, and the New-run and New-evaluation forms' fieldsets
    (a fieldset is as wide as its widest content unless told otherwise) were as wide as the rewards table."""
    owner = make_user("owner-olivia")
    project = make_project(owner=owner)
    make_dataset(project)
    make_policy(project)
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server, owner)
    base = f"{live_server.url}/projects/{project.id}"
    for path in ("/", "/runs/", "/runs/new/", "/runs/new-evaluation/"):
        page.goto(base + path)
        assert page_width_overflow(page) == 0, path
    tabs = page.eval_on_selector_all(".tabs a", "els => els.map(a => a.getBoundingClientRect())")
    assert len(tabs) == 11 and all(t["x"] >= 0 and t["x"] + t["width"] <= 390 for t in tabs)
    heights = {round(t["height"]) for t in tabs}  # each tab on one line ("Reward models" broke in two)
    assert len(heights) == 1, heights
