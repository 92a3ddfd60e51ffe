"""Blind comparisons of two runs: tasks that put an answer of each run to the same prompt side
by side, and the win rate annotators' labels give."""

import uuid

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD, make_dataset, make_policy, make_project, make_run, make_user
from webapp.datasets.parsing import PromptRow
from webapp.datasets.services import dataset_create
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.models import RunKind, RunStatus, Trajectory
from webapp.feedback.errors import FeedbackError
from webapp.feedback.head_to_head import (
    HeadToHead, comparison_tasks_head_to_head, comparison_tasks_head_to_head_outcome, head_to_head,
)
from webapp.feedback.models import ComparisonTask
from webapp.feedback.services import label_submit
from webapp.projects.models import Membership, Role

pytestmark = pytest.mark.django_db


def evaluated(project, dataset, name, prompts=None, steps=(1,), g=2):
    """An evaluation-like run that answered ``prompts`` (indices into the dataset) at ``steps``."""
    run = make_run(project, kind=RunKind.EVALUATION, status=RunStatus.SUCCEEDED, dataset=dataset,
                   policy=make_policy(project), name=name)
    rows = list(dataset.prompts.order_by("index"))
    for step in steps:
        for group, index in enumerate(prompts if prompts is not None else range(len(rows))):
            for j in range(g):
                Trajectory.objects.create(run=run, step=step, group_index=group, sample_index=j, prompt=rows[index],
                                          prompt_text=rows[index].text, completion=f"{name} s{step} #{index}.{j}",
                                          reward=float(j), rewards={"exact_answer": float(j)}, length=3)
    return run


@pytest.fixture
def two_runs():
    project = make_project()
    dataset = make_dataset(project, n=4)
    return project, evaluated(project, dataset, "base"), evaluated(project, dataset, "tuned", prompts=[0, 1, 2])


def run_of(candidate):
    return candidate.metadata["run_name"]


def test_one_task_per_shared_prompt_with_an_answer_of_each_run_in_shuffled_order(two_runs):
    project, base, tuned = two_runs
    tasks = comparison_tasks_head_to_head(project=project, run_a=base, run_b=tuned, seed=3)
    assert len(tasks) == 3  # prompt 3 was answered by base only
    for task in ComparisonTask.objects.filter(pk__in=[t.pk for t in tasks]).prefetch_related("candidates"):
        candidates = list(task.candidates.order_by("position"))
        assert sorted(run_of(c) for c in candidates) == ["base", "tuned"]
        prompt_index = candidates[0].trajectory.prompt.index
        assert all(c.text.endswith(f"#{prompt_index}.{c.metadata['sample_index']}") for c in candidates)
        assert task.prompt_text == candidates[0].trajectory.prompt.text and task.prompt_messages is None
        assert (task.source_run, task.source_run_name) == (base, "base")


TEMPLATED = "<|user|>{}<|im_end|><|assistant|>"


def templated(project, rows, names=("base", "tuned")):
    """Runs whose trajectories hold the prompt as the model was fed it, chat template tokens included."""
    dataset = dataset_create(project=project, name=f"d-{uuid.uuid4().hex[:6]}", rows=rows)
    runs = []
    for name in names:
        run = make_run(project, kind=RunKind.EVALUATION, status=RunStatus.SUCCEEDED, dataset=dataset, name=name)
        for group, prompt in enumerate(dataset.prompts.order_by("index")):
            Trajectory.objects.create(run=run, step=1, group_index=group, sample_index=0, prompt=prompt,
                                      prompt_text=TEMPLATED.format(prompt.text or prompt.messages[-1]["content"]),
                                      completion=f"{name} answer {group}", reward=0.0, length=3)
        runs.append(run)
    return runs


def test_the_prompt_is_the_datasets_not_the_templated_text_the_model_was_fed():
    project = make_project()
    base, tuned = templated(project, [PromptRow(text="What is 9+1?")])
    [task] = comparison_tasks_head_to_head(project=project, run_a=base, run_b=tuned)
    assert (task.prompt_text, task.prompt_messages) == ("What is 9+1?", None)
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is 9+1?"}]
    chat_a, chat_b = templated(project, [PromptRow(messages=messages)], names=("chat-a", "chat-b"))
    [chat] = comparison_tasks_head_to_head(project=project, run_a=chat_a, run_b=chat_b)
    assert chat.prompt_messages == messages
    assert chat.prompt_text == "system: Be terse.\n\nuser: What is 9+1?" and "<|" not in chat.prompt_text


