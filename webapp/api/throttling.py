"""Throttling of failed authentication: guessing tokens costs the guesser, not the server.

DRF's throttles run after authentication, so a request with a bad token never reaches
them. ``FailedAuthThrottle`` is consulted by ``SteerApiMixin.perform_authentication``
instead: every failed attempt is counted against the client address
(``webapp.accounts.auth_failures``, in the database), and once the ``auth`` rate (settings
``DEFAULT_THROTTLE_RATES["auth"]``) is used up, further requests carrying credentials answer
429 until the count has fallen under it.
"""

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
