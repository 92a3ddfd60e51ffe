"""Writes on accounts: API tokens, passwords, and accounts with a generated password."""

import secrets
import unicodedata
from datetime import timedelta
from datetime import timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from webapp.accounts.errors import AccountError, TokenExpired
from webapp.accounts.models import AccountOrigin, ApiToken, token_digest
from webapp.accounts.selectors import username_look_alike
from webapp.accounts.usernames import username_invisible
from webapp.core.names import name_problem, name_strip

# 18 random bytes: 144 bits, 24 URL-safe characters; easy to paste, impossible to guess.
GENERATED_PASSWORD_BYTES = 18


# Lifetimes a token can be given (days); None never expires.
TOKEN_LIFETIMES_DAYS = (7, 30, 90, 365)


@transaction.atomic
def api_token_create(*, user, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Create a token, valid for ``expires_in_days`` (None: until revoked); the raw value is
    returned once and only its digest is stored."""
    if expires_in_days is not None and expires_in_days not in TOKEN_LIFETIMES_DAYS:
        raise AccountError(f"a token lasts {', '.join(map(str, TOKEN_LIFETIMES_DAYS))} days or never "
                           f"(got {expires_in_days!r})", field="expires_in_days")
    name = name_strip(name) or "token"
    if problem := name_problem(name):
        raise AccountError(f"the name {problem}", field="name")
    raw = ApiToken.generate_raw()
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    token = ApiToken(user=user, name=name[:100], prefix=raw[:12], digest=token_digest(raw), expires_at=expires_at)
    token.full_clean()
    token.save()
    return token, raw


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_tokens_revoke_all(*, user) -> int:
    """Revoke every active token of ``user`` (the records stay, marked revoked, as the tokens
    page shows them); the number revoked."""
    return ApiToken.objects.filter(user=user).active().update(revoked_at=timezone.now())


@sensitive_variables("password")
@transaction.atomic
def user_password_set(*, user, password: str, revoke_api_tokens: bool = True) -> int:
    """Give ``user`` a new password (already validated by the caller's form) and, unless told
    not to, revoke their API tokens in the same transaction: whoever changes or resets a
    password because it may have leaked wants the tokens made with it dead too, and Django ends
    only the other sessions. Returns the number of tokens revoked."""
    user.set_password(password)
    user.save(update_fields=["password"])
    return api_tokens_revoke_all(user=user) if revoke_api_tokens else 0


def _aware(value):
    """A timestamp read by a raw query: SQLite keeps UTC without an offset."""
    value = ApiToken._meta.get_field("last_used_at").to_python(value)
    return timezone.make_aware(value, dt_timezone.utc) if value is not None and timezone.is_naive(value) else value


def api_token_authenticate(*, raw: str):
    """The user owning an active (unrevoked) token with this value, or None; TokenExpired for a
    token past its expiry date.

    Every API request runs this, so it is one raw statement (building an ORM query costs more
    Python than the lookup itself); ``last_used_at`` is refreshed at most once a minute.
    """
    User = get_user_model()
    users = User.objects.raw(
        f"SELECT u.*, t.id AS token_id, t.last_used_at AS token_last_used_at, t.expires_at AS token_expires_at "
        f"FROM {ApiToken._meta.db_table} t "
        f"JOIN {User._meta.db_table} u ON u.id = t.user_id WHERE t.digest = %s AND t.revoked_at IS NULL",
        [token_digest(raw)],
    )
    user = next(iter(users), None)
    if user is None or not user.is_active:
        return None
    now = timezone.now()
    expires_at = _aware(user.token_expires_at)
    if expires_at is not None and expires_at <= now:
        raise TokenExpired(f"this token expired on {expires_at:%Y-%m-%d %H:%M} UTC; create a new one at /accounts/tokens/")
    last_used_at = _aware(user.token_last_used_at)
    if last_used_at is None or (now - last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=user.token_id).update(last_used_at=now)
    return user


def username_clean(username: str, *, exclude_pk=None) -> str:
    """``username`` as a new account would store it (NFKC), or AccountError (field
    ``username``) for a name the user model refuses, one with a character that shows nothing,
    or one that would pass for an existing account's: the same name in another case or
    width ("Alice", "ａｌｉｃｅ" beside "alice"), or a look-alike ("аlice" with a Cyrillic а).
    ``exclude_pk``: the account being renamed."""
    User = get_user_model()
    username = User.normalize_username((username or "").strip())
    if not username:
        raise AccountError("a username is required", field="username")
    try:
        User._meta.get_field(User.USERNAME_FIELD).clean(username, None)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages), field="username") from None
    invisible = username_invisible(username)
    if invisible is not None:
        raise AccountError(f"a username cannot hold characters that show nothing (it holds U+{ord(invisible):04X} "
                           f"{unicodedata.name(invisible, 'an unnamed character')})", field="username")
    clash = username_look_alike(username=username, exclude_pk=exclude_pk)
    if clash is not None:
        taken, same = clash
        if same:
            raise AccountError(f"an account named {taken!r} already exists", field="username")
        raise AccountError(f"{username!r} looks like the existing account {taken!r} "
                           f"({_code_points(username, taken)}); choose a name no one can mistake for it",
                           field="username")
    return username


def _code_points(username: str, taken: str) -> str:
    """Where two look-alike names differ, for a message: 'U+0430 CYRILLIC SMALL LETTER A'."""
    odd = [c for c in username if c not in taken] or [c for c in taken if c not in username]
    return ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in dict.fromkeys(odd)) or "letters that look alike"


def _usernames_lock() -> None:
    """Serialise account creation, so two look-alike names created at once cannot both pass
    ``username_clean`` (the database's unique index knows only exact duplicates).
    PostgreSQL only: SQLite runs one writer at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended('steer:usernames', 0))")


@sensitive_variables("password")
def user_create_with_generated_password(*, username: str, email: str = "", created_by=None,
                                        project_name: str = "") -> tuple[object, str]:
    """A new active account with a fresh random password, returned once to be shown to whoever
    passes it on; only its salted hash is stored, and it is never logged. AccountError as
    ``username_clean``.

    ``created_by``, the user who sees the password (from ``project_name``'s Members page), is
    recorded in an ``AccountOrigin``: whoever adds the account to another project is told.
    """
    password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    try:
        with transaction.atomic():  # a savepoint: a caller's transaction survives the refusal
            _usernames_lock()
            username = username_clean(username)
            user = get_user_model().objects.create_user(username=username, email=email, password=password)
    except IntegrityError:  # created by someone else between the check and the insert
        raise AccountError(f"an account named {username!r} already exists", field="username") from None
    if created_by is not None:
        AccountOrigin.objects.create(user=user, created_by=created_by, created_by_username=created_by.get_username(),
                                     project_name=project_name)
    return user, password
