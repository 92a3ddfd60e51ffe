from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from webapp.accounts.errors import TokenExpired
from webapp.accounts.services import api_token_authenticate


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer steer_…` (or `Token steer_…`) with a hashed personal token."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode(errors="replace") not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Authorization header must be 'Bearer <token>'."))
        try:
            raw = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed(_("Token contains invalid characters.")) from exc
        try:
            user = api_token_authenticate(raw=raw)
        except TokenExpired as exc:
            raise exceptions.AuthenticationFailed(exc.message[:1].upper() + exc.message[1:] + ".") from exc
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        return (user, None)

    def authenticate_header(self, request):
        return 'Bearer realm="steer"'
