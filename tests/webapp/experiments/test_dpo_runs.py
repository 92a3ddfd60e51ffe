"""DPO runs end to end: launched from the New DPO run page and the API, executed by the worker's
service, charted, resumed after a release, and registering the trained policy."""

import json

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_dataset, make_policy, make_project, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments import execution
from webapp.experiments.execution import runs_release
from webapp.experiments.forms import DPO_KNOBS, form_name
from webapp.experiments.models import (
    Checkpoint,
    MetricPoint,
    PolicyModel,
    Run,
    RunKind,
    RunStatus,
)
from webapp.experiments.policies import policy_create
from webapp.experiments.selectors import checkpoints_to_start_from
from webapp.experiments.services import run_execute, run_launch
from webapp.rewards.errors import RewardModelError
from webapp.rewards.services import pair_set_delete, pair_set_import
from workers.engine.checkpoint import latest_checkpoint

pytestmark = pytest.mark.django_db

TINY = {"source": "tiny", "tiny": {"alphabet": "abxy", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                   "intermediate_size": 64, "seed": 0}}


def pairs_jsonl():
    """A toy preference: answers of a's over answers of b's, 8 pairs."""
    prompts = ["x", "y", "xy", "yx", "xx", "yy", "xxy", "yyx"]
    return "\n".join(json.dumps({"prompt": p, "chosen": "a" * (i % 3 + 1), "rejected": "b" * (i % 3 + 1)})
                     for i, p in enumerate(prompts))


def dpo_config(pair_set, **dpo):
    return {"policy": TINY, "optim": {"lr": 1e-2},
            "dpo": {"beta": 0.1, "batch_size": 4, "epochs": 4, "device": "cpu", "checkpoint_every": 3, **dpo},
            "data": {"source": "pairs", "pair_set": pair_set.id}}


@pytest.fixture
def project():
    user = make_user()
    project = make_project(owner=user)
    project.user = user
    return project


@pytest.fixture
def pair_set(project):
    return pair_set_import(project=project, name="toy", content=pairs_jsonl())


def launch(project, pair_set, **dpo) -> Run:
    return run_launch(project=project, user=project.user, name="dpo-1", kind=RunKind.DPO,
                      config=dpo_config(pair_set, **dpo), policy=make_policy(project))


def form_data(policy, pair_set, **changes):
    from workers.engine.dpo_config import DPOTrainConfig

    defaults = DPOTrainConfig().to_dict()
    data = {"name": "dpo page run", "policy": policy.id, "pair_set": pair_set.id,
            "overrides": json.dumps({"policy": {"tiny": TINY["tiny"]}, "dpo": {"device": "cpu"}})}
    for path, _ in DPO_KNOBS:
        section, key = path.split(".")
        data[form_name(path)] = defaults[section][key]
    data.update(changes)
    return data


def test_the_new_dpo_page_launches_a_run_on_a_pair_set_and_queues_it_for_the_gpu_worker(
        client, project, pair_set, sent, django_capture_on_commit_callbacks):
    client.login(username=project.user.username, password=PASSWORD)
    policy = make_policy(project)
    page = client.get(reverse("experiments:new_dpo", args=[project.id]))
    assert page.status_code == 200
    assert "toy (8 pairs)" in page.content.decode() and "how far the policy may move" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("experiments:new_dpo", args=[project.id]),
                               form_data(policy, pair_set, dpo__beta=0.25, dpo__loss_type="ipo"))
    assert response.status_code == 302, response.context["form"].errors
    run = Run.objects.get(project=project)
    assert run.kind == RunKind.DPO and run.policy == policy
    assert run.config["data"] == {"source": "pairs", "pair_set": pair_set.id}
    assert run.config["dpo"]["beta"] == 0.25 and run.config["dpo"]["loss_type"] == "ipo"
    assert run.config["policy"]["source"] == "tiny" and run.config["policy"]["tiny"]["alphabet"] == "abxy"
    assert sent == [("workers.tasks.train_dpo", [run.id])]
    from django.conf import settings

    assert settings.CELERY_TASK_ROUTES["workers.tasks.train_dpo"] == {"queue": "gpu"}
    assert "New DPO run" in client.get(reverse("experiments:new", args=[project.id])).content.decode()


def test_the_page_refuses_a_bad_setting_on_its_field_and_launches_nothing(client, project, pair_set, sent):
    client.login(username=project.user.username, password=PASSWORD)
    data = form_data(make_policy(project), pair_set, dpo__loss_type="ipo", dpo__label_smoothing=0.1)
    response = client.post(reverse("experiments:new_dpo", args=[project.id]), data)
    assert response.status_code == 400
    assert "'sigmoid' loss only" in response.context["form"].errors["dpo__label_smoothing"][0]
    assert not Run.objects.exists() and sent == []


