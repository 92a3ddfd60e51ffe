"""preferences.jsonl with ``strength_margins``: each pair's ``margin`` from its label's strength
(0.0 where the label gives none), as TRL's RewardTrainer reads margins and as a Steer reward-model
run with the same ``data.strength_margins`` trains; the page's form and the API, bad values refused
naming the option (webapp/feedback/export_filters.py)."""

import json
import uuid

import pytest
from django.urls import reverse

from tests.factories import make_project, make_task, make_user
from tests.webapp.api.conftest import token_client
from tests.webapp.feedback.conftest import login
from webapp.feedback import exports
from webapp.feedback.labelling import label_submit
from webapp.rewards.selectors import preference_records

pytestmark = pytest.mark.django_db

MARGINS = [0.25, 0.5, 2.0]


def labelled(annotator, owner=None):
    """A project whose three pairwise labels say no strength, 1 and 3."""
    owner = owner or make_user()
    project = make_project(owner=owner, annotator=annotator)
    for i, strength in enumerate([None, 1, 3]):
        label_submit(task=make_task(project, prompt=f"p{i}"), annotator=annotator, ranking=[[0], [1]],
                     strength=strength, submission_key=uuid.uuid4().hex)
    return project, owner


def read(lines) -> list[dict]:
    return [json.loads(line) for line in lines]


def test_each_pair_gets_its_labels_strength_margin_and_zero_without_one(annotator):
    project, _ = labelled(annotator)
    rows = read(exports.preference_pairs_jsonl(project=project, strength_margins=MARGINS))
    assert [(row["prompt"], row["margin"]) for row in rows] == [("p0", 0.0), ("p1", 0.25), ("p2", 2.0)]
    assert all("margin" not in row for row in read(exports.preference_pairs_jsonl(project=project)))


def test_the_margins_are_those_a_reward_model_run_with_the_same_strength_margins_trains_on(annotator):
    project, _ = labelled(annotator)
    exported = [row["margin"] for row in read(exports.preference_pairs_jsonl(project=project, strength_margins=MARGINS))]
    records = preference_records(project=project, data={"source": "labels", "strength_margins": MARGINS})
    trainer_default = 0.0  # RewardModelTrainConfig.margin, for records that give none
    assert exported == [trainer_default if r.margin is None else r.margin for r in records]


def test_datasets_reads_the_margin_column_as_floats(annotator, tmp_path):
    datasets = pytest.importorskip("datasets")
    project, _ = labelled(annotator)
    path = tmp_path / "preferences.jsonl"
    path.write_text("".join(exports.preference_pairs_jsonl(project=project, strength_margins=MARGINS)))
    table = datasets.load_dataset("json", data_files=str(path), split="train")
    assert table.features["margin"].dtype == "float64" and table["margin"] == [0.0, 0.25, 2.0]


def test_the_api_takes_strength_margins(annotator):
    project, owner = labelled(annotator)
    response = token_client(owner).get(f"/api/v1/projects/{project.id}/exports/preferences.jsonl",
                                       {"strength_margins": "0.25, 0.5, 2"})
    assert response.status_code == 200
    assert [row["margin"] for row in read(line.decode() for line in response.streaming_content)] == [0.0, 0.25, 2.0]


@pytest.mark.parametrize("value, words", [
    ("1,2", "three numbers"),
    ("a,b,c", "three numbers separated by commas"),
    ("-1,1,2", "at least 0"),
    ("1,2,25", "at most 20"),
    ("1,nan,2", "three numbers"),
])
def test_the_api_refuses_bad_strength_margins_naming_them(annotator, value, words):
    project, owner = labelled(annotator)
    response = token_client(owner).get(f"/api/v1/projects/{project.id}/exports/preferences.jsonl",
                                       {"strength_margins": value})
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert list(fields) == ["strength_margins"] and words in " ".join(fields["strength_margins"])


def test_the_tasks_page_offers_the_download_with_margins(client, annotator):
    project, owner = labelled(annotator)
    login(client, owner)
    html = client.get(reverse("feedback:tasks", args=[project.id])).content.decode()
    assert 'name="strength_margins"' in html and reverse("feedback:export_preferences", args=[project.id]) in html
    response = client.get(reverse("feedback:export_preferences", args=[project.id]), {"strength_margins": "0.25,0.5,2"})
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('-preferences-with-margins.jsonl"')
    assert [row["margin"] for row in read(b"".join(response.streaming_content).decode().splitlines())] == [0.0, 0.25, 2.0]


def test_the_page_download_refuses_a_bad_value_with_a_page_naming_it(client, annotator):
    project, owner = labelled(annotator)
    login(client, owner)
    response = client.get(reverse("feedback:export_preferences", args=[project.id]),
                          {"strength_margins": "<b>1</b>,2"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "strength_margins" in html and "Nothing was downloaded" in html
    assert "<b>1</b>" not in html and "&lt;b&gt;1&lt;/b&gt;" in html  # the value is shown as text


def test_an_annotator_cannot_download_it(client, annotator):
    project, _ = labelled(annotator)
    login(client, annotator)
    response = client.get(reverse("feedback:export_preferences", args=[project.id]), {"strength_margins": "1,2,3"})
    assert response.status_code in (403, 404)
