"""Every form field's description reaches assistive technology: Django gives an input with
help text ``aria-describedby="<id>_helptext"``, so every page with a form must hold an element
of that id (the run form kept its settings' help in hover titles only, so the reference
pointed at nothing and keyboard and screen-reader users never got the help)."""

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_dataset, make_project, make_user

pytestmark = pytest.mark.django_db


class References(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.described = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if attrs.get("aria-describedby"):
            self.described.append((attrs.get("name") or attrs.get("id"), attrs["aria-describedby"].split()))


PAGES = [
    ("experiments:new", True), ("experiments:new_evaluation", True), ("experiments:new_dpo", True), ("experiments:new_sft", True),
    ("rewards:train", True),
    ("rewards:import_pairs", True), ("rewards:pairs_from_run", True), ("datasets:import", True),
    ("feedback:rubric_create", True), ("feedback:task_import", True), ("feedback:task_from_run", True),
    ("policies:new", True), ("projects:settings", True), ("projects:members", True),
    ("feedback:task_head_to_head", True), ("feedback:tasks", True), ("projects:new", False), ("accounts:tokens", False),
    ("accounts:password-change", False),
]


@pytest.mark.parametrize(("name", "in_project"), PAGES)
def test_each_described_field_points_at_its_description(client, name, in_project):
    user = make_user()
    project = make_project(owner=user)
    make_dataset(project)
    client.login(username=user.username, password=PASSWORD)
    response = client.get(reverse(name, args=[project.id] if in_project else []))
    assert response.status_code == 200
    page = References()
    page.feed(response.content.decode())
    missing = [(field, ref) for field, refs in page.described for ref in refs if ref not in page.ids]
    assert not missing, f"aria-describedby pointing at nothing on {name}: {missing}"


def test_a_run_setting_shows_its_help_in_words(client):
    user = make_user()
    project = make_project(owner=user)
    client.login(username=user.username, password=PASSWORD)
    page = client.get(reverse("experiments:new", args=[project.id])).content.decode()
    help_of_lr = re.search(r'<p class="field-help" id="(id_[a-z_]*lr)_helptext">([^<]+)</p>', page)
    assert help_of_lr and "learning rate" in help_of_lr.group(2).lower()
    assert f'aria-describedby="{help_of_lr.group(1)}_helptext"' in page
