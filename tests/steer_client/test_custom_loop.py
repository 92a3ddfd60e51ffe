"""SteerCallback in a training loop of the user's own, without a transformers Trainer (docs/api.md:
``start()``, ``log_metrics`` / ``log_completions``, ``finish``), against a live Steer server."""

import pytest

import steer_client
from tests.factories import make_project, make_user
from webapp.accounts.services import api_token_create
from webapp.experiments.models import MetricPoint, Run, RunKind, RunStatus, Trajectory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def callback(live_server):
    user = make_user()
    project = make_project(owner=user)
    token = api_token_create(user=user, name="loop")[1]
    callback = steer_client.SteerCallback(
        live_server.url, token, project.id, run_name="my-loop", flush_every_s=3600
    )
    yield callback
    callback.finished = (
        True  # a test that failed half-way leaves no exit hook to report
    )


def test_a_loop_of_ones_own_reports_its_run_from_start_to_finish(callback):
    """Without a Trainer nothing created the run: every point and completion was kept in the
    buffer and lost at the process's exit, without a word."""
    callback.log_metrics(
        0, {"loss": 3.0}
    )  # before start: kept, sent once the run exists
    callback.start(total_steps=2)
    run = Run.objects.get(pk=callback.run_id)
    assert (run.kind, run.name, run.status, run.total_steps) == (
        RunKind.EXTERNAL,
        "my-loop",
        RunStatus.RUNNING,
        2,
    )
    assert run.config == {"trainer": "custom"}
    for step in (1, 2):
        callback.log_metrics(step, {"loss": 1.0 / step})
        callback.log_completions(step, ["2+2?", "2+2?"], ["4", "5"], [1.0, 0.0])
    callback.finish("succeeded", current_step=2)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.current_step == 2
    assert list(
        MetricPoint.objects.filter(run=run, key="loss")
        .order_by("step")
        .values_list("step", "value")
    ) == [(0, 3.0), (1, 1.0), (2, 0.5)]
    assert list(
        Trajectory.objects.filter(run=run)
        .order_by("step", "sample_index")
        .values_list("step", "group_index", "sample_index", "completion")
    ) == [(1, 0, 0, "4"), (1, 0, 1, "5"), (2, 0, 0, "4"), (2, 0, 1, "5")]


def test_finish_sends_what_is_still_buffered_before_ending_the_run(callback):
    """finish() ended the run with the last points still in the buffer (only on_train_end
    flushed first), so a loop that called it lost its last steps."""
    callback.start()
    callback.log_metrics(7, {"reward": 0.25})
    callback.log_completions(7, ["p"], ["c"], [0.25])
    callback.finish("succeeded")
    run = Run.objects.get(pk=callback.run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert MetricPoint.objects.filter(
        run=run, key="reward", step=7, value=0.25
    ).exists()
    assert Trajectory.objects.filter(run=run, step=7, completion="c").exists()


def test_logging_without_a_run_says_so_once(callback, caplog):
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.log_metrics(1, {"loss": 1.0})
        callback.log_completions(1, ["p"], ["c"], [1.0])
    warnings = [
        r.getMessage() for r in caplog.records if "no run yet" in r.getMessage()
    ]
    assert len(warnings) == 1 and "call start() first" in warnings[0]
    assert (
        not Run.objects.exists()
        and len(callback.points) == 1
        and len(callback.records) == 1
    )


def test_a_refused_start_raises_before_the_loop_begins(callback):
    callback.project = 10**9  # not one of the caller's projects
    with pytest.raises(steer_client.SteerError) as refused:
        callback.start()
    assert (
        refused.value.status == 404
        and callback.run_id is None
        and not Run.objects.exists()
    )
