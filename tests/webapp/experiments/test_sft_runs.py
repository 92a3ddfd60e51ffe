"""SFT runs end to end: launched from the New SFT run page and the API on labels, a pair set or a
prompt dataset with references, executed by the worker's service, charted, resumed after a
release, and registering the trained policy."""

import json
import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD, make_policy, make_project, make_task, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.datasets.errors import DatasetInUse
from webapp.datasets.parsing import PromptRow
from webapp.datasets.services import dataset_create, dataset_delete
from webapp.experiments import execution
from webapp.experiments.errors import RunError
from webapp.experiments.execution import runs_release
from webapp.experiments.forms import SFT_KNOBS, form_name
from webapp.experiments.models import (
    Checkpoint,
    MetricPoint,
    PolicyModel,
    Run,
    RunKind,
    RunStatus,
)
from webapp.experiments.selectors import checkpoints_to_start_from
from webapp.experiments.services import run_execute, run_launch
from webapp.feedback.models import PreferenceLabel
from webapp.feedback.services import label_submit
from webapp.projects.models import Membership, Role
from webapp.rewards.errors import RewardModelError
from webapp.rewards.selectors import sft_examples
from webapp.rewards.services import pair_set_delete, pair_set_import
from workers.engine.checkpoint import latest_checkpoint
from workers.engine.sft import SFTExample

pytestmark = pytest.mark.django_db

TINY = {"source": "tiny", "tiny": {"alphabet": "abxy", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                   "intermediate_size": 64, "seed": 0}}
PROMPTS = ["x", "y", "xy", "yx", "xx", "yy", "xxy", "yyx"]
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}]


def sft_config(data: dict, **sft) -> dict:
    return {"policy": TINY, "optim": {"lr": 1e-2},
            "sft": {"batch_size": 4, "epochs": 4, "device": "cpu", "checkpoint_every": 3, **sft}, "data": data}


def toy_dataset(project, name="toy answers", missing: int = 0):
    """Prompts whose reference is as many a's as the prompt is long; the first ``missing`` have none."""
    rows = [PromptRow(text=p, reference="" if i < missing else "a" * len(p)) for i, p in enumerate(PROMPTS)]
    return dataset_create(project=project, name=name, rows=rows)


def pairs_jsonl():
    return "\n".join(json.dumps({"prompt": p, "chosen": "a" * len(p), "rejected": "b" * len(p)}) for p in PROMPTS)


@pytest.fixture
def project():
    user = make_user()
    project = make_project(owner=user)
    project.user = user
    return project


@pytest.fixture
def dataset(project):
    return toy_dataset(project)


def launch(project, data: dict, name="sft-1", **sft) -> Run:
    return run_launch(project=project, user=project.user, name=name, kind=RunKind.SFT,
                      config=sft_config(data, **sft), policy=make_policy(project))


def label(task, user, ranking, both_bad=False):
    return label_submit(task=task, annotator=user, ranking=ranking, both_bad=both_bad, submission_key=uuid.uuid4().hex)


def annotator(project):
    user = make_user()
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    return user


# --- the page ------------------------------------------------------------------------------

def form_data(policy, data: str, **changes):
    from workers.engine.sft_config import SFTTrainConfig

    defaults = SFTTrainConfig().to_dict()
    body = {"name": "sft page run", "policy": policy.id, "data": data,
            "overrides": json.dumps({"policy": {"tiny": TINY["tiny"]}, "sft": {"device": "cpu"}})}
    for path, _ in SFT_KNOBS:
        section, key = path.split(".")
        body[form_name(path)] = defaults[section][key]
    body.update(changes)
    return body


