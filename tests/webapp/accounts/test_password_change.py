"""A signed-in user replaces their password (e.g. the one a project owner generated for them)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_user
from webapp.projects.services import member_account_create

pytestmark = pytest.mark.django_db
URL = reverse("accounts:password-change")
NEW = "a-new-passphrase-of-mine-42"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_anonymous_user_is_sent_to_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


def test_every_page_links_to_it(client):
    client.login(username=make_user().username, password=PASSWORD)
    assert URL in client.get(reverse("projects:list")).content.decode()


def test_change_keeps_the_session_and_the_new_password_logs_in(client):
    user = make_user()
    client.login(username=user.username, password=PASSWORD)
    response = client.post(URL, {"old_password": PASSWORD, "new_password1": NEW, "new_password2": NEW}, follow=True)
    assert "Your password has been changed" in response.content.decode()
    assert response.wsgi_request.user == user  # still logged in
    assert Client().login(username=user.username, password=NEW)
    assert not Client().login(username=user.username, password=PASSWORD)


def test_wrong_current_password_changes_nothing(client):
    user = make_user()
    client.login(username=user.username, password=PASSWORD)
    response = client.post(URL, {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW})
    assert response.status_code == 200 and "incorrectly" in response.content.decode()
    assert Client().login(username=user.username, password=PASSWORD)


def test_weak_new_password_is_refused(client):
    user = make_user()
    client.login(username=user.username, password=PASSWORD)
    response = client.post(URL, {"old_password": PASSWORD, "new_password1": "password", "new_password2": "password"})
    assert "too common" in response.content.decode()


def test_post_without_csrf_token_is_refused():
    user = make_user()
    client = Client(enforce_csrf_checks=True)
    client.login(username=user.username, password=PASSWORD)
    response = client.post(URL, {"old_password": PASSWORD, "new_password1": NEW, "new_password2": NEW})
    assert response.status_code == 403
    assert Client().login(username=user.username, password=PASSWORD)


def test_a_generated_password_is_replaced_by_its_owner(client):
    _, generated = member_account_create(project=make_project(owner=make_user()), username="ada", role="annotator")
    assert client.login(username="ada", password=generated)
    client.post(URL, {"old_password": generated, "new_password1": NEW, "new_password2": NEW})
    assert get_user_model().objects.get(username="ada").check_password(NEW)
