import json
import uuid

import pytest

from tests.factories import make_project
from tests.webapp.api.conftest import api_user, token_client
from webapp.feedback.models import PreferenceLabel

pytestmark = pytest.mark.django_db


def post(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def project(owner):
    return make_project(owner=owner)


def import_tasks(api, project, lines):
    content = "\n".join(json.dumps(line) for line in lines)
    response = post(api, f"/api/v1/projects/{project.id}/tasks/", {"content": content})
    assert response.status_code == 201, response.json()
    return response.json()


def test_label_is_stored_once_when_the_request_is_retried(api, project):
    (task,) = import_tasks(api, project, [{"prompt": "2+2?", "completions": ["4", "5"]}])
    body = {"ranking": [[0], [1]], "submission_key": uuid.uuid4().hex, "critique": "B is wrong"}
    first = post(api, f"/api/v1/tasks/{task['id']}/labels/", body)
    again = post(api, f"/api/v1/tasks/{task['id']}/labels/", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert PreferenceLabel.objects.count() == 1


def test_a_second_label_under_a_new_key_answers_409_and_changes_nothing(api, project):
    (task,) = import_tasks(api, project, [{"prompt": "2+2?", "completions": ["4", "5"]}])
    url = f"/api/v1/tasks/{task['id']}/labels/"
    first = post(api, url, {"ranking": [[0], [1]], "submission_key": "demo-key-A1"})
    second = post(api, url, {"ranking": [[1], [0]], "critique": "changed my mind", "submission_key": "demo-key-B1"})
    assert (first.status_code, second.status_code) == (201, 409)
    error = second.json()["error"]
    assert error["code"] == "conflict" and f"labelled this task already (label {first.json()['id']})" in error["message"]
    [label] = PreferenceLabel.objects.all()
    assert (label.ranking, label.critique, label.submission_key) == ([[0], [1]], "", "demo-key-A1")
    replay = post(api, url, {"ranking": [[0], [1]], "submission_key": "demo-key-A1"})
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]


def test_bad_ranking_answers_400_naming_the_field(api, project):
    (task,) = import_tasks(api, project, [{"prompt": "q", "completions": ["a", "b"]}])
    response = post(api, f"/api/v1/tasks/{task['id']}/labels/", {"ranking": [[0], [7]], "submission_key": "k" * 10})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["ranking"]


def test_bad_task_lines_are_reported_by_number(api, project):
    content = json.dumps({"prompt": "q", "completions": ["a", "b"]}) + "\n" + json.dumps({"prompt": "q"})
    response = post(api, f"/api/v1/projects/{project.id}/tasks/", {"content": content})
    assert response.status_code == 400
    assert "line 2" in response.json()["error"]["message"]


def test_tasks_from_a_run_refuse_a_step_min_past_the_largest_step_naming_it(api, project):
    from tests.factories import make_run

    run = make_run(project)
    response = post(api, f"/api/v1/projects/{project.id}/tasks/", {"run": run.id, "step_min": 10**30})
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["step_min"]


def export_rows(api, project, tmp_path):
    from datasets import load_dataset

    response = api.get(f"/api/v1/projects/{project.id}/exports/preferences.jsonl")
    assert response.status_code == 200 and response["Content-Type"] == "application/jsonl"
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(b"".join(response.streaming_content))
    return load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))


def label_as_annotator(project, rankings: dict):
    annotator = api_user()
    project.memberships.create(user=annotator, role="annotator")
    labeller = token_client(annotator)
    for task_id, ranking in rankings.items():
        assert post(labeller, f"/api/v1/tasks/{task_id}/labels/",
                    {"ranking": ranking, "submission_key": uuid.uuid4().hex}).status_code == 201


def test_preference_export_loads_with_datasets_as_trl_expects(api, project, tmp_path):
    tasks = import_tasks(api, project, [{"prompt": "2+2?", "completions": ["4", "5", "22"]},
                                        {"prompt": "1+1?", "completions": ["2", "11"]}])
    label_as_annotator(project, {tasks[0]["id"]: [[0], [2], [1]], tasks[1]["id"]: [[0], [1]]})
    rows = export_rows(api, project, tmp_path)
    assert {"prompt", "chosen", "rejected"} <= set(rows.column_names)
    assert rows.features["chosen"].dtype == "string"
    assert sorted((r["prompt"], r["chosen"], r["rejected"]) for r in rows) == [
        ("1+1?", "2", "11"), ("2+2?", "22", "5"), ("2+2?", "4", "22"), ("2+2?", "4", "5")]