def test_the_page_offers_only_this_projects_policies_and_pair_sets(client, project, pair_set, sent):
    other = make_project(owner=make_user())
    other_pairs = pair_set_import(project=other, name="theirs", content=pairs_jsonl())
    client.login(username=project.user.username, password=PASSWORD)
    page = client.get(reverse("experiments:new_dpo", args=[project.id])).content.decode()
    assert "theirs" not in page
    response = client.post(reverse("experiments:new_dpo", args=[project.id]),
                           form_data(make_policy(other), other_pairs))
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"policy", "pair_set"}
    assert not Run.objects.exists()
    assert client.get(reverse("experiments:new_dpo", args=[other.id])).status_code == 404


def test_a_dpo_run_learns_the_preference_and_registers_the_trained_policy(client, project, pair_set, sent):
    run = launch(project, pair_set)
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert (run.status, run.total_steps, run.current_step, run.progress) == (RunStatus.SUCCEEDED, 8, 8, 1.0)
    metrics = {(p.key, p.step): p.value for p in MetricPoint.objects.filter(run=run)}
    assert metrics[("rewards/accuracies", 1)] == 0.0 and metrics[("rewards/accuracies", 8)] == 1.0
    assert metrics[("rewards/margins", 8)] > metrics[("rewards/margins", 1)] == 0.0
    assert {"loss", "logps/chosen", "logps/rejected", "rewards/chosen", "rewards/rejected", "grad_norm",
            "learning_rate"} <= {key for key, _ in metrics}
    assert metrics[("data/pairs", 1)] == 8 and metrics[("data/skipped_ties", 1)] == 0
    assert list(Checkpoint.objects.filter(run=run).values_list("step", flat=True)) == [6, 8]

    trained = PolicyModel.objects.get(checkpoint__run=run)
    assert (trained.name, trained.source, trained.checkpoint.step) == ("dpo-1", "checkpoint", 8)
    assert trained.engine_spec() == {"source": "path", "path": str(run.checkpoint_dir / "checkpoints" / "step-8")}
    assert run_execute(run_id=run.id, worker="w2@host") == "skipped"
    assert PolicyModel.objects.filter(checkpoint__run=run).count() == 1
    # Its other checkpoint can be registered by hand, as a policy run's can.
    step_6 = Checkpoint.objects.get(run=run, step=6)
    assert step_6 in checkpoints_to_start_from(project=project)
    by_hand = policy_create(project=project, user=project.user, name="dpo step 6", source="checkpoint",
                            checkpoint_id=step_6.id)
    assert by_hand.engine_spec()["path"].endswith("step-6")

    client.login(username=project.user.username, password=PASSWORD)
    page = client.get(reverse("experiments:detail", args=[project.id, run.id])).content.decode()
    assert "DPO from preference pairs" in page and "Trained policy" in page and "dpo-1" in page
    assert "Browse trajectories" not in page
    charts = client.get(reverse("experiments:chart_data", args=[project.id, run.id])).json()
    assert "rewards/accuracies" in json.dumps(charts)

    # The trained policy trains further like any other: a second DPO run starts from its folder.
    again = run_launch(project=project, user=project.user, name="dpo-2", kind=RunKind.DPO,
                       config=dpo_config(pair_set, epochs=1), policy=trained)
    assert again.config["policy"]["source"] == "path"
    assert run_execute(run_id=again.id, worker="w1@host") == RunStatus.SUCCEEDED
    first = MetricPoint.objects.get(run=again, key="rewards/accuracies", step=1)
    assert first.value == 0.0  # its reference is the trained policy itself
    assert PolicyModel.objects.get(checkpoint__run=again).name == "dpo-2"


def test_a_dpo_run_on_pairs_with_margins_trains_as_on_the_same_pairs_without(project, pair_set, sent):
    """DPO has no margin (as TRL's DPOTrainer): a set imported with TRL's margin column trains the
    same policy, step by step, as the set without it."""
    with_margins = pair_set_import(project=project, name="toy with margins", content="\n".join(
        json.dumps({**json.loads(line), "margin": i + 0.5}) for i, line in enumerate(pairs_jsonl().splitlines())))
    losses = []
    for name, pairs in (("plain", pair_set), ("margins", with_margins)):
        run = run_launch(project=project, user=project.user, name=name, kind=RunKind.DPO,
                         config=dpo_config(pairs, epochs=1), policy=make_policy(project))
        assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.SUCCEEDED
        losses.append(list(MetricPoint.objects.filter(run=run, key="loss").order_by("step")
                           .values_list("step", "value")))
    assert len(losses[0]) == 2 and losses[1] == losses[0]


def test_a_policy_name_already_taken_gets_the_run_id(project, pair_set, sent):
    PolicyModel.objects.create(project=project, name="DPO-1", source=PolicyModel.Source.TINY)
    run = launch(project, pair_set, epochs=1)
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.SUCCEEDED
    assert PolicyModel.objects.get(checkpoint__run=run).name == f"dpo-1 (run {run.id})"


