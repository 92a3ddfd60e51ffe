import uuid

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from webapp.accounts.services import api_token_create


def token_client(user) -> APIClient:
    """A client that authenticates as `user` with a fresh personal API token."""
    _, raw = api_token_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def api_user():
    """A user without a password (API-token users need none; skipping the hash keeps tests fast)."""
    return get_user_model().objects.create_user(username=f"api-{uuid.uuid4().hex[:12]}", password=None)


@pytest.fixture
def owner(db):
    return api_user()


@pytest.fixture
def api(owner):
    return token_client(owner)
