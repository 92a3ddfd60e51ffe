"""Evaluation runs: launched from their page or the API, executed on a worker (resumable), and
summed up beside the other evaluations on the same dataset."""

import json
import math

import pytest
from django.urls import reverse

from tests.factories import (
    PASSWORD, dead_process_name, make_dataset, make_policy, make_project, make_run, make_user, tiny_run_config,
)
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.evaluation import summarize
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import Run, RunKind, RunStatus, Trajectory
from webapp.experiments.selectors import metric_latest
from webapp.experiments.services import run_execute, run_launch
from workers.engine.evaluate import pass_at_k

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]  # no task reaches a broker


def eval_config(**sections):
    config = tiny_run_config(**sections)
    config["rollout"] = {**config["rollout"], "num_generations": 4, "prompts_per_step": 2, "temperature": 1.3}
    return config


def launch_evaluation(project, dataset=None, policy=None, **sections):
    return run_launch(project=project, user=None, name="eval", kind=RunKind.EVALUATION, config=eval_config(**sections),
                      dataset=dataset or make_dataset(project, n=5), policy=policy or make_policy(project))


# ---------------------------------------------------------------- the summary

def row(step, group, correct, reward=None, length=3, finish="stop"):
    return (step, group, reward if reward is not None else float(correct), {"exact_answer": float(correct)},
            length, finish)


def test_the_summary_counts_prompts_and_gives_unbiased_pass_at_k():
    # prompt A: 1 of 4 correct; prompt B: 3 of 4; prompt C: none
    rows = ([row(1, 0, c) for c in (1, 0, 0, 0)] + [row(1, 1, c, length=5, finish="length") for c in (1, 1, 1, 0)]
            + [row(2, 0, 0) for _ in range(4)])
    out = summarize(rows, accuracy_key="exact_answer", keys=["exact_answer", "length"])
    assert (out["eval/prompts"], out["eval/completions"]) == (3, 12)
    assert out["eval/accuracy"] == out["eval/pass@1"] == pytest.approx(4 / 12)
    for k in (1, 2, 4):
        assert out[f"eval/pass@{k}"] == pytest.approx((pass_at_k(4, 1, k) + pass_at_k(4, 3, k) + 0) / 3)
    assert out["eval/pass@4"] == pytest.approx(2 / 3)
    assert out["eval/rewards/exact_answer/mean"] == pytest.approx(4 / 12) and "eval/rewards/length/mean" not in out
    assert out["eval/mean_length"] == pytest.approx((8 * 3 + 4 * 5) / 12) and out["eval/clipped_ratio"] == pytest.approx(4 / 12)
    assert out["eval/reward_std"] == pytest.approx(math.sqrt(sum((x - 1 / 3) ** 2 for x in [1] * 4 + [0] * 8) / 11))


def test_pass_at_k_is_asked_at_powers_of_two_and_the_group_size_and_not_without_a_0_1_reward():
    rows = [row(1, 0, c) for c in (1, 0, 0, 0, 0, 1)]
    assert sorted(k for k in summarize(rows, accuracy_key="exact_answer", keys=[]) if "pass@" in k) == [
        "eval/pass@1", "eval/pass@2", "eval/pass@4", "eval/pass@6"]
    plain = summarize(rows, accuracy_key=None, keys=["exact_answer"])
    assert "eval/accuracy" not in plain and not any("pass@" in k for k in plain) and plain["eval/prompts"] == 1
    assert summarize([], accuracy_key=None, keys=[]) == {}


# ---------------------------------------------------------------- on a worker

def test_an_evaluation_samples_every_prompt_and_stores_its_summary():
    project = make_project()
    run = launch_evaluation(project)
    assert run.config["policy"]["source"] == "tiny"
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED, Run.objects.get(pk=run.id).error
    run.refresh_from_db()
    assert (run.total_steps, run.current_step, run.progress) == (3, 3, 1.0)  # 5 prompts, 2 a step
    assert Trajectory.objects.filter(run=run).count() == 5 * 4
    assert Trajectory.objects.filter(run=run, advantage__isnull=True).count() == 20
    assert set(Trajectory.objects.filter(run=run).values_list("prompt__index", flat=True)) == {0, 1, 2, 3, 4}
    summary = {k: v["value"] for k, v in metric_latest(run_ids=[run.id])[run.id].items() if k.startswith("eval/")}
    assert summary["eval/prompts"] == 5 and summary["eval/completions"] == 20
    assert {"eval/reward", "eval/accuracy", "eval/pass@1", "eval/pass@2", "eval/pass@4",
            "eval/rewards/exact_answer/mean", "eval/rewards/length/mean"} <= set(summary)
    assert not run.checkpoints.exists()