def test_a_prompt_both_runs_answered_with_the_same_text_makes_no_task():
    project = make_project()
    dataset = make_dataset(project, n=3)
    base, tuned = evaluated(project, dataset, "base", g=1), evaluated(project, dataset, "tuned", g=1)
    same = Trajectory.objects.get(run=tuned, prompt__index=1)
    same.completion = Trajectory.objects.get(run=base, prompt__index=1).completion
    same.save()
    outcome = comparison_tasks_head_to_head_outcome(project=project, run_a=base, run_b=tuned, max_tasks=1)
    assert outcome.skipped_identical <= 1 and len(outcome.tasks) == 1  # max_tasks counts tasks made
    user = make_user()
    Membership.objects.create(project=project, user=user, role=Role.RESEARCHER)
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    url = reverse("feedback:task_head_to_head", args=[project.id])
    form = {"run_a": base.id, "run_b": tuned.id, "max_tasks": 10, "required_labels": 1, "seed": 0}
    made = client.post(url, form, follow=True).content.decode()
    assert "Created 1 blind comparisons of base and tuned. Skipped 1 prompt(s) whose two answers were the same text." in made
    for task in ComparisonTask.objects.all():
        assert len({c.text for c in task.candidates.all()}) == 2
    with pytest.raises(FeedbackError, match="same text") as info:  # only the identical prompt is left
        comparison_tasks_head_to_head(project=project, run_a=base, run_b=tuned)
    assert info.value.field == "run_b" and ComparisonTask.objects.count() == 2
    page = client.post(url, form)
    assert page.status_code == 400 and "are the same text (1 prompt(s))" in page.content.decode()


def test_the_task_list_names_both_runs_not_import(client):
    user = make_user()
    project = make_project(researcher=user)
    dataset = make_dataset(project, n=1)
    base, tuned = evaluated(project, dataset, "<b>base</b>"), evaluated(project, dataset, "tuned")
    comparison_tasks_head_to_head(project=project, run_a=base, run_b=tuned)
    assert client.login(username=user.username, password=PASSWORD)
    url = reverse("feedback:tasks", args=[project.id])
    body = client.get(url).content.decode()
    detail = reverse("experiments:detail", args=[project.id, base.id])
    assert (f'<a href="{detail}">&lt;b&gt;base&lt;/b&gt;</a> vs '
            f'<a href="{reverse("experiments:detail", args=[project.id, tuned.id])}">tuned</a>') in body
    assert ">import<" not in body
    from webapp.experiments.services import run_delete

    run_delete(run_id=tuned.id)
    body = client.get(url).content.decode()
    assert f'<a href="{detail}">&lt;b&gt;base&lt;/b&gt;</a> vs tuned <span class="muted">(deleted run)</span>' in body


def test_order_is_shuffled_across_many_prompts():
    project = make_project()
    dataset = make_dataset(project, n=30)
    base, tuned = evaluated(project, dataset, "base"), evaluated(project, dataset, "tuned")
    tasks = comparison_tasks_head_to_head(project=project, run_a=base, run_b=tuned)
    first = [run_of(ComparisonTask.objects.get(pk=t.pk).candidates.get(position=0)) for t in tasks]
    assert 5 < first.count("base") < 25


def test_prompts_already_compared_are_skipped_in_either_order_and_then_nothing_is_left(two_runs):
    project, base, tuned = two_runs
    assert len(comparison_tasks_head_to_head(project=project, run_a=base, run_b=tuned, max_tasks=2)) == 2
    assert len(comparison_tasks_head_to_head(project=project, run_a=tuned, run_b=base)) == 1
    with pytest.raises(FeedbackError, match="answered no prompt in common") as info:
        comparison_tasks_head_to_head(project=project, run_a=base, run_b=tuned)
    assert info.value.field == "run_b" and ComparisonTask.objects.count() == 3


def test_a_run_answering_a_prompt_at_several_steps_is_judged_by_its_latest_answers():
    project = make_project()
    dataset = make_dataset(project, n=2)
    trained = evaluated(project, dataset, "grpo", steps=(1, 5, 9))
    base = evaluated(project, dataset, "base")
    tasks = comparison_tasks_head_to_head(project=project, run_a=trained, run_b=base)
    texts = {c.text for t in tasks for c in ComparisonTask.objects.get(pk=t.pk).candidates.all() if run_of(c) == "grpo"}
    assert texts and all(text.startswith("grpo s9 ") for text in texts)


