"""Throttling of failed authentication: guessing tokens costs the guesser, not the server.

DRF's throttles run after authentication, so a request with a bad token never reaches
them. ``FailedAuthThrottle`` is consulted by ``ThrottledAuthenticationMixin`` (every API view,
the schema and its viewers included) instead: every failed attempt is counted against the
client address (``webapp.accounts.auth_failures``, in the database), and once the ``auth``
rate (settings ``DEFAULT_THROTTLE_RATES["auth"]``) is used up, further requests carrying
credentials answer 429 until the count has fallen under it.

The count is read before a token is checked and written after it failed, so a burst of bad
tokens sent at once may all read the count before the first is written: at most as many more
than the rate are checked as the server handles requests at once (gunicorn's workers ×
threads, 8 as deployed), and the next request sees them all. Counting each attempt before its
check, as passwords are (``failure_reserve``), would make that exact but cost every good API
call two writes and a lock on its address, metric ingest included, to protect lookups of
256-bit tokens that cannot be guessed anyway.
"""

from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions

from webapp.accounts.auth_failures import api_token_limits, failure_record, failure_wait


class FailedAuthThrottle:
    def check(self, request, view) -> None:
        """Raise Throttled when this address has failed too often within the period."""
        self.limits = api_token_limits(request)
        wait = failure_wait(limits=self.limits)
        if wait:
            raise exceptions.Throttled(wait=wait, detail="Too many failed authentication attempts.")

    def record_failure(self) -> None:
        failure_record(limits=self.limits)


class ThrottledAuthenticationMixin:
    """Credentials in an Authorization header are checked only under ``FailedAuthThrottle``."""

    def perform_authentication(self, request):
        if not request.META.get("HTTP_AUTHORIZATION"):
            request.user  # noqa: B018 - session authentication, no credentials to guess
            return
        throttle = FailedAuthThrottle()
        try:
            throttle.check(request, self)
        except exceptions.Throttled:
            # refused unchecked: an HTML answer (the Swagger and Redoc pages) reads request.user
            # as it renders, which would check the credentials after all, and fail with a 500
            request.user = AnonymousUser()
            raise
        try:
            request.user  # noqa: B018 - evaluates the authenticators
        except exceptions.AuthenticationFailed:
            throttle.record_failure()
            raise
