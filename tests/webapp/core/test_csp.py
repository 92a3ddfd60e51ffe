"""Every answer carries the Content-Security-Policy, except the API's documentation pages."""

import pytest

from tests.factories import make_project, make_user
from webapp.core.csp import HEADER

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_client(client):
    user = make_user()
    client.force_login(user)
    return client, make_project(owner=user)


def test_pages_fragments_and_api_answers_carry_the_policy(member_client, settings):
    client, project = member_client
    for path in ("/accounts/login/", "/projects/", f"/projects/{project.id}/", f"/projects/{project.id}/runs/",
                 f"/api/v1/projects/{project.id}/", "/no-such-page/"):
        response = client.get(path)
        assert response[HEADER] == settings.STEER_CONTENT_SECURITY_POLICY, path
    assert "script-src 'self';" in settings.STEER_CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in settings.STEER_CONTENT_SECURITY_POLICY.split("script-src")[1].split(";")[0]


def test_the_api_docs_pages_are_exempt(member_client):
    client, _ = member_client
    for path in ("/api/v1/docs/", "/api/v1/redoc/"):
        response = client.get(path)
        assert response.status_code == 200 and HEADER not in response, path
