"""Run artifacts (webapp.experiments.artifacts): stored by a name Steer chooses, streamed, limited,
replaced as MLflow overwrites, and removed with their artifact or their run."""

import builtins
import errno
import hashlib
import os

import pytest

from tests.factories import make_project, make_run, make_user
from webapp.experiments import artifacts
from webapp.experiments.artifacts import (
    ArtifactDiskFull,
    ArtifactError,
    ArtifactTooLarge,
    artifact_delete,
    artifact_file,
    artifact_folder,
    artifact_path_problem,
    artifact_put,
    run_artifacts_remove,
)
from webapp.experiments.models import Run, RunArtifact, RunStatus
from webapp.experiments.services import run_delete

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(settings, tmp_path):
    settings.STEER_ARTIFACT_DIR = tmp_path / "artifacts"
    return settings.STEER_ARTIFACT_DIR


@pytest.fixture
def run():
    return make_run(make_project(), status=RunStatus.SUCCEEDED)


def put(run, path, data: bytes, **kwargs):
    return artifact_put(run_id=run.id, path=path, chunks=[data[i:i + 3] for i in range(0, len(data), 3)], **kwargs)


def stored_files(root) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def test_an_upload_is_recorded_with_its_size_hash_and_type_and_stored_under_the_run(root, run):
    user = make_user()
    artifact, created = put(run, "eval/report.json", b'{"accuracy": 0.9}', user=user)
    assert created
    assert (artifact.path, artifact.size_bytes, artifact.content_type, artifact.created_by) == (
        "eval/report.json", 17, "application/json", user)
    assert artifact.sha256 == hashlib.sha256(b'{"accuracy": 0.9}').hexdigest()
    assert artifact_file(artifact).parent == root / f"run-{run.id}"
    assert artifact_file(artifact).read_bytes() == b'{"accuracy": 0.9}'
    assert artifact_file(artifact).name != "report.json", "the user's path never names a file on disk"


def test_an_empty_file_is_an_artifact(root, run):
    artifact, _ = put(run, "empty.txt", b"")
    assert artifact.size_bytes == 0 and artifact_file(artifact).read_bytes() == b""


def test_uploading_a_path_again_replaces_its_file(root, run, django_capture_on_commit_callbacks):
    first, _ = put(run, "samples.txt", b"old")
    old_file = artifact_file(first)
    with django_capture_on_commit_callbacks(execute=True):
        second, created = put(run, "samples.txt", b"newer")
    assert not created and second.pk == first.pk
    assert RunArtifact.objects.get(pk=first.pk).size_bytes == 5
    assert artifact_file(second).read_bytes() == b"newer"
    assert not old_file.exists()
    assert len(stored_files(root)) == 1


@pytest.mark.parametrize("path", [
    "", "/etc/passwd", "../up.txt", "a/../../b", "./a", "a/./b", "a//b", "dir/", "a\\b", "C:\\x",
    "a\nb", "a\x00b", "a\x7fb", "a\u202eb", " a", "a /b", "x" * 256, "/".join("a" * 11),
])
def test_a_bad_path_is_refused_naming_path_and_nothing_is_stored(root, run, path):
    with pytest.raises(ArtifactError) as refused:
        put(run, path, b"data")
    assert refused.value.field == "path"
    assert not RunArtifact.objects.exists()
    assert not root.exists() or stored_files(root) == []


@pytest.mark.parametrize("path", ["report.json", "eval/step-10/samples.jsonl", "a b/ü.txt", "<script>.txt",
                                  "x" * 255, "/".join("a" * 10), "..a/b..", ".hidden"])
def test_good_paths_pass(path):
    assert artifact_path_problem(path) == ""


def test_a_file_over_the_size_limit_is_refused_and_nothing_is_left(root, run, settings):
    settings.STEER_ARTIFACT_MAX_BYTES = 10
    put(run, "ok.bin", b"x" * 10)
    with pytest.raises(ArtifactTooLarge) as refused:
        put(run, "big.bin", b"x" * 11)
    assert "10 bytes" in refused.value.message and "STEER_ARTIFACT_MAX_BYTES" in refused.value.message
    assert list(RunArtifact.objects.values_list("path", flat=True)) == ["ok.bin"]
    assert len(stored_files(root)) == 1, "the partial upload was removed"