class WorkerDied(BaseException):
    """Escapes the task's error handling, as a killed process would."""


def run_until_the_worker_dies(monkeypatch, run, *, after_step: int) -> None:
    """Execute ``run`` until its worker dies once step ``after_step``'s metrics are stored."""
    from webapp.experiments import execution

    original = execution.PolicyRunRecorder.on_metrics

    def die(self, step, metrics):
        original(self, step, metrics)
        if step == after_step:
            raise WorkerDied
    monkeypatch.setattr(execution.PolicyRunRecorder, "on_metrics", die)
    with pytest.raises(WorkerDied):
        run_execute(run_id=run.id, worker="w")
    monkeypatch.setattr(execution.PolicyRunRecorder, "on_metrics", original)
    Run.objects.filter(pk=run.pk).update(executor=dead_process_name())  # its process is gone with it


def test_an_evaluation_resumed_after_its_worker_died_repeats_an_uninterrupted_one(monkeypatch):

    project = make_project()
    dataset, policy = make_dataset(project, n=5), make_policy(project)
    straight = launch_evaluation(project, dataset, policy)
    assert run_execute(run_id=straight.id, worker="w") == RunStatus.SUCCEEDED
    interrupted = launch_evaluation(project, dataset, policy)
    run_until_the_worker_dies(monkeypatch, interrupted, after_step=2)
    interrupted.refresh_from_db()
    assert (interrupted.status, interrupted.current_step) == (RunStatus.RUNNING, 2)
    assert run_execute(run_id=interrupted.id, worker="w") == RunStatus.SUCCEEDED  # the same node, restarted
    interrupted.refresh_from_db()
    assert interrupted.attempts == 2

    def texts(run):
        return list(Trajectory.objects.filter(run=run).order_by("step", "group_index", "sample_index")
                    .values_list("step", "completion", "reward"))
    assert texts(interrupted) == texts(straight)
    summaries = [{k: v["value"] for k, v in metric_latest(run_ids=[r.id])[r.id].items() if k.startswith("eval/")}
                 for r in (straight, interrupted)]
    assert summaries[0] == summaries[1]


@pytest.mark.parametrize("kind", [RunKind.EVALUATION, RunKind.POLICY])
def test_a_dataset_the_worker_would_refuse_is_refused_at_launch_on_the_field(kind):
    from webapp.datasets.services import dataset_create
    from webapp.experiments.errors import RunError

    project = make_project()
    policy = make_policy(project)
    no_references = make_dataset(project)
    no_references.prompts.update(reference="")
    empty = dataset_create(project=project, name="empty", rows=[])
    for dataset, words, config in ((no_references, "4 of its prompts have no reference answer", eval_config()),
                                   (no_references, "4 of its prompts have no reference answer", {}),  # default reward
                                   (empty, "the dataset has no prompts", eval_config())):
        with pytest.raises(RunError) as info:
            run_launch(project=project, user=None, name="x", kind=kind, config=config, dataset=dataset, policy=policy)
        assert info.value.field == "dataset" and words in info.value.message
    assert not Run.objects.exists()
    config = eval_config(rewards=[{"name": "length", "max_tokens": 3}])  # no reference needed
    assert run_launch(project=project, user=None, name="x", kind=kind, config=config, dataset=no_references,
                      policy=policy).pk


@pytest.mark.parametrize("kind", [RunKind.EVALUATION, RunKind.POLICY])
def test_a_math_verify_reward_needs_every_reference_as_exact_answer_does(kind):
    from webapp.experiments.errors import RunError

    project = make_project()
    no_references = make_dataset(project)
    no_references.prompts.filter(index__gte=2).update(reference="")
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=None, name="x", kind=kind, dataset=no_references, policy=make_policy(project),
                   config=eval_config(rewards=[{"name": "length", "max_tokens": 3}, {"name": "math_verify"}]))
    assert info.value.field == "dataset"
    assert "2 of its prompts have no reference answer, which the math_verify reward needs" in info.value.message
    assert not Run.objects.exists()


