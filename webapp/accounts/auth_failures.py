"""Failed sign-ins, counted in the database so that guessing costs the guesser.

Both ways in are counted: the login form (per client address and per username, since
passwords are few bits) and API tokens (per client address; tokens are 256 random bits, so
that rate only keeps a flood of guesses off the database). A key over its rate is refused
before its credentials are checked, until it is under again.

Counts live in the database that every gunicorn worker and host already shares, and each
failure is one atomic ``UPDATE … SET count = count + 1`` (or the INSERT of a window's first
row), so concurrent guesses are all counted. A key is refused while its current and previous fixed
windows of the rate's period hold ``limit`` failures together: any stretch of one period lies
within two such windows, so no period holds more than ``limit`` failures, and a key that
reached its limit waits one to two periods.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
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


def failure_wait(*, limits: Sequence[Limit], now: float | None = None) -> int:
    """Whole seconds until every key is under its rate again; 0 when none is over."""
    now = time.time() if now is None else now
    wait = 0.0
    for key, rate in limits:
        window, into = divmod(now, rate.period_s)
        counts = dict(AuthFailureWindow.objects.filter(key=_row_key(key, rate), window__in=[window - 1, window])
                      .values_list("window", "count"))
        current, previous = counts.get(window, 0), counts.get(window - 1, 0)
        if current >= rate.limit:  # still counted as the previous window through the next one
            wait = max(wait, 2 * rate.period_s - into)
        elif current + previous >= rate.limit:  # open once the previous window drops out
            wait = max(wait, rate.period_s - into)
    return math.ceil(wait)


def failure_record(*, limits: Sequence[Limit], now: float | None = None) -> None:
    """Count one failure against each key, and drop rows that no longer count for anything."""
    now = time.time() if now is None else now
    with transaction.atomic():
        for key, rate in limits:
            window = int(now // rate.period_s)
            rows = AuthFailureWindow.objects.filter(key=_row_key(key, rate), window=window)
            if rows.update(count=F("count") + 1):
                continue
            expires_at = datetime.fromtimestamp((window + 2) * rate.period_s, tz=UTC)
            try:
                with transaction.atomic():  # a savepoint: a concurrent first failure may insert first
                    AuthFailureWindow.objects.create(key=_row_key(key, rate), window=window, count=1,
                                                     expires_at=expires_at)
            except IntegrityError:
                rows.update(count=F("count") + 1)
        AuthFailureWindow.objects.filter(expires_at__lt=datetime.fromtimestamp(now, tz=UTC)).delete()


def client_address(request) -> str:
    """The address failures are counted against: the connection's own, or the client's from
    X-Forwarded-For when STEER_TRUSTED_PROXIES proxies sit in front (DRF's NUM_PROXIES)."""
    from rest_framework.throttling import BaseThrottle

    return BaseThrottle().get_ident(request)


def login_limits(request, username: str) -> list[Limit]:
    """The login form's keys: the client address, and the username (as typed, case folded)."""
    from django.conf import settings

    rates = settings.STEER_LOGIN_FAILURE_RATES
    return [(f"login-address:{client_address(request)}", Rate.parse(rates["address"])),
            (f"login-username:{username.strip().casefold()[:150]}", Rate.parse(rates["username"]))]


def api_token_limits(request) -> list[Limit]:
    """The API's key: the client address, at DRF's ``auth`` rate."""
    from rest_framework.settings import api_settings

    return [(f"api-address:{client_address(request)}", Rate.parse(api_settings.DEFAULT_THROTTLE_RATES["auth"]))]
