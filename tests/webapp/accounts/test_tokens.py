import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_user
from webapp.accounts.models import ApiToken, token_digest
from webapp.accounts.services import api_token_authenticate, api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


def test_token_is_stored_only_as_a_digest():
    user = make_user()
    token, raw = api_token_create(user=user, name="notebook")
    assert raw.startswith("steer_") and len(raw) > 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.digest == token_digest(raw) and raw not in (stored.digest, stored.prefix)
    assert api_token_authenticate(raw=raw) == user


def test_revoked_or_wrong_token_authenticates_nobody():
    token, raw = api_token_create(user=make_user(), name="t")
    assert api_token_authenticate(raw=raw + "x") is None
    api_token_revoke(token=token)
    assert api_token_authenticate(raw=raw) is None


def test_tokens_page_creates_a_token_shown_once(client):
    user = make_user()
    client.login(username=user.username, password=PASSWORD)
    form = {"name": "ci", "submission_key": "k" * 32}
    response = client.post(reverse("accounts:tokens"), form)
    body = response.content.decode()
    token = ApiToken.objects.get(user=user)
    assert "steer_" in body and token.prefix in body
    assert "no-store" in response["Cache-Control"]  # not kept in the browser's cache
    assert "steer_" not in client.get(reverse("accounts:tokens")).content.decode().replace(token.prefix, "")
    again = client.post(reverse("accounts:tokens"), form, follow=True)  # a reload of the answer
    assert again.redirect_chain == [(reverse("accounts:tokens"), 302)]
    assert "created already" in again.content.decode() and "steer_" not in again.content.decode().replace(
        token.prefix, "")
    assert ApiToken.objects.filter(user=user).count() == 1
    assert all("steer_" not in str(v) for v in client.session.values())  # the raw token is nowhere


def test_a_bad_token_name_is_shown_on_the_form_and_makes_no_token(client):
    user = make_user()
    client.login(username=user.username, password=PASSWORD)
    response = client.post(reverse("accounts:tokens"), {"name": "", "submission_key": "k" * 32})
    assert response.status_code == 400 and response.context["form"].errors["name"]
    assert not ApiToken.objects.exists()


def test_a_user_cannot_revoke_someone_elses_token(client):
    token, _ = api_token_create(user=make_user(), name="theirs")
    me = make_user()
    client.login(username=me.username, password=PASSWORD)
    assert client.post(reverse("accounts:token-revoke", args=[token.id])).status_code == 404
    assert ApiToken.objects.get(pk=token.pk).is_active


def test_login_page_logs_in_and_shows_projects(client):
    user = make_user()
    assert client.get(reverse("accounts:login")).status_code == 200
    response = client.post(reverse("accounts:login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("projects:list")