@pytest.mark.parametrize("change, field, words", [
    ("same", "run_b", "two different runs"),
    ("foreign", "run_a", "another project"),
    ("max_tasks", "max_tasks", "between 1 and"),
])
def test_bad_requests_name_their_field_and_create_nothing(two_runs, change, field, words):
    project, base, tuned = two_runs
    kwargs = {"project": project, "run_a": base, "run_b": tuned}
    if change == "same":
        kwargs["run_b"] = base
    elif change == "foreign":
        kwargs["run_a"] = evaluated(make_project(), make_dataset(make_project()), "theirs")
    else:
        kwargs["max_tasks"] = 0
    with pytest.raises(FeedbackError) as info:
        comparison_tasks_head_to_head(**kwargs)
    assert info.value.field == field and words in info.value.message
    assert not ComparisonTask.objects.exists()


def label(task, annotator, winner_run_name=None, both_bad=False):
    """A label preferring the answer of ``winner_run_name`` (None: a tie)."""
    positions = {run_of(c): c.position for c in task.candidates.all()}
    if both_bad or winner_run_name is None:
        ranking = [sorted(positions.values())]
    else:
        loser = next(p for name, p in positions.items() if name != winner_run_name)
        ranking = [[positions[winner_run_name]], [loser]]
    return label_submit(task=task, annotator=annotator, ranking=ranking, both_bad=both_bad,
                        submission_key=uuid.uuid4().hex)


