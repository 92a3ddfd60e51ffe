"""Projects and memberships through their services: names, roles, and the owner a project always keeps."""

import pytest
from django.contrib.auth import get_user_model
from django.http import Http404

from tests.factories import make_project, make_user
from webapp.projects.errors import CreatorNotConfirmed, LastOwnerError, ProjectError
from webapp.projects.models import Membership, Project, Role
from webapp.projects.services import (
    member_account_create,
    membership_add,
    membership_remove,
    membership_role_set,
    project_create,
)

pytestmark = pytest.mark.django_db
User = get_user_model()


def role_of(project, user) -> str:
    return Membership.objects.get(project=project, user=user).role


# ---------------------------------------------------------------- project_create

def test_project_create_makes_the_creator_its_only_owner():
    user = make_user()
    project = project_create(name="  Helpful assistant ", owner=user, description="d")
    assert project.name == "Helpful assistant" and project.slug == "helpful-assistant"
    assert list(project.memberships.values_list("user_id", "role")) == [(user.id, Role.OWNER)]


def test_same_name_for_another_owner_gets_a_numbered_slug():
    first = project_create(name="Summaries", owner=make_user())
    second = project_create(name="Summaries", owner=make_user())
    assert (first.slug, second.slug) == ("summaries", "summaries-2")


def test_name_already_used_by_one_of_the_owners_projects_is_refused_whatever_its_case():
    user = make_user()
    project_create(name="Summaries", owner=user)
    with pytest.raises(ProjectError, match="already have a project named") as exc:
        project_create(name="SUMMARIES", owner=user)
    assert exc.value.field == "name" and Project.objects.count() == 1


@pytest.mark.parametrize("name, message", [
    ("", "needs a name"),
    ("   ", "needs a name"),
    ("x" * 121, "at most 120 characters"),
    ("!!! ---", "at least one letter or digit"),
    ("bad\x00name", "NUL"),
])
def test_bad_names_are_refused_naming_the_field(name, message):
    with pytest.raises(ProjectError, match=message) as exc:
        project_create(name=name, owner=make_user())
    assert exc.value.field == "name" and not Project.objects.exists()


def test_a_name_without_ascii_letters_still_gets_a_slug():
    project = project_create(name="日本語", owner=make_user())
    assert project.slug == "project"


# ---------------------------------------------------------------- membership_add

def test_membership_add_gives_the_role():
    owner, newcomer = make_user(), make_user()
    project = make_project(owner=owner)
    membership_add(project=project, user=newcomer, role=Role.ANNOTATOR)
    assert role_of(project, newcomer) == Role.ANNOTATOR


def test_adding_a_member_twice_is_refused_and_keeps_the_role():
    owner, annotator = make_user(), make_user()
    project = make_project(owner=owner, annotator=annotator)
    with pytest.raises(ProjectError, match="already a member") as exc:
        membership_add(project=project, user=annotator, role=Role.OWNER)
    assert exc.value.field == "username" and role_of(project, annotator) == Role.ANNOTATOR


def test_unknown_role_is_refused():
    project = make_project(owner=make_user())
    with pytest.raises(ProjectError, match="role must be one of") as exc:
        membership_add(project=project, user=make_user(), role="admin")
    assert exc.value.field == "role"


def test_deactivated_account_is_not_added():
    project, user = make_project(owner=make_user()), make_user()
    User.objects.filter(pk=user.pk).update(is_active=False)
    user.refresh_from_db()
    with pytest.raises(ProjectError, match="deactivated"):
        membership_add(project=project, user=user, role=Role.ANNOTATOR)



# ---------------------------------------------------------------- accounts someone else created

def test_an_account_another_owner_created_needs_its_creator_named():
    """An owner who creates an account sees its password; adding it elsewhere names them first."""
    mallory, alice = make_user(), make_user()
    theirs, ours = make_project(owner=mallory), make_project(owner=alice)
    membership, _ = member_account_create(project=theirs, username="carol", role=Role.ANNOTATOR, created_by=mallory)
    carol = membership.user
    with pytest.raises(CreatorNotConfirmed) as exc:
        membership_add(project=ours, user=carol, role=Role.RESEARCHER, added_by=alice)
    assert exc.value.creator == mallory.username and exc.value.field == "username"
    assert f"created by {mallory.username}" in exc.value.message and repr(theirs.name) in exc.value.message
    assert not Membership.objects.filter(project=ours, user=carol).exists()
    with pytest.raises(CreatorNotConfirmed):  # naming someone else is no confirmation
        membership_add(project=ours, user=carol, role=Role.RESEARCHER, added_by=alice, account_created_by=alice.username)
    membership_add(project=ours, user=carol, role=Role.RESEARCHER, added_by=alice,
                   account_created_by=f" {mallory.username.upper()} ")
    assert role_of(ours, carol) == Role.RESEARCHER


def test_the_creator_and_accounts_nobody_created_for_another_need_no_confirmation():
    mallory, other = make_user(), make_user()
    theirs, second = make_project(owner=mallory), make_project(owner=mallory)
    carol = member_account_create(project=theirs, username="carol", role=Role.ANNOTATOR, created_by=mallory)[0].user
    membership_add(project=second, user=carol, role=Role.ANNOTATOR, added_by=mallory)
    membership_add(project=second, user=other, role=Role.ANNOTATOR, added_by=mallory)
    assert role_of(second, carol) == role_of(second, other) == Role.ANNOTATOR


