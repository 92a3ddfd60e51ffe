"""Malformed API input answers 400 or 404 naming what is wrong, never a server error."""

import base64

import pytest

from tests.factories import make_dataset, make_policy, make_project
from webapp.datasets.models import PromptDataset
from webapp.experiments.models import Run
from webapp.experiments.selectors import metric_keys

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def project(owner):
    return make_project(owner=owner)


@pytest.mark.parametrize("path", ["runs/", "datasets/", "labels/", "tasks/"])
def test_a_forged_page_cursor_answers_404_invalid_cursor(api, project, path):
    cursor = base64.b64encode(b"p=abc").decode()
    response = api.get(f"/api/v1/projects/{project.id}/{path}", {"cursor": cursor})
    assert response.status_code == 404
    assert "Invalid cursor" in response.json()["error"]["message"]


def test_a_cursor_from_a_page_still_pages(api, project):
    for i in range(3):
        make_dataset(project, name=f"d{i}", n=1)
    first = api.get(f"/api/v1/projects/{project.id}/datasets/", {"page_size": 2}).json()
    second = api.get(first["next"]).json()
    assert len(first["results"]) == 2 and len(second["results"]) == 1


@pytest.mark.parametrize("page_size", ["abc", "0", "-5", "1001", "2.5", "１０"])
def test_a_page_size_outside_1_to_1000_answers_400_naming_it(api, project, page_size):
    response = api.get(f"/api/v1/projects/{project.id}/datasets/", {"page_size": page_size})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["page_size"]
    assert "a whole number from 1 to 1000" in response.json()["error"]["message"]


@pytest.mark.parametrize("ordering", ["bogus", "name,bogus", "-secret", "--id"])
def test_an_ordering_the_list_does_not_offer_answers_400_naming_it(api, project, ordering):
    response = api.get(f"/api/v1/projects/{project.id}/datasets/", {"ordering": ordering})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["ordering"]
    assert "this list orders by id, name, created_at" in response.json()["error"]["message"]


def test_an_offered_ordering_orders(api, project):
    for name in ("b", "c", "a"):
        make_dataset(project, name=name, n=1)
    response = api.get(f"/api/v1/projects/{project.id}/datasets/", {"ordering": "-name", "page_size": "2"})
    assert [d["name"] for d in response.json()["results"]] == ["c", "b"]
    for blank in ("", "-name,", " "):  # a blank field, a trailing comma: the rest of the ordering stands
        response = api.get(f"/api/v1/projects/{project.id}/datasets/", {"ordering": blank})
        assert response.status_code == 200, (blank, response.json())


@pytest.mark.parametrize("path, offered", [("/api/v1/projects/", "id, name"), ("/api/v1/runs/{run}/checkpoints/", "id")])
def test_lists_without_their_own_ordering_check_it_too(api, project, path, offered):
    from tests.factories import make_run

    response = api.get(path.format(run=make_run(project).id), {"ordering": "bogus"})
    assert response.status_code == 400
    assert f"this list orders by {offered} " in response.json()["error"]["message"]


