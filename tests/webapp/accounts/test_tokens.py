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


# ---------------------------------------------------------------- expiry

def test_a_token_chosen_to_expire_works_until_then_and_is_refused_after_saying_so(client):
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework.test import APIClient

    user = make_user()
    client.login(username=user.username, password=PASSWORD)
    client.post(reverse("accounts:tokens"), {"name": "ci", "submission_key": "k" * 32, "expires_in_days": "30"})
    token = ApiToken.objects.get(user=user)
    assert timedelta(days=29, hours=23) < token.expires_at - timezone.now() <= timedelta(days=30)
    raw_client = APIClient()
    _, raw = api_token_create(user=user, name="short", expires_in_days=7)
    raw_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert raw_client.get("/api/v1/projects/").status_code == 200
    ApiToken.objects.filter(name="short").update(expires_at=timezone.now() - timedelta(seconds=1))
    response = raw_client.get("/api/v1/projects/")
    assert response.status_code == 401 and "expired on" in response.json()["error"]["message"]
    assert list(ApiToken.objects.active().values_list("name", flat=True)) == ["ci"]
    assert "expired" in client.get(reverse("accounts:tokens")).content.decode()


def test_a_token_without_a_lifetime_never_expires_and_odd_lifetimes_are_refused(client):
    from webapp.accounts.errors import AccountError

    token, raw = api_token_create(user=make_user(), name="forever")
    assert token.expires_at is None and api_token_authenticate(raw=raw) is not None
    with pytest.raises(AccountError, match="7, 30, 90, 365 days or never") as exc:
        api_token_create(user=make_user(), name="odd", expires_in_days=31)
    assert exc.value.field == "expires_in_days"
    user = make_user()
    client.login(username=user.username, password=PASSWORD)
    response = client.post(reverse("accounts:tokens"), {"name": "x", "submission_key": "k" * 32,
                                                        "expires_in_days": "31"})
    assert response.status_code == 400 and response.context["form"].errors["expires_in_days"]
    assert not ApiToken.objects.filter(user=user).exists()