def test_the_new_sft_page_launches_a_run_on_a_dataset_and_queues_it_for_the_gpu_worker(
        client, project, dataset, sent, django_capture_on_commit_callbacks):
    client.login(username=project.user.username, password=PASSWORD)
    policy = make_policy(project)
    assert "New SFT run" in client.get(reverse("experiments:list", args=[project.id])).content.decode()
    page = client.get(reverse("experiments:new_sft", args=[project.id]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "References: toy answers" in html and "Passes over the examples." in html
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("experiments:new_sft", args=[project.id]),
                               form_data(policy, f"dataset:{dataset.id}", sft__epochs=3, optim__lr=2e-5))
    assert response.status_code == 302, response.context["form"].errors
    run = Run.objects.get(project=project)
    assert run.kind == RunKind.SFT and run.policy == policy and run.dataset == dataset
    assert run.config["data"] == {"source": "dataset", "dataset": dataset.id}
    assert run.config["sft"]["epochs"] == 3 and run.config["optim"]["lr"] == 2e-5
    assert run.config["policy"]["tiny"]["alphabet"] == "abxy"
    assert sent == [("workers.tasks.train_sft", [run.id])]
    from django.conf import settings

    assert settings.CELERY_TASK_ROUTES["workers.tasks.train_sft"] == {"queue": "gpu"}


def test_the_page_shows_a_bad_setting_on_its_field_and_launches_nothing(client, project, dataset, sent):
    client.login(username=project.user.username, password=PASSWORD)
    response = client.post(reverse("experiments:new_sft", args=[project.id]),
                           form_data(make_policy(project), f"dataset:{dataset.id}", sft__max_length=1))
    assert response.status_code == 400
    assert "must be at least 2" in response.context["form"].errors["sft__max_length"][0]
    assert 'role="alert"' in response.content.decode()
    response = client.post(reverse("experiments:new_sft", args=[project.id]),
                           form_data(make_policy(project), f"dataset:{dataset.id}",
                                     overrides=json.dumps({"sft": {"beta": 1}})))
    assert response.status_code == 400 and "overrides" in response.context["form"].errors
    assert not Run.objects.exists() and sent == []


def test_a_dataset_without_references_is_refused_on_the_pages_data_field(client, project, sent):
    client.login(username=project.user.username, password=PASSWORD)
    gaps = toy_dataset(project, name="gaps", missing=2)
    response = client.post(reverse("experiments:new_sft", args=[project.id]),
                           form_data(make_policy(project), f"dataset:{gaps.id}"))
    assert response.status_code == 400
    assert "2 of the dataset's 8 prompts have no reference answer" in response.context["form"].errors["data"][0]
    assert not Run.objects.exists() and sent == []


def test_the_page_offers_only_this_projects_policies_and_data(client, project, dataset, sent):
    other = make_project(owner=make_user())
    theirs = toy_dataset(other, name="theirs")
    their_pairs = pair_set_import(project=other, name="their pairs", content=pairs_jsonl())
    client.login(username=project.user.username, password=PASSWORD)
    page = client.get(reverse("experiments:new_sft", args=[project.id])).content.decode()
    assert "theirs" not in page and "their pairs" not in page
    for data in (f"dataset:{theirs.id}", f"pairs:{their_pairs.id}"):
        response = client.post(reverse("experiments:new_sft", args=[project.id]), form_data(make_policy(other), data))
        assert response.status_code == 400
        assert set(response.context["form"].errors) == {"policy", "data"}
    assert not Run.objects.exists()
    assert client.get(reverse("experiments:new_sft", args=[other.id])).status_code == 404


def test_a_project_with_nothing_to_train_on_says_what_an_sft_run_needs(client, project):
    client.login(username=project.user.username, password=PASSWORD)
    page = client.get(reverse("experiments:new_sft", args=[project.id])).content.decode()
    assert 'id="no-sft-data"' in page
    toy_dataset(project)
    assert 'id="no-sft-data"' not in client.get(reverse("experiments:new_sft", args=[project.id])).content.decode()


def test_the_page_refuses_a_post_without_the_csrf_token(project, dataset, sent):
    client = Client(enforce_csrf_checks=True)
    client.login(username=project.user.username, password=PASSWORD)
    url = reverse("experiments:new_sft", args=[project.id])
    data = form_data(make_policy(project), f"dataset:{dataset.id}")
    assert client.post(url, data).status_code == 403
    assert not Run.objects.exists()
    client.get(url)  # the page sets the CSRF cookie
    assert client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value}).status_code == 302


