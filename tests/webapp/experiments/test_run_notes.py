"""A run's name, Markdown notes and tags, set after launch on its page or over the API (MLflow's
run name, description and tags), and the runs list filtered by a tag."""

import re

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_run, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunTag
from webapp.experiments.run_notes import MAX_TAGS, run_notes_update, tags_clean

pytestmark = pytest.mark.django_db


def tags_of(run) -> list[str]:
    return list(RunTag.objects.filter(run=run).order_by("id").values_list("name", flat=True))


def test_tags_are_stripped_deduplicated_in_any_case_and_blank_ones_dropped():
    assert tags_clean([" baseline ", "Baseline", "", "lr=1e-6", "sweep/a"]) == ["baseline", "lr=1e-6", "sweep/a"]


@pytest.mark.parametrize("tags, words", [
    ("baseline", "must be a list"),
    (["a,b"], "holds a comma"),
    (["x" * 41], "longer than 40 characters"),
    ([3], "tag 1 is not a text"),
    (["a\nb"], "control character"),
    ([f"t{i}" for i in range(MAX_TAGS + 1)], f"at most {MAX_TAGS}"),
])
def test_bad_tags_are_refused_naming_what_is_wrong(tags, words):
    with pytest.raises(RunError, match=re.escape(words)) as refused:
        tags_clean(tags)
    assert refused.value.field == "tags"


def test_notes_update_sets_only_what_it_is_given_all_or_nothing(researcher):
    run = make_run(researcher, name="grpo")
    run_notes_update(run_id=run.id, project=researcher, description="  **lr** 1e-6  ", tags=["baseline"])
    run.refresh_from_db()
    assert (run.name, run.description, tags_of(run)) == ("grpo", "**lr** 1e-6", ["baseline"])
    with pytest.raises(RunError, match="a run needs a name"):
        run_notes_update(run_id=run.id, project=researcher, name="  ", tags=["other"])
    run.refresh_from_db()
    assert run.name == "grpo" and tags_of(run) == ["baseline"]  # nothing changed
    run_notes_update(run_id=run.id, project=researcher, name="grpo v2")
    run.refresh_from_db()
    assert (run.name, run.description, tags_of(run)) == ("grpo v2", "**lr** 1e-6", ["baseline"])
    with pytest.raises(Run.DoesNotExist):
        run_notes_update(run_id=run.id, project=make_project(owner=make_user()), name="theirs")


def test_the_run_page_shows_and_saves_the_notes_as_sanitised_markdown(client, researcher):
    run = make_run(researcher, name="grpo")
    url = reverse("experiments:notes", args=[researcher.id, run.id])
    response = client.post(url, {"name": "grpo-lr1e-6", "tags": "baseline, paper ,",
                                 "description": "Beats **v1**.<script>alert(1)</script>"})
    assert response.status_code == 302
    html = client.get(reverse("experiments:detail", args=[researcher.id, run.id])).content.decode()
    assert "<strong>v1</strong>" in html and "<script>alert(1)</script>" not in html
    assert f'href="/projects/{researcher.id}/runs/?tag=baseline">baseline</a>' in html
    run.refresh_from_db()
    assert run.name == "grpo-lr1e-6" and tags_of(run) == ["baseline", "paper"]


def test_bad_notes_show_the_page_again_with_the_error_and_save_nothing(client, researcher):
    run = make_run(researcher, name="grpo")
    response = client.post(reverse("experiments:notes", args=[researcher.id, run.id]),
                           {"name": "grpo", "tags": "x" * 41, "description": "kept in the form"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was saved." in html and "longer than 40 characters" in html and "kept in the form" in html
    assert "<details class=\"notes-edit\" open>" in html
    assert tags_of(run) == []


def test_the_notes_are_researchers_only_and_other_projects_runs_are_404(client, researcher):
    annotator = make_user()
    project = make_project(owner=make_user(), annotator=annotator)
    run = make_run(project, name="theirs")
    assert client.post(reverse("experiments:notes", args=[project.id, run.id]), {"name": "mine"}).status_code == 404
    client.login(username=annotator.username, password=PASSWORD)
    assert client.post(reverse("experiments:notes", args=[project.id, run.id]), {"name": "mine"}).status_code == 403
    assert Run.objects.get(pk=run.pk).name == "theirs"


def test_the_runs_list_shows_tags_and_filters_by_one_in_any_case(client, researcher):
    tagged = make_run(researcher, name="tagged")
    make_run(researcher, name="untagged")
    run_notes_update(run_id=tagged.id, project=researcher, tags=["Baseline"])
    url = reverse("experiments:list", args=[researcher.id])
    html = client.get(url).content.decode()
    assert 'href="?tag=Baseline">Baseline</a>' in html
    names = re.findall(r'id="run-link-\d+" href="[^"]+">([^<]+)</a>', client.get(url, {"tag": "baseline"}).content.decode())
    assert names == ["tagged"]


def test_the_api_patches_the_notes_and_filters_by_tag():
    owner = api_user()
    project = make_project(owner=owner)
    run = make_run(project, name="grpo")
    make_run(project, name="other")
    api = token_client(owner)
    response = api.patch(f"/api/v1/runs/{run.id}/", {"description": "first try", "tags": ["sweep", "SWEEP", "a"]},
                         format="json")
    assert response.status_code == 200
    assert (response.json()["description"], response.json()["tags"], response.json()["name"]) == (
        "first try", ["a", "sweep"], "grpo")  # listed by name
    listed = api.get(f"/api/v1/projects/{project.id}/runs/", {"tag": "Sweep"}).json()["results"]
    assert [r["name"] for r in listed] == ["grpo"] and listed[0]["tags"] == ["a", "sweep"]
    response = api.patch(f"/api/v1/runs/{run.id}/", {"tags": ["a,b"], "description": "lost"}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["tags"]
    response = api.patch(f"/api/v1/runs/{run.id}/", {"tgas": ["x"]}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["tgas"]
    assert api.get(f"/api/v1/runs/{run.id}/").json()["description"] == "first try"
