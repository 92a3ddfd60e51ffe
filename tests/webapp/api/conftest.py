import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import make_user
from webapp.accounts.services import api_token_create


def token_client(user) -> APIClient:
    """A client that authenticates as `user` with a fresh personal API token."""
    _, raw = api_token_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def owner(db):
    return make_user()


@pytest.fixture
def api(owner):
    return token_client(owner)
