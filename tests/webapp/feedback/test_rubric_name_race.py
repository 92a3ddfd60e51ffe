"""Two requests creating (or renaming to) one rubric name at once: the second's save met the unique
constraint as an IntegrityError (a 500 on the page and the API) instead of the name's error."""

import pytest

from tests.factories import make_project
from webapp.feedback.errors import FeedbackError
from webapp.feedback.models import Rubric
from webapp.feedback.services import rubric_create, rubric_update

pytestmark = pytest.mark.django_db


@pytest.fixture
def checks_passed(monkeypatch):
    """What the racing request saw: no rubric of that name yet."""
    monkeypatch.setattr(Rubric.objects, "filter", lambda **kwargs: Rubric.objects.none())
    monkeypatch.setattr(Rubric, "validate_constraints", lambda self, exclude=None: None)


def test_a_rubric_created_under_a_name_just_taken_is_refused_on_the_name(checks_passed):
    project = make_project()
    Rubric.objects.create(project=project, name="Helpful")
    with pytest.raises(FeedbackError) as caught:
        rubric_create(project=project, name="Helpful", criteria=[{"name": "C"}])
    assert caught.value.field == "name" and "'Helpful' already exists" in caught.value.message
    assert Rubric.objects.count() == 1


def test_a_rubric_renamed_to_a_name_just_taken_is_refused_on_the_name(checks_passed):
    project = make_project()
    Rubric.objects.create(project=project, name="Helpful")
    other = Rubric.objects.create(project=project, name="Other")
    with pytest.raises(FeedbackError) as caught:
        rubric_update(rubric=other, name="Helpful", description="", criteria=[{"name": "C"}])
    assert caught.value.field == "name"
    assert sorted(Rubric.objects.values_list("name", flat=True)) == ["Helpful", "Other"]
