"""Preference pairs over the API: list, import, build from a run, read, delete."""

import json

import pytest

from tests.factories import make_project, make_run
from tests.webapp.api.conftest import api_user, token_client
from tests.webapp.rewards.test_rule_pairs import recorded_run
from webapp.experiments.models import RunKind, RunStatus
from webapp.rewards.models import PreferencePairSet

pytestmark = pytest.mark.django_db

PAIRS = '{"prompt": "2+2?", "chosen": "4", "rejected": "5"}\n{"prompt": [{"role": "user", "content": "hi"}], "chosen": "hello", "rejected": "go away"}\n'


@pytest.fixture
def owner_api():
    user = api_user()
    project = make_project(owner=user)
    return project, token_client(user)


def pairs_of(api, pair_set_id: int) -> list:
    """Every pair of a set, read page by page from ``/pair-sets/<id>/pairs/``."""
    pairs, url = [], f"/api/v1/pair-sets/{pair_set_id}/pairs/"
    while url:
        page = api.get(url)
        assert page.status_code == 200, page.content
        pairs += page.json()["results"]
        url = page.json()["next"]
    return pairs


def test_an_import_is_listed_and_read_without_its_pairs_which_are_paged(owner_api):
    project, api = owner_api
    created = api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": "prefs", "content": PAIRS}, format="json")
    assert created.status_code == 201 and created.json()["pair_count"] == 2
    listed = api.get(f"/api/v1/projects/{project.id}/pair-sets/").json()["results"]
    assert [(s["name"], s["pair_count"]) for s in listed] == [("prefs", 2)] and "pairs" not in listed[0]
    set_id = created.json()["id"]
    detail = api.get(f"/api/v1/pair-sets/{set_id}/").json()
    assert "pairs" not in detail and detail["pair_count"] == 2
    assert detail["pairs_url"] == f"http://testserver/api/v1/pair-sets/{set_id}/pairs/"
    assert detail["download_url"] == f"http://testserver/api/v1/pair-sets/{set_id}/pairs.jsonl"
    assert api.get(detail["pairs_url"]).json()["results"][1] == {
        "prompt": [{"role": "user", "content": "hi"}], "chosen": "hello", "rejected": "go away"}


def test_the_detail_never_reads_the_pairs_column(owner_api, django_assert_max_num_queries):
    """A set of 100,000 pairs is tens of MB in one JSON column: the detail leaves it in the database."""
    project, api = owner_api
    pair_set = PreferencePairSet.objects.create(project=project, name="big", pair_count=1,
                                                pairs=[{"prompt": "p", "chosen": "a", "rejected": "b"}])
    with django_assert_max_num_queries(10) as queries:
        assert api.get(f"/api/v1/pair-sets/{pair_set.id}/").status_code == 200
    assert not [q["sql"] for q in queries.captured_queries if '"rewards_preferencepairset"."pairs"' in q["sql"]]


def test_pairs_are_paged_forwards_and_back_in_stored_order(owner_api):
    project, api = owner_api
    stored = [{"prompt": f"p{i}", "chosen": f"a{i}", "rejected": f"b{i}"} for i in range(5)]
    pair_set = PreferencePairSet.objects.create(project=project, name="five", pair_count=5, pairs=stored)
    first = api.get(f"/api/v1/pair-sets/{pair_set.id}/pairs/?page_size=2").json()
    assert first["results"] == stored[:2] and first["previous"] is None
    second = api.get(first["next"]).json()
    assert second["results"] == stored[2:4]
    last = api.get(second["next"]).json()
    assert last["results"] == stored[4:] and last["next"] is None
    back = api.get(last["previous"]).json()
    assert back["results"] == stored[2:4] and back["next"] == second["next"]
    assert api.get(back["previous"]).json() == first
    assert pairs_of(api, pair_set.id) == stored


def test_a_page_of_pairs_costs_the_same_queries_and_brings_only_its_pairs(owner_api, django_assert_max_num_queries):
    project, api = owner_api
    stored = [{"prompt": f"p{i}", "chosen": f"a{i}", "rejected": f"b{i}"} for i in range(3000)]
    pair_set = PreferencePairSet.objects.create(project=project, name="many", pair_count=3000, pairs=stored)
    with django_assert_max_num_queries(10) as queries:
        page = api.get(f"/api/v1/pair-sets/{pair_set.id}/pairs/?page_size=3").json()
    assert page["results"] == stored[:3]
    assert not [q["sql"] for q in queries.captured_queries if '"rewards_preferencepairset"."pairs"' in q["sql"]]


