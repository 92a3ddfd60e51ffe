"""Run artifacts: files attached to a run, as MLflow's ``log_artifact``.

A file's ``path`` (``eval/report.json``) is only a key in the database: the bytes are stored as
``STEER_ARTIFACT_DIR/run-<run id>/<random hex>``, so no text a user wrote ever names a file on
disk (no traversal, no clash between a file ``a`` and a folder ``a/``, no case or length quirks
of the filesystem). An upload is streamed to a temporary file in that folder a chunk at a time,
counted and hashed as it goes, renamed once complete, and only then recorded; uploading a path
again replaces it, as MLflow overwrites: readers see the old file or the new one, never half of
one, and the old file is removed once the new row is committed (a download that read the old row
just before then opens the new file; see ``_artifact_open``). Each upload writes a file of its own
and records it in one row update under the run's lock, so two uploads to one path at once leave
the row naming the last to commit, with that file's size and hash, and only its file on disk.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import mimetypes
import os
import shutil
import unicodedata
import uuid
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Sum
from django.http import FileResponse, Http404

from webapp.experiments.models import Run, RunArtifact

log = logging.getLogger(__name__)

MAX_PATH_CHARS = 255
MAX_PATH_SEGMENTS = 10
CHUNK_BYTES = 1024 * 1024


class ArtifactError(Exception):
    """An artifact request that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class ArtifactTooLarge(ArtifactError):
    """The file, or the run's files with it, would pass a size limit, or the run holds as many
    files as it may; nothing was stored."""


class ArtifactDiskFull(Exception):
    """The server's disk (or the account's quota on it) filled up while an upload was written:
    no fault of the request, so not an ArtifactError. Nothing was stored: no partial file, no
    row."""

    message = "the server's disk is full; nothing was stored (free some space on the server, then send the file again)"

    def __init__(self):
        super().__init__(self.message)


# ENOSPC: no space left on the device; EDQUOT: the disk quota is spent (not on every platform)
DISK_FULL_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write refused for want of disk space or quota."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def artifact_path_problem(path: str) -> str:
    """What is wrong with ``path`` as an artifact's name, '' when nothing is."""
    if not path:
        return "is empty; name the file, e.g. eval/report.json"
    if len(path) > MAX_PATH_CHARS:
        return f"is {len(path)} characters long; at most {MAX_PATH_CHARS}"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in path):
        return "holds a control character; use printable characters only"
    if "\\" in path:
        return "holds a backslash; separate folders with '/'"
    if path.startswith("/"):
        return "is absolute; give a path relative to the run, e.g. eval/report.json"
    segments = path.split("/")
    if any(segment == "" for segment in segments):
        return "has an empty segment ('//' or a '/' at the end); name each folder and the file"
    if any(segment in (".", "..") for segment in segments):
        return "has a '.' or '..' segment; give the path from the run's root without them"
    if any(segment != segment.strip() for segment in segments):
        return "has a segment that starts or ends with a space"
    if len(segments) > MAX_PATH_SEGMENTS:
        return f"has {len(segments)} segments; at most {MAX_PATH_SEGMENTS} (folders and the file)"
    return ""


def artifact_path_check(path: str) -> str:
    """``path``, or ArtifactError naming ``path`` with what is wrong."""
    problem = artifact_path_problem(path)
    if problem:
        raise ArtifactError(f"the artifact path {problem}", field="path")
    return path


def artifact_folder(run_id: int) -> Path:
    return Path(settings.STEER_ARTIFACT_DIR) / f"run-{int(run_id)}"


def artifact_file(artifact: RunArtifact) -> Path:
    return artifact_folder(artifact.run_id) / artifact.file_name


def _limit_bytes(*, run_id: int, path: str) -> tuple[int, str]:
    """The most bytes an upload to ``path`` may hold, and the limit's name for the refusal."""
    others = (RunArtifact.objects.filter(run_id=run_id).exclude(path=path)
              .aggregate(total=Sum("size_bytes"))["total"] or 0)
    return _limit_beside(others)


