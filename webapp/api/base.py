"""What every Steer API view shares: authentication throttling, the project-role check,
and turning the apps' own error types into the one error shape."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from django.http import Http404
from rest_framework import exceptions, generics, serializers, status
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
class BodySerializer(serializers.Serializer):
    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            body_keys_refuse_unknown(data, [name for name, field in self.fields.items() if not field.read_only])
        return super().to_internal_value(data)


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
    """Validated query-string filters (400 naming the bad parameter), absent ones left out."""
    serializer = serializer_class(data=request.query_params)
    query_names_read(request, serializer.fields)
    serializer.is_valid(raise_exception=True)
    return {k: v for k, v in serializer.validated_data.items() if v is not None}