def test_an_evaluation_scores_with_a_reward_model_of_the_project_named_by_id(tmp_path):
    from webapp.rewards.models import RewardModel

    project = make_project()
    folder = tmp_path / "rm"
    folder.mkdir()
    trainer = make_run(project, kind=RunKind.REWARD_MODEL, status=RunStatus.SUCCEEDED)
    rm = RewardModel.objects.create(project=project, name="rm", backbone="tiny", training_run=trainer, path=str(folder))
    run = launch_evaluation(project, rewards=[{"name": "exact_answer"},
                                              {"name": "reward_model", "reward_model": rm.id, "weight": 0.5}])
    assert run.config["rewards"][1]["path"] == str(folder)


def test_a_resumed_evaluation_starts_after_the_last_step_it_recorded(monkeypatch):
    import workers.engine

    starts = []
    original_evaluate = workers.engine.evaluate_policy

    def spy(*args, start_step=0, **kwargs):
        starts.append(start_step)
        return original_evaluate(*args, start_step=start_step, **kwargs)
    monkeypatch.setattr(workers.engine, "evaluate_policy", spy)
    project = make_project()
    run = launch_evaluation(project)
    run_until_the_worker_dies(monkeypatch, run, after_step=1)
    first_ids = set(Trajectory.objects.filter(run=run).values_list("pk", flat=True))
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED
    assert starts == [0, 1]
    assert set(Trajectory.objects.filter(run=run, step=1).values_list("pk", flat=True)) == first_ids
    order = list(Trajectory.objects.filter(run=run, sample_index=0).order_by("step", "group_index")
                 .values_list("prompt__index", flat=True))
    assert order == [0, 1, 2, 3, 4]  # the dataset in order, two prompts a step


def test_a_cancelled_evaluation_keeps_its_completions_and_gets_no_summary(monkeypatch):
    from webapp.experiments import execution

    project = make_project()
    run = launch_evaluation(project)
    asked = []

    def stop_before_step_2(self):
        asked.append(1)
        return len(asked) >= 2
    monkeypatch.setattr(execution.PolicyRunRecorder, "should_stop", stop_before_step_2)
    assert run_execute(run_id=run.id, worker="w") == RunStatus.CANCELLED
    assert Trajectory.objects.filter(run=run).count() == 2 * 4
    assert not any(k.startswith("eval/") for k in metric_latest(run_ids=[run.id]).get(run.id, {}))


# ---------------------------------------------------------------- pages and API

@pytest.fixture
def researcher(client):
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    return project


def test_the_new_evaluation_page_launches_an_evaluation_run(client, researcher, sent,
                                                             django_capture_on_commit_callbacks):
    from tests.factories import tiny_run_form_data

    policy, dataset = make_policy(researcher, name="base"), make_dataset(researcher)
    url = reverse("experiments:new_evaluation", args=[researcher.id])
    body = client.get(f"{url}?policy={policy.id}").content.decode()
    assert "New evaluation" in body and "Evaluate</button>" in body and "Learning rate" not in body
    data = {k: v for k, v in tiny_run_form_data(policy, dataset, name="base on arithmetic").items()
            if not k.startswith(("algorithm__", "optim__", "train__checkpoint", "train__total", "train__log"))}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    run = Run.objects.get(name="base on arithmetic")
    assert run.kind == RunKind.EVALUATION and sent == [("workers.tasks.run_evaluation", [run.id])]
    assert reverse("experiments:new_evaluation", args=[researcher.id]) in client.get(
        reverse("experiments:list", args=[researcher.id])).content.decode()