def test_an_annotator_cannot_open_the_page(project, dataset):
    user = annotator(project)
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    assert client.get(reverse("experiments:new_sft", args=[project.id])).status_code in (403, 404)


# --- the data ------------------------------------------------------------------------------

def test_labels_give_each_labels_top_ranked_answers_fixed_at_the_newest_label(
        project, sent, django_capture_on_commit_callbacks):
    a, b = annotator(project), annotator(project)
    chat = make_task(project, completions=["aa", "a", "b"], prompt_messages=CHAT, required_labels=2)
    plain = make_task(project, prompt="y", completions=["a", "aa", "b"], required_labels=2)
    pairwise = make_task(project, prompt="xy", completions=["ab", "ba"], required_labels=2)
    label(chat, a, [[0], [1], [2]])
    label(plain, b, [[0, 1], [2]])  # a tie on top: both answers learnt
    label(pairwise, a, [[0, 1]])  # a tie of every answer: none
    label(pairwise, b, [[0, 1]], both_bad=True)  # both bad: none
    with django_capture_on_commit_callbacks(execute=True):
        run = launch(project, {"source": "labels"})
    newest = PreferenceLabel.objects.filter(task__project=project).order_by("-id").first()
    assert run.config["data"] == {"source": "labels", "through_label": newest.id}
    label(chat, b, [[2], [1], [0]])  # given after the launch: not trained on
    assert sft_examples(project=project, data=run.config["data"]) == [
        SFTExample(CHAT, "aa"), SFTExample("y", "a"), SFTExample("y", "aa")]
    assert sent == [("workers.tasks.train_sft", [run.id])]


@pytest.mark.parametrize(("rankings", "words"), [
    ([], "no preference labels yet"),
    ([([[0, 1]], False), ([[0, 1]], True)], "all 2 of the labels are ties (or 'both bad')"),
])
def test_labels_with_nothing_ranked_first_are_refused_naming_config_data(project, sent, rankings, words):
    user = annotator(project)
    for ranking, both_bad in rankings:
        label(make_task(project, completions=["a", "b"]), user, ranking, both_bad=both_bad)
    with pytest.raises(RunError, match=re.escape(words)) as caught:
        launch(project, {"source": "labels"})
    assert caught.value.field == "config.data" and "or a dataset's references" in caught.value.message
    assert not Run.objects.exists() and sent == []


def test_a_pair_set_gives_its_chosen_answers_and_cannot_be_deleted_under_an_active_run(project, sent):
    pair_set = pair_set_import(project=project, name="toy", content=pairs_jsonl())
    run = launch(project, {"source": "pairs", "pair_set": pair_set.id})
    assert sft_examples(project=project, data=run.config["data"]) == [SFTExample(p, "a" * len(p)) for p in PROMPTS]
    with pytest.raises(RewardModelError, match="sft-1"):
        pair_set_delete(pair_set_id=pair_set.id)
    Run.objects.filter(pk=run.id).update(status=RunStatus.SUCCEEDED)
    pair_set_delete(pair_set_id=pair_set.id)  # a finished run keeps its config and policy


def test_a_pair_set_with_margins_gives_the_same_chosen_answers_and_trains(project, sent):
    """SFT has no margin (as TRL's SFTTrainer): TRL's margin column on imported pairs is not read."""
    content = "\n".join(json.dumps({**json.loads(line), "margin": 1.5}) for line in pairs_jsonl().splitlines())
    pair_set = pair_set_import(project=project, name="toy with margins", content=content)
    run = launch(project, {"source": "pairs", "pair_set": pair_set.id}, epochs=1)
    assert sft_examples(project=project, data=run.config["data"]) == [SFTExample(p, "a" * len(p)) for p in PROMPTS]
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.SUCCEEDED


def test_a_dataset_gives_its_references_and_cannot_be_deleted_while_a_run_used_it(project, dataset, sent):
    run = launch(project, {"source": "dataset", "dataset": dataset.id})
    assert sft_examples(project=project, data=run.config["data"]) == [SFTExample(p, "a" * len(p)) for p in PROMPTS]
    with pytest.raises(DatasetInUse, match="sft-1"):
        dataset_delete(dataset_id=dataset.id)


