"""A DPO run launched from its page is trained by a real `celery worker` process (the gpu
queue's train_dpo task), charted, and leaves its policy registered in the project."""

import json

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_policy, make_project, make_user
from tests.workers.test_run_worker import run_state, wait_for, worker_factory  # noqa: F401 (a fixture)
from webapp.experiments.forms import DPO_KNOBS, form_name
from webapp.experiments.models import PolicyModel, Run, RunKind, RunStatus
from webapp.rewards.services import pair_set_import
from workers.engine.dpo_config import DPOTrainConfig

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_dpo_run_launched_from_its_page_is_trained_by_a_worker(client, worker_factory):  # noqa: F811
    worker = worker_factory()
    user = make_user()
    project = make_project(owner=user)
    policy = make_policy(project)
    pairs = "\n".join(json.dumps({"prompt": p, "chosen": "a" * (i % 3 + 1), "rejected": "b" * (i % 3 + 1)})
                      for i, p in enumerate(["x", "y", "xy", "yx", "xx", "yy"]))
    pair_set = pair_set_import(project=project, name="toy", content=pairs)
    defaults = DPOTrainConfig().to_dict()
    data = {form_name(path): defaults[path.split(".")[0]][path.split(".")[1]] for path, _ in DPO_KNOBS}
    data.update(name="dpo by a worker", policy=policy.id, pair_set=pair_set.id, dpo__batch_size=3, dpo__epochs=2,
                optim__lr=1e-2, overrides=json.dumps({"policy": {"tiny": {"alphabet": "abxy", "hidden_size": 32,
                                                                          "num_layers": 1, "num_heads": 2,
                                                                          "intermediate_size": 64}},
                                                      "dpo": {"device": "cpu"}}))
    client.login(username=user.username, password=PASSWORD)
    response = client.post(reverse("experiments:new_dpo", args=[project.id]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    run = Run.objects.get(project=project, kind=RunKind.DPO)

    wait_for(lambda: run_state(run).is_terminal, worker, 120, "the DPO run to finish")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.worker.startswith("steer-test@") and (run.current_step, run.total_steps) == (4, 4)
    series = client.get(reverse("experiments:chart_data", args=[project.id, run.id])).json()["series"]
    assert {"rewards/accuracies", "rewards/margins", "logps/chosen", "loss"} <= {s["key"] for s in series}
    trained = PolicyModel.objects.get(checkpoint__run=run)
    assert trained.name == "dpo by a worker" and trained.checkpoint.step == 4
