"""Owners change a project's name, description and annotation guidelines, on its Settings page
and over the API; nobody else can."""

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_task, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.projects.errors import ProjectError
from webapp.projects.models import Project
from webapp.projects.services import project_create, project_update

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_an_update_changes_only_the_fields_given_and_keeps_the_slug():
    owner = make_user()
    project = project_create(name="Arithmetic", owner=owner, description="d", annotation_guidelines="g")
    project_update(project=project, user=owner, annotation_guidelines="Prefer **correct** answers.")
    project.refresh_from_db()
    assert (project.name, project.description, project.annotation_guidelines, project.slug) == (
        "Arithmetic", "d", "Prefer **correct** answers.", "arithmetic")
    project_update(project=project, user=owner, name="  Arithmetic v2 ")
    project.refresh_from_db()
    assert (project.name, project.slug) == ("Arithmetic v2", "arithmetic")


@pytest.mark.parametrize("fields, field, words", [
    ({"name": ""}, "name", "needs a name"),
    ({"name": "---"}, "name", "at least one letter or digit"),
    ({"name": "x" * 121}, "name", "at most 120"),
    ({"name": "other"}, "name", "you already have a project named 'other'"),
    ({"annotation_guidelines": "a\x00b"}, "annotation_guidelines", "NUL"),
    ({"description": "ok", "name": "OTHER"}, "name", "already have"),
])
def test_bad_input_names_its_field_and_changes_nothing(fields, field, words):
    owner = make_user()
    project = project_create(name="mine", owner=owner, description="before")
    project_create(name="Other", owner=owner)
    with pytest.raises(ProjectError) as info:
        project_update(project=project, user=owner, **fields)
    assert info.value.field == field and words in info.value.message
    project.refresh_from_db()
    assert (project.name, project.description) == ("mine", "before")


def test_a_name_is_checked_against_the_callers_projects_only_and_its_own_case_may_change():
    owner, other = make_user(), make_user()
    project = project_create(name="mine", owner=owner)
    project_create(name="Theirs", owner=other)
    project_update(project=project, user=owner, name="theirs")  # not one of the owner's projects
    project_update(project=project, user=owner, name="THEIRS")  # its own name, another case
    project.refresh_from_db()
    assert project.name == "THEIRS"


# ---------------------------------------------------------------- the page

@pytest.fixture
def team():
    owner, researcher, annotator = make_user(), make_user(), make_user()
    return make_project("A", owner=owner, researcher=researcher, annotator=annotator), owner, researcher, annotator


def test_an_owner_edits_the_guidelines_and_annotators_see_them_sanitised(client, team):
    project, owner, _, annotator = team
    make_task(project)
    url = reverse("projects:settings", args=[project.id])
    assert client.login(username=owner.username, password=PASSWORD)
    assert url in client.get(reverse("projects:overview", args=[project.id])).content.decode()  # the tab
    response = client.post(url, {"name": "A", "description": "",
                                 "annotation_guidelines": "Prefer the **correct** one.<script>alert(1)</script>"})
    assert response.status_code == 302 and response.url == url
    body = client.get(url).content.decode()
    assert "Saved the project&#x27;s settings." in body
    assert "<strong>correct</strong>" in body and "<script>alert(1)" not in body  # the preview
    client.logout()
    assert client.login(username=annotator.username, password=PASSWORD)
    annotate = client.get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert "<strong>correct</strong>" in annotate and "<script>alert(1)" not in annotate


def test_a_refused_change_is_shown_on_its_field_and_nothing_changes(client, team):
    project, owner, _, _ = team
    make_project("B", owner=owner)
    assert client.login(username=owner.username, password=PASSWORD)
    response = client.post(reverse("projects:settings", args=[project.id]),
                           {"name": "b", "description": "new", "annotation_guidelines": ""})
    assert response.status_code == 400 and "You already have a project named &#x27;b&#x27;." in response.content.decode()
    project.refresh_from_db()
    assert (project.name, project.description) == ("A", "")


def test_only_owners_reach_the_settings_and_outsiders_get_404(client, team):
    project, _, researcher, annotator = team
    url = reverse("projects:settings", args=[project.id])
    for user in (researcher, annotator):
        assert client.login(username=user.username, password=PASSWORD)
        assert "Settings</a>" not in client.get(reverse("projects:overview", args=[project.id])).content.decode()
        assert client.get(url).status_code == 403
        assert client.post(url, {"name": "taken over"}).status_code == 403
    assert client.login(username=make_user().username, password=PASSWORD)
    assert client.post(url, {"name": "taken over"}).status_code == 404
    assert Project.objects.get(pk=project.pk).name == "A"


# ---------------------------------------------------------------- the API

def test_api_owners_patch_any_of_the_three_fields():
    owner = api_user()
    project = project_create(name="A", owner=owner, description="d")
    api = token_client(owner)
    response = api.patch(f"/api/v1/projects/{project.id}/", {"annotation_guidelines": "Rank ties as ties."},
                         format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["annotation_guidelines"] == "Rank ties as ties." and response.json()["description"] == "d"
    assert response.json()["role"] == "owner" and response.json()["slug"] == "a"
    bad = api.patch(f"/api/v1/projects/{project.id}/", {"name": "   "}, format="json")
    assert bad.status_code == 400 and "name" in bad.json()["error"]["fields"]
    assert api.patch(f"/api/v1/projects/{project.id}/", {"description": None}, format="json").status_code == 400
    assert Project.objects.get(pk=project.pk).description == "d"


def test_api_researchers_and_annotators_get_403_and_outsiders_404():
    owner, researcher, annotator, outsider = api_user(), api_user(), api_user(), api_user()
    project = make_project("A", owner=owner, researcher=researcher, annotator=annotator)
    for user, status in ((researcher, 403), (annotator, 403), (outsider, 404)):
        response = token_client(user).patch(f"/api/v1/projects/{project.id}/", {"name": "mine now"}, format="json")
        assert response.status_code == status
    assert Project.objects.get(pk=project.pk).name == "A"