def test_the_run_page_compares_the_finished_evaluations_on_its_dataset(client, researcher):
    from webapp.experiments.run_config import validate_config

    dataset, other = make_dataset(researcher), make_dataset(researcher)
    config = validate_config(RunKind.EVALUATION, eval_config())

    def evaluation(name, status=RunStatus.SUCCEEDED, project=researcher, on=dataset, policy_name=None):
        return make_run(project, kind=RunKind.EVALUATION, status=status, dataset=on, config=config,
                        policy=make_policy(project, name=policy_name), name=name)
    base = evaluation("base", policy_name="<b>base</b>")
    tuned = evaluation("<i>tuned</i>", policy_name="tuned")
    elsewhere = evaluation("elsewhere", on=other)
    running = evaluation("still running", status=RunStatus.RUNNING)
    foreign = evaluation("foreign", project=make_project())  # another project's run on this dataset's id
    newer = [evaluation(f"newer {i}") for i in range(3)]
    for run, accuracy in ((base, 0.25), (tuned, 0.5), (elsewhere, 0.9), (running, 0.1), (foreign, 0.1), *[(n, 0.3) for n in newer]):
        metric_points_upsert(run_id=run.id, points=[("eval/accuracy", 3, accuracy), ("eval/pass@4", 3, accuracy + 0.2),
                                                    ("eval/reward", 3, accuracy), ("reward", 3, 7.0),
                                                    ("eval/prompts", 3, 8.0)])
    body = client.get(reverse("experiments:detail", args=[researcher.id, tuned.id])).content.decode()
    results = body[body.index('class="evaluation-results"'):body.index("</table>", body.index('class="evaluation-results"'))]
    assert '<th class="mono">reward</th><th class="mono">accuracy</th><th class="mono">pass@4</th>' in results
    assert "<td>8</td>" in results and "8.000" not in results  # a count shows as one
    assert "&lt;b&gt;base&lt;/b&gt;" in results and "<b>base</b>" not in results
    assert "<strong>&lt;i&gt;tuned&lt;/i&gt;</strong>" in results and "<i>tuned</i>" not in results
    assert "0.500" in results and "0.250" in results and "0.700" in results
    assert "G=4 · T=1.3 · ≤4 tokens · accuracy: exact_answer" in results
    for absent in ("elsewhere", "still running", "foreign", "7.000"):
        assert absent not in results
    assert client.get(reverse("experiments:detail", args=[researcher.id, base.id])).status_code == 200

    from webapp.experiments.selectors import evaluation_results

    shown = evaluation_results(project=researcher, dataset_id=dataset.id, include=base.id, limit=2)
    assert [r["run"].name for r in shown] == ["newer 2", "newer 1", "base"]  # the oldest, asked for, comes too


def test_the_results_table_shows_every_figure_of_a_column_with_the_same_decimals(client, researcher):
    from webapp.experiments.run_config import validate_config

    dataset = make_dataset(researcher)
    config = validate_config(RunKind.EVALUATION, eval_config())
    runs = [make_run(researcher, kind=RunKind.EVALUATION, status=RunStatus.SUCCEEDED, dataset=dataset, config=config,
                     policy=make_policy(researcher), name=f"eval {i}") for i in range(3)]
    for run, accuracy in zip(runs, (0.0, 0.1, 1.0)):  # whole numbers too: 0 and 1
        metric_points_upsert(run_id=run.id, points=[("eval/accuracy", 3, accuracy), ("eval/prompts", 3, 8.0)])
    body = client.get(reverse("experiments:detail", args=[researcher.id, runs[0].id])).content.decode()
    rows = {run.name: body[body.index(f">{run.name}<"):].split("</tr>")[0] for run in runs}
    assert "<td>0.000</td><td>8</td>" in rows["eval 0"]  # not "0" beside "0.100"
    assert "<td>0.100</td><td>8</td>" in rows["eval 1"]
    assert "<td>1.000</td><td>8</td>" in rows["eval 2"]  # a count keeps no decimals


def test_the_api_launches_an_evaluation_and_refuses_one_without_a_policy(sent, django_capture_on_commit_callbacks):
    user = api_user()
    project = make_project(owner=user)
    api = token_client(user)
    body = {"name": "e", "kind": "evaluation", "dataset": make_dataset(project).id, "config": eval_config()}
    refused = api.post(f"/api/v1/projects/{project.id}/runs/", body, format="json")
    assert refused.status_code == 400 and "choose the policy to evaluate" in json.dumps(refused.json())
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(f"/api/v1/projects/{project.id}/runs/", {**body, "policy": make_policy(project).id},
                           format="json")
    assert created.status_code == 201, created.json()
    assert sent == [("workers.tasks.run_evaluation", [created.json()["id"]])]


