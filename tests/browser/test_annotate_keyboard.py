"""The annotation workspace with the keyboard alone, as a screen reader user meets it: where focus
lands after each htmx swap, what the live region says, shortcuts that stay out of the way."""

import re

import pytest

from tests.browser.session import log_in
from tests.factories import make_project, make_task, make_user
from webapp.feedback.models import PreferenceLabel

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_workspace(page, live_server, project, annotator):
    log_in(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.id}/feedback/annotate/")


def focused(page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.className")


def wait_for_swap(page, old_task: int | None):
    page.wait_for_function(
        "old => { const w = document.getElementById('workspace');"
        " return w && w.dataset.task !== String(old) && w.dataset.ready === '1' }", arg=old_task)


def status(page) -> str:
    page.wait_for_function("() => document.getElementById('workspace-status').textContent !== ''")
    return page.inner_text("#workspace-status")


def test_focus_lands_on_the_new_task_the_error_or_the_empty_queue_after_each_swap(page, live_server):
    annotator = make_user()
    project = make_project(annotator=annotator)
    pair = make_task(project, prompt="first", completions=["4", "5"])
    ranking = make_task(project, prompt="second", completions=["alpha", "beta", "gamma"])
    third = make_task(project, prompt="third", completions=["6", "7"])
    open_workspace(page, live_server, project, annotator)
    page.locator("body").click()
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    wait_for_swap(page, pair.id)
    assert status(page) == f"Saved your label on task {pair.id}. Task {ranking.id}: rank 3 completions."
    assert focused(page) == "candidate card rank-item"  # the first completion of the ranking
    # A refused submission: focus on the error, which is an alert.
    page.fill("input[name=rank_0]", "7")
    page.keyboard.press("Tab")
    page.evaluate("document.getElementById('label-form').noValidate = true")
    page.locator("#ranking .rank-item").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#workspace[data-ready='1'] #workspace-error")  # swapped in and set up
    assert focused(page) == "workspace-error"
    assert page.get_attribute("#workspace-error", "role") == "alert"
    page.keyboard.press("j")  # the keys go on working from there
    page.keyboard.press("Shift+ArrowDown")
    assert re.fullmatch(r"[ABC] moved to position 2 of 3\.", status(page))
    page.keyboard.press("Enter")
    wait_for_swap(page, ranking.id)
    assert focused(page) == "task-head"  # a pair: the task's heading, Tab goes on to its completions
    page.keyboard.press("s")
    page.wait_for_selector("#workspace[data-ready='1'] #queue-empty")
    assert focused(page) == "queue-empty-heading"
    assert status(page) == "Nothing left to label."
    assert PreferenceLabel.objects.filter(task__in=[pair, ranking]).count() == 2
    assert not PreferenceLabel.objects.filter(task=third).exists()


def test_enter_on_the_guidelines_toggle_opens_them_and_submits_nothing(page, live_server):
    annotator = make_user()
    project = make_project(annotator=annotator)
    project.annotation_guidelines = "Prefer the correct answer."
    project.save()
    task = make_task(project, prompt="2+2?", completions=["4", "5"])
    open_workspace(page, live_server, project, annotator)
    page.locator("body").click()
    page.keyboard.press("1")  # a choice is made, so a stray submit would save it
    page.focus(".guidelines summary")
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert page.evaluate("document.querySelector('.guidelines').open") is False
    page.focus("#keys-help summary")
    page.keyboard.press("Enter")
    assert page.evaluate("document.getElementById('keys-help').open") is True
    page.wait_for_timeout(300)
    assert page.get_attribute("#workspace", "data-task") == str(task.id)
    assert not PreferenceLabel.objects.exists()


def test_shortcuts_stay_quiet_while_typing_in_the_critique(page, live_server):
    annotator = make_user()
    project = make_project(annotator=annotator)
    task = make_task(project, prompt="2+2?", completions=["4", "5"])
    open_workspace(page, live_server, project, annotator)
    page.focus("textarea[name=critique]")
    page.keyboard.type("1 a 2 b s u m x ? = j k")
    page.keyboard.press("Enter")  # a new line, not a submission
    assert page.input_value("textarea[name=critique]") == "1 a 2 b s u m x ? = j k\n"
    assert not page.is_checked("input[name=choice][value=a]") and not page.is_checked("input[name=choice][value=b]")
    assert page.get_attribute(".text-view", "data-mode") == "raw"
    assert page.evaluate("document.getElementById('keys-help').open") is False
    page.keyboard.press("Escape")  # leaves the box; the keys work again
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_selector("#queue-empty")
    label = PreferenceLabel.objects.get(task=task)
    assert label.ranking == [[1], [0]] and label.critique == "1 a 2 b s u m x ? = j k"


def test_a_long_completion_scrolls_with_the_arrow_keys_and_is_named(page, live_server):
    annotator = make_user()
    project = make_project(annotator=annotator)
    long_text = "\n".join(f"step {i}" for i in range(300))
    make_task(project, prompt="Rank", completions=[long_text, "short", "shorter"])
    open_workspace(page, live_server, project, annotator)
    page.keyboard.press("Tab")  # from the first completion to its rank box
    page.keyboard.press("Tab")  # and into its text
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Completion A"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => document.activeElement.scrollTop > 0")  # scrolling is animated
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Completion A"
    page.keyboard.press("j")  # j still goes to the next completion
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Completion B, rank 2"


def test_how_much_better_is_given_with_5_6_7_and_taken_back_with_0(page, live_server):
    annotator = make_user()
    project = make_project(annotator=annotator)
    first = make_task(project, prompt="2+2?", completions=["4", "5"])
    second = make_task(project, prompt="3+3?", completions=["6", "7"])
    open_workspace(page, live_server, project, annotator)
    page.keyboard.press("1")
    page.keyboard.press("7")
    assert page.is_checked("input[name=strength][value='3']")
    page.keyboard.press("Enter")
    wait_for_swap(page, first.id)
    page.keyboard.press("b")
    page.keyboard.press("5")
    page.keyboard.press("0")  # not said after all
    assert page.is_checked("input[name=strength][value='']")
    page.keyboard.press("Enter")
    page.wait_for_selector("#queue-empty")
    strengths = dict(PreferenceLabel.objects.values_list("task_id", "strength"))
    assert strengths == {first.id: 3, second.id: None}


def test_a_flash_message_of_the_page_goes_once_its_task_is_swapped(page, live_server):
    """Opened at a task others filled, the page says so over the next task; after that task's label
    the message stayed, over the task after it (and beside a refusal of its own, if any)."""
    from webapp.feedback.labelling import label_submit

    annotator, other = make_user(), make_user()
    project = make_project(annotator=[annotator, other])
    filled = make_task(project, prompt="filled", completions=["1", "2"])
    nxt = make_task(project, prompt="next", completions=["3", "4"])
    make_task(project, prompt="after", completions=["5", "6"])
    label_submit(task=filled, annotator=other, ranking=[[0], [1]], submission_key="other-label-1")
    log_in(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.id}/feedback/annotate/{filled.id}/")
    page.wait_for_function("document.getElementById('workspace')?.dataset.ready === '1'")
    assert f"Task {filled.id} already has" in page.inner_text(".messages")
    page.locator("body").click()
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    wait_for_swap(page, nxt.id)
    assert page.locator(".messages").count() == 0