def test_a_project_mixing_chat_and_plain_prompts_exports_conversational_rows(api, project, tmp_path):
    tasks = import_tasks(api, project, [
        {"prompt": "2+2?", "completions": ["4", "5"]},
        {"prompt": [{"role": "user", "content": "Say hi"}], "completions": ["hi", "bye"]},
    ])
    label_as_annotator(project, {tasks[0]["id"]: [[0], [1]], tasks[1]["id"]: [[0], [1]]})
    rows = export_rows(api, project, tmp_path)
    by_prompt = {r["prompt"][-1]["content"]: r for r in rows}
    assert by_prompt["2+2?"]["chosen"] == [{"role": "assistant", "content": "4"}]  # a string, not the number 4
    assert by_prompt["Say hi"]["rejected"] == [{"role": "assistant", "content": "bye"}]


def test_raw_label_export_keeps_each_ranking(api, project):
    (task,) = import_tasks(api, project, [{"prompt": "q", "completions": ["a", "b"]}])
    post(api, f"/api/v1/tasks/{task['id']}/labels/", {"ranking": [[1], [0]], "submission_key": "c" * 10})
    response = api.get(f"/api/v1/projects/{project.id}/exports/labels.jsonl")
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [(line["task_id"], line["ranking"]) for line in lines] == [(task["id"], [[1], [0]])]


def test_withdrawn_label_is_gone(api, project):
    (task,) = import_tasks(api, project, [{"prompt": "q", "completions": ["a", "b"]}])
    label = post(api, f"/api/v1/tasks/{task['id']}/labels/", {"ranking": [[1], [0]], "submission_key": "d" * 10}).json()
    assert api.delete(f"/api/v1/labels/{label['id']}/").status_code == 204
    assert not PreferenceLabel.objects.exists()


def test_rubric_update_with_new_criteria_makes_a_new_version(api, project):
    rubric = post(api, f"/api/v1/projects/{project.id}/rubrics/",
                  {"name": "R", "criteria": [{"name": "Correct", "scale": "binary"}]}).json()
    updated = api.put(f"/api/v1/rubrics/{rubric['id']}/", data=json.dumps(
        {"name": "R", "criteria": [{"name": "Correct", "scale": "binary"}, {"name": "Brief"}]}),
        content_type="application/json").json()
    assert (rubric["version"], updated["version"]) == (1, 2)
    assert [c["name"] for c in updated["criteria"]] == ["Correct", "Brief"]


def test_reward_agreement_sets_each_runs_rewards_against_the_labels(api, project, settings, tmp_path):
    from tests.factories import make_run
    from webapp.experiments.models import RunStatus, Trajectory
    from webapp.feedback.services import comparison_tasks_from_run

    settings.STEER_CHECKPOINT_DIR = tmp_path
    runs = []
    for judged in ([1.0, 0.0], [0.0, 1.0]):  # the second run's judge prefers the other answer
        run = make_run(project, status=RunStatus.SUCCEEDED)
        for sample in range(2):
            Trajectory.objects.create(run=run, step=0, group_index=0, sample_index=sample, prompt_text="2+2?",
                                      completion=f"answer {sample}", rewards={"judge": judged[sample]},
                                      reward=judged[sample], length=2)
        [task] = comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=0, k=2)
        first = task.candidates.get(trajectory__sample_index=0).position
        ranking = [[first], [1 - first]]  # people prefer "answer 0" both times
        assert post(api, f"/api/v1/tasks/{task.id}/labels/",
                    {"ranking": ranking, "submission_key": uuid.uuid4().hex}).status_code == 201
        runs.append(run)

    everything = api.get(f"/api/v1/projects/{project.id}/reward-agreement/").json()
    assert [(r["reward"], r["total"], r["pairs"], r["separated"], r["agreement"]) for r in everything] == [
        (None, True, 2, 2, 0.5), ("judge", False, 2, 2, 0.5)]
    first_run = api.get(f"/api/v1/projects/{project.id}/reward-agreement/?run={runs[0].id}").json()
    assert first_run[1]["agreement"] == 1.0 and len(first_run[1]["interval"]) == 2

    from webapp.experiments.services import run_delete  # the figures are the tasks', not the runs'

    run_delete(run_id=runs[1].id)
    assert api.get(f"/api/v1/projects/{project.id}/reward-agreement/").json() == everything

    elsewhere = make_run(make_project(owner=api_user()))
    response = api.get(f"/api/v1/projects/{project.id}/reward-agreement/?run={elsewhere.id}")
    assert response.status_code == 404
    assert api.get(f"/api/v1/projects/{project.id}/reward-agreement/?run=x").status_code == 400


