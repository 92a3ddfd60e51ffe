"""Checkpoints: list a run's, and download one as a tar stream of its folder."""

from pathlib import Path

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from webapp.api.base import SteerFileApi, SteerListApi
from webapp.api.permissions import RESEARCH, scoped_project_ids
from webapp.api.runs import run_for
from webapp.core.tar_stream import folder_in_checkpoint_root, tar_download_response
from webapp.experiments.models import Checkpoint


class CheckpointOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Checkpoint
        fields = ["id", "run", "step", "size_bytes", "created_at"]


class RunCheckpointListApi(SteerListApi):
    project_roles = RESEARCH
    serializer_class = CheckpointOutputSerializer

    def get_queryset(self):
        return Checkpoint.objects.filter(run=run_for(self.request, self.kwargs["run_id"]))


def checkpoint_folder(checkpoint: Checkpoint) -> Path:
    """The checkpoint's folder, only if it lies inside the checkpoint root (else 404)."""
    return folder_in_checkpoint_root(checkpoint.path, "The checkpoint's files are not on this server.")


class CheckpointDownloadApi(SteerFileApi):
    """The checkpoint folder as `run-<id>-step-<n>.tar` (a `save_pretrained` folder for policies)."""

    project_roles = RESEARCH

    @extend_schema(responses={(200, "application/x-tar"): OpenApiTypes.BINARY})
    def get(self, request, checkpoint_id: int):
        ids = scoped_project_ids(request, RESEARCH)
        checkpoint = Checkpoint.objects.filter(run__project_id__in=ids, pk=checkpoint_id).first()
        if checkpoint is None:
            raise Http404("No such checkpoint.")
        folder = checkpoint_folder(checkpoint)
        name = f"run-{checkpoint.run_id}-step-{checkpoint.step}"
        return tar_download_response(folder, name)
