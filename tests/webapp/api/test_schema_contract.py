"""The API keeps the contract its OpenAPI schema states, which generated clients rely on: every
answer (errors included) has a status code, content type and body the operation declares.

test_schema_fuzz.py asks only for "no 5xx"; here every operation is fuzzed against real objects
with schemathesis's conformance checks. The checks that judge whether an input should have been
accepted (negative_data_rejection, positive_data_acceptance) are left out: business rules a
schema cannot state (a unique name, "exactly one of run, runs, content") make them fail on
correct answers. Only hypothesis's generate phase runs, 15 examples an operation: schemathesis's
coverage phase (every boundary of every parameter) costs about a minute more, and the boundaries
it found (ids of 19 digits, a newline in a path) are tested below one by one.
"""

import re

import jsonschema

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode

from tests.factories import make_project, make_rubric, make_run, make_task
from tests.webapp.api.conftest import api_user
from tests.webapp.api.test_schema_fuzz import real_ids, wsgi_keeps_the_test_connection  # noqa: F401 - fixtures
from webapp.accounts.services import api_token_create
from webapp.experiments.models import RunKind
from webapp.feedback.models import Candidate, ComparisonTask
from webapp.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _call(operation, token, **parts):
    case = schema[operation[1]][operation[0]].Case(**parts)
    return case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CONFORMANCE)


@schema.parametrize()
@hypothesis_settings(max_examples=15, deadline=None, derandomize=True, phases=[Phase.generate],
                     suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_schema(case, real_ids):  # noqa: F811 - the fixture
    ids, token = real_ids
    path = case.meta.components.get(ParameterLocation.PATH) if case.meta else None
    if case.path_parameters and not (path and path.mode == GenerationMode.NEGATIVE):
        deleting = case.method.upper() == "DELETE"
        case.path_parameters = {name: ids.get(f"finished_{name}" if deleting else name, ids.get(name, value))
                                for name, value in case.path_parameters.items()}
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CONFORMANCE)


@pytest.mark.usefixtures("wsgi_keeps_the_test_connection")
def test_an_annotators_task_matches_the_schema_without_the_research_fields(db):
    """An annotator's task leaves out its sources and gold answer; the schema must not require them."""
    annotator = api_user()
    project = make_project(owner=api_user(), annotator=annotator)
    task = ComparisonTask.objects.create(project=project, prompt_text="q")
    Candidate.objects.bulk_create([Candidate(task=task, position=i, text=t) for i, t in enumerate("ab")])
    token = api_token_create(user=annotator, name="t")[1]
    detail = _call(("GET", "/api/v1/tasks/{task_id}/"), token, path_parameters={"task_id": task.id})
    assert "is_gold" not in detail.json() and detail.json()["rubric_version"] is None
    page = _call(("GET", "/api/v1/projects/{project_id}/tasks/"), token, path_parameters={"project_id": project.id})
    assert [t["id"] for t in page.json()["results"]] == [task.id]


@pytest.mark.usefixtures("wsgi_keeps_the_test_connection")
def test_tasks_made_by_post_are_a_plain_list_as_the_schema_says(db):
    owner = api_user()
    project = make_project(owner=owner)
    token = api_token_create(user=owner, name="t")[1]
    made = _call(("POST", "/api/v1/projects/{project_id}/tasks/"), token, path_parameters={"project_id": project.id},
                 body={"content": '{"prompt": "2+2?", "completions": ["4", "5"]}\n'}, media_type="application/json")
    assert made.status_code == 201 and [t["prompt_text"] for t in made.json()] == ["2+2?"]


