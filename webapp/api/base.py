"""What every Steer API view shares: authentication throttling, the project-role check,
and turning the apps' own error types into the one error shape."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping

from django.http import Http404, QueryDict
from rest_framework import exceptions, generics, serializers, status
from rest_framework.fields import empty
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api.ordering import StrictOrderingFilter
from webapp.api.permissions import ProjectRole
from webapp.api.query_strings import query_names_read, query_names_unread
from webapp.api.throttling import ThrottledAuthenticationMixin
from webapp.core.query import BIGINT_MAX

# Ids and steps are 64-bit integers in the database; larger numbers are refused at the edge.
MAX_ID = BIGINT_MAX


class TooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The request is too large."


class InsufficientStorage(exceptions.APIException):
    """The server's disk has no room for what the request would store; nothing was stored."""

    status_code = status.HTTP_507_INSUFFICIENT_STORAGE
    default_code = "insufficient_storage"
    default_detail = "The server's disk is full; nothing was stored."


class Unavailable(exceptions.APIException):
    """A service the request needs (the task queue) does not answer; nothing was changed."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"


class Conflict(exceptions.APIException):
    """The request is well-formed but the object's state forbids it (e.g. cancelling a finished run)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


# 409 for a report of metrics or trajectories to a run that Steer's worker trains: its records
# are the worker's, and a report would replace them.
EXTERNAL_ONLY = ("only external runs report {what} over the API; this run is trained by Steer's worker, "
                 "which records its own")


def deleted(delete: Callable[[], None], *, refusals: tuple[type[Exception], ...], gone: type[Exception],
            what: str) -> Response:
    """The answer to a DELETE: 204 once ``delete()`` has run; 409 with the refusal's message for
    an exception in ``refusals``; 404 for ``gone`` (deleted by another request since the view
    looked the object up)."""
    try:
        delete()
    except refusals as exc:
        raise Conflict(exc.message) from exc
    except gone as exc:
        raise Http404(f"No such {what}.") from exc
    return Response(status=status.HTTP_204_NO_CONTENT)


def field_error(field: str | None, message: str) -> exceptions.ValidationError:
    """A 400 naming the input at fault, in the API's one error shape."""
    return exceptions.ValidationError({field or "non_field_errors": [message]})


# A request body's fields. A key the body does not take answers 400 naming it, and nothing
# changes: DRF drops it without a word, so a misspelt field ("nmae", "wieght") was answered 200
# or 201 as if it had been applied. The schema states it (additionalProperties: false, in
# webapp.api.schema). A comment, not a docstring: drf-spectacular would show a docstring as the
# description of every body that inherits it.
#
# A JSON body's values have the types the schema states: DRF reads the number 5 as the string
# "5", the string "3" as the integer 3 and true as the number 1.0, so a client's wrong type was
# stored as something it did not send. A form body has only text, which DRF reads as before;
# but an empty form value of a field that takes none (``name=``) answers 400 as ``{"name": ""}``
# does, where DRF read it as no value and answered 200 without applying it.
class BodySerializer(serializers.Serializer):
    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            fields = {name: field for name, field in self.fields.items() if not field.read_only}
            body_keys_refuse_unknown(data, list(fields))
            if isinstance(data, QueryDict):
                form_blanks_refuse(data, fields)
            else:
                json_types_check(data, fields)
        return super().to_internal_value(data)


# An object of many bad values (scores, rewards) answers with this many of them named.
MAX_NAMED_PROBLEMS = 20

# (field class, the JSON types it takes, what the schema calls them); the first that matches counts
JSON_TYPES = [
    (serializers.BooleanField, (bool,), "true or false"),
    (serializers.CharField, (str,), "a string"),
    (serializers.IntegerField, (int,), "a whole number"),
    (serializers.FloatField, (int, float), "a number"),
]


def json_type_problem(field: serializers.Field, value) -> str | None:
    """What is wrong with the type of ``value`` for ``field`` (a list's item by its index), or
    None. Null is left to the field (``allow_null``); other field classes check their own. A
    float that is not finite (``1e400`` reads as infinity) is refused as the schema's number."""
    if value is None:
        return None
    if isinstance(field, serializers.ListField):
        if isinstance(value, list):
            for index, item in enumerate(value):
                if problem := json_type_problem(field.child, item):
                    return f"item {index} {problem}"
        return None
    for field_class, types, name in JSON_TYPES:
        if isinstance(field, field_class):
            if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
                return f"must be {name}, not {json_type_name(value)}"
            if isinstance(value, float) and not math.isfinite(value):
                return "must be a finite number"
            return None
    return None


