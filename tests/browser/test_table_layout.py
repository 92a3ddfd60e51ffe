"""Table cells as laid out by the browser.

The policies list's action cell was a flex row (``<td class="row">``): no longer a table cell, it
did not span its row (half a pixel short of its border) and put its links at its bottom
(``align-items: flex-end``), out of line with the row's first line of text, as far below it as
the row was tall.

User-given Markdown (a run's description, the annotation guidelines, a criterion's description)
may hold a table; its header cells were uppercased, muted and shrunk by the style for Steer's own
table headers, so the user's words did not read as written."""

import pytest

from tests.browser.test_run_page import researcher  # noqa: F401 (a fixture: an owner logged in, their project)
from django.urls import reverse

from tests.factories import make_policy, make_rubric, make_run, make_task, make_user
from webapp.experiments.models import Checkpoint, PolicyModel, RunStatus
from webapp.feedback.labelling import label_submit
from webapp.projects.models import Membership, Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Each cell's box, the middle of the first line of text in the name cell, and the action links' boxes.
LAYOUT = """row => {
  const box = e => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, mid: (r.top + r.bottom) / 2}; };
  const range = document.createRange();
  range.selectNodeContents(row.cells[0]);
  const line = range.getClientRects()[0];
  const actions = row.cells[row.cells.length - 1];
  return {row: box(row), cells: [...row.cells].map(box), line: (line.top + line.bottom) / 2,
          links: [...actions.querySelectorAll('a')].map(box), display: getComputedStyle(actions).display};
}"""


def layout(page, name):
    row = page.locator("tbody tr", has_text=name).element_handle()
    return page.evaluate(LAYOUT, row)


def test_the_policies_action_links_sit_in_line_with_their_row(page, live_server, researcher):
    make_policy(researcher, name="tiny-base")
    # a row several lines tall: a checkpoint policy whose run's long name wraps in the From cell
    run = make_run(researcher, name=" ".join(["a long run name that wraps"] * 6), status=RunStatus.SUCCEEDED)
    checkpoint = Checkpoint.objects.create(run=run, step=3, path="/ckpt/run/step-3")
    PolicyModel.objects.create(project=researcher, name="tuned", source=PolicyModel.Source.CHECKPOINT,
                               checkpoint=checkpoint)
    page.goto(f"{live_server.url}/projects/{researcher.id}/policies/")
    for name in ("tiny-base", "tuned"):
        boxes = layout(page, name)
        assert boxes["display"] == "table-cell"  # a flex box is no table cell: it did not span the row
        for cell in boxes["cells"]:
            assert abs(cell["top"] - boxes["row"]["top"]) <= 0.5 and abs(cell["bottom"] - boxes["row"]["bottom"]) <= 0.5
        assert len(boxes["links"]) == 3
        for link in boxes["links"]:  # on one line, the row's first line of text, as other tables' action cells
            assert abs(link["mid"] - boxes["line"]) <= 3, (name, link, boxes["line"])
    assert boxes["row"]["bottom"] - boxes["row"]["top"] > 60  # the test's premise: the last row is tall


def test_a_markdown_table_in_a_run_description_keeps_its_case(page, live_server, researcher):
    run = make_run(researcher, name="grpo-1", description="| Setting | lr_Schedule |\n|---|---|\n| x | y |\n")
    page.goto(f"{live_server.url}/projects/{researcher.id}/runs/{run.id}/")
    headers = page.eval_on_selector_all(".run-description th", "els => els.map(e => e.innerText.trim())")
    assert headers == ["Setting", "lr_Schedule"]
    assert page.eval_on_selector(".run-description th", "e => getComputedStyle(e).textTransform") == "none"


def test_a_markdown_table_in_a_criterion_description_keeps_its_case(page, live_server, researcher):
    rubric = make_rubric(researcher, criteria=[{"name": "Correct", "scale": "binary",
                                                "description": "| Answer | Score_If |\n|---|---|\n| 4 | 1 |\n"}])
    page.goto(live_server.url + reverse("feedback:rubric_detail", args=[researcher.id, rubric.id]))
    assert page.eval_on_selector_all("td.md th", "els => els.map(e => e.innerText.trim())") == ["Answer", "Score_If"]


def test_a_labels_time_reads_on_one_line(page, live_server, researcher):
    """The task page's Time column is narrow: "1 min 05 s" broke after "05", its "s" alone on a second line."""
    annotator = make_user()
    Membership.objects.create(project=researcher, user=annotator, role=Role.ANNOTATOR)
    task = make_task(researcher, prompt="Which?", completions=["a", "b"])
    label_submit(task=task, annotator=annotator, ranking=[[0], [1]], time_spent_ms=65_000, submission_key="label-time-1")
    page.goto(live_server.url + reverse("feedback:task_detail", args=[researcher.id, task.id]))
    cell = page.locator("td", has_text="1 min 05 s")
    assert cell.evaluate("td => getComputedStyle(td).whiteSpace") == "nowrap"
    lines = cell.evaluate("td => { const r = document.createRange(); r.selectNodeContents(td); "
                          "return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }")
    assert lines == 1
