"""The New-project page and the owners' Members page: who reaches them, what they change."""

import logging
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_user
from webapp.projects.models import Membership, Project, Role

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world():
    owner, researcher, annotator, outsider = make_user(), make_user(), make_user(), make_user()
    a = make_project("A", owner=owner, researcher=researcher, annotator=annotator)
    b_member = make_user()
    b = make_project("B", owner=outsider, annotator=b_member)
    return {"a": a, "b": b, "owner": owner, "researcher": researcher, "annotator": annotator,
            "outsider": outsider, "b_member": b_member}


def login(client, user) -> Client:
    assert client.login(username=user.username, password=PASSWORD)
    return client


def role_of(project, user) -> str | None:
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def members_url(project) -> str:
    return reverse("projects:members", args=[project.id])


# ---------------------------------------------------------------- new project

def test_project_list_links_to_new_project(client):
    body = login(client, make_user()).get(reverse("projects:list")).content.decode()
    assert reverse("projects:new") in body


def test_anonymous_user_is_sent_to_login_from_new_project(client):
    response = client.get(reverse("projects:new"))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


def test_new_project_makes_the_creator_owner_and_opens_it(client):
    user = make_user()
    response = login(client, user).post(reverse("projects:new"), {"name": "Summaries", "description": "tl;dr"})
    project = Project.objects.get(name="Summaries")
    assert response.status_code == 302 and response["Location"] == reverse("projects:overview", args=[project.id])
    assert role_of(project, user) == Role.OWNER
    assert "Members" in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize("name, message", [("   ", "This field is required"), ("?!", "at least one letter or digit")])
def test_new_project_with_a_bad_name_shows_the_error_and_creates_nothing(client, name, message):
    response = login(client, make_user()).post(reverse("projects:new"), {"name": name})
    assert response.status_code == 200 and message in response.content.decode()
    assert not Project.objects.exists()


def test_new_project_with_a_name_the_user_already_has_is_refused(client):
    user = make_user()
    login(client, user).post(reverse("projects:new"), {"name": "Summaries"})
    response = client.post(reverse("projects:new"), {"name": "summaries"})
    assert "already have a project named" in response.content.decode()
    assert Project.objects.count() == 1


def test_project_name_is_shown_as_text(client):
    login(client, make_user()).post(reverse("projects:new"), {"name": "<script>alert(1)</script>"})
    body = client.get(reverse("projects:list")).content.decode()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_new_project_post_without_csrf_token_is_refused():
    client = login(Client(enforce_csrf_checks=True), make_user())
    assert client.post(reverse("projects:new"), {"name": "Summaries"}).status_code == 403
    assert not Project.objects.exists()


# ---------------------------------------------------------------- who reaches the members page

def test_owner_sees_the_members_with_their_roles(client, world):
    body = login(client, world["owner"]).get(members_url(world["a"])).content.decode()
    for who in ("owner", "researcher", "annotator"):
        assert f'data-username="{world[who].username}"' in body
    assert world["b_member"].username not in body


@pytest.mark.parametrize("who", ["researcher", "annotator"])
def test_members_without_the_owner_role_get_403(client, world, who):
    login(client, world[who])
    assert client.get(members_url(world["a"])).status_code == 403
    response = client.post(reverse("projects:member-add", args=[world["a"].id]),
                           {"username": world["outsider"].username, "role": "owner"})
    assert response.status_code == 403 and role_of(world["a"], world["outsider"]) is None


def test_members_tab_is_shown_to_owners_only(client, world):
    overview = reverse("projects:overview", args=[world["a"].id])
    assert members_url(world["a"]) in login(client, world["owner"]).get(overview).content.decode()
    assert members_url(world["a"]) not in login(Client(), world["researcher"]).get(overview).content.decode()


def test_non_members_get_404(client, world):
    login(client, world["owner"])
    assert client.get(members_url(world["b"])).status_code == 404
    response = client.post(reverse("projects:member-remove", args=[world["b"].id, world["b_member"].id]))
    assert response.status_code == 404 and role_of(world["b"], world["b_member"]) == Role.ANNOTATOR


def test_a_member_of_another_project_is_404_through_ones_own_project(client, world):
    login(client, world["owner"])
    response = client.post(reverse("projects:member-role", args=[world["a"].id, world["b_member"].id]),
                           {"role": "owner"})
    assert response.status_code == 404 and role_of(world["b"], world["b_member"]) == Role.ANNOTATOR
    response = client.post(reverse("projects:member-remove", args=[world["a"].id, world["b_member"].id]))
    assert response.status_code == 404 and role_of(world["b"], world["b_member"]) == Role.ANNOTATOR


def test_anonymous_user_is_sent_to_login_from_members(client, world):
    response = client.get(members_url(world["a"]))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


