"""Reads of accounts."""

from django.contrib.auth import get_user_model

from webapp.accounts.models import AccountOrigin
from webapp.accounts.usernames import username_folded, username_skeletons


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


def username_look_alike(*, username: str, exclude_pk=None) -> tuple[str, bool] | None:
    """The existing username that ``username`` would pass for, and whether it is the same
    name (NFKC and case aside) rather than only a look-alike; None when it passes for none.
    ``exclude_pk``: the account being renamed.

    Every username is compared (a team's accounts, a few thousand at most): skeletons are not
    stored, so no index can find them.
    """
    User = get_user_model()
    folded, skeletons = username_folded(username), username_skeletons(username)
    names = User.objects.exclude(pk=exclude_pk).values_list(User.USERNAME_FIELD, flat=True).order_by("pk")
    look_alike = None
    for name in names.iterator():
        if username_folded(name) == folded:
            return name, True
        if look_alike is None and skeletons & username_skeletons(name):
            look_alike = name
    return (look_alike, False) if look_alike is not None else None
