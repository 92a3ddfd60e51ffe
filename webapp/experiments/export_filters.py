"""The filters a run's downloads take, read alike by the run page and the REST API.

``?step_min=&step_max=`` narrow the trajectories (JSONL and Parquet) to a step range;
``?key=`` (repeated) narrows the metrics CSV to those keys. The API lists these serializers
as its query parameters and answers a bad value with its 400 (naming the parameter); the run
page's views call ``export_filters``, which raises ``ExportFilterError`` naming it.
"""

from __future__ import annotations

from rest_framework import serializers

from webapp.core.query import BIGINT_MAX


class TrajectoryExportFilterSerializer(serializers.Serializer):
    step_min = serializers.IntegerField(required=False, min_value=0, max_value=BIGINT_MAX,
                                       help_text="First step to export.")
    step_max = serializers.IntegerField(required=False, min_value=0, max_value=BIGINT_MAX,
                                       help_text="Last step to export.")

    def validate(self, attrs):
        low, high = attrs.get("step_min"), attrs.get("step_max")
        if low is not None and high is not None and high < low:
            raise serializers.ValidationError({"step_max": [f"must not be below step_min ({low})"]})
        return attrs


class MetricExportFilterSerializer(serializers.Serializer):
    key = serializers.ListField(
        child=serializers.CharField(max_length=200, trim_whitespace=False), required=False, max_length=200,
        help_text="Metric keys; repeat the parameter. All keys when left out.")

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):
            data = {"key": data.getlist("key")} if "key" in data else {}
        return super().to_internal_value(data)


class ExportFilterError(ValueError):
    """A filter the run page's download was given that the API would refuse too."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def export_filters(serializer_class: type[serializers.Serializer], query) -> dict:
    """The filters of ``query`` (a QueryDict) that ``serializer_class`` reads, those left out
    omitted; ExportFilterError naming the first bad parameter."""
    serializer = serializer_class(data=query)
    if not serializer.is_valid():
        field, problems = next(iter(serializer.errors.items()))
        while isinstance(problems, dict):  # a list's item: {index: [messages]}
            problems = next(iter(problems.values()))
        raise ExportFilterError(field, str(problems[0]))
    return {k: v for k, v in serializer.validated_data.items() if v is not None}
