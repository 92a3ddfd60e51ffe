"""Held-out prompts of a policy run: chosen at launch (page or API), evaluated by the worker every
``eval.every_steps`` steps (eval/greedy_pass@1, eval/pass@k), and kept while the run exists."""

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from tests.factories import (
    PASSWORD,
    make_dataset,
    make_policy,
    make_project,
    make_run,
    make_user,
    tiny_run_config,
    tiny_run_form_data,
)
from tests.webapp.api.conftest import api_user, token_client
from webapp.datasets.errors import DatasetInUse
from webapp.datasets.parsing import PromptRow
from webapp.datasets.services import dataset_create, dataset_delete
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunKind, RunStatus
from webapp.experiments.selectors import metric_points_page
from webapp.experiments.services import run_execute, run_launch

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]  # no task reaches a broker


def history(run, key):
    return [(p["step"], p["value"]) for p in metric_points_page(run_id=run.id, limit=100, key=key)]


def held_out_config(every: int = 1, total_steps: int = 2):
    return tiny_run_config(total_steps=total_steps, checkpoint_every=100,
                           eval={"every_steps": every, "num_samples": 2, "k": 2})


def launch(project, *, eval_dataset, config=None, kind=RunKind.POLICY):
    return run_launch(project=project, user=None, name="held out", kind=kind, config=config or held_out_config(),
                      dataset=make_dataset(project, n=4), policy=make_policy(project), eval_dataset=eval_dataset)


def test_a_float_every_steps_the_engine_accepts_is_accepted_with_held_out_prompts():
    project = make_project()
    run = launch(project, eval_dataset=make_dataset(project), config=held_out_config(every=2.0))
    assert run.config["eval"]["every_steps"] == 2


def test_a_policy_run_evaluates_its_held_out_prompts_every_n_steps_and_at_the_last(monkeypatch):
    from workers.engine import evaluate

    # What the policy "answers" to the held-out prompts (references 0, 2, 4) at steps 2, 4 and 5:
    # greedily (3 rows a call), then 2 samples each (6 rows a call).
    greedy = iter([["0", "3", "4"], ["1", "2", "4"], ["0", "2", "4"]])
    sampled = iter([["0", "9", "2", "2", "9", "9"]] * 3)
    monkeypatch.setattr(evaluate, "decode_completions",
                        lambda tokenizer, batch: next(greedy if len(batch.completion_lengths) == 3 else sampled))
    project = make_project()
    held_out = make_dataset(project, name="held out", n=3)
    run = launch(project, eval_dataset=held_out, config=held_out_config(every=2, total_steps=5))
    assert run.eval_dataset == held_out
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED, Run.objects.get(pk=run.id).error
    for key in ("eval/greedy_pass@1", "eval/pass@2"):
        assert [step for step, _ in history(run, key)] == [2, 4, 5], key
    assert [s for s, _ in history(run, "reward")] == [1, 2, 3, 4, 5]
    # Only the training prompts are sampled for trajectories; the held-out ones are never trained on.
    assert not run.trajectories.filter(prompt__dataset=held_out).exists() and run.trajectories.exists()
    # Each evaluation stored the greedy answer to every held-out prompt, agreeing with its metric.
    answers = {(a.step, a.prompt.index): a for a in run.held_out_answers.select_related("prompt")}
    assert {a.prompt.dataset_id for a in answers.values()} == {held_out.id}
    assert {step: [(answers[step, i].completion, answers[step, i].correct) for i in range(3)]
            for step in (2, 4, 5)} == {2: [("0", True), ("3", False), ("4", True)],
                                       4: [("1", False), ("2", True), ("4", True)],
                                       5: [("0", True), ("2", True), ("4", True)]}
    assert [answers[2, i].samples_correct for i in range(3)] == [1, 2, 0]
    assert all(a.samples == 2 for a in answers.values())
    assert history(run, "eval/greedy_pass@1") == [(2, pytest.approx(2 / 3)), (4, pytest.approx(2 / 3)), (5, 1.0)]


def test_held_out_prompts_without_references_are_scored_by_the_runs_own_0_1_reward():
    project = make_project()
    unmarked = dataset_create(project=project, name="unmarked", rows=[PromptRow(text="a"), PromptRow(text="b")])
    config = {**held_out_config(every=1, total_steps=1), "rewards": [{"name": "contains", "text": "4"}]}
    run = launch(project, eval_dataset=unmarked, config=config)
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED, Run.objects.get(pk=run.id).error
    assert run.held_out_answers.count() == 2
    assert [v for _, v in history(run, "eval/greedy_pass@1")] == [
        pytest.approx(sum("4" in a.completion for a in run.held_out_answers.all()) / 2)]


def answered(project, step, rows):
    """A finished run with held-out answers stored at ``step``: rows of (completion, correct)."""
    from webapp.experiments.models import HeldOutAnswer

    held_out = Run.objects.get(project=project).eval_dataset if Run.objects.filter(project=project).exists() \
        else make_dataset(project, name="held", n=len(rows))
    run = Run.objects.filter(project=project).first() or make_run(project, status=RunStatus.SUCCEEDED,
                                                                  eval_dataset=held_out)
    for prompt, (completion, correct) in zip(held_out.prompts.order_by("index"), rows):
        HeldOutAnswer.objects.create(run=run, step=step, prompt=prompt, completion=completion, correct=correct,
                                     samples_correct=int(correct), samples=2, length=3)
    return run


