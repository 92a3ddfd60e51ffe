"""SteerClient.run_create launches the runs Steer's workers execute, not only external ones: a
script names the project's policy, dataset and held-out dataset, as the API takes them; a config
the engine refuses is a SteerError naming the field, and nothing is launched."""

import pytest

from steer_client.client import SteerError
from tests.factories import make_dataset, make_policy, make_project
from tests.steer_client.test_sweeps import project_and_client  # noqa: F401, F811 (a fixture: a project's owner's client)
from webapp.experiments.models import Run, RunKind, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_policy_run_is_launched_with_its_policy_and_datasets(project_and_client, sent):
    project, client = project_and_client
    policy, dataset, held_out = make_policy(project), make_dataset(project), make_dataset(project)
    run = client.run_create(project=project.slug, name="grpo", kind="policy", policy=policy.id,
                            dataset=dataset.id, eval_dataset=held_out.id,
                            config={"train": {"total_steps": 3}, "optim": {"lr": 3e-6},
                                    "eval": {"every_steps": 2}})
    assert run["kind"] == RunKind.POLICY and run["status"] == RunStatus.QUEUED
    assert run["config"]["optim"]["lr"] == 3e-6 and run["config"]["train"]["total_steps"] == 3
    stored = Run.objects.get(pk=run["id"])
    assert (stored.policy_id, stored.dataset_id, stored.eval_dataset_id) == (policy.id, dataset.id, held_out.id)
    assert [args[0] for _, args in sent] == [run["id"]]  # sent to a worker


def test_an_evaluation_run_without_a_config_gets_the_engines_defaults(project_and_client, sent):
    project, client = project_and_client
    run = client.run_create(project=project.id, name="eval", kind="evaluation",
                            policy=make_policy(project).id, dataset=make_dataset(project).id)
    assert run["kind"] == RunKind.EVALUATION and "trainer" not in run["config"]
    assert run["config"]["rollout"]["num_generations"] >= 1
    assert len(sent) == 1


def test_an_external_run_still_records_its_config_as_given(project_and_client, sent):
    project, client = project_and_client
    assert client.run_create(project=project.id, name="trl")["config"] == {"trainer": "external"}
    assert client.run_create(project=project.id, name="trl", config={"lr": 1})["config"] == {"lr": 1}
    assert sent == []


def test_a_refused_config_names_the_field_and_launches_nothing(project_and_client, sent):
    project, client = project_and_client
    with pytest.raises(SteerError) as refused:
        client.run_create(project=project.id, name="bad", kind="policy", policy=make_policy(project).id,
                          dataset=make_dataset(project).id, config={"optim": {"lr": -1}})
    assert refused.value.status == 400 and "config.optim.lr" in refused.value.error["fields"]
    with pytest.raises(SteerError) as elsewhere:
        client.run_create(project=project.id, name="other", kind="policy",
                          policy=make_policy(make_project()).id, dataset=make_dataset(project).id)
    assert elsewhere.value.status == 400 and "policy" in elsewhere.value.error["fields"]
    assert not project.runs.exists() and sent == []