@pytest.mark.parametrize("name, args", [
    ("projects:member-add", []), ("projects:member-account-create", []),
    ("projects:member-role", ["annotator"]), ("projects:member-remove", ["annotator"]),
])
def test_member_writes_without_csrf_token_are_refused(world, name, args):
    client = login(Client(enforce_csrf_checks=True), world["owner"])
    url = reverse(name, args=[world["a"].id, *[world[a].id for a in args]])
    response = client.post(url, {"username": "newcomer", "role": "owner"})
    assert response.status_code == 403
    assert role_of(world["a"], world["annotator"]) == Role.ANNOTATOR
    assert not User.objects.filter(username="newcomer").exists()


def test_member_writes_answer_only_post(client, world):
    login(client, world["owner"])
    assert client.get(reverse("projects:member-add", args=[world["a"].id])).status_code == 405


# ---------------------------------------------------------------- adding

def test_owner_adds_an_existing_account_by_username(client, world):
    response = login(client, world["owner"]).post(
        reverse("projects:member-add", args=[world["a"].id]),
        {"username": world["b_member"].username, "role": "researcher"}, follow=True)
    assert role_of(world["a"], world["b_member"]) == Role.RESEARCHER
    assert f"Added {world['b_member'].username} as researcher" in response.content.decode()


def test_adding_an_existing_member_again_shows_the_error(client, world):
    response = login(client, world["owner"]).post(
        reverse("projects:member-add", args=[world["a"].id]), {"username": world["annotator"].username, "role": "owner"})
    assert "already a member" in response.content.decode()
    assert role_of(world["a"], world["annotator"]) == Role.ANNOTATOR


def test_unknown_username_is_offered_as_a_new_account_without_creating_it(client, world):
    response = login(client, world["owner"]).post(
        reverse("projects:member-add", args=[world["a"].id]), {"username": "ada", "role": "annotator"})
    body = response.content.decode()
    assert 'id="account-offer"' in body and reverse("projects:member-account-create", args=[world["a"].id]) in body
    assert not User.objects.filter(username="ada").exists()


def test_unknown_username_that_cannot_be_one_is_not_offered(client, world):
    response = login(client, world["owner"]).post(
        reverse("projects:member-add", args=[world["a"].id]), {"username": "<b>x</b>", "role": "annotator"})
    body = response.content.decode()
    assert 'id="account-offer"' not in body and "Enter a valid username" in body
    assert "<b>x</b>" not in body


def test_new_account_password_is_shown_once_and_stored_only_as_a_hash(client, world, caplog):
    login(client, world["owner"])
    with caplog.at_level(logging.DEBUG):
        response = client.post(reverse("projects:member-account-create", args=[world["a"].id]),
                               {"username": "ada", "role": "annotator"})
    assert response.status_code == 200
    password = response.context["created"]["password"]
    user = User.objects.get(username="ada")
    assert password in response.content.decode() and user.check_password(password)
    assert password not in user.password
    assert "no-store" in response["Cache-Control"]
    assert password not in caplog.text
    assert role_of(world["a"], user) == Role.ANNOTATOR
    # nowhere to be read again: not on the next page, not in the session or its messages
    assert password not in client.get(members_url(world["a"])).content.decode()
    assert password not in str(dict(client.session))
    # the new member logs in with it
    assert Client().login(username="ada", password=password)


def test_new_account_for_a_taken_username_creates_nothing(client, world):
    login(client, world["owner"])
    response = client.post(reverse("projects:member-account-create", args=[world["a"].id]),
                           {"username": world["annotator"].username.upper(), "role": "owner"})
    assert "already exists" in response.content.decode()
    assert User.objects.filter(username__iexact=world["annotator"].username).count() == 1



def test_an_account_another_owner_created_is_added_only_after_naming_its_creator(client, world):
    """Mallory creates "carol" in her project B and keeps the password; the owner of A who adds
    carol is told who created the account before anything changes, and confirms in a second POST."""
    login(client, world["outsider"]).post(reverse("projects:member-account-create", args=[world["b"].id]),
                                          {"username": "carol", "role": "annotator"})
    carol = User.objects.get(username="carol")
    client = login(Client(), world["owner"])
    response = client.post(reverse("projects:member-add", args=[world["a"].id]),
                           {"username": "carol", "role": "researcher"})
    body = response.content.decode()
    assert 'id="creator-confirm"' in body and f"created by {world['outsider'].username}" in body
    assert "project &#x27;B&#x27;" in body
    assert role_of(world["a"], carol) is None
    response = client.post(reverse("projects:member-add", args=[world["a"].id]), {
        "username": "carol", "role": "researcher", "account_created_by": world["outsider"].username}, follow=True)
    assert "Added carol as researcher" in response.content.decode()
    assert role_of(world["a"], carol) == Role.RESEARCHER



# ---------------------------------------------------------------- leaving