def test_a_declared_length_over_the_limit_is_refused_before_anything_is_read(root, run, settings):
    settings.STEER_ARTIFACT_MAX_BYTES = 10

    def never():
        raise AssertionError("the body was read")
        yield b""

    with pytest.raises(ArtifactTooLarge):
        artifact_put(run_id=run.id, path="big.bin", chunks=never(), declared_bytes=11)


def test_a_body_that_ends_short_of_its_declared_length_is_refused_and_nothing_is_stored(root, run):
    with pytest.raises(ArtifactError) as refused:
        artifact_put(run_id=run.id, path="cut.bin", chunks=[b"abc"], declared_bytes=10)
    assert refused.value.field == "Content-Length" and "3 of the 10 bytes" in refused.value.message
    assert not RunArtifact.objects.exists() and stored_files(root) == []


def test_a_runs_total_is_limited_and_a_replaced_file_does_not_count_twice(root, run, settings):
    settings.STEER_ARTIFACT_RUN_MAX_BYTES = 10
    put(run, "a.bin", b"x" * 6)
    with pytest.raises(ArtifactTooLarge) as refused:
        put(run, "b.bin", b"x" * 5)
    assert "STEER_ARTIFACT_RUN_MAX_BYTES" in refused.value.message
    put(run, "b.bin", b"x" * 4)
    put(run, "a.bin", b"x" * 6)  # replacing a.bin: its old 6 bytes are not counted with the new ones
    assert sorted(RunArtifact.objects.values_list("path", "size_bytes")) == [("a.bin", 6), ("b.bin", 4)]


def test_the_upload_is_streamed_a_chunk_at_a_time(root, run):
    seen = []

    def chunks():
        for i in range(5):
            seen.append(i)
            yield bytes([i]) * 4

    artifact, _ = artifact_put(run_id=run.id, path="stream.bin", chunks=chunks())
    assert seen == [0, 1, 2, 3, 4] and artifact.size_bytes == 20


def test_deleting_an_artifact_removes_its_file(root, run, django_capture_on_commit_callbacks):
    artifact, _ = put(run, "plot.png", b"png")
    kept, _ = put(run, "other.png", b"png")
    with django_capture_on_commit_callbacks(execute=True):
        artifact_delete(run_id=run.id, path="plot.png")
    assert not artifact_file(artifact).exists() and artifact_file(kept).exists()
    assert list(RunArtifact.objects.values_list("path", flat=True)) == ["other.png"]


def test_deleting_a_missing_artifact_is_does_not_exist(root, run):
    with pytest.raises(RunArtifact.DoesNotExist):
        artifact_delete(run_id=run.id, path="nothing.txt")


def test_deleting_the_run_removes_its_artifact_files(root, run, settings, tmp_path,
                                                     django_capture_on_commit_callbacks):
    settings.STEER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    other = make_run(run.project, status=RunStatus.SUCCEEDED)
    put(run, "a.txt", b"a")
    kept, _ = put(other, "b.txt", b"b")
    with django_capture_on_commit_callbacks(execute=True):
        run_delete(run_id=run.id)
    assert not artifact_folder(run.id).exists()
    assert artifact_file(kept).exists()
    assert list(RunArtifact.objects.values_list("path", flat=True)) == ["b.txt"]


@pytest.mark.parametrize("folder_removed", [False, True])
def test_an_upload_to_a_run_deleted_while_it_streamed_leaves_nothing(root, run, folder_removed):
    run_id = run.id

    def chunks():
        yield b"first"
        run.delete()  # as run_delete, from another request, before this upload is recorded
        if folder_removed:  # and its commit's removal of the run's folders
            run_artifacts_remove(run_id=run_id)
        yield b"second"

    with pytest.raises(Run.DoesNotExist):
        artifact_put(run_id=run_id, path="late.txt", chunks=chunks())
    assert not artifact_folder(run_id).exists()


