"""Values nested in a JSON body's objects (a label's scores, a trajectory's rewards) have the
types the schema states, as top-level values do: a wrong one answers 400 naming its full path,
and nothing is stored."""

import json

import pytest

from tests.factories import make_project, make_rubric, make_run, make_task
from webapp.experiments.models import RunKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(owner):
    return make_project(owner=owner)


@pytest.fixture
def scored_task(project):
    return make_task(project, rubric=make_rubric(project))


def _criteria(task) -> dict[str, int]:
    return {c.name: c.id for c in task.rubric_version.criteria.all()}


def _label(api, task, scores, key="nested-types-1"):
    body = json.dumps({"ranking": [[0], [1]], "submission_key": key, "scores": scores})
    return api.generic("POST", f"/api/v1/tasks/{task.id}/labels/", body, content_type="application/json")


@pytest.mark.parametrize("criterion, value, words", [
    ("Clear", "3", "must be a number, not a string"),  # DRF read it as 3.0 and stored it
    ("Correct", True, "must be a number, not true or false"),  # DRF read it as 1.0: a binary "yes" nobody gave
    ("Clear", {"value": 3}, "must be a number, not an object"),
    ("Clear", [3], "must be a number, not a list"),
])
def test_a_score_of_the_wrong_type_answers_400_naming_its_path(api, scored_task, criterion, value, words):
    criterion_id = _criteria(scored_task)[criterion]
    response = _label(api, scored_task, {"0": {str(criterion_id): value}})
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert fields == {f"scores.0.{criterion_id}": [words]}
    assert not scored_task.labels.exists()


def test_a_score_beyond_a_float_answers_400_as_not_finite(api, scored_task):
    """``1e400`` is valid JSON that Python reads as infinity."""
    criterion_id = _criteria(scored_task)["Clear"]
    scores = f'{{"1": {{"{criterion_id}": 1e400}}}}'
    body = f'{{"ranking": [[0], [1]], "submission_key": "nested-types-2", "scores": {scores}}}'
    response = api.generic("POST", f"/api/v1/tasks/{scored_task.id}/labels/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {f"scores.1.{criterion_id}": ["must be a finite number"]}
    assert not scored_task.labels.exists()


def test_every_bad_score_is_named_not_only_the_first(api, scored_task):
    ids = _criteria(scored_task)
    response = _label(api, scored_task, {"0": {str(ids["Clear"]): "3"}, "1": {str(ids["Correct"]): False}})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {f"scores.0.{ids['Clear']}", f"scores.1.{ids['Correct']}"}


def test_scores_given_as_numbers_are_still_stored(api, scored_task):
    ids = _criteria(scored_task)
    response = _label(api, scored_task, {"0": {str(ids["Clear"]): 3, str(ids["Correct"]): 1.0}})
    assert response.status_code == 201, response.content
    stored = {(s.candidate.position, s.criterion.name): s.value for s in scored_task.labels.get().scores.all()}
    assert stored == {(0, "Clear"): 3, (0, "Correct"): 1}


def _trajectories(api, run, rewards):
    record = {"step": 0, "prompt": "p", "completion": "c", "reward": 0.5, "rewards": rewards}
    return api.post(f"/api/v1/runs/{run.id}/trajectories/", {"records": [record]}, format="json")


@pytest.mark.parametrize("value", ["3", True, {"mean": 1}, [1], None])
def test_a_reward_component_of_the_wrong_type_answers_400_naming_its_path(api, project, value):
    run = make_run(project, kind=RunKind.EXTERNAL)
    response = _trajectories(api, run, {"accuracy": value})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"records[0].rewards.accuracy": ["must be a finite number"]}
    assert not run.trajectories.exists()


def test_a_reward_component_with_an_empty_name_answers_400_saying_so(api, project):
    run = make_run(project, kind=RunKind.EXTERNAL)
    response = _trajectories(api, run, {"": 1.0})
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert list(fields) == ["records[0].rewards"] and "empty" in fields["records[0].rewards"][0]
    assert not run.trajectories.exists()
