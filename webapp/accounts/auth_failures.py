"""Failed sign-ins, counted in the database so that guessing costs the guesser.

Passwords (few bits) are limited per client address and per username on every path that
checks one: ``webapp.accounts.backends.ThrottledModelBackend`` serves the login form and the
admin's, ``webapp.accounts.forms.ThrottledPasswordChangeForm`` the old password of a password
change. Each attempt is *reserved* before the password is checked: one transaction takes a
lock per key (an advisory lock on PostgreSQL, so concurrent attempts on a key queue whichever
window they fall in), adds the attempt to its keys' counts and, if that takes a key over its
rate, rolls itself back and refuses. A success then takes its count back. So parallel guesses
are counted one by one and no more than the limit are ever checked, however many web
processes there are.

API tokens are 256 random bits, so that limit only keeps a flood of bad tokens off the
database: it is checked before and counted after (``failure_wait``, ``failure_record``),
which costs good requests a read rather than two writes; a burst sent at once can have as
many more than the limit checked as the server handles at once (``webapp.api.throttling``).

A key is refused while its current and previous fixed windows of the rate's period hold
``limit`` failures together: any stretch of one period lies within two such windows, so no
period holds more than ``limit`` checked failures, and a key that reached its limit waits one
to two periods.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from webapp.accounts.models import AuthFailureWindow

PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
           "d": 86400, "day": 86400}


@dataclass(frozen=True)
class Rate:
    limit: int  # failures allowed within any one period
    period_s: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """'20/min', '10/hour', '5/10min'. ValueError naming the text otherwise."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*", str(text))
        if not match or match.group(3) not in PERIODS or int(match.group(1)) < 1:
            raise ValueError(f"not a rate: {text!r} (write failures/period, e.g. '20/min' or '10/hour')")
        return cls(int(match.group(1)), int(match.group(2) or 1) * PERIODS[match.group(3)])


Limit = tuple[str, Rate]  # (key, its rate)


def _row_key(key: str, rate: Rate) -> str:
    return f"{rate.period_s}:{key}"[:300]


def _wait(current: int, previous: int, rate: Rate, into: float) -> float:
    """Seconds until a key with these failure counts is under its rate; 0 when it is."""
    if current >= rate.limit:  # still counted as the previous window through the next one
        return 2 * rate.period_s - into
    if current + previous >= rate.limit:  # open once the previous window drops out
        return rate.period_s - into
    return 0.0


def _seconds(wait: float) -> int:
    return max(0, math.ceil(wait - 1e-9))  # the epsilon: (1 - 2/3) × 60 is 20.000000000000004


def _counts(row_key: str, window: int) -> tuple[int, int]:
    """(failures in this window or later ones, failures in the previous window). Later windows
    count as this one: a web host whose clock runs a little behind another's must not miss the
    failures the other has already counted in the next window."""
    counts = dict(AuthFailureWindow.objects.filter(key=row_key, window__gte=window - 1)
                  .values_list("window", "count"))
    return sum(n for w, n in counts.items() if w >= window), counts.get(window - 1, 0)


def failure_wait(*, limits: Sequence[Limit], now: float | None = None) -> int:
    """Whole seconds until every key is under its rate again; 0 when none is over."""
    now = time.time() if now is None else now
    wait = 0.0
    for key, rate in limits:
        window, into = divmod(now, rate.period_s)
        current, previous = _counts(_row_key(key, rate), int(window))
        wait = max(wait, _wait(current, previous, rate, into))
    return _seconds(wait)


def _add_one(row_key: str, window: int, period_s: int) -> None:
    rows = AuthFailureWindow.objects.filter(key=row_key, window=window)
    if rows.update(count=F("count") + 1):
        return
    expires_at = datetime.fromtimestamp((window + 2) * period_s, tz=UTC)
    try:
        with transaction.atomic():  # a savepoint: a concurrent first failure may insert first
            AuthFailureWindow.objects.create(key=row_key, window=window, count=1, expires_at=expires_at)
    except IntegrityError:
        rows.update(count=F("count") + 1)


def _drop_expired(now: float) -> None:
    AuthFailureWindow.objects.filter(expires_at__lt=datetime.fromtimestamp(now, tz=UTC)).delete()


def failure_record(*, limits: Sequence[Limit], now: float | None = None) -> None:
    """Count one failure against each key, and drop rows that no longer count for anything."""
    now = time.time() if now is None else now
    _drop_expired(now)
    with transaction.atomic():
        for key, rate in limits:
            _add_one(_row_key(key, rate), int(now // rate.period_s), rate.period_s)


def _key_lock(row_key: str) -> None:
    """Queue this transaction behind any other reserving the same key, whatever window each
    falls in (a row lock would not hold attempts just after a window boundary behind those just
    before it). PostgreSQL only: SQLite runs one writer at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [row_key])


@dataclass(frozen=True)
class Reservation:
    wait: int  # seconds to wait when refused; 0 when the attempt may go ahead
    rows: tuple[tuple[str, int], ...] = ()  # (row key, window) counted, to take back on success


def failure_reserve(*, limits: Sequence[Limit], now: float | None = None) -> Reservation:
    """Count an attempt against each key before its credentials are checked. If that takes a
    key over its rate the count is rolled back and the reservation says how long to wait;
    otherwise it stands as a failure unless ``failure_refund`` takes it back."""
    rows, wait = [], 0.0
    _drop_expired(time.time() if now is None else now)  # on its own: the reservation locks only its keys
    with transaction.atomic():
        for key, rate in limits:  # always in the same order (address, then username): no deadlocks
            _key_lock(_row_key(key, rate))
        # Read after the locks: attempts on a key are stamped in the order they hold it.
        now = time.time() if now is None else now
        for key, rate in limits:
            window, into = divmod(now, rate.period_s)
            row_key, window = _row_key(key, rate), int(window)
            _add_one(row_key, window, rate.period_s)
            current, previous = _counts(row_key, window)
            rows.append((row_key, window))
            wait = max(wait, _wait(current - 1, previous, rate, into))  # as it stood before this attempt
        if wait:
            transaction.set_rollback(True)
            return Reservation(wait=max(1, _seconds(wait)))
    return Reservation(wait=0, rows=tuple(rows))


def failure_refund(reservation: Reservation) -> None:
    """Take back a reserved attempt that succeeded."""
    with transaction.atomic():
        for row_key, window in reservation.rows:
            AuthFailureWindow.objects.filter(key=row_key, window=window, count__gt=0).update(count=F("count") - 1)


def client_address(request) -> str:
    """The address failures are counted against: the connection's own, or the client's from
    X-Forwarded-For when STEER_TRUSTED_PROXIES proxies sit in front (DRF's NUM_PROXIES)."""
    from rest_framework.throttling import BaseThrottle

    return BaseThrottle().get_ident(request)


def login_limits(request, username: str) -> list[Limit]:
    """A password's keys: the client address, and the username as Django compares it (NFKC,
    as its login forms normalise it, then case folded), so that look-alike spellings of one
    account share one count."""
    from django.conf import settings

    rates = settings.STEER_LOGIN_FAILURE_RATES
    name = unicodedata.normalize("NFKC", str(username)).strip().casefold()[:150]
    return [(f"login-address:{client_address(request)}", Rate.parse(rates["address"])),
            (f"login-username:{name}", Rate.parse(rates["username"]))]


def api_token_limits(request) -> list[Limit]:
    """The API's key: the client address, at DRF's ``auth`` rate."""
    from rest_framework.settings import api_settings

    return [(f"api-address:{client_address(request)}", Rate.parse(api_settings.DEFAULT_THROTTLE_RATES["auth"]))]