def test_a_runs_file_count_is_limited_and_replacing_a_path_adds_no_file(root, run, settings,
                                                                        django_capture_on_commit_callbacks):
    settings.STEER_ARTIFACT_RUN_MAX_FILES = 2
    put(run, "a.txt", b"a")
    put(run, "b.txt", b"")
    with pytest.raises(ArtifactTooLarge) as refused:
        put(run, "c.txt", b"")  # an empty file is a file too
    assert "2 artifacts" in refused.value.message and "STEER_ARTIFACT_RUN_MAX_FILES" in refused.value.message
    assert refused.value.field == "file"
    with django_capture_on_commit_callbacks(execute=True):  # the replaced file is removed on commit
        put(run, "a.txt", b"again")  # replacing a path the run has: no new file
    put(make_run(run.project, status=RunStatus.SUCCEEDED), "c.txt", b"c")  # another run has its own count
    assert sorted(RunArtifact.objects.filter(run=run).values_list("path", "size_bytes")) == [("a.txt", 5), ("b.txt", 0)]
    assert len(stored_files(root / f"run-{run.id}")) == 2


def test_a_new_path_to_a_full_run_is_refused_before_the_body_is_read(root, run, settings):
    settings.STEER_ARTIFACT_RUN_MAX_FILES = 1
    put(run, "a.txt", b"a")

    def never():
        raise AssertionError("the body was read")
        yield b""

    with pytest.raises(ArtifactTooLarge):
        artifact_put(run_id=run.id, path="b.txt", chunks=never())


def test_the_file_count_is_checked_again_once_the_upload_has_streamed(root, run, settings):
    settings.STEER_ARTIFACT_RUN_MAX_FILES = 2
    put(run, "a.txt", b"a")

    def chunks():
        yield b"first"
        put(run, "b.txt", b"b")  # another upload to the run, committed while this one streams
        yield b"second"

    with pytest.raises(ArtifactTooLarge) as refused:
        artifact_put(run_id=run.id, path="c.txt", chunks=chunks())
    assert "STEER_ARTIFACT_RUN_MAX_FILES" in refused.value.message
    assert sorted(RunArtifact.objects.values_list("path", flat=True)) == ["a.txt", "b.txt"]
    assert len(stored_files(root)) == 2, "the refused upload's file was removed"


# --- a full disk -------------------------------------------------------------------------------

class _FillingFile:
    """A file that takes ``room`` bytes, then refuses every write with ``OSError(code)``, as a
    disk that fills up (or a quota that is spent) mid-upload."""

    def __init__(self, handle, room: int, code: int):
        self.handle, self.room, self.code = handle, room, code

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(self.code, os.strerror(self.code))
        self.room -= len(data)
        return self.handle.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def disk_fills_after(monkeypatch, room: int, code: int = errno.ENOSPC) -> None:
    """The artifact writes that follow refuse their bytes past ``room`` with ``code``."""
    real_open = builtins.open

    def filling_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return _FillingFile(handle, room, code) if "x" in mode else handle
    monkeypatch.setattr(artifacts, "open", filling_open, raising=False)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def test_a_full_disk_mid_upload_is_disk_full_and_leaves_no_file_and_no_row(root, run, monkeypatch, code):
    disk_fills_after(monkeypatch, room=6, code=code)
    with pytest.raises(ArtifactDiskFull) as caught:
        put(run, "eval/report.json", b"0123456789")  # written 3 bytes at a time: the third write fails
    assert caught.value.message.startswith("the server's disk is full; nothing was stored")
    assert isinstance(caught.value.__cause__, OSError) and caught.value.__cause__.errno == code
    assert stored_files(root) == [] and list(root.rglob(".*")) == []  # no partial file
    assert not RunArtifact.objects.exists()


def test_a_full_disk_while_replacing_a_path_keeps_the_old_file(root, run, monkeypatch):
    kept, _ = put(run, "a.txt", b"old")
    disk_fills_after(monkeypatch, room=0)
    with pytest.raises(ArtifactDiskFull):
        put(run, "a.txt", b"new contents")
    assert stored_files(root) == [kept.file_name]
    assert artifact_file(kept).read_bytes() == b"old"
    assert list(RunArtifact.objects.values_list("path", "size_bytes")) == [("a.txt", 3)]


def test_other_write_errors_propagate_as_they_are_and_leave_no_file(root, run, monkeypatch):
    disk_fills_after(monkeypatch, room=3, code=errno.EIO)
    with pytest.raises(OSError) as caught:
        put(run, "a.txt", b"0123456789")
    assert caught.value.errno == errno.EIO and not isinstance(caught.value, ArtifactDiskFull)
    assert stored_files(root) == [] and not RunArtifact.objects.exists()
