"""An attempt that resumes a run from its checkpoint at step s first deletes what lost attempts
recorded after s, so a run that then stops before getting back there shows only steps its
final model took."""

import shutil

import pytest
from django.utils import timezone

from tests.factories import (
    dead_process_name, make_dataset, make_policy, make_project, make_run, make_task, make_user, tiny_run_config,
)
from webapp.experiments.execution import LeaseLost, run_claim, run_discard_after
from webapp.experiments.metric_rollups import metric_rollups_rebuild
from webapp.experiments.metrics import metric_points_discard_after, metric_points_upsert
from webapp.experiments.models import (
    Checkpoint, HeldOutAnswer, MetricPoint, MetricRollup, Run, RunKind, RunStatus, Trajectory,
)
from webapp.experiments.services import run_execute, run_launch
from webapp.feedback.models import Candidate, PreferenceLabel

pytestmark = pytest.mark.django_db(transaction=False)

ROLLUP_FIELDS = ("key", "level", "bucket", "n", "first_step", "first_value", "last_step", "last_value",
                 "min_step", "min_value", "max_step", "max_value")


@pytest.fixture
def dead_process():
    return dead_process_name()


def rollups(run_id: int) -> list[tuple]:
    return sorted(MetricRollup.objects.filter(run_id=run_id).values_list(*ROLLUP_FIELDS))


def test_discarding_metric_points_after_a_step_trims_chunks_and_leaves_the_rollups_of_what_remains(sent):
    run = make_run(make_project(), kind=RunKind.EXTERNAL, config={"trainer": "x"})
    # Three batches, so chunks straddle the cut (step 20 lies inside the second one) and buckets of 16 do too.
    for lo, hi in ((1, 10), (11, 30), (31, 40)):
        metric_points_upsert(run_id=run.id, points=[(key, step, step * (2.0 if key == "loss" else 1.0))
                                                    for key in ("reward", "loss") for step in range(lo, hi + 1)])
    metric_points_upsert(run_id=run.id, points=[("eval/accuracy", 35, 0.5)])  # a series only after the cut

    assert metric_points_discard_after(run_id=run.id, step=20) == 2 * 20 + 1
    points = MetricPoint.objects.filter(run=run)
    assert sorted(points.values_list("key", "step", "value")) == sorted(
        (key, step, step * (2.0 if key == "loss" else 1.0)) for key in ("reward", "loss") for step in range(1, 21))
    after = rollups(run.id)
    MetricRollup.objects.filter(run_id=run.id).delete()
    metric_rollups_rebuild(run_id=run.id)
    assert after == rollups(run.id)  # as if the discarded points had never been written
    assert not MetricRollup.objects.filter(run_id=run.id, key="eval/accuracy").exists()

    assert metric_points_discard_after(run_id=run.id, step=20) == 0  # idempotent
    assert points.count() == 40


def lost_run_past_its_checkpoint(*, total_steps=4, checkpoint_every=2, dead_process, **launch_kwargs):
    """A policy run trained to its end, then put back as it stands when its worker died after
    recording steps 3 and 4 but before saving the checkpoint of step 4: newest checkpoint step 2."""
    user = make_user()
    project = make_project(owner=user)
    run = run_launch(project=project, user=user, name="tiny", kind="policy",
                     config=tiny_run_config(total_steps=total_steps, checkpoint_every=checkpoint_every),
                     dataset=make_dataset(project), policy=make_policy(project), **launch_kwargs)
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.SUCCEEDED
    shutil.rmtree(run.checkpoint_dir / "checkpoints" / "step-4")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_at=None, executor=dead_process,
                                         heartbeat_at=timezone.now())
    return Run.objects.get(pk=run.pk)