@pytest.mark.parametrize("kind", ["external", "policy"])
@pytest.mark.parametrize("config, words", [([1, 2], "an array"), (5, "a number"), (True, "a boolean")])
def test_a_run_config_that_is_no_object_answers_400(api, project, kind, config, words):
    body = {"name": "r", "kind": kind, "config": config, "dataset": make_dataset(project).id,
            "policy": make_policy(project).id}
    response = api.post(f"/api/v1/projects/{project.id}/runs/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"config": [f"must be a JSON object, got {words}"]}
    assert not Run.objects.exists()


def test_a_body_nested_too_deeply_answers_400(api, project):
    response = api.post(f"/api/v1/projects/{project.id}/runs/", DEEP, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]


@pytest.mark.parametrize("content, words", [
    (DEEP, "JSON nested too deeply"),
    ('{"prompt": "a\\u0000b"}', "NUL character"),
    ('{"prompt": "hi", "metadata": {"x": NaN}}', "NaN is not a number"),
])
def test_an_imported_line_the_database_cannot_store_is_named(api, project, content, words):
    response = api.post(f"/api/v1/projects/{project.id}/datasets/", {"name": "d", "content": content},
                        format="json")
    assert response.status_code == 400
    assert words in str(response.json()["error"])
    assert not PromptDataset.objects.exists()


HUGE = 10**400  # a valid JSON number; float() of it raises OverflowError


@pytest.mark.parametrize("kind, config, field", [
    ("policy", {"optim": {"lr": HUGE}}, "config.optim.lr"),
    ("policy", {"optim": {"betas": [HUGE, 0.9]}}, "config.optim.betas[0]"),
    ("evaluation", {"rewards": [{"name": "exact_answer", "weight": HUGE}]}, "config.rewards[0].weight"),
    ("evaluation", {"rewards": [{"name": "exact_answer", "tolerance": HUGE}]}, "config.rewards[0].tolerance"),
    ("policy", {"rewards": [{"name": "checklist", "criteria": [{"type": "valid_json", "weight": HUGE}]}]},
     "config.rewards[0].criteria[0].weight"),
    ("reward_model", {"lr": HUGE}, "config.lr"),
])
def test_a_config_number_too_large_for_a_float_answers_400_naming_it(api, project, kind, config, field):
    body = {"name": "r", "kind": kind, "config": config}
    if kind != "reward_model":
        body |= {"dataset": make_dataset(project).id, "policy": make_policy(project).id}
    response = api.post(f"/api/v1/projects/{project.id}/runs/", body, format="json")
    assert response.status_code == 400, response.content
    [message] = response.json()["error"]["fields"][field]
    assert "finite number" in message
    assert not Run.objects.exists()


def test_a_device_the_worker_could_not_open_answers_400_at_launch(api, project):
    body = {"name": "r", "kind": "policy", "config": {"train": {"device": "cuda:x"}},
            "dataset": make_dataset(project).id, "policy": make_policy(project).id}
    response = api.post(f"/api/v1/projects/{project.id}/runs/", body, format="json")
    assert response.status_code == 400
    assert "config.train.device" in response.json()["error"]["fields"]
    assert not Run.objects.exists()


@pytest.mark.parametrize("path, body, field", [
    ("runs/", {"name": "r", "kind": "\ud800", "config": {}}, "kind"),
    ("members/", {"username": "someone", "role": "\ud800"}, "role"),
    ("policies/", {"name": "p", "source": "\ud800"}, "source"),
    ("tasks/", {"run": 1, "selection": "\ud800"}, "selection"),
    ("rubrics/", {"name": "R", "criteria": [{"name": "c", "scale": "\ud800"}]}, "criteria.0.scale"),
])
def test_an_error_quoting_an_unpaired_surrogate_answers_400_with_it_escaped(api, project, path, body, field):
    """DRF's 'is not a valid choice' quotes the value; the response could not encode it (500)."""
    import json

    from webapp.feedback.models import Rubric
    from webapp.projects.models import Membership

    response = api.post(f"/api/v1/projects/{project.id}/{path}", json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    [message] = response.json()["error"]["fields"][field]
    assert "\\ud800" in message
    assert not Run.objects.exists() and not Rubric.objects.exists()
    assert Membership.objects.filter(project=project).count() == 1


def test_json_nested_300_levels_is_refused_before_it_is_stored(api, project):
    """Stored, it failed every answer that read it back (RecursionError under a request's frames)."""
    from webapp.feedback.models import ComparisonTask

    nested = "[" * 300 + "]" * 300
    body = '{"name": "r", "kind": "external", "config": {"a": ' + nested + "}}"
    response = api.post(f"/api/v1/projects/{project.id}/runs/", body, content_type="application/json")
    assert response.status_code == 400
    assert "nested more than 100 levels deep" in response.json()["error"]["message"]
    line = '{"prompt": "p", "completions": ["a", "b"], "metadata": {"a": ' + nested + "}}"
    response = api.post(f"/api/v1/projects/{project.id}/tasks/", {"content": line}, format="json")
    assert response.status_code == 400
    assert "line 1: JSON nested more than 100 levels deep" in str(response.json()["error"])
    assert not Run.objects.exists() and not ComparisonTask.objects.exists()


def test_a_head_to_head_refusal_names_the_runs_field_the_body_sent(api, project):
    """The service's field is run_b; the API's body has no such field, it sent 'runs'."""
    from tests.factories import make_run
    from webapp.experiments.models import RunKind
    from webapp.feedback.models import ComparisonTask

    run = make_run(project, kind=RunKind.EVALUATION)
    response = api.post(f"/api/v1/projects/{project.id}/tasks/", {"runs": [run.id, run.id]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"runs": ["choose two different runs"]}
    assert not ComparisonTask.objects.exists()


@pytest.mark.parametrize("field", ["reward", "advantage", "rewards"])
def test_a_trajectory_number_beyond_a_float_answers_400_naming_it(api, project, field):
    """10**400 is valid JSON; math.isfinite() of it raised OverflowError (a 500)."""
    from tests.factories import make_run
    from webapp.experiments.models import RunKind, Trajectory

    run = make_run(project, kind=RunKind.EXTERNAL, config={})
    record = {"step": 1, "prompt": "p", "completion": "c", "reward": 1.0,
              field: {"exact": 10**400} if field == "rewards" else 10**400}
    response = api.post(f"/api/v1/runs/{run.id}/trajectories/", {"records": [record]}, format="json")
    assert response.status_code == 400
    assert "must be a finite number" in response.json()["error"]["message"]
    assert f"records[0].{field}" in response.json()["error"]["message"]
    assert not Trajectory.objects.exists()


def test_an_unpaired_surrogate_in_a_trajectory_text_is_stored_as_the_replacement_character(api, project):
    """As a NUL is dropped there, not to lose a trainer's batch over one odd completion; the
    database refused it (UnicodeEncodeError, a 500)."""
    from tests.factories import make_run
    from webapp.experiments.models import RunKind, Trajectory

    run = make_run(project, kind=RunKind.EXTERNAL, config={})
    body = '{"records": [{"step": 1, "prompt": "a\\ud800b", "completion": "\\udfff!", "reward": 0.5}]}'
    response = api.post(f"/api/v1/runs/{run.id}/trajectories/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    stored = Trajectory.objects.get()
    assert (stored.prompt_text, stored.completion) == ("a\ufffdb", "\ufffd!")


def test_a_body_with_a_5000_digit_number_answers_400_without_pythons_advice(api, project):
    """DRF's parser passed on json.loads' ValueError as it was: 'Exceeds the limit (4300 digits)
    for integer string conversion ...; use sys.set_int_max_str_digits() to increase the limit',
    advice for the server's code that the caller cannot follow (the imports said it right)."""
    body = '{"name": "r", "kind": "external", "config": {"seed": 1' + "0" * 5000 + "}}"
    response = api.post(f"/api/v1/projects/{project.id}/runs/", body, content_type="application/json")
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "a whole number of more than 4300 digits; write it as a string" in message
    assert "sys." not in message
    assert not Run.objects.exists()


def test_a_misspelt_field_of_a_patch_answers_400_naming_it_and_changes_nothing(api, project):
    response = api.patch(f"/api/v1/projects/{project.id}/", {"nmae": "renamed"}, format="json")
    assert response.status_code == 400
    assert "unknown field" in response.json()["error"]["fields"]["nmae"][0]
    project.refresh_from_db()
    assert project.name != "renamed"


def test_a_status_report_with_a_field_the_body_does_not_take_is_refused(api, project):
    run = Run.objects.create(project=project, name="ext", kind="external", config={"trainer": "x"})
    response = api.post(f"/api/v1/runs/{run.id}/status/", {"status": "running", "step": 7}, format="json")
    assert response.status_code == 400 and "step" in response.json()["error"]["fields"]
    run.refresh_from_db()
    assert run.status == "queued" and run.current_step == 0


def test_an_unknown_key_of_a_nested_object_is_named_by_its_path(api, project):
    body = {"name": "r", "criteria": [{"name": "Correct", "wieght": 3}]}
    response = api.post(f"/api/v1/projects/{project.id}/rubrics/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["criteria.0.wieght"]
    assert not project.rubrics.exists()


def test_an_unknown_field_of_a_multipart_upload_is_refused(api, project):
    body = {"name": "d", "content": '{"prompt": "hi"}', "descripton": "typo"}
    response = api.post(f"/api/v1/projects/{project.id}/datasets/", body, format="multipart")
    assert response.status_code == 400 and "descripton" in response.json()["error"]["fields"]
    assert not PromptDataset.objects.filter(project=project).exists()


def test_a_trajectory_record_with_an_unknown_field_is_refused_naming_it(api, project):
    run = Run.objects.create(project=project, name="ext", kind="external", config={"trainer": "x"})
    record = {"step": 1, "prompt": "p", "completion": "c", "reward": 1.0, "advantages": 0.5}
    response = api.post(f"/api/v1/runs/{run.id}/trajectories/", {"records": [record]}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["records[0].advantages"]
    assert not run.trajectories.exists()


@pytest.mark.parametrize("path, body, extra", [
    ("metrics/", {"points": [["loss", 1, 0.5]], "step": 3}, "step"),  # a step meant for every point
    ("trajectories/", {"records": [{"step": 1, "prompt": "p", "completion": "c"}], "run_id": 1}, "run_id"),
])
def test_a_batch_body_with_a_key_beside_its_list_is_refused_naming_it(api, project, path, body, extra):
    """The metric and trajectory batches are decoded by hand and stored a key beside their list
    without a word, where every other body answers 400 naming it."""
    run = Run.objects.create(project=project, name="ext", kind="external", config={"trainer": "x"})
    response = api.post(f"/api/v1/runs/{run.id}/{path}", body, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [extra]
    assert "unknown field; this body takes" in response.json()["error"]["fields"][extra][0]
    assert metric_keys(run_ids=[run.id]) == [] and not run.trajectories.exists()


def test_the_schema_says_request_bodies_take_no_other_keys(api):
    schemas = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()["components"]["schemas"]
    assert schemas["ProjectUpdateInputRequest"]["additionalProperties"] is False
    assert schemas["CriterionInputRequest"]["additionalProperties"] is False
    assert schemas["TrajectoryRecordRequest"]["additionalProperties"] is False
    assert schemas["MetricBatchInputRequest"]["additionalProperties"] is False
    assert schemas["MetricPointInputRequest"]["additionalProperties"] is False  # a point's key too
    assert schemas["TrajectoryBatchRequest"]["additionalProperties"] is False


@pytest.mark.parametrize("path, parameter", [
    ("runs/{run}/trajectories/", "steps_min"),  # step_min misspelt: the list came back unfiltered
    ("projects/{project}/runs/", "state"),
    ("metrics/history/", "keys"),
    ("runs/{run}/metrics/", "keyy"),
    ("projects/{project}/exports/preferences.jsonl", "include_tie"),
])
def test_a_query_parameter_the_operation_does_not_take_answers_400_naming_it(api, project, path, parameter):
    run = Run.objects.create(project=project, name="ext", kind="external", config={"trainer": "x"})
    url = "/api/v1/" + path.format(run=run.id, project=project.id)
    response = api.get(url, {"run": run.id, parameter: "3"} if path.startswith("metrics/") else {parameter: "3"})
    assert response.status_code == 400, response
    assert list(response.json()["error"]["fields"]) == [parameter]
    assert "not a parameter of this operation" in response.json()["error"]["message"]


def test_the_parameters_a_list_takes_and_its_own_links_still_answer(api, project):
    for i in range(3):
        make_dataset(project, name=f"d{i}", n=1)
    first = api.get(f"/api/v1/projects/{project.id}/datasets/", {"page_size": 2, "ordering": "-name", "format": "json"})
    assert first.status_code == 200
    second = api.get(first.json()["next"])
    assert second.status_code == 200 and api.get(second.json()["previous"]).status_code == 200


@pytest.mark.parametrize("path", ["projects/", "projects/{project}/", "runs/{run}/", "runs/{run}/metrics/"])
def test_a_format_no_renderer_writes_answers_400_naming_it(api, project, path):
    """?format=csv answered 404 "Not found.", which reads as if the run were missing."""
    run = Run.objects.create(project=project, name="ext", kind="external", config={"trainer": "x"})
    response = api.get("/api/v1/" + path.format(run=run.id, project=project.id), {"format": "csv"})
    assert response.status_code == 400, response
    assert response.json()["error"]["fields"] == {"format": ["no format 'csv' here; this route answers api, json"]}
    assert api.get("/api/v1/" + path.format(run=run.id, project=project.id), {"format": "json"}).status_code == 200


@pytest.mark.parametrize("body, field, words", [
    ({"name": 5}, "name", "must be a string"),  # DRF made it the name "5"
    ({"description": 1.5}, "description", "must be a string"),
])
def test_a_json_number_where_the_schema_says_string_answers_400_naming_it(api, project, body, field, words):
    response = api.patch(f"/api/v1/projects/{project.id}/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field] and words in response.json()["error"]["message"]
    before = project.name, project.description
    project.refresh_from_db()
    assert (project.name, project.description) == before


@pytest.mark.parametrize("criterion, field, words", [
    ({"name": "Correct", "weight": "2"}, "criteria.0.weight", "must be a number"),  # a string, not 2.0
    ({"name": "Correct", "weight": True}, "criteria.0.weight", "must be a number"),  # DRF took it as 1.0
    ({"name": 7}, "criteria.0.name", "must be a string"),
])
def test_a_json_value_of_the_wrong_type_in_a_nested_body_is_named_by_its_path(api, project, criterion, field, words):
    response = api.post(f"/api/v1/projects/{project.id}/rubrics/", {"name": "r", "criteria": [criterion]}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field] and words in response.json()["error"]["message"]
    assert not project.rubrics.exists()


def test_a_json_string_where_the_schema_says_integer_or_boolean_answers_400(api, project):
    run = Run.objects.create(project=project, name="ext", kind="external", config={"trainer": "x"})
    response = api.post(f"/api/v1/runs/{run.id}/status/", {"status": "running", "current_step": "3"}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["current_step"]
    assert "must be a whole number" in response.json()["error"]["message"]
    response = api.post(f"/api/v1/projects/{project.id}/tasks/", {"content": '{"prompt": "p", "completions": ["a", "b"]}',
                                                                    "required_labels": 1.0}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["required_labels"]
    run.refresh_from_db()
    assert run.status == "queued" and not project.comparison_tasks.exists()


def test_a_json_list_item_of_the_wrong_type_answers_400_naming_the_list(api, project):
    run = Run.objects.create(project=project, name="ext", kind="external", config={"trainer": "x"})
    response = api.patch(f"/api/v1/runs/{run.id}/", {"tags": ["ok", 3]}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["tags"]
    assert "item 1 must be a string" in response.json()["error"]["message"]
    run.refresh_from_db()
    assert not run.tags.exists()


def test_form_bodies_still_send_numbers_as_text(api, project):
    """A form-encoded or multipart body has only text: its numbers are read from it as before."""
    response = api.post(f"/api/v1/projects/{project.id}/tasks/",
                        {"content": '{"prompt": "p", "completions": ["a", "b"]}', "required_labels": "2"})
    assert response.status_code == 201 and response.json()[0]["required_labels"] == 2


@pytest.mark.parametrize("fmt", ["multipart", "form"])
def test_an_empty_form_value_for_a_field_that_takes_none_answers_400_and_changes_nothing(api, project, fmt):
    """DRF reads an empty form value of an optional field as no value: ``name=`` answered 200
    with the name unchanged, where the JSON ``{"name": ""}`` answers 400."""
    if fmt == "form":
        response = api.generic("PATCH", f"/api/v1/projects/{project.id}/", "name=&description=new",
                               content_type="application/x-www-form-urlencoded")
    else:
        response = api.patch(f"/api/v1/projects/{project.id}/", {"name": "", "description": "new"}, format="multipart")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["name"]
    assert "may not be blank" in response.json()["error"]["message"]
    before = project.name
    project.refresh_from_db()
    assert (project.name, project.description) == (before, "")


@pytest.mark.parametrize("path, parameter, words", [
    ("projects/{project}/runs/", "status", "is not a valid choice"),  # answered every run, unfiltered
    ("projects/{project}/reward-agreement/", "run", "A valid integer is required"),  # answered every run's tasks
    ("projects/{project}/exports/preferences.jsonl", "strength_margins", "may not be blank"),
    ("runs/{run}/trajectories/", "step_min", "A valid integer is required"),
    ("runs/{run}/held-out/", "correct", "leave the parameter out"),  # a nullable filter: read as null, unfiltered
])
def test_an_empty_filter_answers_400_naming_it(api, project, path, parameter, words):
    run = Run.objects.create(project=project, name="ext", kind="external", config={"trainer": "x"})
    response = api.get("/api/v1/" + path.format(project=project.id, run=run.id), {parameter: ""})
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == [parameter] and words in response.json()["error"]["message"]


def test_an_empty_search_or_tag_still_matches_every_run(api, project):
    Run.objects.create(project=project, name="ext", kind="external", config={"trainer": "x"})
    response = api.get(f"/api/v1/projects/{project.id}/runs/", {"search": "", "tag": ""})
    assert response.status_code == 200 and len(response.json()["results"]) == 1