def test_the_creator_stays_named_after_their_account_is_deleted():
    mallory, alice = make_user(), make_user()
    theirs, ours = make_project(owner=mallory), make_project(owner=alice)
    carol = member_account_create(project=theirs, username="carol", role=Role.ANNOTATOR, created_by=mallory)[0].user
    name = mallory.username
    theirs.delete()
    mallory.delete()
    with pytest.raises(CreatorNotConfirmed, match=f"created by {name}"):
        membership_add(project=ours, user=carol, role=Role.ANNOTATOR, added_by=alice)


# ---------------------------------------------------------------- the last owner

def test_the_only_owner_cannot_be_demoted():
    owner = make_user()
    project = make_project(owner=owner)
    with pytest.raises(LastOwnerError, match="only owner"):
        membership_role_set(membership=Membership.objects.get(user=owner), role=Role.RESEARCHER)
    assert role_of(project, owner) == Role.OWNER


def test_the_only_owner_cannot_be_removed():
    owner = make_user()
    project = make_project(owner=owner)
    with pytest.raises(LastOwnerError, match="only owner"):
        membership_remove(membership=Membership.objects.get(user=owner))
    assert role_of(project, owner) == Role.OWNER


def test_an_owner_whose_account_is_deactivated_does_not_count_as_another_owner():
    active, deactivated = make_user(), make_user()
    project = make_project(owner=[active, deactivated])
    deactivated.is_active = False
    deactivated.save()
    mine = Membership.objects.get(project=project, user=active)
    with pytest.raises(LastOwnerError, match="only owner with an active account"):
        membership_role_set(membership=mine, role=Role.RESEARCHER)
    with pytest.raises(LastOwnerError, match="only owner with an active account"):
        membership_remove(membership=mine)
    assert role_of(project, active) == Role.OWNER


def test_an_owner_can_step_down_or_leave_when_another_owner_remains():
    first, second = make_user(), make_user()
    project = make_project(owner=[first, second])
    membership_role_set(membership=Membership.objects.get(user=first), role=Role.RESEARCHER)
    assert role_of(project, first) == Role.RESEARCHER
    with pytest.raises(LastOwnerError):
        membership_remove(membership=Membership.objects.get(user=second))
    membership_role_set(membership=Membership.objects.get(user=first), role=Role.OWNER)
    membership_remove(membership=Membership.objects.get(user=second))
    assert list(project.memberships.values_list("user_id", flat=True)) == [first.id]


def test_a_stale_membership_answers_404():
    owner, annotator = make_user(), make_user()
    project = make_project(owner=owner, annotator=annotator)
    membership = Membership.objects.get(project=project, user=annotator)
    Membership.objects.filter(pk=membership.pk).delete()
    with pytest.raises(Http404):
        membership_role_set(membership=membership, role=Role.RESEARCHER)


# ---------------------------------------------------------------- new accounts

def test_member_account_create_returns_a_strong_password_that_only_a_hash_keeps():
    project = make_project(owner=make_user())
    membership, password = member_account_create(project=project, username="ada", role=Role.ANNOTATOR)
    user = User.objects.get(username="ada")
    assert membership.user == user and membership.role == Role.ANNOTATOR
    assert len(password) >= 24
    assert user.check_password(password)
    assert password not in user.password and user.password.split("$")[0] in {"pbkdf2_sha256", "argon2", "md5"}


def test_two_new_accounts_get_different_passwords():
    project = make_project(owner=make_user())
    _, first = member_account_create(project=project, username="ada", role=Role.ANNOTATOR)
    _, second = member_account_create(project=project, username="bob", role=Role.ANNOTATOR)
    assert first != second


@pytest.mark.parametrize("username, message", [
    ("", "required"),
    ("has space", "Enter a valid username"),
    ("<script>", "Enter a valid username"),
    ("x" * 151, "at most 150"),
])
def test_invalid_usernames_create_no_account(username, message):
    project = make_project(owner=make_user())
    before = User.objects.count()
    with pytest.raises(ProjectError, match=message) as exc:
        member_account_create(project=project, username=username, role=Role.ANNOTATOR)
    assert exc.value.field == "username" and User.objects.count() == before


def test_a_username_taken_in_another_case_is_refused():
    make_user("alice")
    with pytest.raises(ProjectError, match="'alice' already exists"):
        member_account_create(project=make_project(owner=make_user()), username="Alice", role=Role.ANNOTATOR)


def test_bad_role_creates_no_account_either():
    with pytest.raises(ProjectError, match="role"):
        member_account_create(project=make_project(owner=make_user()), username="ada", role="boss")
    assert not User.objects.filter(username="ada").exists()


def test_an_account_whose_membership_fails_is_not_kept(monkeypatch):
    from webapp.projects import services

    def refuse(**kwargs):
        raise ProjectError("refused", field="username")

    monkeypatch.setattr(services, "membership_add", refuse)
    with pytest.raises(ProjectError):
        services.member_account_create(project=make_project(owner=make_user()), username="ada", role=Role.ANNOTATOR)
    assert not User.objects.filter(username="ada").exists()