def test_a_resumed_run_cancelled_before_it_gets_back_keeps_no_step_after_its_checkpoint(sent, dead_process):
    run = lost_run_past_its_checkpoint(dead_process=dead_process)
    assert MetricPoint.objects.filter(run=run, step__gt=2).exists() and run.trajectories.filter(step__gt=2).exists()
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)  # the resumed attempt stops before its first step

    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.CANCELLED
    run.refresh_from_db()
    assert run.attempts == 2 and run.current_step == 2 and run.progress == 0.5
    assert set(MetricPoint.objects.filter(run=run).values_list("step", flat=True)) == {1, 2}
    assert set(run.trajectories.values_list("step", flat=True)) == {1, 2}
    assert list(run.checkpoints.values_list("step", flat=True)) == [2]


def test_a_resumed_run_that_goes_on_rewrites_the_steps_after_its_checkpoint_once(sent, dead_process):
    run = lost_run_past_its_checkpoint(dead_process=dead_process)
    per_step = run.trajectories.filter(step=3).count()

    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.SUCCEEDED
    assert set(MetricPoint.objects.filter(run=run, key="reward").values_list("step", flat=True)) == {1, 2, 3, 4}
    assert run.trajectories.filter(step=3).count() == per_step
    assert list(run.checkpoints.values_list("step", flat=True)) == [2, 4]


def test_labels_on_discarded_trajectories_are_kept_and_their_candidates_say_why_they_lost_the_link(
        sent, dead_process):
    run = lost_run_past_its_checkpoint(dead_process=dead_process)
    annotator = make_user()
    task = make_task(run.project, completions=["one", "two"])
    late, early = run.trajectories.filter(step=3).first(), run.trajectories.filter(step=2).first()
    Candidate.objects.filter(task=task, position=0).update(trajectory=late, metadata={"step": 3})
    Candidate.objects.filter(task=task, position=1).update(trajectory=early, metadata={"step": 2})
    PreferenceLabel.objects.create(task=task, annotator=annotator, ranking=[[0], [1]], submission_key="k1")
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)

    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.CANCELLED
    assert not Trajectory.objects.filter(pk=late.pk).exists()
    first, second = Candidate.objects.filter(task=task).order_by("position")
    assert (first.text, first.trajectory_id) == ("one", None)
    assert first.metadata == {"step": 3, "discarded_on_resume": {"run": run.id, "resumed_from_step": 2}}
    assert (second.trajectory_id, second.metadata) == (early.pk, {"step": 2})
    assert PreferenceLabel.objects.get(task=task).ranking == [[0], [1]]


def test_held_out_answers_after_the_checkpoint_are_discarded_too(sent, dead_process):
    user = make_user()
    project = make_project(owner=user)
    run = run_launch(project=project, user=user, name="tiny", kind="policy",
                     config=tiny_run_config(total_steps=4, checkpoint_every=2), dataset=make_dataset(project),
                     policy=make_policy(project))
    claim = run_claim(run_id=run.id, worker="w1@host")
    prompt = run.dataset.prompts.first()
    for step in (2, 3):
        HeldOutAnswer.objects.create(run=run, step=step, prompt=prompt, completion="4", correct=True,
                                     samples_correct=1, samples=1, length=1)
    Checkpoint.objects.create(run=run, step=3, path="/nowhere/step-3")

    counts = run_discard_after(claim=claim, step=2)
    assert (counts["held-out answers"], counts["checkpoints"]) == (1, 1)
    assert list(HeldOutAnswer.objects.filter(run=run).values_list("step", flat=True)) == [2]
    assert run_discard_after(claim=claim, step=2) == dict.fromkeys(counts, 0)


def test_an_attempt_that_lost_the_run_discards_nothing(sent):
    user = make_user()
    project = make_project(owner=user)
    run = run_launch(project=project, user=user, name="tiny", kind="policy", config=tiny_run_config(),
                     dataset=make_dataset(project), policy=make_policy(project))
    claim = run_claim(run_id=run.id, worker="w1@host")
    metric_points_upsert(run_id=run.id, points=[("reward", 3, 1.0)])
    Run.objects.filter(pk=run.pk).update(attempts=claim.attempt + 1)  # another worker took it over

    with pytest.raises(LeaseLost):
        run_discard_after(claim=claim, step=2)
    assert MetricPoint.objects.filter(run=run, step=3).exists()
