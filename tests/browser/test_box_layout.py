"""Boxes as the browser lays them out.

At a phone's width (390 px) a table is a block that scrolls sideways by itself, and its rows sit in
a table only as wide as their content: an empty table's "None yet." row (the Preference pairs
table of the reward-models page, among others) stopped short of the table's box, its header too.

On the task page (1280 px) the Gold form was the field's ``as_div`` beside a Save button in a flex
row: the div was as wide as the field's help text, so Save stood past the end of that sentence, far
from the input it saves."""

import pytest
from django.urls import reverse

from tests.browser.session import log_in
from tests.factories import make_project, make_task, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def researcher(page, live_server):
    """An owner logged in; their project."""
    user = make_user()
    project = make_project(owner=user)
    log_in(page, live_server, user)
    return project

# For each empty-state row (one cell spanning the columns): the widths of the table's inside (its
# scrolling box, less its border), of the cell and of the header row.
EMPTY_ROWS = """() => [...document.querySelectorAll('tbody > tr:only-child > td[colspan]')].map(td => {
  const table = td.closest('table');
  return {text: td.innerText.trim(), inside: table.clientWidth, cell: td.getBoundingClientRect().width,
          header: table.querySelector('thead tr').getBoundingClientRect().width};
})"""


def test_an_empty_tables_row_fills_the_table_on_a_phone(page, live_server, researcher):
    page.set_viewport_size({"width": 390, "height": 844})
    seen = []
    for name in ("rewards:list", "feedback:rubrics", "datasets:list"):
        page.goto(live_server.url + reverse(name, args=[researcher.id]))
        for row in page.evaluate(EMPTY_ROWS):
            seen.append(row["text"])
            assert row["cell"] >= row["inside"] - 0.5, row  # it fell 100 px short ("None yet.")
            assert row["header"] >= row["inside"] - 0.5, row
    assert "None yet." in seen and "No rubrics yet." in seen and len(seen) == 5  # the test's premise: empty tables


def test_the_gold_forms_save_button_sits_beside_its_input(page, live_server, researcher):
    task = make_task(researcher, prompt="Which?", completions=["a", "b"])
    page.goto(live_server.url + reverse("feedback:task_detail", args=[researcher.id, task.id]))
    field = page.locator("#id_gold_ranking").bounding_box()
    save = page.locator("form:has(#id_gold_ranking) button[type=submit]").bounding_box()
    assert 0 <= save["x"] - (field["x"] + field["width"]) <= 16, (field, save)  # it was past the help text
    assert abs((save["y"] + save["height"] / 2) - (field["y"] + field["height"] / 2)) <= 3, (field, save)
    page.fill("#id_gold_ranking", "[[1], [0]]")
    with page.expect_navigation():
        page.locator("form:has(#id_gold_ranking) button[type=submit]").click()
    task.refresh_from_db()
    assert task.gold_ranking == [[1], [0]]  # the form still saves
