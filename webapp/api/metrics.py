"""Metrics: batch ingest for trainers, raw points, downsampled history, latest values.

The ingest path is the hot one (an external trainer posts a batch every few steps, a
benchmark posts thousands): the body is decoded with ``orjson`` and handed as is
to ``metric_points_upsert``, whose tight loop validates every point; no DRF serializer
runs per point. Bad points answer 400 naming each by its index, and nothing of the batch
is stored.
"""

import base64

import orjson
from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from webapp.api.base import (
    EXTERNAL_ONLY,
    MAX_ID,
    BodySerializer,
    Conflict,
    SteerApi,
    TooLarge,
    body_keys_refuse_unknown,
    field_error,
    query_params,
)
from webapp.api.errors import error_response
from webapp.api.parsers import JSONParser
from webapp.api.permissions import RESEARCH, run_kind_in_scope
from webapp.api.runs import run_for, runs_for
from webapp.api.schema import errors
from webapp.experiments.metrics import MetricBatchError, metric_points_upsert
from webapp.experiments.models import MetricPoint, Run, RunKind
from webapp.experiments.selectors import (
    metric_history_downsampled,
    metric_latest,
    metric_points_page,
)


class MetricPointSerializer(serializers.ModelSerializer):
    class Meta:
        model = MetricPoint
        fields = ["run", "key", "step", "value", "recorded_at"]


class MetricPointInputSerializer(BodySerializer):
    """Documentation of one point (no other key: the schema says additionalProperties false); the
    endpoint validates points with a faster loop, ``normalise_series``."""

    key = serializers.CharField(max_length=200, trim_whitespace=False)
    step = serializers.IntegerField(min_value=0, max_value=MAX_ID - 1)
    value = serializers.FloatField()


class MetricBatchInputSerializer(BodySerializer):
    points = MetricPointInputSerializer(
        many=True,
        help_text="Objects {key, step, value}, or arrays [key, step, value]. "
        "At most STEER_METRIC_BATCH_LIMIT (10,000) per request.",
    )


def _decode_batch(request) -> list:
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isascii() and length.isdigit() and int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise TooLarge(f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes")
    if (request.content_type or "").split(";")[0].strip() != "application/json":
        raise exceptions.UnsupportedMediaType(request.content_type or "(none)")
    try:
        payload = orjson.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise field_error(None, f"the body is not valid JSON ({exc})") from exc
    points = payload.get("points") if isinstance(payload, dict) else None
    if not isinstance(points, list):
        raise field_error("points", "send a JSON object {\"points\": [...]}")
    body_keys_refuse_unknown(payload, ["points"])
    limit = settings.STEER_METRIC_BATCH_LIMIT
    if len(points) > limit:
        raise TooLarge(f"{len(points)} points in one batch; at most {limit} per request")
    return points


def _points_refused(exc: MetricBatchError, *, size: int) -> Response:
    """400 naming every bad point of the batch in ``fields`` (``points[i]``; the first
    NAMED_POINT_ERRORS of them), the count in the message: a trainer can send the batch again
    without them, where naming the first alone took a try per bad point."""
    message = f"points[{exc.index}]: {exc.message}"
    if exc.count > 1:
        unnamed = exc.count - len(exc.errors)
        message += (f"; {exc.count:,} of the batch's {size:,} points refused"
                    f"{f' ({unnamed:,} more than fields names)' if unnamed else ''}, nothing of the batch stored")
    return error_response("invalid", message, status.HTTP_400_BAD_REQUEST,
                          {f"points[{e.index}]": [e.message] for e in exc.errors})


class MetricPageSerializer(serializers.Serializer):
    key = serializers.CharField(required=False, max_length=200, trim_whitespace=False)
    step_min = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID)
    step_max = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID)
    cursor = serializers.CharField(required=False, max_length=600, help_text="The `next` link's cursor.")
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)


def _cursor_encode(key: str, step: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([key, step])).decode()


def _cursor_decode(raw: str) -> tuple[str, int]:
    try:
        key, step = orjson.loads(base64.urlsafe_b64decode(raw.encode()))
        if isinstance(key, str) and type(step) is int:
            return key, step
    except (ValueError, TypeError):
        pass
    raise field_error("cursor", "not a cursor this endpoint gave out")


