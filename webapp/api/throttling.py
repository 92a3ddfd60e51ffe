"""Throttling of failed authentication: guessing tokens costs the guesser, not the server.

DRF's throttles run after authentication, so a request with a bad token never reaches
them. ``FailedAuthThrottle`` is consulted by ``SteerApiMixin.perform_authentication``
instead: every failed attempt is recorded against the client address, and once the
``auth`` rate (settings ``DEFAULT_THROTTLE_RATES["auth"]``) is used up, further requests
carrying credentials answer 429 until the window has passed.
"""

from rest_framework import exceptions
from rest_framework.throttling import SimpleRateThrottle


class FailedAuthThrottle(SimpleRateThrottle):
    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def check(self, request, view) -> None:
        """Raise Throttled when this address has failed too often within the window."""
        self.key = self.get_cache_key(request, view)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            raise exceptions.Throttled(wait=self.wait(), detail="Too many failed authentication attempts.")

    def record_failure(self) -> None:
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)
