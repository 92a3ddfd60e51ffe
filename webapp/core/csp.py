"""A Content-Security-Policy on every page: a second wall behind the escaping of model text.

Steer's own pages load scripts from its static files only, with no inline ``<script>`` and no
``on…=`` attribute, so ``script-src 'self'`` costs them nothing; if a template ever let model
text through as markup, the browser would still refuse to run what it carried (an inline
script, an event handler, a ``javascript:`` link). Styles may be inline: htmx adds a
``<style>`` of its own, and the DRF pages set ``style=`` attributes.

The API's Swagger UI and Redoc pages are left out (drf-spectacular's Swagger page starts
itself with an inline script, and Redoc builds its search worker from a ``blob:``): they show
the API's schema, which holds no text a member wrote.
"""

from __future__ import annotations

from django.conf import settings

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.STEER_CONTENT_SECURITY_POLICY
        if policy and HEADER not in response and not request.path.startswith(settings.STEER_CSP_EXEMPT_PATHS):
            response[HEADER] = policy
        return response