@pytest.mark.parametrize("who", ["researcher", "annotator"])
def test_a_member_leaves_a_project_and_loses_access(client, world, who):
    login(client, world[who])
    assert 'id="leave-project"' in client.get(reverse("projects:overview", args=[world["a"].id])).content.decode()
    response = client.post(reverse("projects:leave", args=[world["a"].id]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("projects:list")
    assert f"You left {world['a'].name}" in response.content.decode()
    assert role_of(world["a"], world[who]) is None
    assert client.get(reverse("projects:overview", args=[world["a"].id])).status_code == 404


def test_the_only_owner_cannot_leave(client, world):
    response = login(client, world["owner"]).post(reverse("projects:leave", args=[world["a"].id]), follow=True)
    assert "You are still a member" in response.content.decode() and "only owner" in response.content.decode()
    assert role_of(world["a"], world["owner"]) == Role.OWNER


def test_leaving_answers_only_post_with_a_csrf_token_and_404_to_non_members(client, world):
    url = reverse("projects:leave", args=[world["a"].id])
    assert login(client, world["annotator"]).get(url).status_code == 405
    assert login(Client(), world["outsider"]).post(url).status_code == 404
    strict = Client(enforce_csrf_checks=True)
    login(strict, world["annotator"])
    assert strict.post(url).status_code == 403
    assert role_of(world["a"], world["annotator"]) == Role.ANNOTATOR


# ---------------------------------------------------------------- roles and removal

def test_owner_changes_a_role(client, world):
    login(client, world["owner"]).post(reverse("projects:member-role", args=[world["a"].id, world["annotator"].id]),
                                       {"role": "researcher"})
    assert role_of(world["a"], world["annotator"]) == Role.RESEARCHER


def test_an_unknown_role_changes_nothing(client, world):
    response = login(client, world["owner"]).post(
        reverse("projects:member-role", args=[world["a"].id, world["annotator"].id]), {"role": "admin"}, follow=True)
    assert "Choose one of the roles" in response.content.decode()
    assert role_of(world["a"], world["annotator"]) == Role.ANNOTATOR


def test_the_only_owner_cannot_demote_themselves(client, world):
    response = login(client, world["owner"]).post(
        reverse("projects:member-role", args=[world["a"].id, world["owner"].id]), {"role": "annotator"}, follow=True)
    assert "only owner" in response.content.decode()
    assert role_of(world["a"], world["owner"]) == Role.OWNER


def test_the_only_owner_cannot_remove_themselves(client, world):
    response = login(client, world["owner"]).post(
        reverse("projects:member-remove", args=[world["a"].id, world["owner"].id]), follow=True)
    assert "only owner" in response.content.decode()
    assert role_of(world["a"], world["owner"]) == Role.OWNER


def test_owner_removes_a_member_whose_account_stays(client, world):
    login(client, world["owner"]).post(reverse("projects:member-remove", args=[world["a"].id, world["annotator"].id]))
    assert role_of(world["a"], world["annotator"]) is None
    assert User.objects.filter(pk=world["annotator"].pk).exists()


def test_an_owner_who_steps_down_lands_on_the_overview(client, world):
    Membership.objects.filter(project=world["a"], user=world["researcher"]).update(role=Role.OWNER)
    response = login(client, world["owner"]).post(
        reverse("projects:member-role", args=[world["a"].id, world["owner"].id]), {"role": "researcher"})
    assert response["Location"] == reverse("projects:overview", args=[world["a"].id])
    assert role_of(world["a"], world["owner"]) == Role.RESEARCHER


def test_the_overview_counts_in_the_singular_and_the_plural(client, world):
    body = login(client, world["owner"]).get(reverse("projects:overview", args=[world["a"].id])).content.decode()
    flat = " ".join(body.split())
    assert "3</span> members" in flat and "0</span> reward models" in flat
    Membership.objects.filter(project=world["a"]).exclude(user=world["owner"]).delete()
    body = client.get(reverse("projects:overview", args=[world["a"].id])).content.decode()
    assert "1</span> member<" in " ".join(body.split())


def _headings(html: str) -> list[str]:
    return re.findall(r"<(h[1-6])[^>]*>(.*?)</\1>", html, re.DOTALL)


def test_the_projects_list_and_overview_headings_hold_no_links(client, world):
    """A heading named itself by the buttons inside it ("Your projects New project", "Recent runs
    New run all runs"), and "all runs" was a link in the heading's bold, told apart by colour alone."""
    client.login(username=world["owner"].username, password=PASSWORD)
    listing = client.get(reverse("projects:list")).content.decode()
    overview = client.get(reverse("projects:overview", args=[world["a"].id])).content.decode()
    for html in (listing, overview):
        assert [h for h in _headings(html) if "<a" in h[1] and 'class="button' in h[1]] == []
    assert ("h1", "Your projects") in _headings(listing) and 'id="new-project"' in listing
    assert ("h2", "Recent runs") in _headings(overview)
    assert f'href="{reverse("experiments:new", args=[world["a"].id])}">New run</a>' in overview
    assert f'<a href="{reverse("experiments:list", args=[world["a"].id])}">All runs</a>' in overview
