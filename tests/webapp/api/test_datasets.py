import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import make_project
from webapp.datasets.models import PromptDataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(owner):
    return make_project(owner=owner)


def test_jsonl_import_creates_the_dataset_and_its_prompts_page_back(api, project):
    content = '{"prompt": "2+2?", "answer": 4}\n{"messages": [{"role": "user", "content": "hi"}]}\n'
    response = api.post(f"/api/v1/projects/{project.id}/datasets/", {"name": "math", "content": content}, format="json")
    assert response.status_code == 201, response.json()
    dataset = response.json()
    assert dataset["prompt_count"] == 2
    prompts = api.get(f"/api/v1/datasets/{dataset['id']}/prompts/").json()["results"]
    assert [(p["index"], p["text"], p["reference"]) for p in prompts] == [(0, "2+2?", "4"), (1, "", "")]
    assert prompts[1]["messages"] == [{"role": "user", "content": "hi"}]


def test_csv_upload_is_imported(api, project):
    upload = SimpleUploadedFile("prompts.csv", b"prompt,answer\nWhat is 3+3?,6\n", content_type="text/csv")
    response = api.post(f"/api/v1/projects/{project.id}/datasets/", {"name": "csv", "file": upload},
                        format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["prompt_count"] == 1


def test_csv_messages_column_is_read_as_chat_messages(api, project):
    content = 'messages,reference\n"[{""role"":""user"",""content"":""hi""}]",1\n'
    response = api.post(f"/api/v1/projects/{project.id}/datasets/",
                        {"name": "chat", "content": content, "format": "csv"}, format="json")
    assert response.status_code == 201, response.json()
    (prompt,) = api.get(f"/api/v1/datasets/{response.json()['id']}/prompts/").json()["results"]
    assert (prompt["messages"], prompt["reference"]) == ([{"role": "user", "content": "hi"}], "1")


def test_csv_row_split_by_an_unquoted_comma_answers_400_and_imports_nothing(api, project):
    response = api.post(f"/api/v1/projects/{project.id}/datasets/",
                        {"name": "csv", "content": "prompt,reference\nWhat is 1,000 + 2?,1002\n", "format": "csv"},
                        format="json")
    assert response.status_code == 400
    assert "line 2: 3 fields where the header has 2" in response.json()["error"]["fields"]["file"][0]
    assert not PromptDataset.objects.exists()


def test_bad_lines_are_each_reported_by_number_and_nothing_is_imported(api, project):
    content = '{"prompt": "ok"}\n{nope\n{"prompt": "ok"}\n{"text": 5}\n'
    response = api.post(f"/api/v1/projects/{project.id}/datasets/", {"name": "bad", "content": content}, format="json")
    assert response.status_code == 400
    message = response.json()["error"]["fields"]["file"][0]
    assert "line 2: not valid JSON" in message and "line 4:" in message and "line 1" not in message
    assert not PromptDataset.objects.exists()


@pytest.mark.parametrize("again, words", [
    ("api-ds", "a dataset named 'api-ds' already exists in this project"),
    ("API-DS", "a dataset named 'api-ds' already exists in this project; names must differ in more than case"),
])
def test_a_name_taken_in_any_case_answers_400_on_name(api, project, again, words):
    body = {"name": "api-ds", "content": '{"prompt": "a"}\n'}
    assert api.post(f"/api/v1/projects/{project.id}/datasets/", body, format="json").status_code == 201
    response = api.post(f"/api/v1/projects/{project.id}/datasets/", {**body, "name": again}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"name": [words]}
    assert PromptDataset.objects.count() == 1


def test_file_and_content_together_answer_400(api, project):
    upload = SimpleUploadedFile("p.jsonl", b'{"prompt": "a"}\n')
    response = api.post(f"/api/v1/projects/{project.id}/datasets/",
                        {"name": "x", "file": upload, "content": '{"prompt": "a"}'}, format="multipart")
    assert response.status_code == 400
    assert "exactly one" in response.json()["error"]["message"]
