"""Reward-model runs: imported pairs or labels → a trained, registered, selectable reward model."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_task, make_user
from webapp.experiments.models import MetricPoint, Run, RunKind, RunStatus
from webapp.experiments.services import run_execute
from webapp.feedback.labelling import label_submit
from webapp.rewards.errors import PairImportError
from webapp.rewards.models import PreferencePairSet, RewardModel
from webapp.rewards.selectors import preference_records
from webapp.rewards.services import pair_set_import

pytestmark = pytest.mark.django_db

TINY_RM = {"backbone": "tiny", "batch_size": 4, "epochs": 2, "eval_fraction": 0.25, "max_length": 32, "device": "cpu"}


def pairs_jsonl(n=12):
    return "\n".join(json.dumps({"prompt": f"What is {i} + {i}?", "chosen": f"It is {2 * i}.",
                                 "rejected": "I do not know."}) for i in range(n))


@pytest.fixture
def researcher(client):
    user = make_user()
    project = make_project(owner=user)
    client.login(username=user.username, password=PASSWORD)
    project.user = user
    return project


def test_pairs_import_reports_each_bad_line_and_stores_nothing(researcher):
    content = "\n".join([json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}), "{not json",
                         json.dumps({"prompt": "p", "chosen": "a"}), json.dumps({"prompt": "p", "chosen": "x", "rejected": "x"})])
    with pytest.raises(PairImportError) as info:
        pair_set_import(project=researcher, name="bad", content=content)
    assert [n for n, _ in info.value.errors] == [2, 3, 4]
    assert "missing rejected" in info.value.errors[1][1]
    assert not PreferencePairSet.objects.exists()


def test_pairs_import_names_a_line_the_database_cannot_store(researcher):
    content = "\n".join([json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}),
                         json.dumps({"prompt": "p", "chosen": "a\u0000", "rejected": "b"})])
    with pytest.raises(PairImportError) as info:
        pair_set_import(project=researcher, name="bad", content=content)
    assert info.value.errors == [(2, "'chosen' holds a NUL character (\\u0000), which cannot be stored")]
    assert not PreferencePairSet.objects.exists()


def test_pairs_import_page_shows_a_taken_name_on_the_name_field(client, researcher):
    """It was listed among the file's bad lines ('Nothing was imported. Fix these lines')."""
    pair_set_import(project=researcher, name="seed pairs", content=pairs_jsonl(2))
    upload = SimpleUploadedFile("pairs.jsonl", pairs_jsonl(5).encode())
    response = client.post(reverse("rewards:import_pairs", args=[researcher.id]), {"name": "seed pairs", "file": upload})
    assert response.status_code == 400
    assert response.context["form"].errors == {"name": ["a set of pairs named 'seed pairs' already exists in this project"]}
    assert not response.context["line_errors"]
    assert PreferencePairSet.objects.filter(project=researcher).count() == 1


def test_pairs_import_page_stores_the_pairs(client, researcher):
    upload = SimpleUploadedFile("pairs.jsonl", pairs_jsonl(5).encode())
    response = client.post(reverse("rewards:import_pairs", args=[researcher.id]), {"name": "seed pairs", "file": upload})
    assert response.status_code == 302
    assert PreferencePairSet.objects.get(project=researcher).pair_count == 5


def test_a_reward_model_run_trains_on_imported_pairs_and_registers_the_model(client, researcher, sent):
    pair_set = pair_set_import(project=researcher, name="seed", content=pairs_jsonl())
    response = client.post(reverse("rewards:train", args=[researcher.id]), {
        "name": "rm-1", "data": f"pairs:{pair_set.id}", "settings": json.dumps(TINY_RM)})
    assert response.status_code == 302
    run = Run.objects.get(project=researcher, kind=RunKind.REWARD_MODEL)
    assert run.config["data"] == {"source": "pairs", "pair_set": pair_set.id}

    assert run_execute(run_id=run.id, worker="w@host") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.total_steps == 6 and run.progress == 1.0  # 9 training pairs / 4 a batch × 2 epochs
    keys = set(MetricPoint.objects.filter(run=run).values_list("key", flat=True))
    assert {"loss", "eval/loss", "eval/accuracy", "train/accuracy"} <= keys
    model = RewardModel.objects.get(training_run=run)
    assert model.is_ready and model.backbone == "tiny" and "eval/accuracy" in model.metrics

    page = client.get(reverse("rewards:list", args=[researcher.id])).content.decode()
    assert "rm-1" in page and "ready" in page
    form = client.get(reverse("experiments:new", args=[researcher.id])).content.decode()
    assert f'value="reward_model:{model.id}"' in form


