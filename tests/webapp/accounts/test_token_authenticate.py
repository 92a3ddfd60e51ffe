"""api_token_authenticate: the owner of an unrevoked token, as a full user, and last use kept to the minute."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from tests.factories import make_user
from webapp.accounts.models import ApiToken
from webapp.accounts.services import api_token_authenticate, api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


def test_the_token_s_user_comes_back_whole_and_last_use_is_recorded():
    owner = make_user()
    token, raw = api_token_create(user=owner, name="laptop")
    user = api_token_authenticate(raw=raw)
    assert user == owner and isinstance(user.date_joined, datetime) and user.date_joined.tzinfo is not None
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    api_token_authenticate(raw=raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first  # within the minute: no write
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))
    api_token_authenticate(raw=raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first


def test_revoked_unknown_and_inactive_tokens_authenticate_nobody():
    owner = make_user()
    token, raw = api_token_create(user=owner, name="ci")
    assert api_token_authenticate(raw=raw + "x") is None
    owner.is_active = False
    owner.save()
    assert api_token_authenticate(raw=raw) is None
    owner.is_active = True
    owner.save()
    api_token_revoke(token=token)
    assert api_token_authenticate(raw=raw) is None
