"""A DPO run on the annotators' labels: every pair of answers a label ranks apart, the better one
chosen (as the preference export gives them), fixed at the newest label when it is launched."""

import uuid

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_policy, make_project, make_task, make_user
from tests.webapp.api.conftest import token_client
from tests.webapp.experiments.test_dpo_runs import TINY, form_data, pair_set, project  # noqa: F401
from webapp.experiments.errors import RunError
from webapp.experiments.models import MetricPoint, Run, RunKind, RunStatus
from webapp.experiments.services import run_execute, run_launch
from webapp.feedback.services import label_submit
from webapp.projects.models import Membership, Role
from webapp.rewards.selectors import dpo_pairs

pytestmark = pytest.mark.django_db

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}]


def annotator(project):
    user = make_user()
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    return user


def label(task, annotator, ranking):
    return label_submit(task=task, annotator=annotator, ranking=ranking, submission_key=uuid.uuid4().hex)


def labels_config(**data):
    return {"policy": TINY, "optim": {"lr": 1e-2},
            "dpo": {"beta": 0.1, "batch_size": 5, "epochs": 8, "device": "cpu", "checkpoint_every": 100},
            "data": {"source": "labels", **data}}


def launch(project, **data) -> Run:
    return run_launch(project=project, user=project.user, name="dpo on labels", kind=RunKind.DPO,
                      config=labels_config(**data), policy=make_policy(project))


@pytest.fixture
def labelled(project):  # noqa: F811
    """Two annotators: a full ranking of three answers to a chat prompt (3 pairs), and a ranking
    with a tie on top of a plain prompt (2 pairs, the tie left out)."""
    a, b = annotator(project), annotator(project)
    chat = make_task(project, completions=["aa", "a", "b"], prompt_messages=CHAT, required_labels=2)
    plain = make_task(project, prompt="y", completions=["a", "aa", "b"], required_labels=2)
    label(chat, a, [[0], [1], [2]])
    label(plain, b, [[0, 1], [2]])
    return chat, plain, a, b


def test_labels_are_fixed_at_the_newest_when_launched_and_give_every_decisive_pair(
        project, labelled, sent, django_capture_on_commit_callbacks):  # noqa: F811
    chat, plain, a, b = labelled
    with django_capture_on_commit_callbacks(execute=True):
        run = launch(project)
    last = chat.labels.model.objects.filter(task__project=project).order_by("-id").first()
    assert run.config["data"] == {"source": "labels", "through_label": last.id}
    label(chat, b, [[2], [1], [0]])  # given after the launch: not trained on
    pairs = dpo_pairs(project=project, data=run.config["data"])
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [
        (CHAT, "aa", "a"), (CHAT, "aa", "b"), (CHAT, "a", "b"), ("y", "a", "b"), ("y", "aa", "b")]
    assert sent == [("workers.tasks.train_dpo", [run.id])]


def test_a_dpo_run_on_labels_trains_and_learns_them(project, labelled, sent):  # noqa: F811
    run = launch(project)
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.SUCCEEDED
    accuracies = dict(MetricPoint.objects.filter(run=run, key="rewards/accuracies").values_list("step", "value"))
    assert MetricPoint.objects.get(run=run, key="data/pairs").value == 5
    assert sorted(accuracies) == list(range(1, 9))  # 5 pairs a step, 8 epochs
    assert accuracies[1] == 0.0 and accuracies[8] == 1.0


@pytest.mark.parametrize(("rankings", "words"), [
    ([], "no preference labels yet"),
    ([[[0, 1]]], "all 1 of the labels are ties"),
])
def test_labels_that_cannot_train_are_refused_naming_the_data_and_nothing_is_launched(project, rankings, words, sent):  # noqa: F811
    task = make_task(project, completions=["a", "b"])
    for ranking in rankings:
        label(task, annotator(project), ranking)
    with pytest.raises(RunError, match=words) as caught:
        launch(project)
    assert caught.value.field == "config.data"
    assert not Run.objects.exists() and sent == []


@pytest.mark.parametrize("data", [
    {"source": "labels", "through_label": -1}, {"source": "labels", "through_label": "7"},
    {"source": "labels", "pair_set": 3}, {"source": "everything"}, {"source": "pairs"},
])
def test_a_bad_data_section_answers_400_naming_it(project, labelled, data, sent):  # noqa: F811
    api = token_client(project.user)
    config = {**labels_config(), "data": data}
    response = api.post(f"/api/v1/projects/{project.id}/runs/", {
        "name": "dpo", "kind": "dpo", "policy": make_policy(project).id, "config": config}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["config.data"]
    assert not Run.objects.exists()


def test_the_page_offers_the_labels_beside_the_pair_sets_and_launches_on_them(client, project, labelled,  # noqa: F811
                                                                              pair_set, sent):  # noqa: F811
    client.login(username=project.user.username, password=PASSWORD)
    page = client.get(reverse("experiments:new_dpo", args=[project.id])).content.decode()
    assert '<option value="labels"' in page and "This project&#x27;s preference labels (2)" in page
    policy = make_policy(project)
    data = form_data(policy, pair_set)
    data["pair_set"] = "labels"
    response = client.post(reverse("experiments:new_dpo", args=[project.id]), data)
    assert response.status_code == 302, response.context["form"].errors
    run = Run.objects.get(project=project)
    assert run.config["data"]["source"] == "labels" and run.config["data"]["through_label"] > 0


def test_another_projects_labels_are_not_trained_on(project, labelled, sent):  # noqa: F811
    other = make_project(owner=make_user())
    task = make_task(other, completions=["p", "q"])
    label(task, annotator(other), [[0], [1]])
    run = launch(project)
    assert all(p.chosen != "p" for p in dpo_pairs(project=project, data=run.config["data"]))
    assert len(dpo_pairs(project=project, data=run.config["data"])) == 5


def test_a_project_without_labels_or_pairs_is_told_what_the_run_needs(client, project, sent):  # noqa: F811
    client.login(username=project.user.username, password=PASSWORD)
    page = client.get(reverse("experiments:new_dpo", args=[project.id])).content.decode()
    assert 'id="no-preference-data"' in page and "label some tasks" in page
    label(make_task(project, completions=["a", "b"]), annotator(project), [[0], [1]])
    page = client.get(reverse("experiments:new_dpo", args=[project.id])).content.decode()
    assert "no-preference-data" not in page and '<option value="labels"' in page