def test_pairs_of_another_projects_set_answer_404_and_bad_paging_is_refused(owner_api):
    project, api = owner_api
    theirs = PreferencePairSet.objects.create(project=make_project(), name="theirs", pair_count=1,
                                              pairs=[{"prompt": "p", "chosen": "a", "rejected": "b"}])
    assert api.get(f"/api/v1/pair-sets/{theirs.id}/pairs/").status_code == 404
    mine = PreferencePairSet.objects.create(project=project, name="mine", pair_count=1,
                                            pairs=[{"prompt": "p", "chosen": "a", "rejected": "b"}])
    assert api.get(f"/api/v1/pair-sets/{mine.id}/pairs/?cursor=bm9wZQ").status_code == 404
    assert api.get(f"/api/v1/pair-sets/{mine.id}/pairs/?page_size=0").status_code == 400


def test_a_bad_import_names_its_lines_and_stores_nothing(owner_api):
    project, api = owner_api
    response = api.post(f"/api/v1/projects/{project.id}/pair-sets/",
                        {"name": "bad", "content": '{"prompt": "p", "chosen": "a"}\nnot json\n'}, format="json")
    assert response.status_code == 400
    message = " ".join(response.json()["error"]["fields"]["content"])
    assert "line 1: missing rejected" in message and "line 2: not valid JSON" in message
    assert not PreferencePairSet.objects.exists()


def test_an_import_with_trls_margin_gives_it_in_the_pairs_and_the_download(owner_api):
    project, api = owner_api
    content = ('{"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 1}\n'
               '{"prompt": "3+3?", "chosen": "6", "rejected": "7"}\n')
    created = api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": "prefs", "content": content},
                       format="json")
    assert created.status_code == 201 and created.json()["pair_count"] == 2
    pairs = [{"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 1.0},
             {"prompt": "3+3?", "chosen": "6", "rejected": "7"}]
    assert pairs_of(api, created.json()["id"]) == pairs
    download = api.get(f"/api/v1/pair-sets/{created.json()['id']}/pairs.jsonl")
    # the download gives the pair without a margin 0.0, as TRL collates the column (the pairs API none)
    assert [json.loads(line) for line in b"".join(download.streaming_content).splitlines()] == [
        pairs[0], {**pairs[1], "margin": 0.0}]


def test_a_bad_margin_answers_400_naming_its_line_and_stores_nothing(owner_api):
    project, api = owner_api
    content = '{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1}\n' \
              '{"prompt": "p", "chosen": "a", "rejected": "b", "margin": "high"}\n'
    response = api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": "bad", "content": content},
                        format="json")
    assert response.status_code == 400
    message = " ".join(response.json()["error"]["fields"]["content"])
    assert "line 2: margin must be a number ≥ 0 (or null for none), not a string" in message
    assert "line 1" not in message and not PreferencePairSet.objects.exists()


@pytest.mark.parametrize("name", ["prefs", " \u200b "])
def test_an_import_under_a_taken_or_empty_name_answers_400_on_name(owner_api, name):
    """It answered 400 on ``content`` with 'nothing imported, 1 bad line(s): line 0: ...'."""
    project, api = owner_api
    api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": "prefs", "content": PAIRS}, format="json")
    response = api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": name, "content": PAIRS}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["name"]
    assert "line 0" not in response.json()["error"]["message"]
    assert PreferencePairSet.objects.filter(project=project).count() == 1


