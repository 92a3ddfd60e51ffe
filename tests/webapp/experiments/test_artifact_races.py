"""Run artifacts under concurrent use: a download while its path is replaced, and two uploads to
one path at once (webapp.experiments.artifacts)."""

import hashlib
import threading

import pytest
from django.db import connection
from django.http import Http404

from tests.factories import make_project, make_run
from webapp.experiments.artifacts import (
    artifact_delete,
    artifact_download_response,
    artifact_file,
    artifact_put,
)
from webapp.experiments.models import RunArtifact, RunStatus


@pytest.fixture
def root(settings, tmp_path):
    settings.STEER_ARTIFACT_DIR = tmp_path / "artifacts"
    return settings.STEER_ARTIFACT_DIR


@pytest.fixture
def run(db):
    return make_run(make_project(), status=RunStatus.SUCCEEDED)


def put(run, path, data: bytes):
    return artifact_put(run_id=run.id, path=path, chunks=[data], declared_bytes=len(data))


def served(response) -> bytes:
    body = b"".join(response.streaming_content)
    response.close()
    return body


def test_a_download_whose_path_is_replaced_after_its_row_was_read_serves_the_new_file(
        root, run, django_capture_on_commit_callbacks):
    """It answered 404 (the file is not on this server): the replace's commit had removed the file
    the row it read named, though the path held a file all along."""
    put(run, "samples.txt", b"old")
    row = RunArtifact.objects.get(run=run, path="samples.txt")  # the download has read the row...
    with django_capture_on_commit_callbacks(execute=True):
        put(run, "samples.txt", b"newer")  # ...when a replace commits and removes the file it names
    assert not artifact_file(row).exists()
    response = artifact_download_response(row)
    assert served(response) == b"newer" and response["Content-Length"] == "5"


def test_a_download_opened_before_a_replace_serves_the_old_file_whole(root, run, django_capture_on_commit_callbacks):
    put(run, "samples.txt", b"old bytes")
    response = artifact_download_response(RunArtifact.objects.get(run=run, path="samples.txt"))
    with django_capture_on_commit_callbacks(execute=True):
        put(run, "samples.txt", b"new")
    assert served(response) == b"old bytes" and response["Content-Length"] == "9"


def test_a_download_whose_artifact_was_deleted_after_its_row_was_read_is_404(
        root, run, django_capture_on_commit_callbacks):
    put(run, "samples.txt", b"old")
    row = RunArtifact.objects.get(run=run, path="samples.txt")
    with django_capture_on_commit_callbacks(execute=True):
        artifact_delete(run_id=run.id, path="samples.txt")
    with pytest.raises(Http404):
        artifact_download_response(row)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("last", ["streamed", "quick"])
def test_two_uploads_to_one_path_at_once_leave_the_row_and_the_file_of_the_last_to_commit(root, run, last):
    """Upload "streamed" sends its first chunk, then waits while upload "quick" to the same path is
    stored whole (or, with last="quick", "quick" waits for "streamed" to be stored): each writes a
    file of its own and records it in one row update under the run's lock, so the row ends with
    the size and hash of the last to commit, its file holds those bytes, and no other file stays."""
    streamed, quick = b"s" * 3000, b"q" * 7
    half_sent, quick_done, streamed_done = threading.Event(), threading.Event(), threading.Event()

    def chunks():
        yield streamed[:1000]
        half_sent.set()
        if last == "streamed":
            assert quick_done.wait(30)
        yield streamed[1000:]

    def upload_streamed():
        try:
            artifact_put(run_id=run.id, path="eval/samples.txt", chunks=chunks(), declared_bytes=len(streamed))
        finally:
            streamed_done.set()
            connection.close()

    worker = threading.Thread(target=upload_streamed)
    worker.start()
    assert half_sent.wait(30)
    if last == "quick":
        assert streamed_done.wait(30)
    put(run, "eval/samples.txt", quick)
    quick_done.set()
    worker.join(30)

    data = streamed if last == "streamed" else quick
    (row,) = RunArtifact.objects.filter(run=run)
    assert (row.size_bytes, row.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert artifact_file(row).read_bytes() == data
    assert [p.name for p in (root / f"run-{run.id}").iterdir()] == [row.file_name]
    assert served(artifact_download_response(row)) == data
