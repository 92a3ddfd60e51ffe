"""Exports of a project's labels, streamed as JSONL files.

``preferences.jsonl`` is TRL's preference format (``prompt``/``chosen``/``rejected``, one line
per ordered pair of every label; conversational throughout when the project mixes chat and
plain prompts), loadable with ``datasets.load_dataset("json", ...)`` and
usable by TRL's DPOTrainer and RewardTrainer as is. ``labels.jsonl`` keeps every raw label
(whole ranking, scores, critique, annotator), as the reward-model trainer reads it.
"""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from webapp.api.base import SteerFileApi, query_params
from webapp.api.permissions import RESEARCH
from webapp.feedback.exports import preference_pairs_jsonl, raw_labels_jsonl


def jsonl_response(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse((line.encode() for line in lines), content_type="application/jsonl")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class PreferenceExportFilterSerializer(serializers.Serializer):
    include_ties = serializers.BooleanField(required=False, default=False,
                                            help_text="Also export tied pairs, with a 'tie' column.")


class PreferenceExportApi(SteerFileApi):
    project_roles = RESEARCH

    @extend_schema(parameters=[PreferenceExportFilterSerializer],
                   responses={(200, "application/jsonl"): OpenApiTypes.BINARY})
    def get(self, request, project_id: int):
        params = query_params(request, PreferenceExportFilterSerializer)
        project = request.membership.project
        lines = preference_pairs_jsonl(project=project, include_ties=params["include_ties"])
        return jsonl_response(lines, f"{project.slug}-preferences.jsonl")


class LabelExportApi(SteerFileApi):
    project_roles = RESEARCH

    @extend_schema(responses={(200, "application/jsonl"): OpenApiTypes.BINARY})
    def get(self, request, project_id: int):
        project = request.membership.project
        return jsonl_response(raw_labels_jsonl(project=project), f"{project.slug}-labels.jsonl")