def test_pairs_are_built_from_a_run_of_the_project_only(owner_api):
    project, api = owner_api
    run, theirs = recorded_run(project), recorded_run(make_project(), name="theirs")
    url = f"/api/v1/projects/{project.id}/pair-sets/from-run/"
    built = api.post(url, {"name": "rules", "run": run.id, "step_min": 1, "step_max": 2, "rule": "exact_answer"},
                     format="json")
    assert built.status_code == 201 and built.json()["pair_count"] == 8
    refused = api.post(url, {"name": "x", "run": theirs.id, "step_max": 2}, format="json")
    assert refused.status_code == 400 and "run" in refused.json()["error"]["fields"]
    bad_rule = api.post(url, {"name": "x", "run": run.id, "step_max": 2, "rule": "nope"}, format="json")
    assert bad_rule.status_code == 400 and "choose one of" in bad_rule.json()["error"]["fields"]["rule"][0]
    assert api.post(f"/api/v1/projects/{theirs.project_id}/pair-sets/from-run/",
                    {"name": "x", "run": theirs.id, "step_max": 2}, format="json").status_code == 404


def test_pairs_from_a_run_take_every_step_when_no_range_is_given(owner_api):
    """step_max was required, while tasks from a run default to every step."""
    project, api = owner_api
    run = recorded_run(project)
    url = f"/api/v1/projects/{project.id}/pair-sets/from-run/"
    every = api.post(url, {"name": "all", "run": run.id, "rule": "exact_answer"}, format="json")
    ranged = api.post(url, {"name": "ranged", "run": run.id, "step_min": 0, "step_max": 10**6, "rule": "exact_answer"},
                      format="json")
    assert every.status_code == 201 and every.json()["pair_count"] == ranged.json()["pair_count"] > 0


def test_delete_answers_409_while_a_reward_model_run_trains_on_the_set(owner_api):
    project, api = owner_api
    pair_set = PreferencePairSet.objects.create(project=project, name="ps", pair_count=0, pairs=[])
    run = make_run(project, kind=RunKind.REWARD_MODEL, status=RunStatus.RUNNING, name="live rm",
                   config={"data": {"source": "pairs", "pair_set": pair_set.id}})
    response = api.delete(f"/api/v1/pair-sets/{pair_set.id}/")
    assert response.status_code == 409 and "“live rm” (running)" in response.json()["error"]["message"]
    run.status = RunStatus.SUCCEEDED
    run.save()
    assert api.delete(f"/api/v1/pair-sets/{pair_set.id}/").status_code == 204
    assert api.get(f"/api/v1/pair-sets/{pair_set.id}/").status_code == 404


def test_a_preference_export_with_a_line_separator_imports_back_as_a_pair_set(owner_api):
    from tests.webapp.api.test_feedback import import_tasks, label_as_annotator

    project, api = owner_api
    tasks = import_tasks(api, project, [{"prompt": "line one\u2028line two", "completions": ["a\u2029b", "c"]}])
    label_as_annotator(project, {tasks[0]["id"]: [[0], [1]]})
    exported = api.get(f"/api/v1/projects/{project.id}/exports/preferences.jsonl")
    content = b"".join(exported.streaming_content).decode()
    assert "\u2028" in content  # written raw, as json.dumps(ensure_ascii=False) does
    assert "task_id" in content  # imported as it is, with the export's bookkeeping
    created = api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": "again", "content": content},
                       format="json")
    assert created.status_code == 201, created.json()
    pairs = pairs_of(api, created.json()["id"])
    assert pairs == [{"prompt": "line one\u2028line two", "chosen": "a\u2029b", "rejected": "c"}]


def test_a_chat_preference_export_imports_back_as_a_pair_set(owner_api):
    """TRL's conversational format, as the export writes it for a chat prompt: chosen and
    rejected as the assistant's messages."""
    from tests.webapp.api.test_feedback import import_tasks, label_as_annotator

    project, api = owner_api
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    tasks = import_tasks(api, project, [{"prompt": messages, "completions": ["4", "5"]}])
    label_as_annotator(project, {tasks[0]["id"]: [[1], [0]]})
    exported = api.get(f"/api/v1/projects/{project.id}/exports/preferences.jsonl")
    content = b"".join(exported.streaming_content).decode()
    assert json.loads(content)["chosen"] == [{"role": "assistant", "content": "5"}]
    created = api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": "chat", "content": content},
                       format="json")
    assert created.status_code == 201, created.json()
    pairs = pairs_of(api, created.json()["id"])
    assert pairs == [{"prompt": messages, "chosen": "5", "rejected": "4"}]