def json_type_problems(field: serializers.Field, value, path: str) -> Iterator[tuple[str, str]]:
    """(path, what is wrong) for ``value`` and each value nested in it whose JSON type is not
    the one ``field``'s schema states. A DictField's values are named by their keys
    (``scores.0.7``): DRF read the string "3" or true in them as the number 3 or 1.0."""
    if isinstance(field, serializers.DictField):
        if isinstance(value, dict):
            for key, item in value.items():
                yield from json_type_problems(field.child, item, f"{path}.{str(key)[:100]}")
    elif problem := json_type_problem(field, value):
        yield path, problem


def json_type_name(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def json_types_check(data: Mapping, fields: Mapping[str, serializers.Field]) -> None:
    """400 naming each value of a JSON body, or value nested in one of its objects, whose type
    is not the one its field's schema states (the first MAX_NAMED_PROBLEMS of them)."""
    found = (problem for name, field in fields.items() if name in data
             for problem in json_type_problems(field, data[name], name))
    problems: dict[str, list[str]] = {}
    for path, problem in itertools.islice(found, MAX_NAMED_PROBLEMS):
        problems.setdefault(path, []).append(problem)
    if problems:
        raise exceptions.ValidationError(problems)


def form_blanks_refuse(data: QueryDict, fields: Mapping[str, serializers.Field], *, query: bool = False) -> None:
    """400 naming each field sent empty in a form body that DRF would read as not sent (an
    optional field that takes no empty value), with the field's own message for an empty value.
    In a query string (``query``) an empty value that DRF reads as null is refused too: a filter
    left null filters nothing (``?correct=``)."""
    problems = {}
    for name, field in fields.items():
        if name not in data or data[name] != "":
            continue
        value = field.get_value(data)
        if value is empty:
            try:
                field.run_validation("")
            except exceptions.ValidationError as exc:
                problems[name] = exc.detail
        elif value is None and query:
            problems[name] = ["empty; give a value, or leave the parameter out"]
    if problems:
        raise exceptions.ValidationError(problems)


def body_keys_refuse_unknown(data: Mapping, takes: list[str]) -> None:
    """400 naming each key of ``data`` that is not in ``takes`` (a body decoded by hand, as the
    metric and trajectory batches are, refuses them as a ``BodySerializer`` does)."""
    unknown = [key for key in data if key not in takes]
    if unknown:
        raise exceptions.ValidationError(
            {str(key)[:100]: [f"unknown field; this body takes {', '.join(takes)}"] for key in unknown[:20]})


class SteerApiMixin(ThrottledAuthenticationMixin):
    permission_classes = [ProjectRole]
    # Roles a caller needs in a project for this resource (see webapp.api.permissions).
    project_roles: frozenset[str] = frozenset()

    def finalize_response(self, request, response, *args, **kwargs):
        """A read that takes query parameters (a list, a filtered read) answers 400 naming one
        it does not take, where it answered as if the parameter had not been sent."""
        if request.method in ("GET", "HEAD") and response.status_code < 300 and hasattr(request, "query_params"):
            unread, read = query_names_unread(request)
            if unread:
                response = self.handle_exception(exceptions.ValidationError({
                    name[:100]: [f"not a parameter of this operation; it takes {', '.join(read)}"]
                    for name in unread[:20]}))
        return super().finalize_response(request, response, *args, **kwargs)


class SteerApi(SteerApiMixin, APIView):
    pass


class SteerFileApi(SteerApi):
    """A GET that streams a file (a JSONL export, a checkpoint's tar): its body is the file
    whatever the request's Accept says, so ``Accept: application/jsonl`` (what a client
    generated from the schema sends) is not refused with 406; its errors are JSON."""

    def perform_content_negotiation(self, request, force=False):
        renderer = JSONRenderer()
        return renderer, renderer.media_type


class SteerListApi(SteerApiMixin, generics.ListAPIView):
    # ?ordering= checked on every list: a list orders by id unless it names more fields
    filter_backends = [StrictOrderingFilter]
    ordering_fields = ["id"]


class SteerRetrieveApi(SteerApiMixin, generics.RetrieveAPIView):
    pass


def query_params(request, serializer_class) -> dict:
    """Validated query-string filters (400 naming the bad parameter), absent ones left out. An
    empty one that takes no empty value (``?status=``) is bad too: DRF read it as not sent, so the
    list came back unfiltered (``?search=`` still takes it, matching everything)."""
    serializer = serializer_class(data=request.query_params)
    query_names_read(request, serializer.fields)
    form_blanks_refuse(request.query_params, serializer.fields, query=True)
    serializer.is_valid(raise_exception=True)
    return {k: v for k, v in serializer.validated_data.items() if v is not None}
