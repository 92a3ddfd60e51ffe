"""OpenAPI description of what drf-spectacular cannot see: Steer's own authentication, and the
error answers every operation can give, all in the one error shape of ``webapp.api.errors``.

Generated clients read the responses an operation declares to type its errors, so each
operation lists the statuses it can answer with: 401 and 429 (credentials), 403 (a role that
does not cover the route, or a session write without its CSRF token), 400 where it takes query
parameters or a body, 404 where it names an object or pages with a cursor, 415 where it takes a
body, 409 on every DELETE; a view adds the rest (409, 413, 503) with :func:`errors`."""

from datetime import UTC, datetime
from typing import ClassVar

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from webapp.api.base import BodySerializer
from webapp.core.json_input import UnstorableText, storable_text_check

ERROR_DESCRIPTIONS = {
    400: "Bad input (`invalid`, `parse_error`); `fields` names each bad input and nothing was changed.",
    401: "No credentials, or a token that is unknown, revoked or expired.",
    403: "The caller's role does not cover this route (or a session write lacks its CSRF token).",
    404: "No such object (or run) among the projects the caller's role covers, or a cursor the API did not give.",
    409: "The object's state forbids the request (`conflict`); nothing was changed.",
    413: "The body or batch is larger than the API takes (`too_large`).",
    415: "A body in a media type the operation does not take.",
    429: "Too many failed tokens from this address (`throttled`); retry after the minute.",
    503: "A service the request needs (the task queue) does not answer; nothing was stored.",
    507: "The server's disk is full (`insufficient_storage`); nothing was stored. Retry once space is freed.",
}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="`invalid`, `parse_error`, `not_authenticated`, `authentication_failed`, "
                                           "`permission_denied`, `not_found`, `conflict`, `too_large`, "
                                           "`unsupported_media_type`, `throttled`, `unavailable`, "
                                           "`insufficient_storage`, ...")
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                   help_text="Each bad input (`points[3]`, `config.rollout.num_generations`) "
                                             "and what is wrong with it; empty unless the code is `invalid`.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JsonObjectField(serializers.JSONField):
    """JSON that the service checks is an object (a run's config); documented as one. A string
    in it (a key too) that the database cannot store (NUL, an unpaired surrogate) is refused
    here, naming its place: the database's own refusal named no field, and a run's config is
    stored before the engine reads it."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            storable_text_check(value)
        except UnstorableText as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


@extend_schema_field({"oneOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]})
class DateOrDateTimeField(serializers.Field):
    """An ISO 8601 date (``2026-12-01``) or datetime (``2026-12-01T14:30:00Z``, an offset or none:
    then read in the server's time zone, UTC), as a ``date`` or an aware ``datetime``."""

    default_error_messages: ClassVar[dict] = {"invalid": "{value!r} is no date or datetime: write an ISO date, 2026-12-01, "
                                                          "or datetime, 2026-12-01T14:30:00Z."}

    def to_internal_value(self, data):
        text = str(data).strip()
        try:
            value = parse_date(text) or parse_datetime(text)
        except ValueError:  # well formed, but no such day or hour (2026-02-30)
            value = None
        if value is None:
            self.fail("invalid", value=text[:40])
        if not isinstance(value, datetime):
            return value
        try:  # in UTC, as the database compares it: 9999-12-31T23:00-05:00 is past the year 9999
            return (timezone.make_aware(value) if timezone.is_naive(value) else value).astimezone(UTC)
        except OverflowError:
            self.fail("invalid", value=text[:40])

    def to_representation(self, value):
        return value.isoformat()


POSITIONS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}


# Both forms the label service takes (webapp.feedback.ranking.ranking_normalise): tiers, which
# can tie, or an ordered list of positions as Label Studio's and Argilla's rankings are sent,
# read as one tier each. The two cannot be confused: a list of lists or a list of numbers.
@extend_schema_field({"oneOf": [
    {"title": "Tiers", "type": "array", "minItems": 1, "items": POSITIONS,
     "description": "Tiers of candidate positions, best first; positions in one tier tie."},
    {"title": "Order", "description": "Candidate positions, best first, no ties (an order, not each candidate's "
                                      "rank): [2, 0, 1] is [[2], [0], [1]].", **POSITIONS},
]})
class RankingField(serializers.JSONField):
    """A ranking as tiers or as an order, checked by the label service; documented as their shapes."""


def errors(*codes: int) -> dict:
    """Error responses to add to an ``@extend_schema(responses=...)``."""
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in codes}


class SteerAutoSchema(AutoSchema):
    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        """A nested list's min_length / max_length as minItems / maxItems (drf-spectacular leaves them out)."""
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, serializers.ListSerializer) and schema.get("type") == "array":
            if field.min_length is not None:
                schema["minItems"] = field.min_length
            if field.max_length is not None:
                schema["maxItems"] = field.max_length
        return schema

    def _get_paginator(self):
        """Only a GET pages: a POST that answers a list (tasks made) sends a plain array."""
        return super()._get_paginator() if self.method == "GET" else None

    def get_filter_backends(self):
        return super().get_filter_backends() if self.method == "GET" else []

    def _map_basic_serializer(self, serializer, direction):
        """Fields a serializer's ``Meta.schema_optional`` names are left out of ``required``: the
        API sends them to some callers only (a task's sources and gold answer to researchers).
        A request body that refuses keys it does not take says so."""
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, BodySerializer):
            schema["additionalProperties"] = False  # a key the body does not take answers 400
        optional = getattr(getattr(serializer, "Meta", None), "schema_optional", ())
        if optional and "required" in schema:
            schema["required"] = [name for name in schema["required"] if name not in optional]
            if not schema["required"]:
                del schema["required"]
        return schema

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        parameters = self._get_parameters()
        codes = {401, 403, 429}
        takes_body = self.method in ("POST", "PUT", "PATCH") and self._get_request_body() is not None
        if takes_body or any(p["in"] == "query" for p in parameters):
            codes.add(400)
        if any(p["in"] == "path" for p in parameters) or any(p["name"] == "cursor" for p in parameters):
            codes.add(404)
        if takes_body:
            codes.add(415)
        if self.method == "DELETE":
            codes.add(409)
        for code in sorted(codes):
            responses.setdefault(str(code), self._get_response_for_code(
                ErrorSerializer, str(code), direction=direction) | {"description": ERROR_DESCRIPTIONS[code]})
        responses["429"]["headers"] = {"Retry-After": {
            "required": True, "schema": {"type": "integer", "minimum": 0},
            "description": "Seconds until this address may try again (up to two periods of the rate)."}}
        return responses


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "webapp.accounts.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token from /accounts/tokens/: `Authorization: Bearer steer_…`.",
        }
