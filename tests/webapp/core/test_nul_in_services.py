"""The services refuse text the database cannot store (NUL) with their own error naming the
field, whoever calls them: the forms and the API refuse it first, but a service called with a
description, a critique, criteria or a config holding NUL reached the INSERT, whose DataError
was a 500 (and left the caller's transaction unusable)."""

import uuid

import pytest

from tests.factories import make_project, make_rubric, make_run, make_task, make_user
from webapp.datasets.errors import DatasetError
from webapp.datasets.models import PromptDataset
from webapp.datasets.services import dataset_import
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunKind
from webapp.experiments.run_notes import run_notes_update
from webapp.experiments.services import run_create
from webapp.feedback.errors import FeedbackError
from webapp.feedback.models import PreferenceLabel, Rubric
from webapp.feedback.services import label_submit, rubric_create, rubric_update

pytestmark = pytest.mark.django_db

NUL = "holds a NUL character (\\u0000), which cannot be stored"


def test_a_dataset_description_holding_nul_is_refused_on_description():
    project = make_project()
    with pytest.raises(DatasetError) as info:
        dataset_import(project=project, name="d", filename="p.jsonl", content='{"prompt": "x"}\n',
                       description="grade\x00school")
    assert (info.value.field, info.value.message) == ("description", f"the description {NUL}")
    assert not PromptDataset.objects.exists()


@pytest.mark.parametrize("criteria, description, field, message", [
    ([{"name": "ok"}, {"name": "c", "description": "d\x00"}], "", "criteria", f"'criteria[1].description' {NUL}"),
    ([{"name": "c\x00"}], "", "criteria", f"'criteria[0].name' {NUL}"),
    ([{"name": "c"}], "about\x00", "description", f"the description {NUL}"),
])
def test_a_rubric_holding_nul_is_refused_naming_the_field(criteria, description, field, message):
    project = make_project()
    with pytest.raises(FeedbackError) as info:
        rubric_create(project=project, name="R", criteria=criteria, description=description)
    assert (info.value.field, info.value.message) == (field, message)
    assert not Rubric.objects.exists()


def test_a_rubric_update_holding_nul_changes_nothing():
    rubric = make_rubric(make_project(), name="R")
    with pytest.raises(FeedbackError) as info:
        rubric_update(rubric=rubric, name="R2", description="\x00", criteria=[{"name": "c"}])
    assert info.value.field == "description"
    rubric.refresh_from_db()
    assert (rubric.name, rubric.description, rubric.versions.count()) == ("R", "", 1)


def test_run_notes_holding_nul_are_refused_on_description():
    project = make_project()
    run = make_run(project, name="kept")
    with pytest.raises(RunError) as info:
        run_notes_update(run_id=run.id, project=project, name="renamed", description="a\x00b")
    assert (info.value.field, info.value.message) == ("description", f"the description {NUL}")
    run.refresh_from_db()
    assert (run.name, run.description) == ("kept", "")


def test_a_run_config_given_as_a_dict_holding_nul_is_refused_on_config():
    project = make_project()
    with pytest.raises(RunError) as info:
        run_create(project=project, user=None, name="r", kind=RunKind.EXTERNAL, config={"note": ["a", "b\x00"]})
    assert (info.value.field, info.value.message) == ("config", f"'note[1]' {NUL}")
    assert not Run.objects.exists()


def test_a_critique_holding_nul_is_refused_on_critique():
    annotator = make_user()
    project = make_project(annotator=annotator)
    task = make_task(project, completions=["a", "b"])
    with pytest.raises(FeedbackError) as info:
        label_submit(task=task, annotator=annotator, ranking=[[0], [1]], critique="too\x00long",
                     submission_key=uuid.uuid4().hex)
    assert (info.value.field, info.value.message) == ("critique", f"the critique {NUL}")
    assert not PreferenceLabel.objects.exists()
