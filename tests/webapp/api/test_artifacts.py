"""Run artifacts over the API: PUT the raw body at a path, list, download as an attachment, delete."""

import errno
import hashlib
from urllib.parse import quote

import pytest

from tests.factories import make_project, make_run
from tests.webapp.api.conftest import api_user, token_client
from tests.webapp.experiments.test_run_artifacts import disk_fills_after
from webapp.experiments.artifacts import artifact_file
from webapp.experiments.models import RunArtifact

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def root(settings, tmp_path):
    settings.STEER_ARTIFACT_DIR = tmp_path / "artifacts"
    return settings.STEER_ARTIFACT_DIR


@pytest.fixture
def run(owner):
    return make_run(make_project(owner=owner))


def url(run, path: str = "") -> str:
    return f"/api/v1/runs/{run.id}/artifacts/{quote(path, safe='/')}"


def upload(api, run, path, data: bytes, content_type="application/octet-stream"):
    return api.put(url(run, path), data=data, content_type=content_type)


def stored_files(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_upload_list_download_replace_delete(api, run, root):
    made = upload(api, run, "eval/report.json", b'{"accuracy": 0.9}', content_type="application/json")
    assert made.status_code == 201, made.content
    assert made.json() | {"id": 0, "created_at": ""} == {
        "id": 0, "path": "eval/report.json", "size_bytes": 17, "content_type": "application/json", "created_at": "",
        "sha256": hashlib.sha256(b'{"accuracy": 0.9}').hexdigest()}
    assert upload(api, run, "plot.png", b"\x89PNG").status_code == 201

    listed = api.get(url(run)).json()["results"]
    assert [(a["path"], a["size_bytes"]) for a in listed] == [("eval/report.json", 17), ("plot.png", 4)]

    download = api.get(url(run, "eval/report.json"))
    assert download.status_code == 200 and b"".join(download.streaming_content) == b'{"accuracy": 0.9}'

    replaced = upload(api, run, "eval/report.json", b"{}")
    assert replaced.status_code == 200 and replaced.json()["size_bytes"] == 2
    assert b"".join(api.get(url(run, "eval/report.json")).streaming_content) == b"{}"
    assert RunArtifact.objects.filter(run=run).count() == 2

    assert api.delete(url(run, "plot.png")).status_code == 204
    assert api.get(url(run, "plot.png")).status_code == 404
    assert [a["path"] for a in api.get(url(run)).json()["results"]] == ["eval/report.json"]


def test_any_content_type_is_taken_as_the_files_bytes(api, run):
    body = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert upload(api, run, "x.svg", body, content_type="image/svg+xml").status_code == 201
    assert upload(api, run, "form.txt", b"a=1&b=2", content_type="application/x-www-form-urlencoded").status_code == 201
    assert b"".join(api.get(url(run, "form.txt")).streaming_content) == b"a=1&b=2"


@pytest.mark.parametrize("name", ["page.html", "image.svg", "<script>.txt"])
def test_a_download_is_always_an_attachment_never_rendered(api, run, name):
    upload(api, run, name, b"<html><script>alert(document.cookie)</script></html>", content_type="text/html")
    response = api.get(url(run, name))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]


@pytest.mark.parametrize("raw_path", [
    "../escape.txt", "a/../../b", "./a", "a//b", "dir/", "a%5Cb", "a%0Ab", "a%00b", "%2Fetc%2Fpasswd",
    "x" * 256, "/".join("a" * 11), "a%E2%80%AEb",
])
def test_a_bad_path_answers_400_naming_path_and_stores_nothing(api, run, root, raw_path):
    response = api.put(f"/api/v1/runs/{run.id}/artifacts/{raw_path}", data=b"data",
                       content_type="application/octet-stream")
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["path"]
    assert not RunArtifact.objects.exists() and stored_files(root) == []


