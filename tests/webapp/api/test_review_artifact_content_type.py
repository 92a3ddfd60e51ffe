"""Review: an artifact's content type is guessed from its file name's extension, never by reading
its path as a URL: mimetypes takes 'data:<type>,...' for a data URL and answers <type> as given,
of any length (past the column's 100 characters: a database error, 500) and any value."""

from urllib.parse import quote

import pytest

from tests.webapp.api.test_artifacts import root, run  # noqa: F401, F811 (fixtures: the artifact folder, an owner's run)
from webapp.experiments.models import RunArtifact

pytestmark = pytest.mark.django_db


def put(api, run, path: str):
    return api.put(f"/api/v1/runs/{run.id}/artifacts/{quote(path, safe='/')}", data=b"x",
                   content_type="application/octet-stream")


def test_a_path_that_reads_as_a_long_data_url_is_stored(api, run, root):
    path = "data:a/" + "b" * 200 + ",x"
    response = put(api, run, path)
    assert response.status_code == 201, response.content
    assert response.json()["content_type"] == ""
    assert RunArtifact.objects.get(run=run).path == path


@pytest.mark.parametrize(("path", "expected"), [
    ("data:text/html,page", ""),
    ("data:text/html,report.json", "application/json"),
    ("eval/report.json", "application/json"),
    ("archive.tar.gz", "application/x-tar"),
    ("README", ""),
])
def test_the_type_comes_from_the_file_names_extension(api, run, path, expected):
    response = put(api, run, path)
    assert response.status_code == 201, response.content
    assert response.json()["content_type"] == expected


def test_the_run_pages_upload_takes_such_a_path_too(client, owner, run):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    client.force_login(owner)
    path = "data:a/" + "b" * 200 + ",x"
    response = client.post(reverse("experiments:artifact_upload", args=[run.project_id, run.id]),
                           {"file": SimpleUploadedFile("f.bin", b"x"), "path": path})
    assert response.status_code == 302
    assert RunArtifact.objects.get(run=run).content_type == ""