def test_the_labels_give_wins_losses_ties_and_a_wilson_interval(two_runs):
    project, base, tuned = two_runs
    tasks = comparison_tasks_head_to_head(project=project, run_a=base, run_b=tuned, required_labels=5)
    annotators = [make_user() for _ in range(4)]
    for annotator in annotators:
        Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    outcomes = ["tuned", "tuned", "tuned", "base", None, "tuned", "tuned", "tuned", "base", "bad"]
    for i, outcome in enumerate(outcomes):
        task = ComparisonTask.objects.get(pk=tasks[i % 3].pk)
        label(task, annotators[i // 3], None if outcome == "bad" else outcome, both_bad=outcome == "bad")
    result = head_to_head(project=project, run_a_id=tuned.id, run_b_id=base.id)
    assert (result.a_wins, result.b_wins, result.ties, result.labels, result.tasks) == (6, 2, 2, 10, 3)
    assert result.win_rate == pytest.approx(0.7)
    low, high = result.interval
    assert low == pytest.approx(0.3968, abs=1e-3) and high == pytest.approx(0.8922, abs=1e-3)
    mirror = head_to_head(project=project, run_a_id=base.id, run_b_id=tuned.id)
    assert (mirror.a_wins, mirror.b_wins, mirror.win_rate) == (2, 6, pytest.approx(0.3))
    assert head_to_head(project=make_project(), run_a_id=tuned.id, run_b_id=base.id).labels == 0


def test_no_labels_no_rate():
    empty = HeadToHead(a_wins=0, b_wins=0, ties=0, tasks=4)
    assert empty.win_rate is None and empty.interval is None
    assert HeadToHead(a_wins=10, b_wins=0, ties=0, tasks=10).interval[1] == pytest.approx(1.0)


# ---------------------------------------------------------------- pages and API

def test_the_page_makes_the_tasks_and_the_run_page_shows_the_result_escaped(client):
    user, annotator, newcomer = make_user(), make_user(), make_user()
    project = make_project(researcher=user, annotator=[annotator, newcomer])
    dataset = make_dataset(project, n=3)
    base, tuned = evaluated(project, dataset, "<i>base</i>"), evaluated(project, dataset, "tuned")
    for run, accuracy in ((base, 0.2), (tuned, 0.4)):
        from webapp.experiments.metrics import metric_points_upsert

        metric_points_upsert(run_id=run.id, points=[("eval/accuracy", 1, accuracy)])
    assert client.login(username=user.username, password=PASSWORD)
    link = f"{reverse('feedback:task_head_to_head', args=[project.id])}?a={tuned.id}&amp;b={base.id}"
    assert link in client.get(reverse("experiments:detail", args=[project.id, tuned.id])).content.decode()
    url = reverse("feedback:task_head_to_head", args=[project.id])
    body = client.get(f"{url}?a={tuned.id}&b={base.id}").content.decode()
    assert f'<option value="{tuned.id}" selected>' in body and f'<option value="{base.id}" selected>' in body
    response = client.post(url, {"run_a": tuned.id, "run_b": base.id, "max_tasks": 10, "required_labels": 2,
                                 "seed": 0})
    assert response.status_code == 302 and ComparisonTask.objects.filter(project=project).count() == 3
    again = client.post(url, {"run_a": tuned.id, "run_b": base.id, "max_tasks": 10, "required_labels": 2, "seed": 0})
    assert again.status_code == 400 and "Nothing was created" in again.content.decode()
    for task in ComparisonTask.objects.filter(project=project):
        label(task, annotator, "tuned")
    page = client.get(reverse("experiments:detail", args=[project.id, tuned.id])).content.decode()
    section = page[page.index("Human comparisons"):page.index("<h2>Metrics</h2>")]
    assert "&lt;i&gt;base&lt;/i&gt;" in section and "<i>base</i>" not in section
    assert "<td>100%</td>" in section and "<td>3</td><td>0</td><td>0</td><td>3</td>" in section
    assert "(deleted)" not in section
    from webapp.experiments.services import run_delete

    run_delete(run_id=base.id)  # the labels keep counting, under the name the run had
    page = client.get(reverse("experiments:detail", args=[project.id, tuned.id])).content.decode()
    section = page[page.index("Human comparisons"):page.index("<h2>Metrics</h2>")]
    assert "&lt;i&gt;base&lt;/i&gt; <span class=\"muted\">(deleted)</span>" in section and "<td>100%</td>" in section
    client.logout()
    assert client.login(username=newcomer.username, password=PASSWORD)
    annotate = client.get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert "tuned s1 #" in annotate and "&lt;i&gt;base&lt;/i&gt; s1 #" in annotate  # a task's two answers...
    assert "run_name" not in annotate and "&lt;i&gt;base&lt;/i&gt;</" not in annotate  # ...not who wrote them


def test_the_api_makes_the_tasks_and_reads_the_result():
    user, annotator = api_user(), make_user()
    project = make_project(owner=user, annotator=annotator)
    dataset = make_dataset(project, n=2)
    base, tuned = evaluated(project, dataset, "base"), evaluated(project, dataset, "tuned")
    api = token_client(user)
    created = api.post(f"/api/v1/projects/{project.id}/tasks/", {"runs": [tuned.id, base.id]}, format="json")
    assert created.status_code == 201 and len(created.json()) == 2
    for task in ComparisonTask.objects.filter(project=project):
        label(task, annotator, "base")
    result = api.get(f"/api/v1/runs/{tuned.id}/head-to-head/", {"against": base.id}).json()
    assert (result["wins"], result["losses"], result["ties"], result["labels"], result["tasks"]) == (0, 2, 0, 2, 2)
    assert result["win_rate"] == 0.0 and result["interval"][0] == 0.0
    theirs = evaluated(make_project(), make_dataset(make_project()), "theirs")
    refused = api.post(f"/api/v1/projects/{project.id}/tasks/", {"runs": [tuned.id, theirs.id]}, format="json")
    assert refused.status_code == 400 and "runs" in refused.json()["error"]["fields"]
    both = api.post(f"/api/v1/projects/{project.id}/tasks/", {"runs": [tuned.id, base.id], "run": tuned.id},
                    format="json")
    assert both.status_code == 400
    assert api.get(f"/api/v1/runs/{theirs.id}/head-to-head/", {"against": base.id}).status_code == 404
    assert api.get(f"/api/v1/runs/{tuned.id}/head-to-head/").status_code == 400


def test_the_api_answers_404_against_a_run_the_project_never_had_and_400_against_itself():
    """Both answered 200 with zero tasks, as if the two runs had not been compared yet."""
    user = api_user()
    project = make_project(owner=user)
    dataset = make_dataset(project, n=2)
    base, tuned = evaluated(project, dataset, "base"), evaluated(project, dataset, "tuned")
    theirs = make_run(make_project(), kind=RunKind.EVALUATION)
    api = token_client(user)
    for against in (theirs.id, 10**15):
        missing = api.get(f"/api/v1/runs/{tuned.id}/head-to-head/", {"against": against})
        assert missing.status_code == 404 and missing.json()["error"]["message"] == f"No such run: {against}."
    itself = api.get(f"/api/v1/runs/{tuned.id}/head-to-head/", {"against": tuned.id})
    assert itself.status_code == 400 and list(itself.json()["error"]["fields"]) == ["against"]
    assert api.get(f"/api/v1/runs/{tuned.id}/head-to-head/", {"against": base.id}).json()["tasks"] == 0
