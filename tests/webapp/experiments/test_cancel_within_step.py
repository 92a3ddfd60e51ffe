"""A cancel asked while a policy run's worker is inside a step reaches the engine through the
run's row (``RunRecorder.should_stop``) within the step: the run ends cancelled at its last
completed step, with nothing of the abandoned step recorded."""

import pytest

from tests.factories import (
    make_dataset,
    make_policy,
    make_project,
    make_user,
    tiny_run_config,
)
from webapp.experiments.models import Checkpoint, MetricPoint, RunStatus, Trajectory
from webapp.experiments.services import run_cancel, run_execute, run_launch
from workers.engine import rollout, static_decoder, stopping

pytestmark = pytest.mark.django_db(transaction=False)


def test_a_cancel_during_a_steps_rollout_ends_the_run_at_the_last_completed_step(
    sent, monkeypatch
):
    """Old behaviour: the step being sampled ran to its end and was recorded (current_step 2)."""
    user = make_user()
    project = make_project(owner=user)
    run = run_launch(
        project=project,
        user=user,
        name="tiny",
        kind="policy",
        config=tiny_run_config(total_steps=5, checkpoint_every=100),
        dataset=make_dataset(project),
        policy=make_policy(project),
    )
    monkeypatch.setattr(stopping, "POLL_INTERVAL_S", 0.0)
    real_draw = rollout.draw_tokens
    draws_after_cancel = []

    def draw(*args, **kwargs):
        if draws_after_cancel:
            draws_after_cancel.append(1)
        elif MetricPoint.objects.filter(
            run=run, step=1
        ).exists():  # step 2's first token
            run_cancel(run_id=run.id)
            draws_after_cancel.append(1)
        return real_draw(*args, **kwargs)

    monkeypatch.setattr(rollout, "draw_tokens", draw)
    monkeypatch.setattr(static_decoder, "draw_tokens", draw)
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.CANCELLED
    assert (
        len(draws_after_cancel) == 1
    )  # the poll before step 2's second token stopped it
    run.refresh_from_db()
    assert (run.status, run.current_step) == (RunStatus.CANCELLED, 1)
    assert set(MetricPoint.objects.filter(run=run).values_list("step", flat=True)) == {
        1
    }
    assert set(Trajectory.objects.filter(run=run).values_list("step", flat=True)) == {1}
    assert list(Checkpoint.objects.filter(run=run).values_list("step", flat=True)) == [
        1
    ]
