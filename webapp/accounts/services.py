"""Writes on accounts: API tokens and demo users."""

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from webapp.accounts.models import ApiToken, token_digest


@transaction.atomic
def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """Create a token; the raw value is returned once and only its digest is stored."""
    name = name.strip() or "token"
    raw = ApiToken.generate_raw()
    token = ApiToken(user=user, name=name[:100], prefix=raw[:12], digest=token_digest(raw))
    token.full_clean()
    token.save()
    return token, raw


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(*, raw: str):
    """The user owning an active token with this value, or None."""
    token = ApiToken.objects.active().select_related("user").filter(digest=token_digest(raw)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def user_create_with_generated_password(*, username: str, email: str = "") -> tuple[object, str]:
    """A user with a fresh random password, returned once to be shown to its owner."""
    password = secrets.token_urlsafe(12)
    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    return user, password
