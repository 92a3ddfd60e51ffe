"""One error shape for the whole API: {"error": {"code", "message", "fields"}}."""

import re

from django.core.exceptions import PermissionDenied, ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            # a nested serializer's own error (e.g. an empty list) is the error of the field it fills
            name = prefix if prefix and key == "non_field_errors" else f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, name))
        return out
    if isinstance(detail, list):
        if all(not isinstance(v, (dict, list)) for v in detail):
            return {prefix or "non_field_errors": [str(v) for v in detail]}
        out = {}
        for i, value in enumerate(detail):
            out.update(_flatten(value, f"{prefix}[{i}]" if prefix else f"[{i}]"))
        return out
    return {prefix or "non_field_errors": [str(detail)]}


def _text(value) -> str:
    """``value`` as text a UTF-8 response can hold: an error that quotes the input (DRF's "is not
    a valid choice", a config's unknown key) may quote an unpaired surrogate ("\\ud800" in
    the JSON body), which cannot be encoded, so the response failed to render (a 500). It is
    written as its escape instead, the way the request spelled it."""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _encodable(fields: dict[str, list[str]]) -> dict[str, list[str]]:
    return {_text(name): [_text(m) for m in messages] for name, messages in fields.items()}


def error_response(code: str, message: str, http_status: int, fields: dict | None = None) -> Response:
    return Response({"error": {"code": code, "message": message, "fields": fields or {}}}, status=http_status)


_GET_OBJECT_OR_404 = re.compile(r"No (\w+) matches the given query\.")


def _not_found_message(message: str) -> str:
    """Django's get_object_or_404 names the model's class ("No PreferencePairSet matches the given
    query."); the caller reads it in words, as the views' own messages: "No such preference pair set."."""
    found = _GET_OBJECT_OR_404.fullmatch(message)
    if found is None:
        return message
    return f"No such {re.sub(r'(?<!^)(?=[A-Z])', ' ', found.group(1)).lower()}."


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        # the view's own words ("No such run."), the same whether the object is missing or not the caller's
        exc = exceptions.NotFound(_not_found_message(str(exc)) if exc.args else None)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args[:1])
    elif isinstance(exc, DataError):
        # The database refused a value that validation let through (e.g. a NUL character inside
        # JSON text on PostgreSQL): the statement was rolled back, so nothing was stored.
        exc = exceptions.ValidationError([f"a value cannot be stored: {str(exc).splitlines()[0]}"])
    elif isinstance(exc, DjangoValidationError):  # a service's full_clean() refused the input
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _encodable(_flatten(exc.detail))
        first = next(iter(fields.items()), ("", ["invalid input"]))
        message = f"{first[0]}: {first[1][0]}" if first[0] and first[0] != "non_field_errors" else first[1][0]
        response.data = {"error": {"code": "invalid", "message": message, "fields": fields}}
    else:
        detail = getattr(exc, "detail", str(exc))
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = {"error": {"code": str(code), "message": _text(detail), "fields": {}}}
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Bearer realm="steer"'
    return response


def _is_route(path_info: str) -> bool:
    try:
        return resolve(path_info).func is not route_not_found
    except Resolver404:
        return False


@csrf_exempt  # it changes nothing; a session's write without its token still gets this 404, not an HTML 403
def route_not_found(request, path: str = ""):
    """A path under /api/v1/ that names no route (an unknown word, an id that is not a number,
    one longer than 18 digits): 404 in the one error shape, where Django would answer its HTML
    page. A GET without its trailing slash is still redirected to the route it names."""
    if not request.path_info.endswith("/") and _is_route(request.path_info + "/"):
        if request.method in ("GET", "HEAD"):
            query = request.META.get("QUERY_STRING", "")
            return HttpResponsePermanentRedirect(request.path + "/" + (f"?{query}" if query else ""))
        message = f"No API route at {request.path}; the route ends with a slash: {request.path}/"
    else:
        message = f"No API route at {request.path}."
    return JsonResponse({"error": {"code": "not_found", "message": message, "fields": {}}}, status=404)