@pytest.mark.usefixtures("wsgi_keeps_the_test_connection")
def test_a_run_created_under_an_idempotency_key_and_its_retry_answer_as_the_schema_says(db):
    post = schema.raw_schema["paths"]["/api/v1/projects/{project_id}/runs/"]["post"]
    [header] = [p for p in post["parameters"] if p["in"] == "header"]
    assert (header["name"], header.get("required", False)) == ("Idempotency-Key", False)
    assert {"200", "201", "409"} <= set(post["responses"])
    owner = api_user()
    project = make_project(owner=owner)
    token = api_token_create(user=owner, name="t")[1]
    body = {"name": "trl", "kind": "external", "config": {"trainer": "custom"}}
    answers = [_call(("POST", "/api/v1/projects/{project_id}/runs/"), token, path_parameters={"project_id": project.id},
                     headers={"Idempotency-Key": "7d0c6f0e-2b7b-4a8e-9d1e-0f5a3c2b1a90"}, body=b,
                     media_type="application/json") for b in (body, body, {**body, "name": "other"})]
    assert [a.status_code for a in answers] == [201, 200, 409]
    assert answers[0].json() == answers[1].json()


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/runs/abc/"),
    ("GET", "/api/v1/runs/1234567890123456789/"),  # 19 digits: more than an id has
    ("GET", "/api/v1/no-such-thing/"),
    ("GET", "/api/v1/runs/%0A/"),  # a newline
    ("DELETE", "/api/v1/runs/1234567890123456789/"),
    ("POST", "/api/v1/runs/1/metrics"),  # no trailing slash: a POST is not redirected
])
def test_a_path_that_names_no_route_answers_404_in_the_error_shape(client, db, method, path):
    response = client.generic(method, path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["message"].startswith("No API route at /api/v1/")


def test_a_get_without_its_trailing_slash_is_still_redirected(client, db):
    response = client.get("/api/v1/projects?page_size=5")
    assert response.status_code == 301 and response["Location"] == "/api/v1/projects/?page_size=5"


def test_a_session_write_to_no_route_answers_404_not_an_html_csrf_page(db):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(api_user())
    response = client.post("/api/v1/runs/x/cancel/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


@pytest.fixture
def documented(client, db):
    return client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def _body(documented, path, method):
    ref = documented["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return documented["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_request_bodies_are_documented_as_the_api_checks_them(documented):
    """A generated client sends what the schema allows; each of these was looser than the API,
    so the client's valid-looking call was refused (or the role of a member could be left out)."""
    member = _body(documented, "/api/v1/projects/{project_id}/members/{user_id}/", "patch")
    assert member["required"] == ["role"]
    run = _body(documented, "/api/v1/projects/{project_id}/runs/", "post")
    assert run["properties"]["config"]["type"] == "object"
    label = _body(documented, "/api/v1/tasks/{task_id}/labels/", "post")
    assert label["properties"]["ranking"]["oneOf"][0]["items"]["items"]["type"] == "integer"
    point = documented["components"]["schemas"]["MetricPointInputRequest"]
    assert point["properties"]["step"]["maximum"] == 2**63 - 2


def test_ordering_is_documented_with_the_fields_the_list_orders_by(documented):
    ordering = next(p for p in documented["paths"]["/api/v1/projects/"]["get"]["parameters"]
                    if p["name"] == "ordering")
    assert re.fullmatch(ordering["schema"]["pattern"], "-name,id")
    assert not re.fullmatch(ordering["schema"]["pattern"], "user__username")


@pytest.mark.parametrize("reason", [{}, [], 0, False])
def test_a_trajectory_whose_finish_reason_is_not_a_string_is_refused(api, owner, reason):
    run = make_run(make_project(owner=owner), kind=RunKind.EXTERNAL)
    record = {"step": 0, "prompt": "p", "completion": "c", "reward": 0, "finish_reason": reason}
    response = api.post(f"/api/v1/runs/{run.id}/trajectories/", {"records": [record]}, format="json")
    assert response.status_code == 400
    assert "records[0].finish_reason" in response.json()["error"]["fields"]
    assert not run.trajectories.exists()


def test_every_list_orders_by_id_as_the_docs_say(real_ids):  # noqa: F811 - the fixture
    """docs/api.md: ``?ordering=`` takes the fields each list names, ``id`` at least."""
    ids, token = real_ids
    lists = [(path, op) for path, methods in schema.raw_schema["paths"].items()
             for method, op in methods.items()
             if method == "get" and any(p["name"] == "ordering" for p in op.get("parameters", []))]
    assert len(lists) > 10
    for path, _ in lists:
        names = [p["name"] for p in schema.raw_schema["paths"][path]["get"]["parameters"] if p["in"] == "path"]
        response = _call(("GET", path), token, path_parameters={name: ids[name] for name in names},
                         query={"ordering": "-id"})
        assert response.status_code == 200, (path, response.json())


def test_api_routes_still_reverse_beside_the_catch_all_route():
    """Django's reverse() refuses a URLconf with an inline regex flag such as (?s) anywhere in it."""
    from django.urls import reverse

    assert reverse("api:run-detail", kwargs={"run_id": 7}) == "/api/v1/runs/7/"
    assert reverse("api:schema") == "/api/v1/schema/"


@pytest.mark.usefixtures("wsgi_keeps_the_test_connection")
def test_a_throttled_answer_matches_the_schema_with_its_retry_after(db, settings):
    """After the ``auth`` rate of failed tokens, 429 with Retry-After, as the schema declares."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "2/min"}}
    operation = schema["/api/v1/projects/"]["GET"]
    for _ in range(2):
        operation.Case().call(headers={"Authorization": "Bearer steer_wrong"})
    case = operation.Case()
    response = case.call(headers={"Authorization": "Bearer steer_wrong"})
    assert response.status_code == 429
    assert int({k.lower(): v for k, v in response.headers.items()}["retry-after"][0]) > 0
    declared = schema.raw_schema["paths"]["/api/v1/projects/"]["get"]["responses"]["429"]
    assert declared["headers"]["Retry-After"]["required"]  # so the check below checks it
    case.validate_response(response, checks=[*CONFORMANCE, response_headers_conformance])


@pytest.mark.parametrize(("operation", "accept"), [
    ("/api/v1/projects/{project_id}/exports/labels.jsonl", "application/jsonl"),
    ("/api/v1/projects/{project_id}/exports/preferences.jsonl", "application/jsonl"),
    ("/api/v1/runs/{run_id}/exports/trajectories.jsonl", "application/jsonl"),
    ("/api/v1/runs/{run_id}/exports/trajectories.parquet", "application/vnd.apache.parquet"),
    ("/api/v1/runs/{run_id}/exports/metrics.csv", "text/csv"),
    ("/api/v1/checkpoints/{checkpoint_id}/download/", "application/x-tar"),
    ("/api/v1/reward-models/{reward_model_id}/download/", "application/x-tar"),
    ("/api/v1/runs/{run_id}/artifacts/{artifact_path}", "application/octet-stream"),
])
def test_a_file_is_served_to_a_client_that_accepts_its_declared_type(real_ids, operation, accept):  # noqa: F811
    """A client generated from the schema asks for the type the schema declares (it got 406)."""
    ids, token = real_ids
    names = [p["name"] for p in schema.raw_schema["paths"][operation]["get"]["parameters"] if p["in"] == "path"]
    case = schema[operation]["GET"].Case(path_parameters={name: ids[name] for name in names})
    response = case.call_and_validate(headers={"Authorization": f"Bearer {token}", "Accept": accept},
                                      checks=CONFORMANCE)
    assert response.status_code == 200
    assert {k.lower(): v for k, v in response.headers.items()}["content-type"] == [accept]
    missing = schema[operation]["GET"].Case(path_parameters={name: 10**17 for name in names})
    refused = missing.call_and_validate(headers={"Authorization": f"Bearer {token}", "Accept": accept},
                                        checks=CONFORMANCE)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"


def test_limits_the_api_checks_are_in_the_schema_with_the_same_messages(documented, api, owner):
    """A rubric needs a criterion and a submission key 8 to 64 characters; a record's
    finish_reason may be null. The schema said otherwise, so valid-looking calls were refused."""
    rubric = _body(documented, "/api/v1/projects/{project_id}/rubrics/", "post")
    assert rubric["properties"]["criteria"]["minItems"] == 1
    label = _body(documented, "/api/v1/tasks/{task_id}/labels/", "post")
    assert label["properties"]["submission_key"]["minLength"] == 8
    record = documented["components"]["schemas"]["TrajectoryRecordRequest"]
    assert record["properties"]["finish_reason"]["nullable"]
    project = make_project(owner=owner)
    refused = api.post(f"/api/v1/projects/{project.id}/rubrics/", {"name": "R", "criteria": []}, format="json")
    assert refused.json()["error"]["fields"] == {"criteria": ["a rubric needs at least one criterion"]}
    task = ComparisonTask.objects.create(project=project, prompt_text="q")
    Candidate.objects.bulk_create([Candidate(task=task, position=i, text=t) for i, t in enumerate("ab")])
    short = api.post(f"/api/v1/tasks/{task.id}/labels/", {"ranking": [[0], [1]], "submission_key": "short"},
                     format="json")
    assert short.json()["error"]["fields"] == {"submission_key": ["a submission key of 8 to 64 characters is required"]}


def test_the_idempotency_key_header_is_documented_with_the_form_the_api_checks(documented, api, owner):
    """The header was documented as any string, so a generated client's key of 3 characters
    (or one with a space) was valid by the schema and refused with 400."""
    for path in ("/api/v1/projects/{project_id}/runs/", "/api/v1/projects/{project_id}/runs/sweep/"):
        [header] = [p for p in documented["paths"][path]["post"]["parameters"] if p["name"] == "Idempotency-Key"]
        pattern = header["schema"]["pattern"]
        assert re.search(pattern, "0b8e-4f2a:retry_1") and not re.search(pattern, "short")
        assert not re.search(pattern, "a key with spaces") and not re.search(pattern, "k" * 65)
    project = make_project(owner=owner)
    refused = api.post(f"/api/v1/projects/{project.id}/runs/", {"name": "r", "kind": "external"}, format="json",
                       HTTP_IDEMPOTENCY_KEY="short")
    assert list(refused.json()["error"]["fields"]) == ["Idempotency-Key"]


def test_a_json_dataset_import_is_documented_without_the_file_it_cannot_carry(documented):
    """A JSON (or form-encoded) body cannot carry an upload, and ``"file": ""`` in one answered
    400 "not a file" though the schema listed ``file`` for it."""
    content = documented["paths"]["/api/v1/projects/{project_id}/datasets/"]["post"]["requestBody"]["content"]

    def fields(media_type):
        ref = content[media_type]["schema"]["$ref"].rsplit("/", 1)[1]
        return set(documented["components"]["schemas"][ref]["properties"])

    assert "file" not in fields("application/json") and "file" not in fields("application/x-www-form-urlencoded")
    assert fields("multipart/form-data") == fields("application/json") | {"file"}


def test_an_empty_completion_is_documented_as_the_api_takes_it(documented, api, owner):
    """A policy can end a completion at once (EOS first); the API stores it, the schema said minLength 1."""
    record = documented["components"]["schemas"]["TrajectoryRecordRequest"]
    assert "minLength" not in record["properties"]["completion"]
    run = make_run(make_project(owner=owner), kind=RunKind.EXTERNAL)
    response = api.post(f"/api/v1/runs/{run.id}/trajectories/",
                        {"records": [{"step": 0, "prompt": "p", "completion": "", "reward": 0.0}]}, format="json")
    assert response.status_code == 201 and run.trajectories.get().completion == ""


def test_bodies_with_nested_objects_are_documented_and_taken_as_json_only(documented, api, owner):
    """A form body cannot carry a rubric's criteria or a label's scores as the schema's form
    encoding states them (a JSON part): the criteria answered "required" and the scores were
    dropped without a word, the label stored without them. Those operations take JSON alone."""
    for path, method in [("/api/v1/projects/{project_id}/rubrics/", "post"), ("/api/v1/rubrics/{rubric_id}/", "put"),
                         ("/api/v1/tasks/{task_id}/labels/", "post")]:
        assert list(documented["paths"][path][method]["requestBody"]["content"]) == ["application/json"]
    assert "multipart/form-data" in documented["paths"]["/api/v1/projects/{project_id}/"]["patch"]["requestBody"]["content"]
    project = make_project(owner=owner)
    task = make_task(project, rubric=make_rubric(project))
    criterion = task.rubric_version.criteria.first().id
    body = {"ranking": "[[0], [1]]", "submission_key": "multipart-1", "scores": f'{{"0": {{"{criterion}": 3}}}}'}
    response = api.post(f"/api/v1/tasks/{task.id}/labels/", body, format="multipart")
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    assert not task.labels.exists()


def test_enums_have_names_a_generated_client_can_keep(documented):
    """Two enums whose field names collided ("kind", "role") were named with a hash of their
    values (Kind0e0Enum, Role9beEnum): a generated client's type changed name with any new value."""
    schemas = documented["components"]["schemas"]
    assert not [name for name in schemas if re.search(r"[0-9a-f]{3}Enum$", name)]
    assert "external" in schemas["RunKindEnum"]["enum"] and "annotator" in schemas["ProjectRoleEnum"]["enum"]


def test_a_ranking_is_documented_as_non_empty_tiers_as_the_api_checks(documented, api, owner):
    """``[]`` and ``[[]]`` were valid rankings by the schema; the API refuses both."""
    ranking = _body(documented, "/api/v1/tasks/{task_id}/labels/", "post")["properties"]["ranking"]
    assert not _schema_takes(ranking, []) and not _schema_takes(ranking, [[]])
    task = make_task(make_project(owner=owner))
    for empty in ([], [[]]):
        response = api.post(f"/api/v1/tasks/{task.id}/labels/", {"ranking": empty, "submission_key": "key-12345"},
                            format="json")
        assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["ranking"]


def _schema_takes(schema: dict, value) -> bool:
    """Whether ``value`` is valid by an OpenAPI 3.0 schema without references (JSON Schema draft 4's keywords)."""
    return jsonschema.Draft4Validator(schema).is_valid(value)


@pytest.mark.parametrize("ranking, k, stored", [
    ([[1], [0]], 2, [[1], [0]]),
    ([[0, 1]], 2, [[0, 1]]),
    ([2, 0, 1], 3, [[2], [0], [1]]),  # an order, as Label Studio's and Argilla's rankings are sent
    ([1, 0], 2, [[1], [0]]),
])
def test_a_ranking_the_api_takes_is_valid_by_the_schema(documented, api, owner, ranking, k, stored):
    """The API took an order of positions, ``[2, 0, 1]``, which the schema (tiers alone) called
    invalid: a generated client refused to send it. The schema states both forms (oneOf)."""
    schema = _body(documented, "/api/v1/tasks/{task_id}/labels/", "post")["properties"]["ranking"]
    assert _schema_takes(schema, ranking)
    task = make_task(make_project(owner=owner), completions=[f"answer {i}" for i in range(k)])
    response = api.post(f"/api/v1/tasks/{task.id}/labels/", {"ranking": ranking, "submission_key": "key-12345"},
                        format="json")
    assert response.status_code == 201, response.content
    assert response.json()["ranking"] == stored


@pytest.mark.parametrize("ranking", [[[0], 1], [0, [1]], ["0", "1"], [0.0, 1.0], [-1, 0], [[0], []], [True, False]])
def test_a_ranking_the_schema_refuses_the_api_refuses_naming_it(documented, api, owner, ranking):
    """A mix of tiers and positions, text, fractions, negatives: neither form of the schema, and 400 on ranking."""
    schema = _body(documented, "/api/v1/tasks/{task_id}/labels/", "post")["properties"]["ranking"]
    assert not _schema_takes(schema, ranking)
    task = make_task(make_project(owner=owner))
    response = api.post(f"/api/v1/tasks/{task.id}/labels/", {"ranking": ranking, "submission_key": "key-12345"},
                        format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["ranking"]
    assert not task.labels.exists()


def test_a_reward_components_name_must_be_non_empty_as_its_schema_says(documented):
    """OpenAPI 3.0.3 has no ``propertyNames``: the schema says it in the description."""
    assert documented["openapi"].startswith("3.0")
    rewards = documented["components"]["schemas"]["TrajectoryRecordRequest"]["properties"]["rewards"]
    assert rewards["additionalProperties"]["type"] == "number" and "non-empty" in rewards["description"]