def test_label_quality_reads_as_on_the_quality_page(api, project):
    content = json.dumps({"prompt": "q", "completions": ["a", "b", "c"]})
    response = post(api, f"/api/v1/projects/{project.id}/tasks/", {"content": content, "required_labels": 2})
    assert response.status_code == 201, response.json()
    task_id = response.json()[0]["id"]
    label_as_annotator(project, {task_id: [[0], [1], [2]]})
    label_as_annotator(project, {task_id: [[0], [2], [1]]})  # agrees on 2 of the 3 pairs
    body = api.get(f"/api/v1/projects/{project.id}/quality/").json()
    assert body["labels"] == 2
    assert body["agreement"] == {"value": pytest.approx(2 / 3), "n": 3}
    assert body["gold_accuracy"] == {"value": None, "n": 0}
    assert [a["labels"] for a in body["annotators"]] == [1, 1]
    assert body["annotators"][0]["agreement"] == pytest.approx(2 / 3)
    assert body["criteria"] == [] and body["rewards"] == []  # imported tasks carry no rewards


def test_a_reward_named_like_the_total_stays_a_reward_and_two_runs_are_never_compared(api, project, settings, tmp_path):
    from tests.factories import make_dataset, make_run
    from webapp.experiments.models import RunStatus, Trajectory
    from webapp.feedback.head_to_head import comparison_tasks_head_to_head
    from webapp.feedback.services import comparison_tasks_from_run

    settings.STEER_CHECKPOINT_DIR = tmp_path
    prompt = make_dataset(project, n=1).prompts.get()
    runs = []
    for scale in (1.0, 100.0):  # the same components, weighed very differently by the two runs
        run = make_run(project, status=RunStatus.SUCCEEDED)
        for sample in range(2):
            Trajectory.objects.create(run=run, step=0, group_index=0, sample_index=sample, prompt=prompt,
                                      prompt_text="2+2?", completion=f"{scale} {sample}",
                                      rewards={"(total)": float(sample), "len": float(sample)},
                                      reward=scale * (1 - sample), length=2)
        runs.append(run)
    [own] = comparison_tasks_from_run(project=project, run=runs[0], step_min=0, step_max=0, k=2)
    [both] = comparison_tasks_head_to_head(project=project, run_a=runs[0], run_b=runs[1], max_tasks=1)
    for task in (own, both):
        ranking = sorted(range(2), key=lambda p: -float(task.candidates.get(position=p).text.split()[0]))
        assert post(api, f"/api/v1/tasks/{task.id}/labels/",  # prefer the bigger scale, then sample 0
                    {"ranking": [[p] for p in ranking] if task == both else [[0], [1]],
                     "submission_key": uuid.uuid4().hex}).status_code == 201
    rows = {(r["reward"], r["total"]): r["pairs"] for r in api.get(f"/api/v1/projects/{project.id}/reward-agreement/").json()}
    # one pair, from the task made from one run; the head-to-head pair mixes two runs' rewards
    assert rows == {(None, True): 1, ("(total)", False): 1, ("len", False): 1}


def test_a_mixed_project_s_raw_labels_load_with_datasets_as_message_lists(api, project, tmp_path):
    from datasets import List, load_dataset

    tasks = import_tasks(api, project, [
        {"prompt": "2+2?", "completions": ["4", "5"]},
        {"prompt": [{"role": "user", "content": "Say hi"}], "completions": ["hi", "bye"]},
    ])
    label_as_annotator(project, {tasks[0]["id"]: [[0], [1]], tasks[1]["id"]: [[1], [0]]})
    response = api.get(f"/api/v1/projects/{project.id}/exports/labels.jsonl")
    path = tmp_path / "labels.jsonl"
    path.write_bytes(b"".join(response.streaming_content))
    rows = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(rows.features["prompt"], List)  # a list of messages, not a Json column of both
    by_prompt = {r["prompt"][-1]["content"]: r for r in rows}
    assert by_prompt["2+2?"]["prompt"] == [{"role": "user", "content": "2+2?"}]
    assert by_prompt["2+2?"]["completions"] == ["4", "5"]  # strings: "4" stays text
    assert by_prompt["Say hi"]["ranking"] == [[1], [0]]


def test_a_label_retried_with_its_key_but_another_ranking_is_a_409_and_the_first_stands(api, project):
    (task,) = import_tasks(api, project, [{"prompt": "q", "completions": ["a", "b"]}])
    url = f"/api/v1/tasks/{task['id']}/labels/"
    first = post(api, url, {"ranking": [[1], [0]], "submission_key": "e" * 10})
    assert first.status_code == 201
    assert post(api, url, {"ranking": [[1], [0]], "submission_key": "e" * 10}).status_code == 200  # a retry
    changed = post(api, url, {"ranking": [[0], [1]], "submission_key": "e" * 10})
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "conflict"
    assert f"label {first.json()['id']}" in changed.json()["error"]["message"]
    assert list(PreferenceLabel.objects.values_list("ranking", flat=True)) == [[[1], [0]]]
