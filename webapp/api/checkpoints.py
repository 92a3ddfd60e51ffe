"""Checkpoints: list a run's, and download one as a tar stream of its folder."""

import tarfile
from pathlib import Path

from django.conf import settings
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from webapp.api.base import SteerFileApi, SteerListApi
from webapp.api.permissions import RESEARCH, scoped_project_ids
from webapp.api.runs import run_for
from webapp.experiments.models import Checkpoint

CHUNK = 1 << 20


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
    root = Path(settings.STEER_CHECKPOINT_DIR).resolve()
    folder = Path(checkpoint.path).resolve()
    if not folder.is_relative_to(root) or not folder.is_dir():
        raise Http404("The checkpoint's files are not on this server.")
    return folder


def tar_chunks(folder: Path, arcroot: str):
    """An uncompressed tar of `folder`, produced piece by piece (constant memory)."""
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            continue  # never follow a link out of the checkpoint folder
        info = tarfile.TarInfo(f"{arcroot}/{path.relative_to(folder).as_posix()}")
        stat = path.stat()
        info.mtime, info.mode = int(stat.st_mtime), 0o755 if path.is_dir() else 0o644
        if path.is_dir():
            info.type = tarfile.DIRTYPE
            yield info.tobuf(format=tarfile.PAX_FORMAT)
            continue
        info.size = stat.st_size
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        written = 0
        with path.open("rb") as handle:
            while written < info.size and (piece := handle.read(min(CHUNK, info.size - written))):
                written += len(piece)
                yield piece
        if written < info.size:  # the file shrank while we read it: keep the archive well-formed
            yield b"\0" * (info.size - written)
        if info.size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


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
        response = StreamingHttpResponse(tar_chunks(folder, name), content_type="application/x-tar")
        response["Content-Disposition"] = f'attachment; filename="{name}.tar"'
        return response