def test_a_chat_dataset_keeps_its_messages(project, sent):
    chat = dataset_create(project=project, name="chat", rows=[PromptRow(messages=CHAT, reference="a")])
    run = launch(project, {"source": "dataset", "dataset": chat.id})
    assert sft_examples(project=project, data=run.config["data"]) == [SFTExample(CHAT, "a")]


# --- the worker ----------------------------------------------------------------------------

def test_an_sft_run_learns_its_examples_and_registers_the_trained_policy(client, project, dataset, sent):
    run = launch(project, {"source": "dataset", "dataset": dataset.id}, epochs=8)
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert (run.status, run.total_steps, run.current_step, run.progress) == (RunStatus.SUCCEEDED, 16, 16, 1.0)
    metrics = {(p.key, p.step): p.value for p in MetricPoint.objects.filter(run=run)}
    assert {"loss", "mean_token_accuracy", "num_tokens", "grad_norm", "learning_rate", "epoch"} <= {
        key for key, _ in metrics}
    assert metrics[("loss", 16)] < 0.2 * metrics[("loss", 1)]
    assert metrics[("mean_token_accuracy", 16)] > 0.9 > metrics[("mean_token_accuracy", 1)]
    assert metrics[("data/examples", 1)] == 8
    assert list(Checkpoint.objects.filter(run=run).values_list("step", flat=True)) == [15, 16]

    trained = PolicyModel.objects.get(checkpoint__run=run)
    assert (trained.name, trained.source, trained.checkpoint.step) == ("sft-1", "checkpoint", 16)
    assert trained.engine_spec() == {"source": "path", "path": str(run.checkpoint_dir / "checkpoints" / "step-16")}
    assert run_execute(run_id=run.id, worker="w2@host") == "skipped"
    assert PolicyModel.objects.filter(checkpoint__run=run).count() == 1
    assert Checkpoint.objects.get(run=run, step=15) in checkpoints_to_start_from(project=project)

    client.login(username=project.user.username, password=PASSWORD)
    page = client.get(reverse("experiments:detail", args=[project.id, run.id])).content.decode()
    assert "Supervised fine-tuning" in page and "Trained policy" in page and "sft-1" in page
    assert f"?policy={trained.id}" in page and "Register as a policy" in page
    assert "Browse trajectories" not in page
    charts = client.get(reverse("experiments:chart_data", args=[project.id, run.id])).json()
    assert "mean_token_accuracy" in json.dumps(charts)


def test_an_sft_run_on_labels_trains(project, sent):
    user = annotator(project)
    for prompt in PROMPTS[:4]:
        task = make_task(project, prompt=prompt, completions=["b" * len(prompt), "a" * len(prompt)])
        label(task, user, [[1], [0]])
    run = launch(project, {"source": "labels"}, epochs=2)
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.SUCCEEDED
    assert MetricPoint.objects.get(run=run, key="data/examples").value == 4
    assert PolicyModel.objects.filter(checkpoint__run=run).exists()


@pytest.mark.django_db(transaction=True)
def test_a_released_sft_run_resumes_from_its_checkpoint(project, dataset, sent, monkeypatch):
    run = launch(project, {"source": "dataset", "dataset": dataset.id}, checkpoint_every=100)
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
    assert sorted(MetricPoint.objects.filter(run=run, key="loss").values_list("step", flat=True)) == list(range(1, 9))
    assert PolicyModel.objects.get(checkpoint__run=run).checkpoint.step == 8


# --- the API -------------------------------------------------------------------------------

@pytest.fixture
def api_project():
    owner = api_user()
    project = make_project(owner=owner)
    project.api = token_client(owner)
    project.user = owner
    return project


def post_run(project, body):
    return project.api.post(f"/api/v1/projects/{project.id}/runs/", data=json.dumps(body),
                            content_type="application/json")


