"""The run page's Artifacts section: listed with the path as text, downloaded as attachments,
uploaded and deleted by researchers with the CSRF token."""

import errno

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_run, make_user
from tests.webapp.experiments.test_run_artifacts import disk_fills_after
from webapp.experiments.artifacts import artifact_file, artifact_put
from webapp.experiments.models import RunArtifact

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def root(settings, tmp_path):
    settings.STEER_ARTIFACT_DIR = tmp_path / "artifacts"
    return settings.STEER_ARTIFACT_DIR


def attach(run, path: str, data: bytes = b"data") -> RunArtifact:
    return artifact_put(run_id=run.id, path=path, chunks=[data])[0]


def detail(run) -> str:
    return reverse("experiments:detail", args=[run.project_id, run.id])


def test_the_run_page_lists_each_artifact_with_its_size_hash_and_download_link(client, researcher):
    run = make_run(researcher)
    artifact = attach(run, "eval/report.json", b"x" * 2048)
    html = client.get(detail(run)).content.decode()
    assert 'id="artifacts"' in html
    download = reverse("experiments:artifact_download", args=[run.project_id, run.id, "eval/report.json"])
    assert f'href="{download}" download>eval/report.json</a>' in html
    assert "2.0\xa0KB" in html and artifact.sha256[:12] in html


def test_a_path_is_shown_as_text_never_as_markup(client, researcher):
    run = make_run(researcher)
    attach(run, '<script>alert("x")</script>.txt')
    html = client.get(detail(run)).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;.txt" in html
    assert "%3Cscript%3E" in html, "the links quote it"


def test_a_run_without_artifacts_says_how_to_attach_them(client, researcher):
    run = make_run(researcher)
    assert "No files attached yet" in client.get(detail(run)).content.decode()


