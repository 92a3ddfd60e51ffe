"""The password backend: Django's, with attempts limited per client address and username."""

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from webapp.accounts.auth_failures import failure_refund, failure_reserve, login_limits


class ThrottledModelBackend(ModelBackend):
    """``ModelBackend`` behind ``webapp.accounts.auth_failures``'s reservations, so every form
    that checks a password (the login page, the admin's) shares one limit.

    Over the limit it raises PermissionDenied, which stops ``authenticate()`` before any
    password is checked, and leaves the seconds to wait on the request
    (``request.steer_login_wait``) for the login page to say. Calls without a request (the
    test client's ``login``, management commands) have no address to count and are not limited.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None or username is None or password is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        reservation = failure_reserve(limits=login_limits(request, username))
        if reservation.wait:
            request.steer_login_wait = reservation.wait
            raise PermissionDenied("too many failed log-ins")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            failure_refund(reservation)
        return user
