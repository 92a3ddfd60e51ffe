"""A password changed or set, by its owner or by someone else, revokes the user's API tokens
(kept as records, marked revoked), in the same transaction as the new password."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from tests.factories import PASSWORD, make_user
from webapp.accounts.models import ApiToken
from webapp.accounts.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db
URL = reverse("accounts:password-change")
NEW = "a-new-passphrase-of-mine-42"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def api_status(raw: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get("/api/v1/projects/").status_code


def two_tokens_and_a_revoked_one(user):
    _, first = api_token_create(user=user, name="notebook")
    _, second = api_token_create(user=user, name="cluster", expires_in_days=30)
    old, _ = api_token_create(user=user, name="old")
    api_token_revoke(token=old)
    return first, second


def test_the_form_offers_the_box_ticked_with_the_number_of_active_tokens(client):
    user = make_user()
    two_tokens_and_a_revoked_one(user)
    client.login(username=user.username, password=PASSWORD)
    body = client.get(URL).content.decode()
    assert "Also revoke my API tokens (2 active)" in body
    assert 'name="revoke_api_tokens"' in body and "checked" in body.split('name="revoke_api_tokens"')[1].split(">")[0]


def test_a_password_change_revokes_the_tokens_and_says_how_many(client):
    user = make_user()
    first, second = two_tokens_and_a_revoked_one(user)
    assert api_status(first) == 200
    client.login(username=user.username, password=PASSWORD)
    response = client.post(URL, {"old_password": PASSWORD, "new_password1": NEW, "new_password2": NEW,
                                 "revoke_api_tokens": "on"}, follow=True)
    assert "Your password has been changed and 2 API tokens revoked" in response.content.decode()
    assert api_status(first) == 401 and api_status(second) == 401
    tokens = ApiToken.objects.filter(user=user)
    assert tokens.count() == 3 and not tokens.filter(revoked_at__isnull=True).exists()  # kept, marked revoked
    assert "revoked" in client.get(reverse("accounts:tokens")).content.decode()


def test_unticking_the_box_keeps_the_tokens(client):
    user = make_user()
    first, _ = two_tokens_and_a_revoked_one(user)
    client.login(username=user.username, password=PASSWORD)
    response = client.post(URL, {"old_password": PASSWORD, "new_password1": NEW, "new_password2": NEW}, follow=True)
    body = response.content.decode()
    assert "Your password has been changed." in body and "revoked" not in body.split("Your password")[1][:80]
    assert api_status(first) == 200
    assert get_user_model().objects.get(pk=user.pk).check_password(NEW)


def test_a_refused_change_revokes_nothing(client):
    user = make_user()
    first, _ = two_tokens_and_a_revoked_one(user)
    client.login(username=user.username, password=PASSWORD)
    client.post(URL, {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW, "revoke_api_tokens": "on"})
    assert api_status(first) == 200


def test_other_users_tokens_are_untouched():
    from webapp.accounts.services import user_password_set

    user, other = make_user(), make_user()
    _, theirs = api_token_create(user=other, name="theirs")
    two_tokens_and_a_revoked_one(user)
    assert user_password_set(user=user, password=NEW) == 2
    assert api_status(theirs) == 200


def test_password_and_revocation_are_one_transaction(monkeypatch):
    from webapp.accounts import services

    user = make_user()
    two_tokens_and_a_revoked_one(user)

    def fail(*, user):
        raise RuntimeError("revocation failed")

    monkeypatch.setattr(services, "api_tokens_revoke_all", fail)
    with pytest.raises(RuntimeError):
        services.user_password_set(user=user, password=NEW)
    user = get_user_model().objects.get(pk=user.pk)
    assert user.check_password(PASSWORD) and not user.check_password(NEW)


def admin_client(client):
    admin = make_user()
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    return client


def test_an_administrator_setting_a_password_revokes_the_tokens_and_says_so(client):
    user = make_user()
    first, _ = two_tokens_and_a_revoked_one(user)
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    response = admin_client(client).post(url, {"password1": NEW, "password2": NEW, "usable_password": "true"},
                                         follow=True)
    assert "Password changed successfully" in response.content.decode()
    assert f"Revoked 2 API tokens of {user.username}." in response.content.decode()
    assert api_status(first) == 401
    assert get_user_model().objects.get(pk=user.pk).check_password(NEW)


def test_an_administrator_disabling_a_password_revokes_the_tokens(client):
    user = make_user()
    first, _ = two_tokens_and_a_revoked_one(user)
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    admin_client(client).post(url, {"usable_password": "false", "unset-password": "1"})
    assert not get_user_model().objects.get(pk=user.pk).has_usable_password()
    assert api_status(first) == 401


def test_the_changepassword_command_revokes_the_tokens(monkeypatch):
    from django.contrib.auth.management.commands import changepassword

    user = make_user()
    first, _ = two_tokens_and_a_revoked_one(user)
    monkeypatch.setattr(changepassword.Command, "_get_pass", lambda self, prompt=None: NEW)
    out = io.StringIO()
    call_command("changepassword", user.username, stdout=out)
    assert "revoked 2 API tokens" in out.getvalue()
    assert api_status(first) == 401
    assert get_user_model().objects.get(pk=user.pk).check_password(NEW)


def test_seed_demo_reset_password_revokes_the_demo_users_tokens():
    call_command("seed_demo", stdout=io.StringIO())
    demo = get_user_model().objects.get(username="demo")
    _, raw = api_token_create(user=demo, name="demo-notebook")
    out = io.StringIO()
    call_command("seed_demo", "--reset-password", stdout=out)
    assert "Revoked 1 API token of demo." in out.getvalue() and "Login: demo / " in out.getvalue()
    assert api_status(raw) == 401