def test_a_reward_model_run_started_over_after_a_lost_worker_keeps_no_metric_of_the_lost_attempt(
        client, researcher, sent):
    """The trainer keeps no checkpoint, so a later attempt starts from step 0: points the lost one
    wrote past where the new one stops (cancelled here before its first step) must not remain."""
    from tests.factories import dead_process_name
    from webapp.experiments.metrics import metric_points_upsert

    pair_set = pair_set_import(project=researcher, name="seed", content=pairs_jsonl())
    client.post(reverse("rewards:train", args=[researcher.id]), {
        "name": "rm-1", "data": f"pairs:{pair_set.id}", "settings": json.dumps(TINY_RM)})
    run = Run.objects.get(project=researcher, kind=RunKind.REWARD_MODEL)
    metric_points_upsert(run_id=run.id, points=[("loss", 1, 0.7), ("loss", 2, 0.6)])  # the lost attempt's
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, worker="w@host", executor=dead_process_name(),
                                         attempts=1, cancel_requested=True)

    assert run_execute(run_id=run.id, worker="w@host") == RunStatus.CANCELLED
    assert not MetricPoint.objects.filter(run=run).exists()


def test_a_ready_reward_model_becomes_a_reward_carrying_its_path(client, researcher, sent):
    from tests.factories import make_dataset, make_policy, tiny_run_form_data

    model = RewardModel.objects.create(project=researcher, name="rm", backbone="tiny", path="/models/rm-7")
    data = tiny_run_form_data(make_policy(researcher), make_dataset(researcher))
    data.update(reward_2_name=f"reward_model:{model.id}", reward_2_weight=0.25, reward_2_params="")
    response = client.post(reverse("experiments:new", args=[researcher.id]), data)
    assert response.status_code == 302
    run = Run.objects.get(project=researcher)
    assert run.config["rewards"][2] == {"name": "reward_model", "weight": 0.25, "label": f"rm{model.id}",
                                        "path": "/models/rm-7"}


def test_a_reward_model_run_without_labels_or_pairs_is_refused_on_the_data_field(client, researcher, sent):
    response = client.post(reverse("rewards:train", args=[researcher.id]), {
        "name": "rm", "data": "labels", "settings": json.dumps(TINY_RM)})
    assert response.status_code == 400
    assert "no preference labels yet" in response.context["form"].errors["data"][0]
    assert not Run.objects.exists() and sent == []


def test_bad_trainer_settings_are_refused_on_the_settings_field(client, researcher, sent):
    pair_set = pair_set_import(project=researcher, name="seed", content=pairs_jsonl())
    response = client.post(reverse("rewards:train", args=[researcher.id]), {
        "name": "rm", "data": f"pairs:{pair_set.id}", "settings": json.dumps({**TINY_RM, "epochs": 0})})
    assert response.status_code == 400
    assert "epochs" in response.context["form"].errors["settings"][0] or "at least 1" in response.content.decode()
    assert not Run.objects.exists()


def test_labels_become_one_preference_record_each(researcher):
    annotators = [make_user(), make_user()]
    project = make_project(owner=researcher.user, annotator=annotators)
    task = make_task(project, completions=["good", "bad", "worse"], required_labels=2)
    label_submit(task=task, annotator=annotators[0], ranking=[[0], [1], [2]], submission_key="key-aaaa-1")
    label_submit(task=task, annotator=annotators[1], ranking=[[0, 1], [2]], submission_key="key-bbbb-2")
    records = preference_records(project=project, data={"source": "labels"})
    assert sorted(r.ranking for r in records) == [[[0], [1], [2]], [[0, 1], [2]]]
    assert all(r.completions == ["good", "bad", "worse"] and r.prompt == "Say hi." for r in records)