def test_a_chunked_body_without_its_length_is_refused_rather_than_stored_empty(api, run, root):
    response = api.put(url(run, "a.txt"), data=b"data", content_type="text/plain", CONTENT_LENGTH="",
                       HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["Content-Length"]
    assert not RunArtifact.objects.exists() and stored_files(root) == []


def test_a_file_over_the_limit_answers_413_naming_it_and_stores_nothing(api, run, root, settings):
    settings.STEER_ARTIFACT_MAX_BYTES = 8
    response = upload(api, run, "big.bin", b"x" * 9)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert "8 bytes" in response.json()["error"]["message"]
    assert "STEER_ARTIFACT_MAX_BYTES" in response.json()["error"]["message"]
    assert not RunArtifact.objects.exists() and stored_files(root) == []
    assert upload(api, run, "ok.bin", b"x" * 8).status_code == 201


def test_a_run_over_its_total_answers_413_naming_the_run_limit(api, run, settings):
    settings.STEER_ARTIFACT_RUN_MAX_BYTES = 10
    assert upload(api, run, "a.bin", b"x" * 6).status_code == 201
    response = upload(api, run, "b.bin", b"x" * 6)
    assert response.status_code == 413 and "STEER_ARTIFACT_RUN_MAX_BYTES" in response.json()["error"]["message"]
    assert list(RunArtifact.objects.values_list("path", flat=True)) == ["a.bin"]


def test_a_replaced_file_refused_as_too_large_keeps_the_old_one(api, run, settings):
    assert upload(api, run, "a.bin", b"old").status_code == 201
    settings.STEER_ARTIFACT_MAX_BYTES = 4
    assert upload(api, run, "a.bin", b"newer").status_code == 413
    artifact = RunArtifact.objects.get()
    assert artifact.size_bytes == 3 and artifact_file(artifact).read_bytes() == b"old"


def test_another_projects_run_answers_404_to_every_method(api, root):
    run = make_run(make_project(owner=api_user()))
    assert upload(api, run, "a.txt", b"a").status_code == 404
    assert api.get(url(run)).status_code == 404
    assert api.get(url(run, "a.txt")).status_code == 404
    assert api.delete(url(run, "a.txt")).status_code == 404
    assert stored_files(root) == []


def test_an_annotator_cannot_reach_a_runs_artifacts(run, root):
    annotator = api_user()
    run.project.memberships.create(user=annotator, role="annotator")
    client = token_client(annotator)
    assert upload(client, run, "a.txt", b"a").status_code == 404
    assert client.get(url(run)).status_code == 404
    assert stored_files(root) == []


def test_a_missing_artifact_answers_404(api, run):
    assert api.get(url(run, "none.txt")).json()["error"]["message"] == "No such run artifact."
    assert api.delete(url(run, "none.txt")).status_code == 404


def test_the_list_orders_by_path_and_refuses_other_orderings(api, run):
    for name in ("b.txt", "a.txt"):
        upload(api, run, name, b"x")
    assert [a["path"] for a in api.get(url(run) + "?ordering=-path").json()["results"]] == ["b.txt", "a.txt"]
    assert api.get(url(run) + "?ordering=sha256").status_code == 400


def test_the_schema_documents_the_raw_upload(client):
    documented = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    put = documented["paths"]["/api/v1/runs/{run_id}/artifacts/{artifact_path}"]["put"]
    assert list(put["requestBody"]["content"]) == ["application/octet-stream"]
    assert {"200", "201", "400", "404", "413"} <= set(put["responses"])


def test_a_run_with_its_most_files_answers_413_naming_the_file_limit(api, run, root, settings,
                                                                     django_capture_on_commit_callbacks):
    settings.STEER_ARTIFACT_RUN_MAX_FILES = 1
    assert upload(api, run, "a.bin", b"a").status_code == 201
    response = upload(api, run, "b.bin", b"")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert "STEER_ARTIFACT_RUN_MAX_FILES" in response.json()["error"]["message"]
    with django_capture_on_commit_callbacks(execute=True):  # the replaced file is removed on commit
        assert upload(api, run, "a.bin", b"replaced").status_code == 200
    assert list(RunArtifact.objects.values_list("path", flat=True)) == ["a.bin"] and len(stored_files(root)) == 1


# --- a full disk -------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def test_a_full_disk_answers_507_and_stores_nothing(api, run, root, monkeypatch, code):
    disk_fills_after(monkeypatch, room=0, code=code)
    response = upload(api, run, "eval/report.json", b'{"accuracy": 0.9}')
    assert response.status_code == 507, response.content
    error = response.json()["error"]
    assert error["code"] == "insufficient_storage" and error["fields"] == {}
    assert error["message"].startswith("the server's disk is full; nothing was stored")
    assert not RunArtifact.objects.exists() and stored_files(root) == []


def test_a_full_disk_while_replacing_a_path_keeps_the_old_file(api, run, monkeypatch):
    assert upload(api, run, "a.bin", b"old").status_code == 201
    disk_fills_after(monkeypatch, room=0)
    assert upload(api, run, "a.bin", b"newer").status_code == 507
    artifact = RunArtifact.objects.get()
    assert artifact.size_bytes == 3 and artifact_file(artifact).read_bytes() == b"old"


def test_another_write_error_is_still_a_server_error(api, run, root, monkeypatch):
    disk_fills_after(monkeypatch, room=0, code=errno.EIO)
    with pytest.raises(OSError) as caught:  # the test client raises what the view raised
        upload(api, run, "a.bin", b"data")
    assert caught.value.errno == errno.EIO
    api.raise_request_exception = False
    assert upload(api, run, "a.bin", b"data").status_code == 500
    assert not RunArtifact.objects.exists() and stored_files(root) == []


def test_the_schema_documents_the_507(client):
    documented = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    put = documented["paths"]["/api/v1/runs/{run_id}/artifacts/{artifact_path}"]["put"]
    assert "507" in put["responses"] and "disk is full" in put["responses"]["507"]["description"]
