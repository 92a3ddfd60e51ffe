import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_user
from webapp.core import uploads
from webapp.core.uploads import upload_text
from webapp.datasets.models import PromptDataset
from webapp.rewards.models import PreferencePairSet


def test_an_upload_is_read_as_utf8_without_its_byte_order_mark():
    assert "".join(upload_text(SimpleUploadedFile("p.jsonl", '\ufeff{"prompt": "é"}'.encode())).lines()) == '{"prompt": "é"}'


def test_an_upload_that_is_not_utf8_names_the_byte_and_its_line():
    with pytest.raises(ValueError, match=r"not UTF-8 text \(byte 3, line 1, column 4: 0xFF\)"):
        upload_text(SimpleUploadedFile("p.jsonl", b"abc\xff"))
    latin1 = '{"prompt": "tea"}\n{"prompt": "café"}\n'.encode("latin-1")
    with pytest.raises(ValueError, match=r"\(byte 33, line 2, column 16: 0xE9\); save it as UTF-8 \(it may be Latin-1"):
        upload_text(SimpleUploadedFile("p.jsonl", latin1))
    with pytest.raises(ValueError, match=r"\(byte 6, line 2, column 1: 0xFF\)"):  # counted with the UTF-8 mark
        upload_text(SimpleUploadedFile("p.jsonl", b"\xef\xbb\xbfab\n\xffc"))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_upload_is_named_as_utf16_with_or_without_its_mark(encoding):
    """Without its byte-order mark, UTF-16 of ASCII text is valid UTF-8 with a NUL every other byte."""
    with pytest.raises(ValueError, match=r"the file is UTF-16 text \(.*\); save it as UTF-8"):
        upload_text(SimpleUploadedFile("p.csv", "prompt,answer\n2+2,4\n".encode(encoding)))


@pytest.mark.django_db
def test_a_utf16_dataset_upload_answers_400_saying_so_and_stores_nothing():
    from tests.webapp.api.conftest import api_user, token_client

    user = api_user()
    project = make_project(owner=user)
    response = token_client(user).post(
        f"/api/v1/projects/{project.id}/datasets/",
        {"name": "d", "file": SimpleUploadedFile("p.jsonl", '{"prompt": "hi"}\n'.encode("utf-16-le"))}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["file"] == ["the file is UTF-16 text (every other byte is NUL); save it as UTF-8"]
    assert not PromptDataset.objects.exists()


def test_an_upload_over_the_limit_is_refused_unread(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_IMPORT_BYTES", 2**20)
    upload = SimpleUploadedFile("p.jsonl", b"x" * (3 * 2**20))
    with pytest.raises(ValueError, match="the file is 3 MB; an import takes at most 1 MB"):
        upload_text(upload)
    assert upload.tell() == 0  # not read


@pytest.mark.django_db
def test_the_import_pages_take_a_file_with_a_byte_order_mark_and_refuse_one_too_large(client, monkeypatch):
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    bom = '\ufeff{"prompt": "2+2?", "reference": "4"}\n'.encode()
    response = client.post(reverse("datasets:import", args=[project.id]),
                           {"name": "d", "file": SimpleUploadedFile("p.jsonl", bom)})
    assert response.status_code == 302 and PromptDataset.objects.get().prompts.count() == 1

    monkeypatch.setattr(uploads, "MAX_IMPORT_BYTES", 10)
    pairs = b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
    response = client.post(reverse("rewards:import_pairs", args=[project.id]),
                           {"name": "s", "file": SimpleUploadedFile("x.jsonl", pairs)})
    assert response.status_code == 400
    assert "an import takes at most 0 MB" in response.content.decode()
    assert not PreferencePairSet.objects.exists()


def test_a_parquet_or_gzip_upload_is_named_as_such():
    """verl's prompt files and the Hugging Face Hub's are Parquet; refused as 'not UTF-8 text
    (byte 290)', nothing said what the file was or what to do."""
    pyarrow = pytest.importorskip("pyarrow")
    import gzip
    import io

    from pyarrow import parquet

    buffer = io.BytesIO()
    parquet.write_table(pyarrow.table({"prompt": ["2+2?"], "answer": ["4"]}), buffer)
    with pytest.raises(ValueError, match=r"^the file is Parquet .*pandas\.read_parquet"):
        upload_text(SimpleUploadedFile("train.parquet", buffer.getvalue()))
    with pytest.raises(ValueError, match=r"^the file is gzip-compressed; decompress it"):
        upload_text(SimpleUploadedFile("p.jsonl.gz", gzip.compress(b'{"prompt": "\xc3\xa9"}\n' * 50)))