class RunMetricsApi(SteerApi):
    """GET: the run's raw metric points in (key, step) order, a page at a time. POST: ingest a batch.

    Paging is by keyset: ``next`` carries the last point's (key, step), so a page costs the
    same at the end of a long run as at its start, and points written meanwhile are not
    skipped or repeated. A point rewritten at the same (key, step) keeps the last value, so a
    retried batch is harmless.
    """

    project_roles = RESEARCH
    parser_classes = [JSONParser]

    @extend_schema(parameters=[MetricPageSerializer], responses={200: inline_serializer("MetricPointPage", {
        "next": serializers.URLField(allow_null=True), "results": MetricPointSerializer(many=True)})})
    def get(self, request, run_id: int):
        run = run_for(request, run_id)
        params = query_params(request, MetricPageSerializer)
        after = _cursor_decode(params["cursor"]) if "cursor" in params else None
        limit = params["page_size"]
        rows = metric_points_page(run_id=run.id, limit=limit + 1, key=params.get("key"), after=after,
                                  step_min=params.get("step_min"), step_max=params.get("step_max"))
        next_url = None
        if len(rows) > limit:
            rows = rows[:limit]
            query = request.query_params.copy()
            query["cursor"] = _cursor_encode(rows[-1]["key"], rows[-1]["step"])
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response({"next": next_url, "results": [
            {"run": r["run_id"], "key": r["key"], "step": r["step"], "value": r["value"],
             "recorded_at": serializers.DateTimeField().to_representation(r["recorded_at"])} for r in rows]})

    @extend_schema(
        request=MetricBatchInputSerializer,
        responses={201: inline_serializer("MetricBatchOutput", {"written": serializers.IntegerField()}),
                   **errors(409, 413)},
    )
    def post(self, request, run_id: int):
        points = _decode_batch(request)
        kind = run_kind_in_scope(request, run_id, self.project_roles)
        if kind is None:
            raise exceptions.NotFound("No such run.")
        if kind != RunKind.EXTERNAL:
            raise Conflict(EXTERNAL_ONLY.format(what="metrics"))
        try:
            written = metric_points_upsert(run_id=run_id, points=points)
        except MetricBatchError as exc:
            return _points_refused(exc, size=len(points))
        except Run.DoesNotExist:  # deleted since the lookup above
            raise exceptions.NotFound("No such run.") from None
        return Response({"written": written}, status=status.HTTP_201_CREATED)


class RunIdsSerializer(serializers.Serializer):
    run = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), min_length=1, max_length=100,
                                help_text="Run ids; repeat the parameter: ?run=1&run=2.")
    key = serializers.ListField(child=serializers.CharField(max_length=200, trim_whitespace=False), required=False,
                                max_length=200, help_text="Metric keys; repeat the parameter. All keys when left out.")

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):
            data = {name: data.getlist(name) for name in ("run", "key") if name in data}
        return super().to_internal_value(data)


def _visible_run_ids(request, run_ids: list[int]) -> list[int]:
    """The requested runs, all visible to the caller, or 404 naming the first missing one."""
    found = set(runs_for(request).filter(pk__in=run_ids).values_list("id", flat=True))
    missing = [i for i in run_ids if i not in found]
    if missing:
        raise exceptions.NotFound(f"No such run: {missing[0]}.")
    return sorted(found)


class MetricHistorySerializer(RunIdsSerializer):
    max_points = serializers.IntegerField(required=False, default=1000, min_value=4, max_value=10_000,
                                          help_text="At most this many points per series (downsampled beyond).")
    step_min = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID)
    step_max = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID)

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):
            data = {name: (data.getlist(name) if name in ("run", "key") else data.get(name))
                    for name in ("run", "key", "max_points", "step_min", "step_max") if name in data}
        return super().to_internal_value(data)


class MetricSeriesSerializer(serializers.Serializer):
    run = serializers.IntegerField(source="run_id")
    key = serializers.CharField()
    steps = serializers.ListField(child=serializers.IntegerField())
    values = serializers.ListField(child=serializers.FloatField())
    downsampled = serializers.BooleanField(help_text="True when buckets kept only their first, last, min and max.")
    extremes = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Indices into steps/values of the points kept only as a bucket's min or max (not its first or "
                  "last): leave them out of a smoothed line, they are the bucket's outliers, not samples of its level.")


class MetricHistoryApi(SteerApi):
    """Metric series of one or more runs, each downsampled to at most ``max_points`` points.

    A series longer than ``max_points`` keeps, in each of ``max_points / 4`` step buckets, its
    first, last, lowest and highest point, so spikes survive. ``step_min``/``step_max`` zoom in.
    """

    project_roles = RESEARCH

    @extend_schema(
        parameters=[MetricHistorySerializer],
        responses={200: inline_serializer("MetricHistoryOutput", {"results": MetricSeriesSerializer(many=True)}),
                   **errors(404)},
    )
    def get(self, request):
        params = query_params(request, MetricHistorySerializer)
        run_ids = _visible_run_ids(request, params["run"])
        series = metric_history_downsampled(
            run_ids=run_ids, keys=params.get("key") or [], max_points=params["max_points"],
            step_min=params.get("step_min"), step_max=params.get("step_max"),
        )
        # MetricSeriesSerializer's shape, built directly: its list fields converted each of a
        # request's points one by one (0.3 s for two runs of 60 metrics).
        return Response({"results": [{"run": s["run_id"], "key": s["key"], "steps": s["steps"], "values": s["values"],
                                      "downsampled": s["downsampled"], "extremes": s["extremes"]} for s in series]})


class MetricLatestApi(SteerApi):
    """The last value (highest step) of each metric of each requested run, in one call."""

    project_roles = RESEARCH

    @extend_schema(
        parameters=[RunIdsSerializer],
        responses={200: inline_serializer("MetricLatestOutput", {
            "results": inline_serializer("MetricLatestValue", {
                "run": serializers.IntegerField(), "key": serializers.CharField(),
                "step": serializers.IntegerField(), "value": serializers.FloatField(),
            }, many=True),
        }), **errors(404)},
    )
    def get(self, request):
        params = query_params(request, RunIdsSerializer)
        latest = metric_latest(run_ids=_visible_run_ids(request, params["run"]), keys=params.get("key") or None)
        return Response({"results": [
            {"run": run_id, "key": key, "step": point["step"], "value": point["value"]}
            for run_id in sorted(latest) for key, point in sorted(latest[run_id].items())
        ]})
