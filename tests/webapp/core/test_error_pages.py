"""Steer's own error pages: a 404, 403, CSRF refusal or 500 keeps the site's frame (the
signed-in user's navigation and a way back) and says what happened, never a bare Django page."""

import pytest
from django.test import Client, RequestFactory
from django.views.defaults import server_error

from tests.factories import PASSWORD, make_project, make_user

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    return client


def test_a_missing_page_keeps_the_navigation_and_reveals_nothing():
    user = make_user()
    project = make_project(owner=user, name="Mine")
    response = signed_in(user).get("/projects/999999999/runs/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Not found</h1>" in page and 'href="/projects/"' in page
    assert f'href="/projects/{project.id}/"' in page  # the user's own projects, in the header
    assert "matches the given query" not in page  # Django's internal wording stays out


def test_a_role_refusal_says_why_and_who_can_change_it():
    annotator = make_user()
    project = make_project(annotator=annotator)
    response = signed_in(annotator).get(f"/projects/{project.id}/runs/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "<h1>Not allowed</h1>" in page
    assert "Your role in this project does not give access to this page." in page and "Members page" in page


def test_a_refused_csrf_token_explains_itself_and_changes_nothing():
    user = make_user()
    client = Client(enforce_csrf_checks=True)
    client.login(username=user.username, password=PASSWORD)
    response = client.post("/projects/new/", {"name": "x"})
    assert response.status_code == 403
    assert "security token was missing or out of date" in response.content.decode()
    assert not user.projects.exists()


def test_a_server_error_page_renders_without_a_request_context():
    request = RequestFactory().get("/anything/")
    response = server_error(request)
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on the server" in page and "Traceback" not in page
