"""An htmx request after the session ended: the whole window goes to the login page."""

from urllib.parse import urlencode

import pytest
from django.urls import reverse

from tests.factories import make_project, make_run, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def status_url():
    project = make_project(owner=make_user())
    run = make_run(project)
    return reverse("experiments:status", args=[project.id, run.id]), f"/projects/{project.id}/runs/{run.id}/"


def test_an_htmx_poll_of_a_logged_out_user_redirects_the_window_back_to_its_page(client, status_url):
    url, page = status_url
    response = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver{page}?tab=1")
    assert response.status_code == 200 and response.content == b""
    assert response["HX-Redirect"] == "/accounts/login/?" + urlencode({"next": f"{page}?tab=1"})


def test_a_page_from_another_site_is_not_where_the_login_leads(client, status_url):
    url, _ = status_url
    response = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="https://evil.example/x")
    assert response["HX-Redirect"] == "/accounts/login/?next=%2F"


def test_a_plain_request_is_redirected_as_before(client, status_url):
    url, _ = status_url
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    assert "HX-Redirect" not in response
