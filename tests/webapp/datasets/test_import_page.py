"""The dataset import page names each line it cannot store, and stores nothing."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_user
from webapp.datasets.models import PromptDataset
from webapp.feedback.models import ComparisonTask
from webapp.rewards.models import PreferencePairSet

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("filename, content, words", [
    ("p.jsonl", b'{"prompt": "fine"}\n{"prompt": "a\\u0000b"}\n', "holds a NUL character"),
    ("p.jsonl", b'{"prompt": "hi", "metadata": {"x": NaN}}\n', "NaN is not a number"),
    ("p.jsonl", b'{"prompt": "\\ud800"}\n', "unpaired surrogate"),
    ("p.jsonl", b"[" * 50_000 + b"]" * 50_000, "JSON nested too deeply"),
    ("p.csv", b"prompt,reference\nfine,1\n\"a\x00b\",2\n", "holds a NUL character"),
    ("p.csv", b"prompt,reference\nfine,1\n\"unterminated,1\n", "Line 3: not valid CSV (unexpected end of data)"),
    ("p.csv", b"prompt,reference\nfine,1\n\"a\"b,2\n", "Line 3: not valid CSV"),
])
def test_a_line_that_cannot_be_stored_is_named_and_nothing_is_stored(client, filename, content, words):
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    response = client.post(reverse("datasets:import", args=[project.id]),
                           {"name": "d", "file": SimpleUploadedFile(filename, content)})
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not PromptDataset.objects.exists()


def test_a_name_taken_in_any_case_is_an_error_on_the_name(client):
    user = make_user()
    project = make_project(researcher=user)
    PromptDataset.objects.create(project=project, name="Prompts")
    assert client.login(username=user.username, password=PASSWORD)
    response = client.post(reverse("datasets:import", args=[project.id]),
                           {"name": "prompts", "file": SimpleUploadedFile("p.jsonl", b'{"prompt": "hi"}\n')})
    assert response.status_code == 400
    assert response.context["form"].errors == {
        "name": ["a dataset named 'Prompts' already exists in this project; names must differ in more than case"]}
    assert not response.context["line_errors"] and "Fix these lines" not in response.content.decode()
    assert PromptDataset.objects.count() == 1


def test_the_dataset_page_shows_each_prompts_other_fields_escaped(client):
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    content = b"prompt,reference,source,level\nWhat is 2+2?,4,<script>x</script>,easy\n"
    response = client.post(reverse("datasets:import", args=[project.id]),
                           {"name": "d", "description": "grade school", "file": SimpleUploadedFile("p.csv", content)})
    dataset = PromptDataset.objects.get()
    assert response.status_code == 302
    body = client.get(reverse("datasets:detail", args=[project.id, dataset.id])).content.decode()
    assert "<th>Other fields</th>" in body and "grade school" in body and "1 prompt by" in body
    assert "&lt;script&gt;x&lt;/script&gt;" in body and "<script>x</script>" not in body
    assert "&quot;level&quot;: &quot;easy&quot;" in body


@pytest.mark.parametrize("url, data", [
    ("datasets:import", {"name": "d"}),
    ("feedback:task_import", {"required_labels": 1}),
    ("rewards:import_pairs", {"name": "p"}),  # stopped at 50 bad lines, without a count of the rest
])
def test_a_file_of_many_bad_lines_shows_the_first_hundred_and_counts_the_rest(client, url, data):
    """A file of the wrong shape (Alpaca's 52,000 lines) listed an error for every line, a page
    of megabytes."""
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    content = b"".join(b'{"instruction": "Say hi %d."}\n' % i for i in range(150))
    response = client.post(reverse(url, args=[project.id]), {**data, "file": SimpleUploadedFile("p.jsonl", content)})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Line 100: " in body and "Line 101: " not in body
    assert "… and 50 more bad lines." in body
    assert not PromptDataset.objects.exists()


# A failed import answers 400, as every other refused form of the site (the project settings,
# a run's notes); it answered 200, which a script or a monitor read as the import done.
IMPORTS = [
    ("datasets:import", {"name": "d"}, b'{"prompt": "fine"}\n{"instruction": "no prompt"}\n', "Line 2: "),
    ("feedback:task_import", {"required_labels": 1}, b'{"prompt": "p", "completions": ["a", "b"]}\n'
                                                     b'{"prompt": "p", "completions": ["a"]}\n', "Line 2: "),
    ("rewards:import_pairs", {"name": "p"}, b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
                                            b'{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1e6}\n',
     "Line 2: margin must be at most 20"),
]


@pytest.fixture
def researcher_client(client):
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    return client, project


@pytest.mark.parametrize("url, data, content, words", IMPORTS)
def test_an_import_with_a_bad_line_answers_400_with_the_page_and_its_error(researcher_client, url, data, content,
                                                                        words):
    client, project = researcher_client
    response = client.post(reverse(url, args=[project.id]), {**data, "file": SimpleUploadedFile("p.jsonl", content)})
    assert response.status_code == 400
    body = response.content.decode()
    assert words in body and "Nothing was imported" in body
    assert 'enctype="multipart/form-data"' in body and "csrfmiddlewaretoken" in body  # the form, to try again
    assert not (PromptDataset.objects.exists() or ComparisonTask.objects.exists() or PreferencePairSet.objects.exists())
    assert client.get(reverse(url, args=[project.id])).status_code == 200


@pytest.mark.parametrize("url, data", [(url, data) for url, data, _, _ in IMPORTS])
def test_an_import_without_a_file_answers_400_naming_the_field(researcher_client, url, data):
    client, project = researcher_client
    response = client.post(reverse(url, args=[project.id]), data)
    assert response.status_code == 400
    assert response.context["form"].errors["file"] == ["This field is required."]


def test_an_import_that_succeeds_still_redirects(researcher_client):
    client, project = researcher_client
    for url, data, content, _ in IMPORTS:
        good = content.splitlines(keepends=True)[0]
        response = client.post(reverse(url, args=[project.id]), {**data, "file": SimpleUploadedFile("p.jsonl", good)})
        assert response.status_code == 302, (url, response.content.decode()[:2000])