def test_the_held_out_page_shows_each_answer_and_what_changed_since_the_last_evaluation(client):
    user = make_user()
    project = make_project(researcher=user)
    answered(project, 2, [("<b>4</b>", True), ("5", False), ("6", True)])
    run = answered(project, 4, [("4", True), ("<script>x</script>", True), ("7", False)])
    assert client.login(username=user.username, password=PASSWORD)
    url = reverse("experiments:held_out", args=[project.id, run.id])
    page = client.get(url).content.decode()  # the newest step by default
    table = page[page.index('id="held-out"'):page.index("</table>")]
    assert table.count("<tr class=") == 3 and "&lt;script&gt;x&lt;/script&gt;" in table and "<script>x" not in table
    assert "newly right" in table and "newly wrong" in table and "changed since step 2" in page
    changed = client.get(url, {"show": "changed"}).content.decode()
    assert changed.count('<tr class="right">') == 1 and changed.count('<tr class="wrong">') == 1
    wrong = client.get(url, {"step": 2, "show": "wrong"}).content.decode()
    rows = wrong[wrong.index('id="held-out"'):wrong.index("</table>")]
    assert rows.count("<tr class=") == 1 and ">5<" in rows and "&lt;b&gt;4&lt;/b&gt;" not in rows
    assert client.get(url, {"step": "999", "show": "nonsense"}).status_code == 200  # falls back to the newest


def test_the_held_out_page_is_the_projects_own(client):
    user = make_user()
    theirs = answered(make_project(), 1, [("4", True)])
    assert client.login(username=user.username, password=PASSWORD)
    mine = make_project(researcher=user)
    assert client.get(reverse("experiments:held_out", args=[mine.id, theirs.id])).status_code == 404


def test_the_api_lists_held_out_answers_by_step_and_correctness():
    user = api_user()
    project = make_project(owner=user)
    answered(project, 2, [("4", True), ("5", False)])
    run = answered(project, 4, [("4", True), ("6", True)])
    api = token_client(user)
    body = api.get(f"/api/v1/runs/{run.id}/held-out/").json()
    assert [(r["step"], r["index"], r["completion"], r["correct"]) for r in body["results"]] == [
        (2, 0, "4", True), (2, 1, "5", False), (4, 0, "4", True), (4, 1, "6", True)]
    assert body["results"][0]["samples"] == 2 and body["results"][0]["reference"] is not None
    wrong = api.get(f"/api/v1/runs/{run.id}/held-out/?correct=false").json()["results"]
    assert [(r["step"], r["completion"]) for r in wrong] == [(2, "5")]
    assert [r["step"] for r in api.get(f"/api/v1/runs/{run.id}/held-out/?step=4").json()["results"]] == [4, 4]
    theirs = answered(make_project(), 1, [("4", True)])
    assert api.get(f"/api/v1/runs/{theirs.id}/held-out/").status_code == 404


@pytest.mark.parametrize("case, field, fragment", [
    ("every steps without prompts", "eval_dataset", "choose the held-out prompts"),
    ("prompts without every steps", "config.eval.every_steps", "at least 1"),
    ("no references", "eval_dataset", "2 of its prompts have no reference answer"),
    ("empty", "eval_dataset", "has no prompts"),
    ("another project's", "eval_dataset", "belongs to another project"),
    ("an evaluation run's", "eval_dataset", "only a policy run"),
    ("the training set", "eval_dataset", "another dataset than the training one"),
    ("every steps as a float", "eval_dataset", "choose the held-out prompts"),  # 2.0 is 2 to the engine
])
def test_held_out_prompts_the_worker_could_not_score_are_refused_on_their_field(case, field, fragment, sent):
    project = make_project()
    config, kind = held_out_config(), RunKind.POLICY
    eval_dataset = make_dataset(project)
    if case == "every steps without prompts":
        eval_dataset = None
    elif case == "prompts without every steps":
        config = held_out_config(every=0)
    elif case == "no references":
        eval_dataset = dataset_create(project=project, name="unmarked", rows=[
            PromptRow(text="a", reference="1"), PromptRow(text="b", reference=""), PromptRow(text="c", reference="")])
    elif case == "empty":
        eval_dataset = dataset_create(project=project, name="empty", rows=[])
    elif case == "another project's":
        eval_dataset = make_dataset(make_project())
    elif case == "an evaluation run's":
        kind = RunKind.EVALUATION
    elif case == "every steps as a float":
        eval_dataset, config = None, held_out_config(every=2.0)
    training = make_dataset(project)
    if case == "the training set":
        eval_dataset = training
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=None, name="held out", kind=kind, config=config, dataset=training,
                   policy=make_policy(project), eval_dataset=eval_dataset)
    assert (info.value.field, fragment in info.value.message) == (field, True), info.value.message
    assert not Run.objects.exists() and sent == []


