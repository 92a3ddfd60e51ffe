"""SteerClient's run artifacts against a live Steer server: log_artifact streams a local file up,
artifacts lists them, download_artifact fetches one back; refusals are SteerErrors."""

import hashlib

import pytest

from steer_client.client import SteerClient, SteerError
from tests.factories import make_project, make_run, make_user
from tests.steer_client.test_client import lose_the_first_answer
from webapp.accounts.services import api_token_create
from webapp.experiments.models import RunArtifact, RunKind

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run_and_client(live_server, settings, tmp_path):
    settings.STEER_ARTIFACT_DIR = tmp_path / "artifacts"
    user = make_user()
    run = make_run(make_project(owner=user), kind=RunKind.EXTERNAL)
    client = SteerClient(live_server.url, api_token_create(user=user, name="client")[1], retries=1)
    yield run, client
    client.close()


def test_a_logged_file_is_listed_and_downloaded_as_it_was(run_and_client, tmp_path):
    run, client = run_and_client
    report = tmp_path / "report.json"
    report.write_bytes(b'{"accuracy": 0.9}')
    plot = tmp_path / "plot.png"
    plot.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: more than one chunk each way
    logged = client.log_artifact(run.id, report, "eval/report.json")
    assert (logged["path"], logged["size_bytes"]) == ("eval/report.json", 17)
    assert client.log_artifact(run.id, plot)["path"] == "plot.png"  # the file's own name by default

    listed = client.artifacts(run.id)
    assert [(a["path"], a["sha256"]) for a in listed] == [
        ("eval/report.json", hashlib.sha256(report.read_bytes()).hexdigest()),
        ("plot.png", hashlib.sha256(plot.read_bytes()).hexdigest())]

    into = tmp_path / "downloads"
    into.mkdir()
    assert client.download_artifact(run.id, "plot.png", into) == into / "plot.png"
    assert (into / "plot.png").read_bytes() == plot.read_bytes()
    named = client.download_artifact(run.id, "eval/report.json", tmp_path / "r.json")
    assert named.read_bytes() == b'{"accuracy": 0.9}'


def test_logging_a_path_again_replaces_the_file(run_and_client, tmp_path):
    run, client = run_and_client
    local = tmp_path / "samples.txt"
    local.write_text("first")
    client.log_artifact(run.id, local)
    local.write_text("second, longer")
    assert client.log_artifact(run.id, local)["size_bytes"] == 14
    assert [a["size_bytes"] for a in client.artifacts(run.id)] == [14]


def test_refusals_are_steer_errors_and_a_failed_download_leaves_no_file(run_and_client, tmp_path, settings):
    run, client = run_and_client
    local = tmp_path / "a.txt"
    local.write_bytes(b"12345")
    with pytest.raises(SteerError) as bad:
        client.log_artifact(run.id, local, "../a.txt")
    assert bad.value.status == 400 and list(bad.value.error["fields"]) == ["path"]
    settings.STEER_ARTIFACT_MAX_BYTES = 4
    with pytest.raises(SteerError) as big:
        client.log_artifact(run.id, local)
    assert big.value.status == 413 and "STEER_ARTIFACT_MAX_BYTES" in big.value.error["message"]
    with pytest.raises(SteerError) as missing:
        client.download_artifact(run.id, "none.txt", tmp_path / "none.txt")
    assert missing.value.status == 404
    assert not (tmp_path / "none.txt").exists() and not list(tmp_path.glob(".*.part"))
    with pytest.raises(FileNotFoundError):
        client.log_artifact(run.id, tmp_path / "not-there.txt")
    assert not RunArtifact.objects.exists()


def test_an_upload_whose_answer_is_lost_is_sent_again_whole(run_and_client, tmp_path, monkeypatch):
    run, client = run_and_client
    monkeypatch.setattr("steer_client.client.time.sleep", lambda s: None)
    local = tmp_path / "notes.txt"
    local.write_bytes(b"x" * 10_000)
    lose_the_first_answer(client, "/artifacts/notes.txt")
    assert client.log_artifact(run.id, local)["size_bytes"] == 10_000
    assert list(RunArtifact.objects.values_list("path", "size_bytes")) == [("notes.txt", 10_000)]


def test_a_path_with_characters_an_address_reserves_round_trips(run_and_client, tmp_path):
    run, client = run_and_client
    local = tmp_path / "a.txt"
    local.write_bytes(b"odd")
    path = "notes/50% done #1?&x=ü.txt"
    assert client.log_artifact(run.id, local, path)["path"] == path
    assert client.download_artifact(run.id, path, tmp_path / "back.txt").read_bytes() == b"odd"
