"""An annotator in a real browser: keyboard, drag and drop, rubric, htmx swaps, XSS, isolation."""

import pytest

from tests.browser.session import log_in
from tests.factories import make_project, make_rubric, make_task, make_user
from webapp.feedback.models import PreferenceLabel

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS_COMPLETION = (
    "<script>window.__pwned = 'script'; alert('script')</script>\n\n"
    "<img src=x onerror=\"window.__pwned = 'img'; alert('img')\">\n\n"
    "[click me](javascript:window.__pwned='link';alert('link'))"
)


def annotate_url(live_server, project):
    return f"{live_server.url}/projects/{project.id}/feedback/annotate/"


def task_id(page) -> int:
    return int(page.get_attribute("#workspace", "data-task"))


def wait_for_task_change(page, old: int):
    """Until the next task is swapped in and set up: htmx wires new content up after its settle delay
    (20 ms), and a key pressed before that would submit the new form as a plain POST."""
    page.wait_for_function(
        "old => { const w = document.getElementById('workspace');"
        " return w && w.dataset.task !== String(old) && w.dataset.ready === '1' }", arg=old)


def ranking_letters(page) -> list[str]:
    return page.eval_on_selector_all("#ranking .rank-item h3", "els => els.map(e => e.textContent.trim())")


def test_pairwise_with_the_keyboard_then_the_next_task_swaps_in(page, live_server):
    annotator = make_user()
    project = make_project(annotator=annotator)
    project.annotation_guidelines = "Prefer the **correct** answer."
    project.save()
    first = make_task(project, prompt="What is 2+2?", completions=["4", "5"])
    second = make_task(project, prompt="What is 3+3?", completions=["6", "7"])
    log_in(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.id}/")
    page.click("#start-annotating")
    assert page.locator(".guidelines strong").inner_text() == "correct"
    assert task_id(page) == first.id
    page.locator("body").click()
    page.keyboard.press("2")
    assert page.is_checked("input[name=choice][value=b]")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    wait_for_task_change(page, first.id)
    assert task_id(page) == second.id
    assert "What is 3+3?" in page.inner_text(".prompt")
    assert page.is_visible("#undo-button")
    assert "Labelled by you: 1" in page.inner_text("#progress-counter")
    label = PreferenceLabel.objects.get(task=first)
    assert label.ranking == [[0], [1]] and label.time_spent_ms > 0
    # Both bad with x, and the queue empties without a page load.
    page.evaluate("window.__same_page = true")
    page.keyboard.press("x")
    page.keyboard.press("Enter")
    page.wait_for_selector("#queue-empty")
    assert page.evaluate("window.__same_page") is True
    assert PreferenceLabel.objects.get(task=second).both_bad is True


def test_ranking_by_keyboard_and_drag_with_rubric_scores(page, live_server):
    annotator = make_user()
    project = make_project(annotator=annotator)
    rubric = make_rubric(project)
    task = make_task(project, prompt="Pick", completions=["alpha", "beta", "gamma", "delta"], rubric=rubric)
    follow_up = make_task(project, prompt="Next one", completions=["x", "y"])
    correct = rubric.latest_version().criteria.get(name="Correct")
    clear = rubric.latest_version().criteria.get(name="Clear")
    log_in(page, live_server, annotator)
    page.goto(annotate_url(live_server, project))
    assert task_id(page) == task.id
    assert ranking_letters(page) == ["A", "B", "C", "D"]

    # Keyboard: focus C (j j), move it to the top (Shift+Up twice), then tie B... with the one above.
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("Shift+ArrowUp")
    page.keyboard.press("Shift+ArrowUp")
    assert ranking_letters(page) == ["C", "A", "B", "D"]
    page.keyboard.press("j")  # A
    page.keyboard.press("=")  # A tied with C
    assert page.eval_on_selector_all("#ranking .rank-input", "els => els.map(e => e.value)") == ["1", "1", "3", "4"]

    # Drag and drop: D above B.
    d_box = page.locator("#ranking .rank-item", has_text="delta").locator(".handle").bounding_box()
    b_box = page.locator("#ranking .rank-item", has_text="beta").bounding_box()
    page.mouse.move(d_box["x"] + d_box["width"] / 2, d_box["y"] + d_box["height"] / 2)
    page.mouse.down()
    steps_to = (b_box["x"] + 40, b_box["y"] + 8)
    page.mouse.move(*steps_to, steps=25)
    page.mouse.up()
    page.wait_for_function("() => [...document.querySelectorAll('#ranking .rank-item h3')].map(e => e.textContent.trim()).join('') === 'CADB'")

    # Rubric: score C (position 2) correct and clear 5.
    page.select_option(f"select[name=score_2_{correct.pk}]", "1")
    page.select_option(f"select[name=score_2_{clear.pk}]", "5")
    page.fill("textarea[name=critique]", "C and A are both right; C explains better.")
    page.locator("#ranking .rank-item").first.focus()
    page.keyboard.press("Enter")
    wait_for_task_change(page, task.id)
    assert task_id(page) == follow_up.id

    label = PreferenceLabel.objects.get(task=task)
    assert label.ranking == [[0, 2], [3], [1]]
    assert label.critique == "C and A are both right; C explains better."
    assert sorted(label.scores.values_list("candidate__position", "criterion__name", "value")) == [
        (2, "Clear", 5.0), (2, "Correct", 1.0)]