def test_held_out_prompts_scored_by_math_verify_need_their_references(sent):
    project = make_project()
    unmarked = dataset_create(project=project, name="unmarked", rows=[
        PromptRow(text="a", reference="1"), PromptRow(text="b", reference="")])
    config = {**held_out_config(), "rewards": [{"name": "math_verify"}, {"name": "length", "max_tokens": 3}]}
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=None, name="held out", kind=RunKind.POLICY, config=config,
                   dataset=make_dataset(project), policy=make_policy(project), eval_dataset=unmarked)
    assert info.value.field == "eval_dataset"
    assert info.value.message == ("1 of its prompts have no reference answer; held-out prompts are scored against "
                                  "their reference by the run's math_verify reward")
    assert not Run.objects.exists() and sent == []


def test_a_dataset_held_out_by_a_run_is_kept_until_the_run_is_deleted():
    project = make_project()
    held_out = make_dataset(project)
    run = launch(project, eval_dataset=held_out)
    with pytest.raises(DatasetInUse) as info:
        dataset_delete(dataset_id=held_out.id)
    assert "1 run used it (to train, evaluate or hold out): “held out”" in info.value.message
    assert held_out.prompts.count() == 4
    Run.objects.filter(pk=run.id).update(status=RunStatus.CANCELLED)
    from webapp.experiments.services import run_delete

    run_delete(run_id=run.id)
    dataset_delete(dataset_id=held_out.id)
    assert not held_out.prompts.exists()


def test_only_a_policy_run_holds_prompts_out_in_the_database_too():
    project = make_project()
    with pytest.raises(IntegrityError), transaction.atomic():
        make_run(project, kind=RunKind.EVALUATION, eval_dataset=make_dataset(project))


def test_the_new_run_page_launches_a_run_with_held_out_prompts(client):
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    policy, dataset, held_out = make_policy(project), make_dataset(project), make_dataset(project, name="held")
    page = client.get(reverse("experiments:new", args=[project.id])).content.decode()
    assert "Held-out evaluation" in page and 'name="eval_dataset"' in page and 'name="eval__every_steps"' in page
    evaluation_page = client.get(reverse("experiments:new_evaluation", args=[project.id])).content.decode()
    assert 'name="eval_dataset"' not in evaluation_page and 'name="eval__every_steps"' not in evaluation_page
    data = tiny_run_form_data(policy, dataset, name="with held out")
    refused = client.post(reverse("experiments:new", args=[project.id]), {**data, "eval_dataset": held_out.id})
    assert refused.status_code == 400 and "set how often to evaluate the held-out prompts" in refused.content.decode()
    response = client.post(reverse("experiments:new", args=[project.id]),
                           {**data, "eval_dataset": held_out.id, "eval__every_steps": 2})
    assert response.status_code == 302, response.content.decode()[:3000]
    run = Run.objects.get(name="with held out")
    assert run.eval_dataset == held_out and run.config["eval"]["every_steps"] == 2
    detail = client.get(reverse("experiments:detail", args=[project.id, run.id])).content.decode()
    assert "held out: held, every 2 steps" in detail


def test_the_api_takes_held_out_prompts_of_the_project_only():
    user = api_user()
    project = make_project(owner=user)
    api = token_client(user)
    body = {"name": "r", "kind": "policy", "dataset": make_dataset(project).id, "policy": make_policy(project).id,
            "config": held_out_config()}
    foreign = api.post(f"/api/v1/projects/{project.id}/runs/", {**body, "eval_dataset": make_dataset(make_project()).id},
                       format="json")
    assert foreign.status_code == 400 and "no dataset with id" in str(foreign.json())
    held_out = make_dataset(project)
    created = api.post(f"/api/v1/projects/{project.id}/runs/", {**body, "eval_dataset": held_out.id}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["eval_dataset"] == held_out.id
    assert api.get(f"/api/v1/runs/{created.json()['id']}/").json()["eval_dataset"] == held_out.id


@pytest.mark.parametrize("ordering", ["step", "-step"])
def test_paging_answers_by_step_returns_each_once(ordering):
    from webapp.experiments.models import HeldOutAnswer

    user = api_user()
    project = make_project(owner=user)
    held_out = make_dataset(project, name="held", n=25)
    run = make_run(project, status=RunStatus.SUCCEEDED, eval_dataset=held_out)
    HeldOutAnswer.objects.bulk_create([
        HeldOutAnswer(run=run, step=step, prompt=prompt, completion="x", correct=False, samples_correct=0,
                      samples=2, length=1)
        for step in (2, 4) for prompt in held_out.prompts.order_by("?")])  # ties at each step, any order
    api, seen = token_client(user), []
    url = f"/api/v1/runs/{run.id}/held-out/?ordering={ordering}&page_size=7"
    while url:
        body = api.get(url).json()
        seen += [(r["step"], r["index"]) for r in body["results"]]
        url = body["next"]
    assert len(seen) == len(set(seen)) == 50
