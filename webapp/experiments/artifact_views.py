"""Run page: the run's artifacts (files attached to it, webapp.experiments.artifacts) downloaded,
uploaded and deleted. Thin: the rules are the artifacts module's."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from webapp.core.deletion import deletion_attempt
from webapp.experiments.artifacts import (
    ArtifactDiskFull,
    ArtifactError,
    ArtifactTooLarge,
    artifact_delete,
    artifact_download_response,
    artifact_put,
    artifact_room_check,
    is_disk_full,
)
from webapp.experiments.models import Run, RunArtifact
from webapp.experiments.selectors import artifact_get, run_get
from webapp.experiments.views import run_detail_page
from webapp.projects.access import research_required

# Room in a multipart body for its boundaries and the path field, beyond the file itself.
MULTIPART_SLACK_BYTES = 64 * 1024


def _run_page(request, run) -> str:
    return reverse("experiments:detail", args=[request.project.id, run.id]) + "#artifacts"


@research_required
@require_http_methods(["GET"])
def run_artifact_download(request, project_id: int, run_id: int, artifact_path: str):
    """The artifact's file, as ``GET /api/v1/runs/<id>/artifacts/<path>``: always an attachment."""
    run = run_get(project=request.project, run_id=run_id)
    return artifact_download_response(artifact_get(run=run, path=artifact_path))


@research_required
@require_http_methods(["GET", "POST"])
def run_artifact_delete_page(request, project_id: int, run_id: int, artifact_path: str):
    """GET: the confirmation; POST: delete the artifact and its file, back to the run page."""
    run = run_get(project=request.project, run_id=run_id)
    artifact = artifact_get(run=run, path=artifact_path)
    outcome = deletion_attempt(
        request, check=lambda: None, delete=lambda: artifact_delete(run_id=run.id, path=artifact.path),
        refusals=(ArtifactError,), gone=RunArtifact.DoesNotExist, done=f"Deleted the artifact “{artifact.path}”.")
    if outcome.deleted:
        return redirect(_run_page(request, run))
    return render(request, "experiments/artifact_delete.html",
                  {"project": request.project, "membership": request.membership, "run": run, "artifact": artifact})


@csrf_exempt  # checked by _artifact_upload, once the body's length is known to be within the limit
@require_POST
@research_required
def run_artifact_upload_action(request, project_id: int, run_id: int):
    """Upload a file from the run page (a multipart form: ``file``, and ``path``, the file's name
    when blank). A body longer than the file may be, or than the run has room for at any path, is
    refused before it is read: Django's CSRF check would otherwise read all of it into a temporary
    file first. The refusal changes nothing, so it needs no CSRF token."""
    run = run_get(project=request.project, run_id=run_id)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    try:
        artifact_room_check(run_id=run.id, declared_bytes=declared, slack_bytes=MULTIPART_SLACK_BYTES)
    except ArtifactTooLarge as exc:
        return _upload_refused(request, run, status=413, error=exc.message)
    try:
        return _artifact_upload(request, run)
    except OSError as exc:  # Django's own temporary file of the upload, written as the form is read
        if is_disk_full(exc):
            return _upload_refused(request, run, status=507, error=ArtifactDiskFull.message)
        raise


@csrf_protect
def _artifact_upload(request, run: Run):
    upload = request.FILES.get("file")
    if upload is None:
        return _upload_refused(request, run, status=400, error="choose a file to upload")
    path = request.POST.get("path", "").strip() or upload.name
    try:
        artifact, created = artifact_put(run_id=run.id, path=path, chunks=upload.chunks(), user=request.user,
                                         declared_bytes=upload.size)
    except ArtifactError as exc:
        return _upload_refused(request, run, status=413 if exc.field == "file" else 400, error=exc.message)
    except ArtifactDiskFull as exc:
        return _upload_refused(request, run, status=507, error=exc.message)
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    messages.success(request, f"{'Uploaded' if created else 'Replaced'} the artifact “{artifact.path}”.")
    return redirect(_run_page(request, run))


def _upload_refused(request, run: Run, *, status: int, error: str):
    """The run page again, the refusal shown above its artifacts; nothing was stored."""
    return run_detail_page(request, request.project.id, run.id, artifact_error=error, status=status)
