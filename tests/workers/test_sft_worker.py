"""An SFT run launched from its page is trained by a real `celery worker` process (the gpu
queue's train_sft task), charted, and leaves its policy registered in the project."""

import json

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_policy, make_project, make_user
from tests.workers.test_run_worker import run_state, wait_for, worker_factory  # noqa: F401 (a fixture)
from webapp.datasets.parsing import PromptRow
from webapp.datasets.services import dataset_create
from webapp.experiments.forms import SFT_KNOBS, form_name
from webapp.experiments.models import PolicyModel, Run, RunKind, RunStatus
from workers.engine.sft_config import SFTTrainConfig

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_an_sft_run_launched_from_its_page_is_trained_by_a_worker(client, worker_factory):  # noqa: F811
    worker = worker_factory()
    user = make_user()
    project = make_project(owner=user)
    policy = make_policy(project)
    rows = [PromptRow(text=p, reference="a" * len(p)) for p in ["x", "y", "xy", "yx", "xx", "yy"]]
    dataset = dataset_create(project=project, name="answers", rows=rows)
    defaults = SFTTrainConfig().to_dict()
    data = {form_name(path): defaults[path.split(".")[0]][path.split(".")[1]] for path, _ in SFT_KNOBS}
    data.update(name="sft by a worker", policy=policy.id, data=f"dataset:{dataset.id}", sft__batch_size=3,
                sft__epochs=2, optim__lr=1e-2, overrides=json.dumps({
                    "policy": {"tiny": {"alphabet": "abxy", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                        "intermediate_size": 64}},
                    "sft": {"device": "cpu"}}))
    client.login(username=user.username, password=PASSWORD)
    response = client.post(reverse("experiments:new_sft", args=[project.id]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    run = Run.objects.get(project=project, kind=RunKind.SFT)

    wait_for(lambda: run_state(run).is_terminal, worker, 120, "the SFT run to finish")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.worker.startswith("steer-test@") and (run.current_step, run.total_steps) == (4, 4)
    series = client.get(reverse("experiments:chart_data", args=[project.id, run.id])).json()["series"]
    assert {"loss", "mean_token_accuracy", "num_tokens", "grad_norm"} <= {s["key"] for s in series}
    trained = PolicyModel.objects.get(checkpoint__run=run)
    assert trained.name == "sft by a worker" and trained.checkpoint.step == 4
    page = client.get(reverse("experiments:detail", args=[project.id, run.id])).content.decode()
    assert "Trained policy" in page and "sft by a worker" in page
