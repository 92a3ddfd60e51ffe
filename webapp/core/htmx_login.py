"""htmx requests of a user whose session has ended.

``login_required`` answers them as it answers a page: a redirect to the login page, which the
browser follows inside the XMLHttpRequest, so htmx swapped a whole login page into the fragment
(a status poll or an annotator's submit showed a page within the page). Here such a redirect
becomes an ``HX-Redirect``: htmx navigates the whole window to the login page, which comes
back to the page the user was on (``HX-Current-URL``), not to the fragment's URL.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme


class HtmxLoginRedirectMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (request.headers.get("HX-Request") != "true" or response.status_code != 302
                or request.headers.get("HX-Boosted")):
            return response
        login = resolve_url(settings.LOGIN_URL)
        if urlsplit(response.get("Location", "")).path != login:
            return response
        redirect = HttpResponse(status=200)
        redirect["HX-Redirect"] = f"{login}?{urlencode({'next': _page_path(request)})}"
        return redirect


def _page_path(request) -> str:
    """The path of the page the htmx request came from, if it is this site's; else /."""
    current = request.headers.get("HX-Current-URL", "")
    if not url_has_allowed_host_and_scheme(current, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        return "/"
    parts = urlsplit(current)
    return parts.path + (f"?{parts.query}" if parts.query else "") or "/"