def rank_names(page) -> list[str]:
    return page.eval_on_selector_all("#ranking .rank-item", "els => els.map(e => e.getAttribute('aria-label'))")


def test_typed_rank_numbers_reorder_the_list_and_survive_a_later_move(page, live_server):
    """A typed rank left the list, its tie marks and its spoken names as they were, and the next
    Shift+arrow renumbered every completion from the untouched order: the typed ranks were lost."""
    annotator = make_user()
    project = make_project(annotator=annotator)
    task = make_task(project, prompt="Pick", completions=["alpha", "beta", "gamma"])
    log_in(page, live_server, annotator)
    page.goto(annotate_url(live_server, project))
    page.fill("input[name=rank_2]", "1")  # C first; A still holds 1, so the two tie
    page.keyboard.press("Tab")
    assert ranking_letters(page) == ["A", "C", "B"]
    assert rank_names(page) == ["Completion A, rank 1", "Completion C, rank 1, tied with the one above",
                                "Completion B, rank 3"]
    assert page.locator("#ranking .rank-item", has_text="gamma").locator(".tie-mark").is_visible()
    assert page.is_checked("#ranked")
    page.fill("input[name=rank_0]", "2")
    page.keyboard.press("Tab")
    assert ranking_letters(page) == ["C", "A", "B"]
    assert page.eval_on_selector_all("#ranking .rank-input", "els => els.map(e => e.value)") == ["1", "2", "3"]
    page.locator("#ranking .rank-item").nth(2).focus()  # B, moved up by keyboard from the typed order
    page.keyboard.press("Shift+ArrowUp")
    assert ranking_letters(page) == ["C", "B", "A"]
    page.keyboard.press("Enter")
    page.wait_for_selector("#queue-empty")
    assert PreferenceLabel.objects.get(task=task).ranking == [[2], [1], [0]]


def test_enter_on_an_untouched_ranking_saves_nothing_until_the_order_is_confirmed(page, live_server):
    """The shown order is a shuffle: Enter alone is no judgement (as a pair needs a choice)."""
    annotator = make_user()
    project = make_project(annotator=annotator)
    task = make_task(project, prompt="Pick", completions=["alpha", "beta", "gamma"])
    log_in(page, live_server, annotator)
    page.goto(annotate_url(live_server, project))
    assert task_id(page) == task.id and not page.is_checked("#ranked")
    page.locator("#ranking .rank-item").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert task_id(page) == task.id and not PreferenceLabel.objects.filter(task=task).exists()
    page.check("#ranked")  # the annotator keeps the order shown, knowingly
    page.locator("#ranking .rank-item").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('queue-empty')")
    assert PreferenceLabel.objects.get(task=task).ranking == [[0], [1], [2]]


def test_time_spent_counts_from_when_the_task_was_shown_through_a_refused_submission(page, live_server):
    """The form came back with the error and the clock started again: the label recorded only the
    seconds after the error, and the Quality page's labels per hour read too high."""
    annotator = make_user()
    project = make_project(annotator=annotator)
    task = make_task(project, prompt="Pick", completions=["alpha", "beta", "gamma"])
    log_in(page, live_server, annotator)
    page.goto(annotate_url(live_server, project))
    page.wait_for_timeout(1500)  # reading
    page.fill("input[name=rank_0]", "9")  # out of range: the server refuses it
    page.evaluate("document.getElementById('label-form').noValidate = true")
    page.click("#submit-button")
    page.wait_for_selector("#workspace[data-ready='1'] #workspace-error")
    page.fill("input[name=rank_0]", "1")
    page.check("#ranked")
    page.click("#submit-button")
    page.wait_for_selector("#queue-empty")
    assert PreferenceLabel.objects.get(task=task).time_spent_ms >= 1500