@pytest.mark.parametrize("source", ["labels", "pairs", "dataset"])
def test_the_api_launches_an_sft_run_on_each_source(api_project, sent, django_capture_on_commit_callbacks, source):
    if source == "labels":
        label(make_task(api_project, completions=["a", "b"]), annotator(api_project), [[0], [1]])
        data = {"source": "labels"}
    elif source == "pairs":
        data = {"source": "pairs",
                "pair_set": pair_set_import(project=api_project, name="toy", content=pairs_jsonl()).id}
    else:
        data = {"source": "dataset", "dataset": toy_dataset(api_project).id}
    with django_capture_on_commit_callbacks(execute=True):
        response = post_run(api_project, {"name": "sft", "kind": "sft", "policy": make_policy(api_project).id,
                                          "config": sft_config(data)})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["kind"] == "sft" and body["config"]["sft"]["epochs"] == 4 and body["config"]["optim"]["lr"] == 0.01
    assert body["config"]["data"]["source"] == source
    assert sent == [("workers.tasks.train_sft", [body["id"]])]


@pytest.mark.parametrize(("change", "field"), [
    (lambda body, other: body["config"]["sft"].update(batch_size=0), "config.sft.batch_size"),
    (lambda body, other: body["config"]["sft"].update(beta=0.1), "config.sft.beta"),
    (lambda body, other: body["config"].update(sft_typo={}), "config.sft_typo"),
    (lambda body, other: body["config"].pop("data"), "config.data"),
    (lambda body, other: body["config"].update(data={"source": "prompts"}), "config.data"),
    (lambda body, other: body["config"].update(data={"source": "dataset", "dataset": "1"}), "config.data"),
    (lambda body, other: body["config"].update(data={"source": "dataset"}), "config.data"),
    (lambda body, other: body["config"].update(data={"source": "labels"}), "config.data"),  # none yet
    (lambda body, other: body["config"].update(data={"source": "dataset", "dataset": other["dataset"]}),
     "config.data"),
    (lambda body, other: body["config"].update(data={"source": "dataset", "dataset": other["gaps"]}), "config.data"),
    (lambda body, other: body["config"].update(data={"source": "pairs", "pair_set": other["pairs"]}), "config.data"),
    (lambda body, other: body["config"].update(data={"source": "dataset", "dataset": 10**9}), "config.data"),
    (lambda body, other: body.pop("policy"), "policy"),
    (lambda body, other: body.update(policy=other["policy"]), "policy"),
    (lambda body, other: body.update(dataset=other["own_dataset"]), "dataset"),
])
def test_a_bad_sft_launch_answers_400_naming_the_field_and_stores_nothing(api_project, sent, change, field):
    own = toy_dataset(api_project)
    other_project = make_project(owner=make_user())
    other = {"pairs": pair_set_import(project=other_project, name="their pairs", content=pairs_jsonl()).id,
             "dataset": toy_dataset(other_project, name="their secret dataset").id,
             "policy": make_policy(other_project).id, "own_dataset": own.id,
             "gaps": toy_dataset(api_project, name="gaps", missing=1).id}
    body = {"name": "sft", "kind": "sft", "policy": make_policy(api_project).id,
            "config": sft_config({"source": "dataset", "dataset": own.id})}
    change(body, other)
    response = post_run(api_project, body)
    assert response.status_code == 400, response.json()
    assert list(response.json()["error"]["fields"]) == [field]
    assert "their" not in json.dumps(response.json())  # nothing of another project is named
    assert not Run.objects.exists() and sent == []


def test_another_projects_sft_run_answers_404(api_project, project, dataset, sent):
    run = launch(project, {"source": "dataset", "dataset": dataset.id})
    assert api_project.api.get(f"/api/v1/runs/{run.id}/").status_code == 404
    assert api_project.api.post(f"/api/v1/runs/{run.id}/cancel/").status_code == 404


def test_the_run_list_api_filters_sft_runs(api_project, sent):
    dataset = toy_dataset(api_project)
    run = launch(api_project, {"source": "dataset", "dataset": dataset.id})
    listed = api_project.api.get(f"/api/v1/projects/{api_project.id}/runs/?kind=sft").json()
    assert [r["id"] for r in listed["results"]] == [run.id]
