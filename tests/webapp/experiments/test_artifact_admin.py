"""Run artifacts in the admin: listed (run, project, path, size, hash) and searchable, never
added, changed or deleted there. A row and its file on disk are kept in step by the artifact
services: a row edited here no longer described its file, and one deleted here left the file on
disk; artifacts are deleted on their run's page or through the API (``artifact_delete``)."""

import pytest
from django.urls import reverse

from tests.factories import make_project, make_run
from tests.webapp.feedback.test_admin import staff  # noqa: F401 (a fixture: a logged-in superuser)
from webapp.experiments.artifacts import artifact_file, artifact_put
from webapp.experiments.models import RunArtifact, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def root(settings, tmp_path):
    settings.STEER_ARTIFACT_DIR = tmp_path / "artifacts"
    return settings.STEER_ARTIFACT_DIR


def put(run, path: str, data: bytes) -> RunArtifact:
    artifact, _ = artifact_put(run_id=run.id, path=path, chunks=[data])
    return artifact


def test_the_changelist_lists_a_runs_artifacts_with_their_project_size_and_hash(client, staff):
    project, other = make_project(), make_project()
    run, elsewhere = make_run(project, status=RunStatus.SUCCEEDED), make_run(other, status=RunStatus.SUCCEEDED)
    report = put(run, "eval/<b>report</b>.json", b'{"accuracy": 0.9}')
    put(elsewhere, "plots/loss.png", b"png")
    url = reverse("admin:experiments_runartifact_changelist")
    page = client.get(url).content.decode()
    assert "eval/&lt;b&gt;report&lt;/b&gt;.json" in page and "<b>report</b>" not in page  # shown as text
    assert "plots/loss.png" in page and report.sha256 in page and str(project) in page and str(other) in page
    page = client.get(url, {"q": "loss"}).content.decode()
    assert "plots/loss.png" in page and "report" not in page
    page = client.get(url, {"run__project__id__exact": project.pk}).content.decode()
    assert "report" in page and "plots/loss.png" not in page


def test_the_admin_neither_adds_changes_nor_deletes_an_artifact(client, staff, root):
    run = make_run(make_project(), status=RunStatus.SUCCEEDED)
    artifact = put(run, "eval/report.json", b'{"accuracy": 0.9}')
    before = RunArtifact.objects.values().get(pk=artifact.pk)
    change = reverse("admin:experiments_runartifact_change", args=[artifact.pk])
    page = client.get(change)
    assert page.status_code == 200 and 'name="path"' not in page.content.decode()  # shown, not a form
    response = client.post(change, {"run": run.pk, "path": "other.json", "file_name": "../../etc/passwd",
                                    "size_bytes": 1, "sha256": "0" * 64, "content_type": "text/html",
                                    "_save": "Save"})
    assert response.status_code == 403
    assert RunArtifact.objects.values().get(pk=artifact.pk) == before
    assert client.get(reverse("admin:experiments_runartifact_add")).status_code == 403
    delete = reverse("admin:experiments_runartifact_delete", args=[artifact.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:experiments_runartifact_changelist")
    client.post(changelist, {"action": "delete_selected", "_selected_action": [artifact.pk], "post": "yes"})
    assert RunArtifact.objects.filter(pk=artifact.pk).exists()
    assert artifact_file(artifact).read_bytes() == b'{"accuracy": 0.9}'


def test_the_artifact_admin_grants_no_add_change_or_delete(rf, staff):
    from django.contrib.admin.sites import site

    admin = site._registry[RunArtifact]
    request = rf.get("/")
    request.user = staff
    assert not admin.has_add_permission(request)
    assert not admin.has_change_permission(request, None) and not admin.has_delete_permission(request, None)
    assert admin.has_view_permission(request, None)