def test_undo_brings_the_last_task_back(page, live_server):
    annotator = make_user()
    project = make_project(annotator=annotator)
    first = make_task(project, prompt="first")
    make_task(project, prompt="second")
    log_in(page, live_server, annotator)
    page.goto(annotate_url(live_server, project))
    page.locator("body").click()
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    wait_for_task_change(page, first.id)
    page.keyboard.press("u")
    page.wait_for_function(f"() => document.getElementById('workspace').dataset.task === '{first.id}'")
    assert not PreferenceLabel.objects.exists()


def test_hostile_completion_shows_as_text_and_never_runs(page, live_server):
    annotator = make_user()
    project = make_project(annotator=annotator)
    make_task(project, prompt="<script>window.__pwned='prompt'</script>", completions=[XSS_COMPLETION, "fine"])
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, live_server, annotator)
    page.goto(annotate_url(live_server, project))
    candidate = page.locator(".candidate").first
    # Raw, the default: the text exactly as the model wrote it.
    assert candidate.locator("pre.text-raw").text_content() == XSS_COMPLETION
    assert candidate.locator("script, img, [onerror], [onclick]").count() == 0
    assert candidate.locator("a:visible").count() == 0
    assert page.locator(".prompt script").count() == 0
    # Rendered Markdown, when the annotator asks for it: sanitised.
    page.locator("body").click()
    page.keyboard.press("m")
    text = candidate.inner_text()
    assert "<script>window.__pwned = 'script'" in text
    assert "<img src=x onerror=" in text
    assert candidate.locator("script, img, [onerror], [onclick]").count() == 0
    link = candidate.locator("a", has_text="click me")
    assert link.get_attribute("href") is None
    assert link.get_attribute("rel") == "noopener nofollow"
    link.click()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned === undefined")
    assert dialogs == []


ARITHMETIC = "2 * 3 * 4 = 24, so 2*3*4 is 24"
QUOTED = "> 25\n# 25\n\n    indented  twice\n"


def shown_text(locator) -> str:
    return locator.evaluate("el => [...el.children].filter(c => c.offsetParent !== null)"
                            ".map(c => c.innerText).join('')")


def test_model_text_is_raw_by_default_and_markdown_a_remembered_switch(page, live_server):
    annotator = make_user()
    project = make_project(annotator=annotator)
    first = make_task(project, prompt="# Compute 2*3*4", completions=[ARITHMETIC, QUOTED])
    second = make_task(project, prompt="Next", completions=["**bold**", "plain"])
    log_in(page, live_server, annotator)
    page.goto(annotate_url(live_server, project))
    a, b = page.locator(".candidate-text").nth(0), page.locator(".candidate-text").nth(1)

    # Raw by default: exactly the text, whitespace kept, wrapped like the trajectory browser.
    assert shown_text(a) == ARITHMETIC and shown_text(b) == QUOTED
    assert shown_text(page.locator(".prompt")).endswith("# Compute 2*3*4")
    assert page.locator(":is(.candidate-text, .prompt) :is(em, blockquote, h1):visible").count() == 0
    raw = page.locator(".candidate-text pre.text-raw").first
    assert raw.evaluate("el => getComputedStyle(el).whiteSpace") == "pre-wrap"
    assert page.get_attribute(".text-view [data-text-view=raw]", "aria-pressed") == "true"

    # m (or the switch) renders Markdown, sanitised; raw is hidden meanwhile.
    page.locator("body").click()
    page.keyboard.press("m")
    assert a.locator("em").inner_text() == "3" and a.locator("pre.text-raw").is_hidden()
    assert b.locator("blockquote").is_visible() and b.locator("h1").inner_text() == "25"
    assert page.get_attribute(".text-view [data-text-view=rendered]", "aria-pressed") == "true"

    # The keys still work, and the next task (an htmx swap) comes rendered too.
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    wait_for_task_change(page, first.id)
    assert task_id(page) == second.id
    assert page.locator(".candidate-text strong").first.inner_text() == "bold"

    # Remembered across page loads (this project), until switched back.
    page.reload()
    assert page.locator(".candidate-text strong").first.is_visible()
    page.click(".text-view [data-text-view=raw]")
    assert shown_text(page.locator(".candidate-text").first) == "**bold**"
    page.reload()
    assert shown_text(page.locator(".candidate-text").first) == "**bold**"
    assert page.locator(".candidate-text strong").first.is_hidden()
    assert PreferenceLabel.objects.get(task=first).ranking == [[0], [1]]