# ---------------------------------------------------------------- greedy decoding

GREEDY = {"greedy": True, "num_generations": 1}


def test_a_greedy_evaluation_answers_each_prompt_once_and_sums_up_pass_at_1():
    project = make_project()
    config = tiny_run_config()
    config["rollout"] = {**config["rollout"], **GREEDY, "prompts_per_step": 2}
    run = run_launch(project=project, user=None, name="greedy", kind=RunKind.EVALUATION, config=config,
                     dataset=make_dataset(project, n=5), policy=make_policy(project))
    assert run.config["rollout"]["greedy"] is True
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED, Run.objects.get(pk=run.id).error
    assert list(Trajectory.objects.filter(run=run).values_list("sample_index", flat=True)) == [0] * 5
    summary = {k: v["value"] for k, v in metric_latest(run_ids=[run.id])[run.id].items() if k.startswith("eval/")}
    assert summary["eval/prompts"] == summary["eval/completions"] == 5
    assert [k for k in summary if "pass@" in k] == ["eval/pass@1"] and summary["eval/pass@1"] == summary["eval/accuracy"]


def test_a_greedy_evaluation_that_names_no_group_size_takes_one_completion_per_prompt(sent):
    from webapp.experiments.errors import RunError

    project = make_project()
    config = tiny_run_config()
    rollout = {k: v for k, v in config["rollout"].items() if k != "num_generations"}
    run = run_launch(project=project, user=None, name="greedy", kind=RunKind.EVALUATION,
                     config={**config, "rollout": {**rollout, "greedy": True}},
                     dataset=make_dataset(project), policy=make_policy(project))
    assert run.config["rollout"]["num_generations"] == 1
    with pytest.raises(RunError) as info:  # a size it names is its own: greedy with 4 is refused
        run_launch(project=project, user=None, name="greedy 4", kind=RunKind.EVALUATION,
                   config={**config, "rollout": {**rollout, "greedy": True, "num_generations": 4}},
                   dataset=make_dataset(project), policy=make_policy(project))
    assert info.value.field == "config.rollout.num_generations"
    assert Run.objects.filter(project=project).count() == 1


@pytest.mark.parametrize("rollout", [GREEDY, {"greedy": True}])  # with G = 1 or not: the reason is greedy
def test_a_policy_run_cannot_decode_greedily_and_nothing_is_created(sent, rollout):
    from webapp.experiments.errors import RunError

    project = make_project()
    config = tiny_run_config()
    config["rollout"] = {**config["rollout"], **rollout}
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=None, name="greedy", kind=RunKind.POLICY, config=config,
                   dataset=make_dataset(project), policy=make_policy(project))
    assert info.value.field == "config.rollout.greedy" and "evaluation runs" in str(info.value)
    assert not Run.objects.exists() and sent == []


def test_the_new_run_form_says_greedy_is_for_evaluations(client, researcher):
    from tests.factories import tiny_run_form_data

    data = tiny_run_form_data(make_policy(researcher), make_dataset(researcher), name="greedy policy")
    overrides = {**json.loads(data["overrides"]), "rollout": {"greedy": True}}
    response = client.post(reverse("experiments:new", args=[researcher.id]), {**data, "overrides": json.dumps(overrides)})
    body = response.content.decode()
    assert response.status_code == 400 and "greedy decoding is for evaluation runs" in body
    assert "must be 1 with greedy" not in body and not Run.objects.filter(name="greedy policy").exists()