def test_the_download_is_an_attachment_that_is_never_rendered(client, researcher):
    run = make_run(researcher)
    attach(run, "page.html", b"<script>alert(1)</script>")
    response = client.get(reverse("experiments:artifact_download", args=[run.project_id, run.id, "page.html"]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"<script>alert(1)</script>"
    assert response["Content-Disposition"] == 'attachment; filename="page.html"'
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_another_projects_artifact_answers_404(client, researcher):
    other = make_run(make_project(owner=make_user()))
    attach(other, "a.txt")
    for name in ("artifact_download", "artifact_delete"):
        assert client.get(reverse(f"experiments:{name}", args=[researcher.id, other.id, "a.txt"])).status_code == 404
        assert client.get(reverse(f"experiments:{name}", args=[other.project_id, other.id, "a.txt"])).status_code == 404


def test_an_annotator_cannot_download_or_delete(client):
    annotator = make_user()
    project = make_project(owner=make_user(), annotator=annotator)
    run = make_run(project)
    attach(run, "a.txt")
    client.login(username=annotator.username, password=PASSWORD)
    assert client.get(reverse("experiments:artifact_download", args=[project.id, run.id, "a.txt"])).status_code == 403
    assert client.post(reverse("experiments:artifact_delete", args=[project.id, run.id, "a.txt"])).status_code == 403
    assert RunArtifact.objects.count() == 1


def test_delete_asks_first_then_removes_the_artifact_and_its_file(client, researcher,
                                                                  django_capture_on_commit_callbacks):
    run = make_run(researcher)
    artifact = attach(run, "plot.png")
    url = reverse("experiments:artifact_delete", args=[run.project_id, run.id, "plot.png"])
    confirm = client.get(url)
    assert confirm.status_code == 200 and b"Delete artifact" in confirm.content
    assert RunArtifact.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url)
    assert response.status_code == 302 and response["Location"] == detail(run) + "#artifacts"
    assert not RunArtifact.objects.exists() and not artifact_file(artifact).exists()


def test_delete_and_upload_need_the_csrf_token(researcher):
    run = make_run(researcher)
    attach(run, "a.txt")
    owner = researcher.memberships.get().user
    strict = Client(enforce_csrf_checks=True)
    strict.login(username=owner.username, password=PASSWORD)
    assert strict.post(reverse("experiments:artifact_delete", args=[run.project_id, run.id, "a.txt"])).status_code == 403
    upload = strict.post(reverse("experiments:artifact_upload", args=[run.project_id, run.id]),
                         {"file": SimpleUploadedFile("b.txt", b"b")})
    assert upload.status_code == 403
    assert list(RunArtifact.objects.values_list("path", flat=True)) == ["a.txt"]


def test_upload_from_the_page_stores_the_file_under_its_name_or_the_path_given(client, researcher):
    run = make_run(researcher)
    url = reverse("experiments:artifact_upload", args=[run.project_id, run.id])
    response = client.post(url, {"file": SimpleUploadedFile("notes.txt", b"hello")})
    assert response.status_code == 302 and response["Location"] == detail(run) + "#artifacts"
    client.post(url, {"file": SimpleUploadedFile("r.json", b"{}"), "path": "eval/report.json"})
    assert sorted(RunArtifact.objects.values_list("path", "size_bytes")) == [("eval/report.json", 2), ("notes.txt", 5)]


def test_a_bad_path_from_the_page_is_shown_and_nothing_is_stored(client, researcher, root):
    run = make_run(researcher)
    response = client.post(reverse("experiments:artifact_upload", args=[run.project_id, run.id]),
                           {"file": SimpleUploadedFile("a.txt", b"a"), "path": "../<b>x</b>"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was uploaded: the artifact path has a &#x27;.&#x27; or &#x27;..&#x27; segment" in html
    assert not RunArtifact.objects.exists() and not any(root.rglob("*.*"))


def test_a_file_over_the_limit_from_the_page_is_refused_with_413(client, researcher, settings):
    settings.STEER_ARTIFACT_MAX_BYTES = 4
    run = make_run(researcher)
    url = reverse("experiments:artifact_upload", args=[run.project_id, run.id])
    response = client.post(url, {"file": SimpleUploadedFile("a.bin", b"x" * 5)})
    assert response.status_code == 413 and b"4 bytes" in response.content
    big = client.post(url, {"file": SimpleUploadedFile("a.bin", b"x" * 70_000)})
    assert big.status_code == 413 and b"STEER_ARTIFACT_MAX_BYTES" in big.content
    assert not RunArtifact.objects.exists()


def test_an_upload_from_the_page_to_a_run_with_its_most_files_is_refused_with_413(client, researcher, settings):
    settings.STEER_ARTIFACT_RUN_MAX_FILES = 1
    run = make_run(researcher)
    attach(run, "a.txt")
    response = client.post(reverse("experiments:artifact_upload", args=[run.project_id, run.id]),
                           {"file": SimpleUploadedFile("b.txt", b"b")})
    assert response.status_code == 413 and b"STEER_ARTIFACT_RUN_MAX_FILES" in response.content
    assert list(RunArtifact.objects.values_list("path", flat=True)) == ["a.txt"]


def test_the_run_pages_artifacts_are_listed_a_page_at_a_time(client, researcher, monkeypatch):
    monkeypatch.setattr("webapp.experiments.views.ARTIFACTS_PAGE", 2)
    run = make_run(researcher)
    other = make_run(researcher)
    for path in ("a.txt", "b.txt", "c.txt"):
        attach(run, path)
    first = client.get(detail(run), {"compare": other.id}).content.decode()
    assert ">a.txt</a>" in first and ">b.txt</a>" in first and ">c.txt</a>" not in first
    assert "Page 1 of 2 (3 files)" in first
    next_link = f'id="artifacts-next" href="{detail(run)}?artifacts_page=2&amp;compare={other.id}#artifacts"'
    assert next_link in first, "the next page keeps the page's other parameters"
    second = client.get(detail(run), {"artifacts_page": 2}).content.decode()
    assert ">c.txt</a>" in second and ">a.txt</a>" not in second
    assert f'id="artifacts-previous" href="{detail(run)}#artifacts"' in second
    assert 'id="artifacts-next"' not in second


def test_a_run_page_refusing_an_upload_links_its_artifact_pages_to_the_run_page(client, researcher, monkeypatch):
    monkeypatch.setattr("webapp.experiments.views.ARTIFACTS_PAGE", 1)
    run = make_run(researcher)
    attach(run, "a.txt")
    attach(run, "b.txt")
    response = client.post(reverse("experiments:artifact_upload", args=[run.project_id, run.id]),
                           {"file": SimpleUploadedFile("c.txt", b"c"), "path": "../c"})
    assert response.status_code == 400
    assert f'href="{detail(run)}?artifacts_page=2#artifacts"' in response.content.decode()


def test_an_upload_from_the_page_past_the_runs_room_is_refused_before_its_body_is_read(
        client, researcher, settings, monkeypatch):
    settings.STEER_ARTIFACT_RUN_MAX_BYTES = 200_000
    run = make_run(researcher)
    attach(run, "a.bin", b"x" * 150_000)
    attach(run, "b.bin", b"x" * 40_000)
    url = reverse("experiments:artifact_upload", args=[run.project_id, run.id])

    def never(request):
        raise AssertionError("the body was read")

    with monkeypatch.context() as patched:
        patched.setattr("django.http.request.HttpRequest._load_post_and_files", never)
        # more than the 160,000 bytes left were a.bin, the largest file, replaced
        response = client.post(url, {"file": SimpleUploadedFile("c.bin", b"x" * 230_000), "path": "a.bin"})
    assert response.status_code == 413 and b"STEER_ARTIFACT_RUN_MAX_BYTES" in response.content
    replaced = client.post(url, {"file": SimpleUploadedFile("c.bin", b"y" * 155_000), "path": "a.bin"})
    assert replaced.status_code == 302, "replacing the largest file with one that fits is not refused early"
    assert sorted(RunArtifact.objects.values_list("path", "size_bytes")) == [("a.bin", 155_000), ("b.bin", 40_000)]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def test_a_full_disk_from_the_page_is_refused_with_507_and_nothing_is_stored(client, researcher, root,
                                                                             monkeypatch, code):
    run = make_run(researcher)
    disk_fills_after(monkeypatch, room=0, code=code)
    response = client.post(reverse("experiments:artifact_upload", args=[run.project_id, run.id]),
                           {"file": SimpleUploadedFile("notes.txt", b"hello")})
    assert response.status_code == 507
    html = response.content.decode()
    assert "Nothing was uploaded: the server&#x27;s disk is full; nothing was stored" in html
    assert not RunArtifact.objects.exists() and not any(p.is_file() for p in root.rglob("*"))


def test_a_full_disk_as_django_reads_the_form_is_refused_with_507(client, researcher, root, monkeypatch):
    """Django writes a large upload to a temporary file of its own as it reads the form, before
    the artifact is written: a full disk there is the same refusal."""
    from django.core.files.uploadhandler import TemporaryFileUploadHandler

    def full(self, raw_data, start):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", full)
    run = make_run(researcher)
    response = client.post(reverse("experiments:artifact_upload", args=[run.project_id, run.id]),
                           {"file": SimpleUploadedFile("big.bin", b"x" * (3 * 1024 * 1024))})
    assert response.status_code == 507 and b"disk is full" in response.content
    assert not RunArtifact.objects.exists()


def test_another_write_error_from_the_page_is_still_a_server_error(client, researcher, monkeypatch):
    run = make_run(researcher)
    disk_fills_after(monkeypatch, room=0, code=errno.EIO)
    with pytest.raises(OSError) as caught:
        client.post(reverse("experiments:artifact_upload", args=[run.project_id, run.id]),
                    {"file": SimpleUploadedFile("notes.txt", b"hello")})
    assert caught.value.errno == errno.EIO and not RunArtifact.objects.exists()
