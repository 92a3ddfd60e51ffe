"""Reads of accounts."""

from django.contrib.auth import get_user_model

from webapp.accounts.models import AccountOrigin


def user_get_by_username(*, username: str):
    """The account named ``username``, or None.

    An exact match wins; otherwise a match that differs only in case, if there is exactly one
    (people type "Alice" for "alice").
    """
    User = get_user_model()
    username = User.normalize_username((username or "").strip())
    if not username:
        return None
    exact = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
    if exact is not None:
        return exact
    folded = list(User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": username})[:2])
    return folded[0] if len(folded) == 1 else None


def account_origin(*, user) -> AccountOrigin | None:
    """Who created ``user``'s account with a generated password (and saw it), or None for an
    account its holder or an administrator created."""
    return AccountOrigin.objects.filter(user=user).first()
