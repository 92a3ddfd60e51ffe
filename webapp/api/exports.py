"""Exports streamed as files: a project's labels as JSONL, a run's trajectories (JSONL) and
metrics (CSV; see ``webapp.experiments.exports`` for their columns).

``preferences.jsonl`` is TRL's preference format (``prompt``/``chosen``/``rejected``, one line
per ordered pair of every label; conversational throughout when the project mixes chat and
plain prompts), loadable with ``datasets.load_dataset("json", ...)`` and
usable by TRL's DPOTrainer and RewardTrainer as is. ``labels.jsonl`` keeps every raw label
(whole ranking, scores, critique, annotator), as the reward-model trainer reads it;
``labels.parquet`` holds the same rows with a fixed schema.
"""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema

from webapp.api.base import SteerFileApi, query_params
from webapp.api.permissions import RESEARCH
from webapp.api.runs import run_for
from webapp.core.downloads import attachment_response
from webapp.experiments.export_filters import (
    MetricExportFilterSerializer,
    TrajectoryExportFilterSerializer,
)
from webapp.experiments.exports import (
    PARQUET_CONTENT_TYPE, export_response, run_metrics_csv, run_trajectories_jsonl, run_trajectories_parquet,
)
from webapp.feedback.export_filters import PreferenceExportFilterSerializer
from webapp.feedback.exports import preference_pairs_jsonl, raw_labels_jsonl, raw_labels_parquet


def jsonl_response(lines, filename: str) -> StreamingHttpResponse:
    return attachment_response((line.encode() for line in lines), filename=filename, content_type="application/jsonl")


class PreferenceExportApi(SteerFileApi):
    project_roles = RESEARCH

    @extend_schema(parameters=[PreferenceExportFilterSerializer],
                   responses={(200, "application/jsonl"): OpenApiTypes.BINARY})
    def get(self, request, project_id: int):
        params = query_params(request, PreferenceExportFilterSerializer)
        project = request.membership.project
        lines = preference_pairs_jsonl(project=project, include_ties=params["include_ties"],
                                       strength_margins=params.get("strength_margins"))
        return jsonl_response(lines, f"{project.slug}-preferences.jsonl")


class LabelExportApi(SteerFileApi):
    project_roles = RESEARCH

    @extend_schema(responses={(200, "application/jsonl"): OpenApiTypes.BINARY})
    def get(self, request, project_id: int):
        project = request.membership.project
        return jsonl_response(raw_labels_jsonl(project=project), f"{project.slug}-labels.jsonl")


class LabelParquetExportApi(SteerFileApi):
    """The same labels and values as ``labels.jsonl`` in one Parquet file with a fixed schema, for
    ``pandas.read_parquet`` and ``datasets.load_dataset("parquet", ...)``; streamed a row group at
    a time."""

    project_roles = RESEARCH

    @extend_schema(responses={(200, PARQUET_CONTENT_TYPE): OpenApiTypes.BINARY})
    def get(self, request, project_id: int):
        project = request.membership.project
        return attachment_response(raw_labels_parquet(project=project), filename=f"{project.slug}-labels.parquet",
                                   content_type=PARQUET_CONTENT_TYPE)


class RunTrajectoryExportApi(SteerFileApi):
    """The run's trajectories as one JSONL file, one line per completion in (step, group_index,
    sample_index) order, with the trajectory list's field names plus ``prompt_messages`` (the
    chat prompt's messages, else null); loadable with ``datasets.load_dataset("json", ...)``."""

    project_roles = RESEARCH

    @extend_schema(parameters=[TrajectoryExportFilterSerializer],
                   responses={(200, "application/jsonl"): OpenApiTypes.BINARY})
    def get(self, request, run_id: int):
        run = run_for(request, run_id)
        params = query_params(request, TrajectoryExportFilterSerializer)
        return export_response(run_trajectories_jsonl(run=run, **params), run=run, what="trajectories.jsonl",
                               content_type="application/jsonl")


class RunTrajectoryParquetExportApi(SteerFileApi):
    """The same rows as ``trajectories.jsonl`` in one Parquet file with a fixed schema (``rewards``
    a struct with a float per reward component), for ``pandas.read_parquet`` and
    ``datasets.load_dataset("parquet", ...)``; streamed a row group at a time."""

    project_roles = RESEARCH

    @extend_schema(parameters=[TrajectoryExportFilterSerializer],
                   responses={(200, PARQUET_CONTENT_TYPE): OpenApiTypes.BINARY})
    def get(self, request, run_id: int):
        run = run_for(request, run_id)
        params = query_params(request, TrajectoryExportFilterSerializer)
        return export_response(run_trajectories_parquet(run=run, **params), run=run, what="trajectories.parquet",
                               content_type=PARQUET_CONTENT_TYPE)


class RunMetricExportApi(SteerFileApi):
    """The run's raw metric points as one CSV file in long format, ``step,key,value``, in (key,
    step) order; values written with full precision."""

    project_roles = RESEARCH

    @extend_schema(parameters=[MetricExportFilterSerializer],
                   responses={(200, "text/csv"): OpenApiTypes.BINARY})
    def get(self, request, run_id: int):
        run = run_for(request, run_id)
        params = query_params(request, MetricExportFilterSerializer)
        return export_response(run_metrics_csv(run=run, keys=params.get("key")), run=run, what="metrics.csv",
                               content_type="text/csv")
