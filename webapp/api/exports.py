"""Exports of a project's labels, streamed as JSONL files.

``preferences.jsonl`` is TRL's preference format (``prompt``/``chosen``/``rejected``, one line
per ordered pair of every label; conversational throughout when the project mixes chat and
plain prompts), loadable with ``datasets.load_dataset("json", ...)`` and
usable by TRL's DPOTrainer and RewardTrainer as is. ``labels.jsonl`` keeps every raw label
(whole ranking, scores, critique, annotator), as the reward-model trainer reads it.
"""

import json

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from webapp.api.base import SteerApi, query_params
from webapp.api.permissions import RESEARCH
from webapp.feedback.exports import preference_pairs_jsonl, raw_labels_jsonl
from webapp.feedback.models import ComparisonTask


def jsonl_response(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse((line.encode() for line in lines), content_type="application/jsonl")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def mixes_prompt_formats(project) -> bool:
    """True when the project holds both plain-text and chat tasks."""
    tasks = ComparisonTask.objects.filter(project=project)
    return tasks.filter(prompt_messages__isnull=True).exists() and tasks.filter(prompt_messages__isnull=False).exists()


def as_conversational(lines):
    """Plain-text pairs rewritten as chat messages, so one file holds one format.

    ``datasets`` cannot give one column both strings and message lists: it falls back to a
    JSON feature that decodes "4" as the number 4. TRL reads either format, not a mix.
    """
    for line in lines:
        row = json.loads(line)
        if isinstance(row["prompt"], str):
            row["prompt"] = [{"role": "user", "content": row["prompt"]}]
            row["chosen"] = [{"role": "assistant", "content": row["chosen"]}]
            row["rejected"] = [{"role": "assistant", "content": row["rejected"]}]
            line = json.dumps(row, ensure_ascii=False) + "\n"
        yield line


class PreferenceExportFilterSerializer(serializers.Serializer):
    include_ties = serializers.BooleanField(required=False, default=False,
                                            help_text="Also export tied pairs, with a 'tie' column.")


class PreferenceExportApi(SteerApi):
    project_roles = RESEARCH

    @extend_schema(parameters=[PreferenceExportFilterSerializer],
                   responses={(200, "application/jsonl"): OpenApiTypes.BINARY})
    def get(self, request, project_id: int):
        params = query_params(request, PreferenceExportFilterSerializer)
        project = request.membership.project
        lines = preference_pairs_jsonl(project=project, include_ties=params["include_ties"])
        if mixes_prompt_formats(project):
            lines = as_conversational(lines)
        return jsonl_response(lines, f"{project.slug}-preferences.jsonl")


class LabelExportApi(SteerApi):
    project_roles = RESEARCH

    @extend_schema(responses={(200, "application/jsonl"): OpenApiTypes.BINARY})
    def get(self, request, project_id: int):
        project = request.membership.project
        return jsonl_response(raw_labels_jsonl(project=project), f"{project.slug}-labels.jsonl")
