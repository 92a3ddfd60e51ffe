"""The run page's checkpoints can be downloaded, each as a tar of its folder (as the API serves it)."""

import io
import tarfile
import uuid

import pytest
from django.conf import settings
from django.urls import reverse

from tests.factories import make_project, make_run, make_user
from webapp.experiments.models import Checkpoint, RunStatus

pytestmark = pytest.mark.django_db


def checkpoint_of(run, step: int = 4) -> Checkpoint:
    folder = settings.STEER_CHECKPOINT_DIR / f"run-{run.id}-{uuid.uuid4().hex}" / f"step-{step}"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    return Checkpoint.objects.create(run=run, step=step, path=str(folder), size_bytes=12)


def download_url(run, checkpoint) -> str:
    return reverse("experiments:checkpoint_download", args=[run.project_id, run.id, checkpoint.id])


@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.SUCCEEDED])
def test_the_status_panel_links_each_checkpoint_to_its_download(client, researcher, status):
    run = make_run(researcher, status=status)
    checkpoint = checkpoint_of(run)
    panel = client.get(reverse("experiments:status", args=[researcher.id, run.id])).content.decode()
    assert f'href="{download_url(run, checkpoint)}" download aria-label="Download step 4 as a tar"' in panel
    assert f'href="{download_url(run, checkpoint)}"' in client.get(
        reverse("experiments:detail", args=[researcher.id, run.id])).content.decode()


def test_a_download_is_the_checkpoint_folder_as_a_tar(client, researcher):
    run = make_run(researcher, status=RunStatus.SUCCEEDED)
    response = client.get(download_url(run, checkpoint_of(run)))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.id}-step-4.tar"'
    with tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content))) as archive:
        files = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}
    root = f"run-{run.id}-step-4"
    assert files == {f"{root}/config.json": b'{"a": 1}', f"{root}/tokenizer/vocab.txt": b"a\nb\n"}


def test_another_runs_or_projects_checkpoint_and_a_pruned_folder_answer_404(client, researcher):
    run = make_run(researcher, status=RunStatus.SUCCEEDED)
    other_run = make_run(researcher, status=RunStatus.SUCCEEDED)
    other_project_run = make_run(make_project(owner=make_user()), status=RunStatus.SUCCEEDED)
    theirs = checkpoint_of(other_project_run)
    assert client.get(download_url(run, checkpoint_of(other_run))).status_code == 404  # not this run's
    assert client.get(reverse("experiments:checkpoint_download",
                              args=[researcher.id, other_project_run.id, theirs.id])).status_code == 404
    assert client.get(reverse("experiments:checkpoint_download",
                              args=[other_project_run.project_id, other_project_run.id, theirs.id])).status_code == 404
    gone = Checkpoint.objects.create(run=run, step=9, path=str(settings.STEER_CHECKPOINT_DIR / "pruned" / "step-9"))
    assert client.get(download_url(run, gone)).status_code == 404
    assert client.post(download_url(run, checkpoint_of(run, step=5))).status_code == 405
