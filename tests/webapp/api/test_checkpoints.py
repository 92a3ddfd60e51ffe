import io
import tarfile
import uuid

import pytest
from django.conf import settings

from tests.factories import make_project, make_run
from webapp.experiments.models import Checkpoint

pytestmark = pytest.mark.django_db


def test_download_streams_the_checkpoint_folder_as_a_tar(api, owner, tmp_path):
    run = make_run(make_project(owner=owner))
    folder = settings.STEER_CHECKPOINT_DIR / f"run-{run.id}-{uuid.uuid4().hex}" / "step-4"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 5)
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    checkpoint = Checkpoint.objects.create(run=run, step=4, path=str(folder))

    response = api.get(f"/api/v1/checkpoints/{checkpoint.id}/download/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.id}-step-4.tar"'
    archive = tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content)))
    files = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}
    root = f"run-{run.id}-step-4"
    assert files == {f"{root}/config.json": b'{"a": 1}', f"{root}/model.safetensors": bytes(range(256)) * 5,
                     f"{root}/tokenizer/vocab.txt": b"a\nb\n"}


def test_a_checkpoint_path_outside_the_checkpoint_root_is_not_served(api, owner, tmp_path):
    run = make_run(make_project(owner=owner))
    (tmp_path / "secret.txt").write_text("no")
    checkpoint = Checkpoint.objects.create(run=run, step=1, path=str(tmp_path))
    assert api.get(f"/api/v1/checkpoints/{checkpoint.id}/download/").status_code == 404


def test_symlinks_in_a_checkpoint_are_left_out(api, owner, tmp_path):
    run = make_run(make_project(owner=owner))
    folder = settings.STEER_CHECKPOINT_DIR / f"run-{run.id}-{uuid.uuid4().hex}" / "step-1"
    folder.mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("secret")
    (folder / "link.txt").symlink_to(tmp_path / "outside.txt")
    (folder / "config.json").write_text("{}")
    checkpoint = Checkpoint.objects.create(run=run, step=1, path=str(folder))
    archive = tarfile.open(fileobj=io.BytesIO(b"".join(api.get(f"/api/v1/checkpoints/{checkpoint.id}/download/")
                                                     .streaming_content)))
    assert [m.name.rsplit("/", 1)[-1] for m in archive.getmembers()] == ["config.json"]
