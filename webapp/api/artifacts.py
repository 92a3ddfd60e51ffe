"""Run artifacts: files attached to a run (MLflow's ``log_artifact``): list, upload, download, delete.

The upload is ``PUT /runs/<id>/artifacts/<path>`` with the file as the raw body, as MLflow's
artifact REST API takes it: the path is in the address, the body is the file in any content
type, streamed to disk a chunk at a time (webapp.experiments.artifacts).
"""

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from webapp.api.base import (
    InsufficientStorage,
    SteerFileApi,
    SteerListApi,
    TooLarge,
    field_error,
)
from webapp.api.permissions import RESEARCH
from webapp.api.runs import run_for
from webapp.api.schema import errors
from webapp.experiments.artifacts import (
    CHUNK_BYTES,
    ArtifactDiskFull,
    ArtifactError,
    ArtifactTooLarge,
    artifact_delete,
    artifact_download_response,
    artifact_put,
)
from webapp.experiments.models import Run, RunArtifact
from webapp.experiments.selectors import artifact_get, artifact_list

ARTIFACT_PATH = OpenApiParameter(
    "artifact_path", OpenApiTypes.STR, OpenApiParameter.PATH,
    description="The file's path within the run, e.g. `eval/report.json`: relative, '/' between folders, "
                "no '.' or '..' segment, no backslash or control character, at most 255 characters and 10 segments.")


class ArtifactOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunArtifact
        fields = ["id", "path", "size_bytes", "sha256", "content_type", "created_at"]


class RunArtifactListApi(SteerListApi):
    """The run's artifacts, by path."""

    project_roles = RESEARCH
    serializer_class = ArtifactOutputSerializer
    ordering_fields = ["id", "path", "created_at"]
    ordering = ["path"]

    def get_queryset(self):
        return artifact_list(run=run_for(self.request, self.kwargs["run_id"]))


class RunArtifactApi(SteerFileApi):
    """One artifact of a run: PUT stores the body as the file at the path (replacing the file a
    path already holds, as MLflow overwrites), GET downloads it, DELETE removes it."""

    project_roles = RESEARCH

    @extend_schema(parameters=[ARTIFACT_PATH], request={"application/octet-stream": OpenApiTypes.BINARY},
                   responses={200: ArtifactOutputSerializer, 201: ArtifactOutputSerializer, **errors(413, 507)})
    def put(self, request, run_id: int, artifact_path: str):
        """Upload the body as the file at ``artifact_path``: 201 when the path is new, 200 when it
        replaced the file there. Over ``STEER_ARTIFACT_MAX_BYTES`` a file (or
        ``STEER_ARTIFACT_RUN_MAX_BYTES`` for all of a run's), or a new path for a run that holds
        ``STEER_ARTIFACT_RUN_MAX_FILES`` files, answers 413 naming the limit; a bad path answers
        400 naming ``path``; a disk that fills up during the write answers 507
        ``insufficient_storage``; nothing is stored on any of these."""
        run = run_for(request, run_id)
        raw = request._request  # the body as Django streams it: never read whole into memory
        if not raw.META.get("CONTENT_LENGTH") and "chunked" in raw.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # Django reads a body only as far as its Content-Length: a chunked one would be stored empty
            raise field_error("Content-Length", "send the file's length in Content-Length; a chunked body is not taken")
        try:
            declared = int(raw.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        try:
            artifact, created = artifact_put(run_id=run.id, path=artifact_path, user=request.user,
                                             chunks=iter(lambda: raw.read(CHUNK_BYTES), b""), declared_bytes=declared)
        except ArtifactTooLarge as exc:
            raise TooLarge(exc.message) from exc
        except ArtifactError as exc:
            raise field_error(exc.field, exc.message) from exc
        except ArtifactDiskFull as exc:
            raise InsufficientStorage(exc.message) from exc
        except Run.DoesNotExist:
            raise Http404("No such run.") from None
        return Response(ArtifactOutputSerializer(artifact).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(parameters=[ARTIFACT_PATH], responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, run_id: int, artifact_path: str):
        """Download the file, always as an attachment (``Content-Disposition: attachment``,
        ``application/octet-stream``, ``X-Content-Type-Options: nosniff``)."""
        run = run_for(request, run_id)
        return artifact_download_response(artifact_get(run=run, path=artifact_path))

    @extend_schema(parameters=[ARTIFACT_PATH], request=None, responses={204: None})
    def delete(self, request, run_id: int, artifact_path: str):
        run = run_for(request, run_id)
        try:
            artifact_delete(run_id=run.id, path=artifact_path)
        except RunArtifact.DoesNotExist:
            raise Http404("No such artifact.") from None
        return Response(status=status.HTTP_204_NO_CONTENT)
