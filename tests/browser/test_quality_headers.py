"""The quality page's symbol headers read as written: tables' headers are uppercased by the style
sheet, which turned τ-b into "Τ-B" (a capital tau, read as T-B) and Krippendorff's α into "Α"
(a capital alpha, read as the letter A)."""

import pytest

from tests.browser.session import log_in
from tests.factories import make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_greek_headers_of_the_quality_page_keep_their_case(page, live_server):
    owner = make_user()
    project = make_project(owner=owner)
    log_in(page, live_server, owner)
    page.goto(f"{live_server.url}/projects/{project.id}/feedback/quality/")
    shown = page.eval_on_selector_all("th", "els => els.map(e => e.innerText.trim())")  # as rendered, case and all
    assert "τ-b" in shown and "α" in shown
    assert "ANNOTATOR" in shown  # the other headers are still uppercased
