"""Creating projects and managing members over the API: owners write, others are refused, other projects are 404."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from tests.factories import make_project
from tests.webapp.api.conftest import api_user, token_client
from webapp.projects.models import Membership, Project, Role
from webapp.projects.services import member_account_create

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def team():
    users = {role: api_user() for role in ("owner", "researcher", "annotator", "outsider", "other_member")}
    project = make_project(owner=users["owner"], researcher=users["researcher"], annotator=users["annotator"])
    other = make_project(owner=users["outsider"], annotator=users["other_member"])
    return users, project, other


def role_of(project, user) -> str | None:
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def members(project) -> str:
    return f"/api/v1/projects/{project.id}/members/"


def member(project, user) -> str:
    return f"/api/v1/projects/{project.id}/members/{user.id}/"


def assert_error(response, status: int, code: str, field: str | None = None):
    assert response.status_code == status, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == code
    if field:
        assert field in error["fields"], error


# ---------------------------------------------------------------- projects

def test_create_project_makes_the_caller_owner(owner, api):
    response = api.post("/api/v1/projects/", {"name": "Summaries", "description": "tl;dr"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Summaries" and body["slug"] == "summaries" and body["role"] == "owner"
    assert role_of(Project.objects.get(pk=body["id"]), owner) == Role.OWNER
    assert [p["id"] for p in api.get("/api/v1/projects/").json()["results"]] == [body["id"]]


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 121}, {"name": "?!"},
                                     {"name": 5 * [1]}])
def test_create_project_with_a_bad_name_answers_400_on_name(api, payload):
    assert_error(api.post("/api/v1/projects/", payload, format="json"), 400, "invalid", "name")
    assert not Project.objects.exists()


def test_create_project_with_a_name_the_caller_already_has_answers_400(api):
    api.post("/api/v1/projects/", {"name": "Summaries"}, format="json")
    response = api.post("/api/v1/projects/", {"name": "summaries"}, format="json")
    assert_error(response, 400, "invalid", "name")
    assert "already have a project" in response.json()["error"]["message"]


def test_create_project_needs_credentials():
    assert_error(APIClient().post("/api/v1/projects/", {"name": "x"}, format="json"), 401, "not_authenticated")


def test_session_writes_need_the_csrf_token():
    user = User.objects.create_user(username="browser")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert_error(client.post("/api/v1/projects/", {"name": "x"}, format="json"), 403, "permission_denied")
    assert not Project.objects.exists()


# ---------------------------------------------------------------- reading members

def test_owner_and_researcher_list_members_in_join_order(team):
    users, project, _ = team
    for who in ("owner", "researcher"):
        rows = token_client(users[who]).get(members(project)).json()["results"]
        assert [(r["user"], r["username"], r["role"]) for r in rows] == [
            (users[w].id, users[w].username, w) for w in ("owner", "researcher", "annotator")]


def test_annotator_gets_403_and_outsider_404_on_the_member_list(team):
    users, project, _ = team
    assert_error(token_client(users["annotator"]).get(members(project)), 403, "permission_denied")
    assert_error(token_client(users["outsider"]).get(members(project)), 404, "not_found")


# ---------------------------------------------------------------- adding

def test_owner_adds_an_existing_account(team):
    users, project, _ = team
    response = token_client(users["owner"]).post(
        members(project), {"username": users["other_member"].username, "role": "researcher"}, format="json")
    assert response.status_code == 201
    assert response.json() | {"created_at": None} == {
        "user": users["other_member"].id, "username": users["other_member"].username, "role": "researcher",
        "created_at": None}
    assert role_of(project, users["other_member"]) == Role.RESEARCHER


def test_role_defaults_to_annotator(team):
    users, project, _ = team
    token_client(users["owner"]).post(members(project), {"username": users["other_member"].username}, format="json")
    assert role_of(project, users["other_member"]) == Role.ANNOTATOR


def test_unknown_username_answers_400_and_creates_no_account(team):
    users, project, _ = team
    before = User.objects.count()
    response = token_client(users["owner"]).post(members(project), {"username": "ada"}, format="json")
    assert_error(response, 400, "invalid", "username")
    assert "Members page" in response.json()["error"]["message"]
    assert User.objects.count() == before


@pytest.mark.parametrize("payload, field", [
    ({"role": "owner"}, "username"), ({"username": "", "role": "owner"}, "username"),
    ({"username": "x", "role": "admin"}, "role"), ({"username": ["x"]}, "username"),
])
def test_bad_member_payloads_answer_400_naming_the_field(team, payload, field):
    users, project, _ = team
    assert_error(token_client(users["owner"]).post(members(project), payload, format="json"), 400, "invalid", field)


def test_adding_a_member_twice_answers_400_on_username(team):
    users, project, _ = team
    response = token_client(users["owner"]).post(
        members(project), {"username": users["annotator"].username, "role": "owner"}, format="json")
    assert_error(response, 400, "invalid", "username")
    assert role_of(project, users["annotator"]) == Role.ANNOTATOR


def test_an_account_another_owner_created_answers_409_until_its_creator_is_named(team):
    users, project, other = team
    carol = member_account_create(project=other, username="carol", role=Role.ANNOTATOR,
                                  created_by=users["outsider"])[0].user
    owner = token_client(users["owner"])
    response = owner.post(members(project), {"username": "carol", "role": "researcher"}, format="json")
    assert_error(response, 409, "conflict")
    message = response.json()["error"]["message"]
    assert f"created by {users['outsider'].username}" in message
    assert f'"account_created_by": "{users["outsider"].username}"' in message
    assert role_of(project, carol) is None
    response = owner.post(members(project), {"username": "carol", "role": "researcher",
                                             "account_created_by": users["outsider"].username}, format="json")
    assert response.status_code == 201 and role_of(project, carol) == Role.RESEARCHER


@pytest.mark.parametrize("who", ["researcher", "annotator"])
def test_only_owners_add_members(team, who):
    users, project, _ = team
    response = token_client(users[who]).post(
        members(project), {"username": users["other_member"].username, "role": "owner"}, format="json")
    assert_error(response, 403, "permission_denied")
    assert role_of(project, users["other_member"]) is None


# ---------------------------------------------------------------- changing and removing

def test_owner_changes_a_role(team):
    users, project, _ = team
    response = token_client(users["owner"]).patch(member(project, users["annotator"]), {"role": "owner"}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "owner"
    assert role_of(project, users["annotator"]) == Role.OWNER


@pytest.mark.parametrize("payload", [{}, {"role": "boss"}, {"role": None}])
def test_bad_role_change_answers_400_on_role(team, payload):
    users, project, _ = team
    response = token_client(users["owner"]).patch(member(project, users["annotator"]), payload, format="json")
    assert_error(response, 400, "invalid", "role")


def test_the_last_owner_can_be_neither_demoted_nor_removed(team):
    users, project, _ = team
    api = token_client(users["owner"])
    response = api.patch(member(project, users["owner"]), {"role": "researcher"}, format="json")
    assert_error(response, 409, "conflict")
    assert "only owner" in response.json()["error"]["message"]
    assert_error(api.delete(member(project, users["owner"])), 409, "conflict")
    assert role_of(project, users["owner"]) == Role.OWNER


def test_owner_removes_a_member(team):
    users, project, _ = team
    response = token_client(users["owner"]).delete(member(project, users["annotator"]))
    assert response.status_code == 204 and role_of(project, users["annotator"]) is None
    assert_error(token_client(users["owner"]).get(member(project, users["annotator"])), 404, "not_found")


@pytest.mark.parametrize("who", ["researcher", "annotator"])
def test_only_owners_change_or_remove_members(team, who):
    users, project, _ = team
    api = token_client(users[who])
    assert_error(api.patch(member(project, users["annotator"]), {"role": "owner"}, format="json"), 403,
                 "permission_denied")
    assert_error(api.delete(member(project, users["annotator"])), 403, "permission_denied")
    assert role_of(project, users["annotator"]) == Role.ANNOTATOR


def test_another_projects_members_are_404_whichever_way_they_are_reached(team):
    users, project, other = team
    api = token_client(users["owner"])
    for url in (member(project, users["other_member"]), member(other, users["other_member"])):
        assert_error(api.get(url), 404, "not_found")
        assert_error(api.patch(url, {"role": "owner"}, format="json"), 404, "not_found")
        assert_error(api.delete(url), 404, "not_found")
    assert_error(api.post(members(other), {"username": users["owner"].username}, format="json"), 404, "not_found")
    assert role_of(other, users["other_member"]) == Role.ANNOTATOR and role_of(other, users["owner"]) is None