@pytest.mark.django_db(transaction=True)
def test_a_released_dpo_run_resumes_from_its_checkpoint(project, pair_set, sent, monkeypatch):
    run = launch(project, pair_set, checkpoint_every=100)
    original = execution.RunRecorder.on_metrics

    def on_metrics(self, step, metrics):
        original(self, step, metrics)
        if step == 3:
            runs_release(worker="w1@host", process="w1@host:1")

    monkeypatch.setattr(execution.RunRecorder, "on_metrics", on_metrics)
    assert run_execute(run_id=run.id, worker="w1@host") == "released"
    run.refresh_from_db()
    assert (run.status, run.current_step) == (RunStatus.QUEUED, 3)
    assert latest_checkpoint(run.checkpoint_dir)[0] == 3
    assert not PolicyModel.objects.filter(checkpoint__run=run).exists()

    monkeypatch.setattr(execution.RunRecorder, "on_metrics", original)
    assert run_execute(run_id=run.id, worker="w2@host") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert (run.attempts, run.lost_attempts) == (2, 0)
    steps = sorted(MetricPoint.objects.filter(run=run, key="loss").values_list("step", flat=True))
    assert steps == list(range(1, 9))
    assert MetricPoint.objects.get(run=run, key="rewards/accuracies", step=8).value == 1.0
    assert PolicyModel.objects.get(checkpoint__run=run).checkpoint.step == 8


def test_a_pair_set_a_queued_dpo_run_trains_on_cannot_be_deleted(project, pair_set, sent):
    launch(project, pair_set)
    with pytest.raises(RewardModelError, match="dpo-1"):
        pair_set_delete(pair_set_id=pair_set.id)


# --- the API -------------------------------------------------------------------------------

@pytest.fixture
def api_project():
    owner = api_user()
    project = make_project(owner=owner)
    project.api = token_client(owner)
    return project


def post_run(project, body):
    return project.api.post(f"/api/v1/projects/{project.id}/runs/", data=json.dumps(body),
                            content_type="application/json")


def test_the_api_launches_a_dpo_run(api_project, sent, django_capture_on_commit_callbacks):
    pair_set = pair_set_import(project=api_project, name="toy", content=pairs_jsonl())
    with django_capture_on_commit_callbacks(execute=True):
        response = post_run(api_project, {"name": "dpo", "kind": "dpo", "policy": make_policy(api_project).id,
                                          "config": dpo_config(pair_set)})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["kind"] == "dpo" and body["config"]["dpo"]["beta"] == 0.1
    assert body["config"]["optim"]["lr"] == 0.01 and body["config"]["dpo"]["loss_type"] == "sigmoid"
    assert sent == [("workers.tasks.train_dpo", [body["id"]])]


@pytest.mark.parametrize(("change", "field"), [
    (lambda body, other: body["config"]["dpo"].update(beta=-1), "config.dpo.beta"),
    (lambda body, other: body["config"]["dpo"].update(epochs=10**12), "config.dpo.epochs"),
    (lambda body, other: body["config"].update(dpo_typo={}), "config.dpo_typo"),
    (lambda body, other: body["config"].pop("data"), "config.data"),
    (lambda body, other: body["config"].update(data={"source": "labels"}), "config.data"),
    (lambda body, other: body["config"].update(data={"source": "pairs", "pair_set": other["pairs"]}), "config.data"),
    (lambda body, other: body.pop("policy"), "policy"),
    (lambda body, other: body.update(policy=other["policy"]), "policy"),
    (lambda body, other: body.update(dataset=other["dataset"]), "dataset"),
])
def test_a_bad_dpo_launch_answers_400_naming_the_field_and_stores_nothing(api_project, sent, change, field):
    pair_set = pair_set_import(project=api_project, name="toy", content=pairs_jsonl())
    other_project = make_project(owner=make_user())
    other = {"pairs": pair_set_import(project=other_project, name="theirs", content=pairs_jsonl()).id,
             "policy": make_policy(other_project).id}
    other["dataset"] = make_dataset(api_project).id if field == "dataset" else None
    body = {"name": "dpo", "kind": "dpo", "policy": make_policy(api_project).id, "config": dpo_config(pair_set)}
    change(body, other)
    response = post_run(api_project, body)
    assert response.status_code == 400, response.json()
    assert list(response.json()["error"]["fields"]) == [field]
    assert not Run.objects.exists() and sent == []


def test_another_projects_dpo_run_answers_404(api_project, pair_set, project, sent):
    run = launch(project, pair_set)
    assert api_project.api.get(f"/api/v1/runs/{run.id}/").status_code == 404
    assert api_project.api.post(f"/api/v1/runs/{run.id}/cancel/").status_code == 404