def test_right_to_left_text_reads_right_to_left(page, live_server):
    """Arabic in a left-to-right box puts its full stop on the wrong side and mixed runs out of order."""
    annotator = make_user()
    project = make_project(annotator=annotator)
    make_task(project, prompt="مرحبا، كيف حالك؟", completions=["أنا بخير، شكرا.", "Fine, thanks."])
    log_in(page, live_server, annotator)
    page.goto(annotate_url(live_server, project))
    direction = "el => getComputedStyle(el).direction"
    assert page.locator(".prompt pre.text-raw").evaluate(direction) == "rtl"
    a, b = page.locator(".candidate-text").nth(0), page.locator(".candidate-text").nth(1)
    assert a.locator("pre.text-raw").evaluate(direction) == "rtl"
    assert b.locator("pre.text-raw").evaluate(direction) == "ltr"
    page.locator("body").click()
    page.keyboard.press("m")  # the rendered copy too
    assert a.locator(".text-rendered").evaluate(direction) == "rtl"
    page.fill("textarea[name=critique]", "الإجابة أ أوضح.")
    assert page.locator("textarea[name=critique]").evaluate(direction) == "rtl"


def test_a_long_code_line_in_rendered_markdown_keeps_the_pair_side_by_side(page, live_server):
    """A grid column grew to the widest line: 10,000 px for completion A, 54 px for B, off screen."""
    annotator = make_user()
    project = make_project(annotator=annotator)
    code = "```python\nx = [" + ", ".join(str(i) for i in range(300)) + "]\n```"
    table = "| a | b |\n|---|---|\n| " + "a" * 2000 + " | 1 |"
    make_task(project, prompt="Code", completions=[f"{code}\n\n{table}", "short answer"])
    log_in(page, live_server, annotator)
    page.goto(annotate_url(live_server, project))
    page.locator("body").click()
    page.keyboard.press("m")
    assert page.locator(".candidate-text .text-rendered pre").first.is_visible()
    widths = page.eval_on_selector_all(".pair > .candidate", "els => els.map(e => e.getBoundingClientRect().width)")
    assert len(widths) == 2 and abs(widths[0] - widths[1]) < 2
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


CONTRAST = """el => {
  const rgb = c => c.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const lum = ([r, g, b]) => [r, g, b]
    .map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  let back = el;
  while (back && (rgb(getComputedStyle(back).backgroundColor)[3] === 0)) { back = back.parentElement; }
  const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(rgb(getComputedStyle(back).backgroundColor))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_key_hints_are_legible_on_every_button(page, live_server):
    """The <kbd> in the blue Submit button was white on white."""
    annotator = make_user()
    project = make_project(annotator=annotator)
    make_task(project)
    log_in(page, live_server, annotator)
    page.goto(annotate_url(live_server, project))
    for selector in ["#submit-button kbd", "#skip-button kbd", ".vote-option kbd"]:
        assert page.locator(selector).first.evaluate(CONTRAST) >= 4.5, selector


RECORD_IN_FLIGHT = """() => {
  window.__inFlight = [];
  document.body.addEventListener("htmx:beforeSend", event => window.__inFlight.push({
    by: event.detail.elt.id, submit: document.getElementById("submit-button").disabled,
    skip: document.getElementById("skip-button").disabled}));
}"""


def test_skip_and_submit_are_disabled_while_in_flight_without_console_errors(page, live_server):
    annotator = make_user()
    project = make_project(annotator=annotator)
    tasks = [make_task(project, prompt=f"task {i}") for i in range(3)]
    log_in(page, live_server, annotator)
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(annotate_url(live_server, project))
    page.evaluate(RECORD_IN_FLIGHT)
    page.click("#skip-button")
    wait_for_task_change(page, tasks[0].id)
    page.locator("body").click()
    page.keyboard.press("s")
    wait_for_task_change(page, tasks[1].id)
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.wait_for_selector("#queue-empty")
    assert errors == []
    both_disabled = {"submit": True, "skip": True}
    assert page.evaluate("window.__inFlight") == [{"by": "skip-button", **both_disabled},
                                                  {"by": "skip-button", **both_disabled},
                                                  {"by": "label-form", **both_disabled}]
    assert PreferenceLabel.objects.get().task == tasks[2]


def test_another_projects_task_by_url_is_404(page, live_server):
    annotator = make_user()
    make_project(annotator=annotator)
    theirs = make_project(annotator=make_user())
    task = make_task(theirs, prompt="secret prompt")
    log_in(page, live_server, annotator)
    response = page.goto(f"{live_server.url}/projects/{theirs.id}/feedback/annotate/{task.id}/")
    assert response.status == 404
    assert "secret prompt" not in page.content()
