"""A refused import in a real browser: the page answers 400 and the browser shows it as before,
the bad line named and the form there to try again; a good file then imports."""

import re

import pytest

from tests.browser.session import log_in
from tests.factories import make_project, make_user
from webapp.datasets.models import PromptDataset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_refused_dataset_import_shows_its_bad_line_at_400_and_a_good_file_then_imports(page, live_server):
    user = make_user()
    project = make_project(researcher=user)
    log_in(page, live_server, user)
    page.goto(f"{live_server.url}/projects/{project.id}/datasets/import/")
    page.fill("input[name=name]", "maths")
    page.set_input_files("input[name=file]", files=[{
        "name": "p.jsonl", "mimeType": "application/jsonl",
        "buffer": b'{"prompt": "2+2?"}\n{"instruction": "<b>no prompt</b>"}\n'}])
    with page.expect_response(re.compile(r".*/datasets/import/$")) as answer:
        page.click("main button[type=submit]")
    assert answer.value.status == 400
    alert = page.inner_text("[role=alert]")
    assert "Nothing was imported" in alert and "Line 2: " in alert
    assert page.locator("main b").count() == 0  # the line's text is escaped, never markup
    assert not PromptDataset.objects.exists()

    page.fill("input[name=name]", "maths")  # the form is there to try again
    page.set_input_files("input[name=file]", files=[{
        "name": "p.jsonl", "mimeType": "application/jsonl", "buffer": b'{"prompt": "2+2?", "reference": "4"}\n'}])
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/datasets/\d+/$"))
    assert PromptDataset.objects.get().name == "maths"
