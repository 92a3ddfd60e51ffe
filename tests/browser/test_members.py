"""An owner in a real browser: a new project, a new annotator with a one-time password, who then replaces it."""

import re

import pytest
from django.contrib.auth import get_user_model

from tests.browser.session import log_in
from tests.factories import PASSWORD, make_project, make_user
from webapp.projects.models import Membership, Project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
NEW_PASSWORD = "ada-chose-this-one-77"


def test_owner_creates_a_project_adds_a_new_annotator_who_replaces_the_password(page, live_server):
    owner = make_user()
    log_in(page, live_server, username=owner.username, password=PASSWORD)
    page.click("#new-project")
    page.fill("#project-new input[name=name]", "Summaries <b>v2</b>")
    page.click("#project-new button[type=submit]")
    page.wait_for_url(re.compile(r".*/projects/\d+/$"))
    project = Project.objects.get()
    assert page.inner_text("h1").startswith("Summaries <b>v2</b>")  # text, not markup

    page.click("nav.tabs >> text=Members")
    page.fill("#member-add input[name=username]", "ada")
    page.select_option("#member-add select[name=role]", "annotator")
    page.click("#member-add button[type=submit]")
    assert "No account is named ada" in page.inner_text("#account-offer")
    page.click("#account-offer button[type=submit]")
    password = page.inner_text("#new-account-password").strip()
    assert len(password) >= 24
    assert Membership.objects.get(project=project, user__username="ada").role == "annotator"
    assert password not in page.evaluate("JSON.stringify(localStorage)")
    page.goto(f"{live_server.url}/projects/{project.id}/members/")
    assert password not in page.content()
    page.click("text=Log out")

    log_in(page, live_server, username="ada", password=password)
    assert "Summaries <b>v2</b>" in page.inner_text(".cards")
    page.click("text=Password")
    page.fill("input[name=old_password]", password)
    page.fill("input[name=new_password1]", NEW_PASSWORD)
    page.fill("input[name=new_password2]", NEW_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_selector("text=Your password has been changed")
    assert get_user_model().objects.get(username="ada").check_password(NEW_PASSWORD)


def test_removing_a_member_asks_first(page, live_server):
    owner, ada = make_user(), make_user()
    project = make_project(name="p", owner=owner, annotator=ada)
    log_in(page, live_server, username=owner.username, password=PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/members/")
    remove = f"tr[data-username='{ada.username}'] button.danger"
    asked = []

    def answer(accept):
        def handle(dialog):
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return handle

    page.once("dialog", answer(False))
    page.click(remove)
    page.wait_for_timeout(300)
    assert asked and asked[0].startswith(f"Remove {ada.username} from p?")
    assert Membership.objects.filter(project=project, user=ada).exists()  # dismissed: nothing sent
    page.once("dialog", answer(True))
    with page.expect_navigation():
        page.click(remove)
    assert not Membership.objects.filter(project=project, user=ada).exists()