def _limit_beside(others: int) -> tuple[int, str]:
    """The most bytes a file may hold beside ``others`` bytes of the run's other files, and the
    limit's name for the refusal."""
    per_run = settings.STEER_ARTIFACT_RUN_MAX_BYTES - others
    if per_run < settings.STEER_ARTIFACT_MAX_BYTES:
        return max(per_run, 0), (f"a run's artifacts may hold {settings.STEER_ARTIFACT_RUN_MAX_BYTES} bytes in all "
                                 f"(STEER_ARTIFACT_RUN_MAX_BYTES), and this run's other files hold {others}")
    return settings.STEER_ARTIFACT_MAX_BYTES, (f"an artifact may hold at most {settings.STEER_ARTIFACT_MAX_BYTES} "
                                               "bytes (STEER_ARTIFACT_MAX_BYTES)")


def _files_full(*, run_id: int, path: str) -> ArtifactTooLarge | None:
    """The refusal of a new path for a run that holds as many files as it may; None when there is
    room, or when ``path`` is one the run has (replacing a file adds none)."""
    most = settings.STEER_ARTIFACT_RUN_MAX_FILES
    files = RunArtifact.objects.filter(run_id=run_id)
    if files.count() < most or files.filter(path=path).exists():
        return None
    return ArtifactTooLarge(f"the run holds {most} artifacts, as many as a run may (STEER_ARTIFACT_RUN_MAX_FILES); "
                            "delete some, or upload to a path the run has to replace its file", field="file")


def artifact_room_check(*, run_id: int, declared_bytes: int, slack_bytes: int = 0) -> None:
    """ArtifactTooLarge when a body of ``declared_bytes``, ``slack_bytes`` of them not the file's
    (a multipart form's boundaries and fields), cannot fit the run at any path: over the file
    limit, or over the room its committed files leave even were its largest one replaced. For a
    body whose path is not known before it is read (the run page's form); read without a lock,
    artifact_put checks again."""
    files = RunArtifact.objects.filter(run_id=run_id).aggregate(total=Sum("size_bytes"), largest=Max("size_bytes"))
    limit, why = _limit_beside((files["total"] or 0) - (files["largest"] or 0))
    if declared_bytes - slack_bytes > limit:
        raise _too_large(limit, why)


def _content_type(path: str) -> str:
    """The type the file name's extension suggests ('' for none). The path is read as a file's,
    never as a URL: given 'data:text/html,x', mimetypes answers the data URL's own type, of any
    text and length."""
    return mimetypes.guess_type(f"/{path}")[0] or ""


def _too_large(limit: int, why: str) -> ArtifactTooLarge:
    return ArtifactTooLarge(f"the file is larger than the {limit} bytes it may hold: {why}", field="file")


