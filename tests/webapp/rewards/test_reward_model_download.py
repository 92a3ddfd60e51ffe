"""Downloading a trained reward model's folder as a tar: over the API and from the Reward models
page, only for its project's research roles, and only while its folder is on the server."""

import io
import tarfile

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_run, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.models import RunKind, RunStatus
from webapp.rewards.models import RewardModel

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def checkpoint_root(settings, tmp_path):
    settings.STEER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.STEER_CHECKPOINT_DIR.mkdir()
    return settings.STEER_CHECKPOINT_DIR


def trained(project, name="Helpful RM v2") -> RewardModel:
    """A real tiny reward model saved where the worker saves one: its training run's folder."""
    from workers.engine.reward_model import build_reward_model

    run = make_run(project, kind=RunKind.REWARD_MODEL, status=RunStatus.SUCCEEDED, name=f"train {name}")
    scorer = build_reward_model(backbone="tiny", ensemble_size=2, seed=0, max_length=32, device="cpu",
                                corpus=["the answer is four", "i do not know"])
    folder = scorer.save(run.checkpoint_dir / "reward-model", metrics={"eval/accuracy": 1.0})
    return RewardModel.objects.create(project=project, name=name, backbone="tiny", ensemble_size=2,
                                      training_run=run, path=str(folder))


def folder_files(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def tar_files(response, root: str) -> dict[str, bytes]:
    archive = tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content)))
    assert all(m.name == root or m.name.startswith(f"{root}/") for m in archive.getmembers())
    return {m.name.removeprefix(f"{root}/"): archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def test_the_api_streams_the_folder_as_a_tar_that_loads_as_the_same_reward_model(tmp_path):
    from workers.engine.reward_model import load_reward_model

    user = api_user()
    rm = trained(make_project(owner=user))
    response = token_client(user).get(f"/api/v1/reward-models/{rm.id}/download/", HTTP_ACCEPT="application/x-tar")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-tar"
    name = f"helpful-rm-v2-{rm.id}"
    assert response["Content-Disposition"] == f'attachment; filename="{name}.tar"'
    files = tar_files(response, name)
    assert files == folder_files(rm.training_run.checkpoint_dir / "reward-model")
    assert {"reward_model.json", "heads.safetensors", "backbone/config.json"} <= files.keys()

    for path, content in files.items():  # unpacked elsewhere, the folder loads and scores as the saved one
        (tmp_path / "elsewhere" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "elsewhere" / path).write_bytes(content)
    copy, original = load_reward_model(tmp_path / "elsewhere", device="cpu"), load_reward_model(rm.path, device="cpu")
    assert copy.ensemble_size == 2
    assert copy.score(["q"], ["the answer is four"]).tolist() == original.score(["q"], ["the answer is four"]).tolist()


def test_the_api_answers_404_for_another_project_and_an_annotator():
    owner, stranger, annotator = api_user(), api_user(), api_user()
    rm = trained(make_project(owner=owner))
    make_project(owner=stranger)
    rm.project.memberships.create(user=annotator, role="annotator")
    assert token_client(owner).get(f"/api/v1/reward-models/{rm.id}/download/").status_code == 200
    for user in (stranger, annotator):
        response = token_client(user).get(f"/api/v1/reward-models/{rm.id}/download/")
        assert response.status_code == 404, user


def test_a_model_not_saved_yet_or_whose_folder_is_gone_answers_404_saying_so(checkpoint_root, tmp_path):
    user = api_user()
    project = make_project(owner=user)
    api = token_client(user)
    pending = RewardModel.objects.create(project=project, name="pending", backbone="tiny")
    response = api.get(f"/api/v1/reward-models/{pending.id}/download/")
    assert response.status_code == 404 and "not ready" in response.json()["error"]["message"]

    gone = RewardModel.objects.create(project=project, name="gone", backbone="tiny",
                                      path=str(checkpoint_root / "run-999" / "reward-model"))
    response = api.get(f"/api/v1/reward-models/{gone.id}/download/")
    assert response.status_code == 404 and "folder is missing" in response.json()["error"]["message"]

    (tmp_path / "outside").mkdir()  # a folder outside the checkpoint root is never served
    (tmp_path / "outside" / "secret.txt").write_text("no")
    outside = RewardModel.objects.create(project=project, name="outside", backbone="tiny", path=str(tmp_path / "outside"))
    assert api.get(f"/api/v1/reward-models/{outside.id}/download/").status_code == 404


def test_the_page_links_a_ready_model_to_the_same_tar(client):
    user = make_user()
    project = make_project(owner=user)
    rm = trained(project)
    pending = RewardModel.objects.create(project=project, name="pending", backbone="tiny")
    assert client.login(username=user.username, password=PASSWORD)
    body = client.get(reverse("rewards:list", args=[project.id])).content.decode()
    url = reverse("rewards:download", args=[project.id, rm.id])
    assert f'href="{url}" download' in body
    assert reverse("rewards:download", args=[project.id, pending.id]) not in body
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="helpful-rm-v2-{rm.id}.tar"'
    assert tar_files(response, f"helpful-rm-v2-{rm.id}") == folder_files(rm.training_run.checkpoint_dir / "reward-model")
    assert client.get(reverse("rewards:download", args=[project.id, pending.id])).status_code == 404


def test_the_page_answers_404_to_a_non_member_and_403_to_an_annotator(client):
    rm = trained(make_project())
    stranger, annotator = make_user(), make_user()
    rm.project.memberships.create(user=annotator, role="annotator")
    url = reverse("rewards:download", args=[rm.project_id, rm.id])
    for user, status in ((stranger, 404), (annotator, 403)):
        client.logout()
        assert client.login(username=user.username, password=PASSWORD)
        assert client.get(url).status_code == status
    other = make_project(owner=stranger)  # another project's id in the address does not reach it either
    client.logout()
    assert client.login(username=stranger.username, password=PASSWORD)
    assert client.get(reverse("rewards:download", args=[other.id, rm.id])).status_code == 404


def test_the_page_says_how_a_download_becomes_a_hugging_face_classifier_once_there_are_models(client):
    user = make_user()
    project = make_project(owner=user)
    assert client.login(username=user.username, password=PASSWORD)
    assert "export-rm-hf" not in client.get(reverse("rewards:list", args=[project.id])).content.decode()
    trained(project)
    body = client.get(reverse("rewards:list", args=[project.id])).content.decode()
    assert "python -m workers.engine export-rm-hf FOLDER NEW_FOLDER" in body