def test_the_evaluation_form_decodes_greedily_with_one_completion_per_prompt(client, researcher, sent):
    from tests.factories import tiny_run_form_data

    policy, dataset = make_policy(researcher), make_dataset(researcher)
    url = reverse("experiments:new_evaluation", args=[researcher.id])
    assert 'name="rollout__greedy"' in client.get(url).content.decode()
    assert 'name="rollout__greedy"' not in client.get(reverse("experiments:new", args=[researcher.id])).content.decode()
    data = {k: v for k, v in tiny_run_form_data(policy, dataset, name="greedy").items()
            if not k.startswith(("algorithm__", "optim__", "train__checkpoint", "train__total", "train__log"))}
    assert data["rollout__num_generations"] > 1
    response = client.post(url, {**data, "rollout__greedy": "on"})
    assert response.status_code == 302, response.content.decode()[:3000]
    rollout = Run.objects.get(name="greedy").config["rollout"]
    assert (rollout["greedy"], rollout["num_generations"]) == (True, 1)
    blank = client.post(url, {**data, "name": "greedy, G blank", "rollout__greedy": "on", "rollout__num_generations": ""})
    assert blank.status_code == 302 and Run.objects.get(name="greedy, G blank").config["rollout"]["num_generations"] == 1
    sampled = client.post(url, {**data, "name": "sampled, G blank", "rollout__num_generations": ""})
    assert sampled.status_code == 400
    assert sampled.context["form"].errors["rollout__num_generations"] == ["Required when sampling (at least 2), or tick Greedy."]
    # G set in the JSON is the user's own: refused on the G field, with the reason.
    overrides = json.loads(data["overrides"])
    overrides["rollout"] = {"num_generations": 3}
    refused = client.post(url, {**data, "name": "greedy 3", "rollout__greedy": "on", "overrides": json.dumps(overrides)})
    assert refused.status_code == 400 and "must be 1 with greedy decoding" in refused.content.decode()
    assert not Run.objects.filter(name="greedy 3").exists()


def test_the_results_table_says_how_each_evaluation_sampled_and_which_are_not_comparable(client, researcher):
    from webapp.experiments.run_config import validate_config

    dataset = make_dataset(researcher)

    def config(rewards=None, **rollout):
        base = eval_config()
        return validate_config(RunKind.EVALUATION, {**base, "rollout": {**base["rollout"], **rollout},
                                                    "rewards": rewards or base["rewards"]})
    configs = {
        "greedy": config(**GREEDY),
        "greedy too": config(**GREEDY, temperature=0.5, top_p=0.5),  # unused when greedy: alike
        "other seed": {**config(**GREEDY), "train": {**config()["train"], "seed": 7}},  # alike
        "sampled": config(top_p=0.9),
        "reweighted": config(rewards=[{"name": "exact_answer", "weight": 2.0}], **GREEDY),
    }
    stored_before_greedy = config(**GREEDY)
    stored_before_greedy["rollout"] = {k: v for k, v in config()["rollout"].items() if k != "greedy"}
    configs["older sampled"] = stored_before_greedy  # no greedy key: sampled, like "sampled" but for top-p
    runs = {n: make_run(researcher, kind=RunKind.EVALUATION, status=RunStatus.SUCCEEDED, dataset=dataset, config=c,
                        policy=make_policy(researcher), name=n) for n, c in configs.items()}
    for run in runs.values():
        metric_points_upsert(run_id=run.id, points=[("eval/accuracy", 3, 0.5)])
    body = client.get(reverse("experiments:detail", args=[researcher.id, runs["greedy"].id])).content.decode()
    rows = {name: body[body.index(f">{name}<"):].split("</tr>")[0] for name in configs}
    assert '<td class="sampling">greedy · ≤4 tokens' in rows["greedy"]
    assert '<td class="sampling">G=4 · T=1.3 · top-p 0.9 · ≤4 tokens' in rows["sampled"]
    assert [n for n, row in rows.items() if "not comparable" in row] == ["sampled", "reweighted", "older sampled"]
    from webapp.experiments.selectors import evaluation_results

    assert all(r["alike"] for r in evaluation_results(project=researcher, dataset_id=dataset.id))  # nothing to compare with
    queued = run_launch(project=researcher, user=None, name="queued", kind=RunKind.EVALUATION, config=configs["sampled"],
                        dataset=dataset, policy=make_policy(researcher))  # not finished: its config still counts
    alike = {r["run"].name for r in evaluation_results(project=researcher, dataset_id=dataset.id, include=queued.id)
             if r["alike"]}
    assert alike == {"sampled"}
    older = run_launch(project=researcher, user=None, name="new sampled", kind=RunKind.EVALUATION,
                       config={**configs["older sampled"], "rollout": {**configs["older sampled"]["rollout"], "greedy": False}},
                       dataset=dataset, policy=make_policy(researcher))
    alike = {r["run"].name for r in evaluation_results(project=researcher, dataset_id=dataset.id, include=older.id)
             if r["alike"]}
    assert alike == {"older sampled"}  # a config stored before the greedy setting compares as sampled