def _write_stream(chunks: Iterable[bytes], folder: Path, limit: int, why: str) -> tuple[str, int, str]:
    """Stream ``chunks`` into a new file of ``folder``: (its name, size, sha256). Nothing is left
    behind on a refusal (ArtifactTooLarge past ``limit``) or an error."""
    folder.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    partial = folder / f".{name}.part"
    digest, size = hashlib.sha256(), 0
    try:
        with open(partial, "xb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit, why)
                digest.update(chunk)
                out.write(chunk)
        os.replace(partial, folder / name)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return name, size, digest.hexdigest()


def artifact_put(*, run_id: int, path: str, chunks: Iterable[bytes], user=None,
                 declared_bytes: int | None = None) -> tuple[RunArtifact, bool]:
    """Store the bytes of ``chunks`` as the run's artifact at ``path``: (the artifact, created).

    A path the run already has is replaced (MLflow overwrites). ``declared_bytes`` (a request's
    Content-Length) past the limit, or a new path for a run with STEER_ARTIFACT_RUN_MAX_FILES
    files, is refused before anything is read, and a body that ends short of it is refused once
    read. ArtifactError (a bad path, a short body) and ArtifactTooLarge store nothing, nor does
    ArtifactDiskFull, a write the disk refused for want of space (ENOSPC) or quota (EDQUOT);
    other OSErrors propagate. Run.DoesNotExist for a run deleted meanwhile.

    Uploads to one run that stream at once are each held to the room its committed files leave,
    so together they may hold more on disk for a while; the check under the run's lock keeps
    only those that fit.
    """
    artifact_path_check(path)
    if full := _files_full(run_id=run_id, path=path):
        raise full
    limit, why = _limit_bytes(run_id=run_id, path=path)
    if declared_bytes is not None and declared_bytes > limit:
        raise _too_large(limit, why)
    folder = artifact_folder(run_id)
    try:
        name, size, sha256 = _write_stream(chunks, folder, limit, why)
    except FileNotFoundError:  # the folder went with the run, deleted while this upload streamed
        if not Run.objects.filter(pk=run_id).exists():
            raise Run.DoesNotExist(f"run {run_id} was deleted during the upload") from None
        raise
    except OSError as exc:  # _write_stream removed the partial file
        if is_disk_full(exc):
            raise ArtifactDiskFull from exc
        raise
    try:
        if declared_bytes is not None and size != declared_bytes:  # the client went away mid-upload
            raise ArtifactError(f"the body ended after {size} of the {declared_bytes} bytes it announced; "
                                "nothing was stored, send the file again", field="Content-Length")
        with transaction.atomic():
            # the run's row lock: uploads to one run add up one at a time, and a deletion of the
            # run waits for this one (or this one finds the run gone)
            Run.objects.select_for_update().get(pk=run_id)
            # other uploads to the run may have been committed while this one streamed
            if full := _files_full(run_id=run_id, path=path):
                raise full
            limit, why = _limit_bytes(run_id=run_id, path=path)
            if size > limit:
                raise _too_large(limit, why)
            previous = RunArtifact.objects.filter(run_id=run_id, path=path).first()
            values = {"file_name": name, "size_bytes": size, "sha256": sha256, "created_by": user,
                      "content_type": _content_type(path)}
            if previous is None:
                artifact = RunArtifact.objects.create(run_id=run_id, path=path, **values)
            else:
                replaced = folder / previous.file_name
                for field, value in values.items():
                    setattr(previous, field, value)
                previous.save()
                artifact = previous
                transaction.on_commit(lambda: _file_remove(replaced))
    except BaseException as exc:
        (folder / name).unlink(missing_ok=True)
        if isinstance(exc, Run.DoesNotExist):  # the run's folder went with it, unless this upload made it again
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return artifact, previous is None


def artifact_delete(*, run_id: int, path: str) -> None:
    """Delete the run's artifact at ``path``, and its file once that is committed.
    RunArtifact.DoesNotExist when the run has none there."""
    with transaction.atomic():
        artifact = RunArtifact.objects.select_for_update().get(run_id=run_id, path=path)
        stored = artifact_file(artifact)
        artifact.delete()
        transaction.on_commit(lambda: _file_remove(stored))


def run_artifacts_remove(*, run_id: int) -> None:
    """Remove ``STEER_ARTIFACT_DIR/run-<id>`` (a deleted run's files); a link in its place is
    unlinked, its target left alone. Failures are logged: the run is already gone."""
    folder = artifact_folder(run_id)
    try:
        if folder.is_symlink():
            folder.unlink()
        elif folder.is_dir():
            shutil.rmtree(folder)
    except OSError:
        log.exception("run %s: could not remove its artifact folder %s", run_id, folder)


def _file_remove(file: Path) -> None:
    try:
        file.unlink(missing_ok=True)
    except OSError:
        log.exception("could not remove the artifact file %s", file)


# Replaces of one path that may commit between a download's reading of the row and its opening
# of the file, before the download gives up with a 404: each needs a whole upload to commit.
OPEN_TRIES = 5


def _artifact_open(artifact: RunArtifact):
    """The artifact's file, opened for reading: the one its row names now. A replace of the path
    that commits between the caller's reading of the row and this opening removes the file that
    row named (its bytes live on in the new file): the row is read again and the new file
    opened, where the download answered 404 for a path that held a file all along. Once open,
    the bytes read are that file's whole, whatever replaces it meanwhile (a removed file stays
    readable through its open handle). Http404 when the row is gone (the artifact was deleted)
    or still names a file that is not there."""
    for _ in range(OPEN_TRIES):
        try:
            return open(artifact_file(artifact), "rb")  # the caller hands it to FileResponse, which closes it
        except FileNotFoundError:
            current = RunArtifact.objects.filter(pk=artifact.pk).first()
            if current is None or current.file_name == artifact.file_name:
                break
            artifact = current
    raise Http404("The artifact's file is not on this server.")


def artifact_download_response(artifact: RunArtifact) -> FileResponse:
    """The artifact's file as a download, never shown in the browser: an uploaded HTML page or
    SVG would otherwise run its scripts in Steer's origin. Always ``attachment``, typed
    ``application/octet-stream``, ``nosniff``, and sandboxed by CSP should a browser render it."""
    handle = _artifact_open(artifact)
    response = FileResponse(handle, as_attachment=True, filename=artifact.path.rsplit("/", 1)[-1],
                            content_type="application/octet-stream")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
