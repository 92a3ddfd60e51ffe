"""Deletions and launches in flight at once (PostgreSQL, two connections): whichever commits
first, the other sees it, and nobody gets a 500."""

import threading
import time

import pytest
from django.db import connection

from tests.factories import make_dataset, make_policy, make_project, make_run
from webapp.datasets.errors import DatasetInUse
from webapp.experiments import services
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunKind, RunStatus
from webapp.rewards.errors import RewardModelError
from webapp.rewards.models import PreferencePairSet, RewardModel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def postgresql_only(monkeypatch, settings, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite runs one writer at a time")
    from workers.celery_app import app

    monkeypatch.setattr(app, "send_task", lambda name, args: None)
    settings.STEER_CHECKPOINT_DIR = tmp_path


@pytest.fixture
def world(tmp_path):
    project = make_project()
    folder = tmp_path / "rm"
    folder.mkdir()
    trainer = make_run(project, kind=RunKind.REWARD_MODEL, status=RunStatus.SUCCEEDED)
    return {
        "project": project, "dataset": make_dataset(project), "policy": make_policy(project),
        "rm": RewardModel.objects.create(project=project, name="rm", backbone="tiny", training_run=trainer,
                                         path=str(folder)),
        "pairs": PreferencePairSet.objects.create(project=project, name="ps", pair_count=1,
                                                  pairs=[{"prompt": "p", "chosen": "a", "rejected": "b"}]),
    }


def launch(world, what):
    project = world["project"]
    if what == "external":
        return services.run_create(project=project, user=None, name="L", kind=RunKind.EXTERNAL,
                                   config={"trainer": "x"}, dataset=world["dataset"])
    if what == "pairs":
        return services.run_launch(project=project, user=None, name="L", kind=RunKind.REWARD_MODEL,
                                   config={"data": {"source": "pairs", "pair_set": world["pairs"].id},
                                           "backbone": "tiny"})
    return services.run_launch(project=project, user=None, name="L", kind=RunKind.POLICY, dataset=world["dataset"],
                               policy=world["policy"], config={"rewards": [
                                   {"name": "exact_answer"}, {"name": "reward_model", "reward_model": world["rm"].id}]})


def delete(world, what):
    if what in ("dataset", "external"):
        from webapp.datasets.services import dataset_delete

        dataset_delete(dataset_id=world["dataset"].id)
    elif what == "rm":
        from webapp.rewards.services import reward_model_delete

        reward_model_delete(reward_model_id=world["rm"].id)
    else:
        from webapp.rewards.services import pair_set_delete

        pair_set_delete(pair_set_id=world["pairs"].id)


def in_thread(fn, out):
    def run():
        try:
            out["result"] = fn()
        except Exception as exc:  # noqa: BLE001 - the test inspects what was raised
            out["error"] = exc
        finally:
            connection.close()
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def hold(monkeypatch, module, name, started):
    """Make ``module.name`` signal, then keep its transaction open a while."""
    original = getattr(module, name)

    def slow(*args, **kwargs):
        result = original(*args, **kwargs)
        started.set()
        time.sleep(1.0)
        return result
    monkeypatch.setattr(module, name, slow)


@pytest.mark.parametrize("what", ["dataset", "external", "rm", "pairs"])
def test_a_deletion_waits_for_a_launch_in_flight_and_then_refuses(world, monkeypatch, what):
    started, out = threading.Event(), {}
    if what == "external":  # no enqueue: hold the transaction of run_create itself
        from webapp.experiments.models import Run as RunModel

        original_save = RunModel.save

        def slow_save(self, *args, **kwargs):
            original_save(self, *args, **kwargs)
            started.set()
            time.sleep(1.0)
        monkeypatch.setattr(RunModel, "save", slow_save)
    else:
        hold(monkeypatch, services, "run_enqueue", started)
    thread = in_thread(lambda: launch(world, what), out)
    assert started.wait(20)
    with pytest.raises((DatasetInUse, RewardModelError)):
        delete(world, what)
    thread.join()
    assert "error" not in out, out
    assert Run.objects.filter(name="L").exists()


@pytest.mark.parametrize("what", ["dataset", "external", "rm", "pairs"])
def test_a_launch_after_a_deletion_in_flight_is_refused_by_name(world, monkeypatch, what):
    import webapp.datasets.services as datasets
    import webapp.rewards.services as rewards

    started, out = threading.Event(), {}
    check = {"dataset": (datasets, "dataset_delete_check"), "external": (datasets, "dataset_delete_check"),
             "rm": (rewards, "reward_model_delete_check"), "pairs": (rewards, "pair_set_delete_check")}[what]
    hold(monkeypatch, *check, started)
    thread = in_thread(lambda: delete(world, what), out)
    assert started.wait(20)
    with pytest.raises(RunError) as info:
        launch(world, what)
    thread.join()
    assert "error" not in out, out
    assert info.value.field in ("dataset", "config.rewards[1]", "config.data")
    assert not Run.objects.filter(name="L").exists()


def test_two_launches_on_one_dataset_do_not_wait_for_each_other(world, monkeypatch):
    started, out = threading.Event(), {}
    hold(monkeypatch, services, "run_enqueue", started)
    thread = in_thread(lambda: launch(world, "dataset"), out)
    assert started.wait(20)
    from django.db import transaction

    with transaction.atomic():
        with connection.cursor() as cursor:  # a lock wait would fail at once instead of waiting
            cursor.execute("SET LOCAL lock_timeout = '100ms'")
        second = services.run_create(project=world["project"], user=None, name="second", kind=RunKind.EXTERNAL,
                                     config={"trainer": "x"}, dataset=world["dataset"])
    thread.join()
    assert second.pk and "error" not in out


def test_a_policy_deletion_waits_for_a_launch_in_flight_and_then_refuses(world, monkeypatch):
    from webapp.experiments.errors import PolicyInUse
    from webapp.experiments.policies import policy_delete

    started, out = threading.Event(), {}
    hold(monkeypatch, services, "run_enqueue", started)
    thread = in_thread(lambda: launch(world, "dataset"), out)
    assert started.wait(20)
    with pytest.raises(PolicyInUse):
        policy_delete(policy_id=world["policy"].pk)
    thread.join()
    assert "error" not in out and Run.objects.filter(name="L", policy=world["policy"]).exists()


def test_a_launch_after_a_policy_deletion_in_flight_is_refused_on_the_field(world, monkeypatch):
    import webapp.experiments.policies as policies

    started, out = threading.Event(), {}
    hold(monkeypatch, policies, "policy_delete_check", started)
    thread = in_thread(lambda: policies.policy_delete(policy_id=world["policy"].pk), out)
    assert started.wait(20)
    with pytest.raises(RunError) as info:
        launch(world, "dataset")
    thread.join()
    assert "error" not in out and info.value.field == "policy"
    assert not Run.objects.filter(name="L").exists()


@pytest.fixture
def finished_run_checkpoint(world, tmp_path):
    from webapp.experiments.models import Checkpoint

    run = make_run(world["project"], status=RunStatus.SUCCEEDED, name="sft")
    return Checkpoint.objects.create(run=run, step=3, path=str(tmp_path / f"run-{run.id}" / "step-3"))


def test_a_run_deletion_waits_for_a_policy_made_from_its_checkpoint_and_then_refuses(
        world, finished_run_checkpoint, monkeypatch):
    import webapp.experiments.policies as policies

    started, out = threading.Event(), {}
    hold(monkeypatch, policies, "_finished_checkpoint", started)
    thread = in_thread(lambda: policies.policy_create(
        project=world["project"], user=None, name="from sft", source="checkpoint",
        checkpoint_id=finished_run_checkpoint.pk), out)
    assert started.wait(20)
    with pytest.raises(RunError) as info:
        services.run_delete(run_id=finished_run_checkpoint.run_id)
    thread.join()
    assert "error" not in out, out
    assert info.value.field == "policy" and "“from sft”" in info.value.message
    assert Run.objects.filter(pk=finished_run_checkpoint.run_id).exists()


def test_a_policy_from_a_checkpoint_whose_run_is_being_deleted_is_refused_on_the_field(
        world, finished_run_checkpoint, monkeypatch):
    from webapp.experiments.errors import PolicyError
    from webapp.experiments.policies import policy_create

    started, out = threading.Event(), {}
    hold(monkeypatch, services, "run_delete_check", started)
    thread = in_thread(lambda: services.run_delete(run_id=finished_run_checkpoint.run_id), out)
    assert started.wait(20)
    with pytest.raises(PolicyError) as info:
        policy_create(project=world["project"], user=None, name="from sft", source="checkpoint",
                      checkpoint_id=finished_run_checkpoint.pk)
    thread.join()
    assert "error" not in out, out
    assert info.value.field == "checkpoint"
    assert not Run.objects.filter(pk=finished_run_checkpoint.run_id).exists()
