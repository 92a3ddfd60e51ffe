"""A run's system metrics (train.log_system_metrics) are stored beside its own, step by step, and
so charted on its page."""

import pytest

from tests.factories import (
    make_dataset,
    make_policy,
    make_project,
    make_run,
    make_user,
    tiny_run_config,
)
from webapp.experiments.execution import Claim, PolicyRunRecorder
from webapp.experiments.models import MetricPoint, RunKind, RunStatus
from webapp.experiments.services import run_execute, run_launch
from workers.engine.system_metrics import PSUTIL_KEYS

pytest.importorskip("psutil")
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]  # no task reaches a broker


def launch(kind=RunKind.POLICY, **sections):
    user = make_user()
    project = make_project(owner=user)
    return run_launch(project=project, user=user, name="tiny", kind=kind, config=tiny_run_config(**sections),
                      dataset=make_dataset(project), policy=make_policy(project))


def steps_of(run, key):
    return sorted(MetricPoint.objects.filter(run=run, key=key).values_list("step", flat=True))


@pytest.mark.parametrize("kind", [RunKind.POLICY, RunKind.EVALUATION])
def test_every_step_stores_its_system_metrics_beside_its_own(kind):
    run = launch(kind)
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED
    reward_steps = steps_of(run, "reward")
    assert reward_steps
    for key in PSUTIL_KEYS:
        assert steps_of(run, key) == reward_steps, key
    rss = MetricPoint.objects.filter(run=run, key="system/process_rss_megabytes").values_list("value", flat=True)
    assert all(v > 10 for v in rss)  # megabytes of a process that holds torch


def test_a_run_with_the_switch_off_stores_none():
    run = launch(train={"total_steps": 2, "checkpoint_every": 1, "device": "cpu", "log_system_metrics": False})
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED
    assert steps_of(run, "reward") == [1, 2]
    assert not MetricPoint.objects.filter(run=run, key__startswith="system/").exists()


def test_the_recorder_stores_a_step_s_system_metrics_with_that_step_only():
    run = make_run(make_project(), status=RunStatus.RUNNING, attempts=1)
    recorder = PolicyRunRecorder(Claim(run.id, 1), total_steps=3, prompt_ids=set())
    recorder.on_system_metrics(1, {"system/cpu_utilization_percentage": 12.5})
    recorder.on_metrics(1, {"reward": 0.5})
    recorder.on_system_metrics(5, {"system/cpu_utilization_percentage": 99.0})  # a step never reported
    recorder.on_metrics(2, {"reward": 0.75})
    recorder.on_metrics(3, {"reward": 1.0})
    points = set(MetricPoint.objects.filter(run=run).values_list("key", "step", "value"))
    assert points == {("system/cpu_utilization_percentage", 1, 12.5), ("reward", 1, 0.5), ("reward", 2, 0.75),
                      ("reward", 3, 1.0)}


def test_an_sft_run_stores_its_system_metrics_beside_its_own():
    """SFT and DPO runs train through the same worker code (offline_policy_run_execute)."""
    from tests.webapp.experiments.test_sft_runs import launch as launch_sft
    from tests.webapp.experiments.test_sft_runs import toy_dataset

    user = make_user()
    project = make_project(owner=user)
    project.user = user
    run = launch_sft(project, {"source": "dataset", "dataset": toy_dataset(project).id}, epochs=1)
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED
    assert steps_of(run, "loss") == [1, 2]
    for key in PSUTIL_KEYS:
        assert steps_of(run, key) == [1, 2], key


def test_a_reward_model_run_stores_its_system_metrics_beside_its_own():
    from tests.webapp.rewards.test_reward_model_runs import TINY_RM, pairs_jsonl
    from webapp.rewards.services import pair_set_import

    user = make_user()
    project = make_project(owner=user)
    pair_set = pair_set_import(project=project, name="seed", content=pairs_jsonl())
    run = run_launch(project=project, user=user, name="rm", kind=RunKind.REWARD_MODEL,
                     config={**TINY_RM, "data": {"source": "pairs", "pair_set": pair_set.id}})
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED
    assert steps_of(run, "loss") == list(range(1, 7))  # 9 training pairs / 4 a batch × 2 epochs
    for key in PSUTIL_KEYS:
        assert steps_of(run, key) == list(range(1, 7)), key
