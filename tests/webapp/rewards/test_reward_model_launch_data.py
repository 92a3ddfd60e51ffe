"""A reward-model run on labels that cannot train (all ties, or the decisive ones all held out
for evaluation) is refused at launch, not failed by the worker ('every record is a tie')."""

import re

import pytest

from tests.factories import make_project, make_task, make_user
from tests.webapp.rewards.test_reward_model_runs import TINY_RM
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunStatus
from webapp.experiments.services import run_execute, run_launch
from webapp.feedback.labelling import label_submit

pytestmark = pytest.mark.django_db


def project_with_labels(rankings):
    user = make_user()
    project = make_project(owner=user)
    for i, ranking in enumerate(rankings):
        label_submit(task=make_task(project, completions=["Hi!", "Hello there.", "Hey."]), annotator=user,
                     ranking=ranking, submission_key=f"key-label-{i}")
    return project, user


def launch(project, user, **config):
    return run_launch(project=project, user=user, name="rm", kind="reward_model", config={**TINY_RM, **config})


def test_labels_that_are_all_ties_are_refused_at_launch(sent):
    project, user = project_with_labels([[[0, 1, 2]], [[0, 1, 2]]])
    with pytest.raises(RunError) as caught:
        launch(project, user)
    assert caught.value.field == "config.data"
    assert "all 2 of the project's labels are ties" in caught.value.message
    assert not Run.objects.exists() and not sent


def test_decisive_labels_all_in_the_held_out_share_are_refused_naming_eval_fraction(sent):
    from workers.engine.rm_trainer import split_records

    rankings = [[[0, 1, 2]]] * 4
    _, held_out = split_records(4, 0.25, 0)
    rankings[held_out[0]] = [[0], [1, 2]]  # the only decisive label is the one evaluated on
    project, user = project_with_labels(rankings)
    with pytest.raises(RunError) as caught:
        launch(project, user, eval_fraction=0.25, seed=0)
    assert "held-out share (eval_fraction 0.25, seed 0)" in caught.value.message
    assert not Run.objects.exists() and not sent


def test_one_decisive_label_in_the_training_share_launches_and_trains(sent):
    from workers.engine.rm_trainer import split_records

    rankings = [[[0, 1, 2]]] * 4
    train, _ = split_records(4, 0.25, 0)
    rankings[train[0]] = [[2], [0], [1]]
    project, user = project_with_labels(rankings)
    run = launch(project, user, eval_fraction=0.25, seed=0)
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED


def test_a_training_that_diverges_to_a_nan_loss_fails_its_run_saying_so(sent):
    """A centering coefficient of 1e300 makes the loss infinite or NaN (a margin of 1e300 did, before
    margins were bounded: now refused at launch); the run registered a model that scores NaN, and on
    PostgreSQL registering {"loss": NaN} failed the worker's task, leaving the run running."""
    from webapp.rewards.models import RewardModel

    project, user = project_with_labels([[[0], [1, 2]], [[2], [1], [0]], [[1], [0, 2]], [[0], [2], [1]]])
    with pytest.raises(RunError) as caught:
        launch(project, user, margin=1e300, eval_fraction=0.0)
    assert caught.value.field == "config.margin" and "at most 20" in caught.value.message
    run = launch(project, user, center_coef=1e300, eval_fraction=0.0)
    assert run_execute(run_id=run.id, worker="w") == RunStatus.FAILED
    run.refresh_from_db()
    assert re.match(r"training diverged at step 1: the loss is (inf|nan); lower lr, margin", run.error)
    assert not RewardModel.objects.exists()


def test_metrics_that_are_not_finite_are_left_out_of_a_registered_reward_model():
    from tests.factories import make_run
    from webapp.experiments.models import RunKind
    from webapp.rewards.services import reward_model_register

    run = make_run(make_project(), kind=RunKind.REWARD_MODEL, config={**TINY_RM, "ensemble_size": 1})
    model = reward_model_register(run=run, path="/x", metrics={"loss": float("nan"), "grad_norm": float("inf"),
                                                               "eval/accuracy": 0.75})
    model.refresh_from_db()
    assert model.metrics == {"eval/accuracy": 0.75}


def test_the_launch_check_counts_the_labels_in_the_database_without_reading_their_rankings():
    """The launch request read every label's ranking (15,000 JSON arrays) to count the decisive
    ones; with more decisive labels than the held-out share takes, one count settles it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from webapp.rewards.selectors import preference_source_check

    project, _ = project_with_labels([[[0], [1, 2]]] * 3 + [[[0, 1, 2]]])
    with CaptureQueriesContext(connection) as queries:
        preference_source_check(project=project, data={"source": "labels"}, eval_fraction=0.25, seed=0)
    [sql] = [q["sql"] for q in queries.captured_queries]
    assert "COUNT(" in sql and "jsonb_array_length" in sql


def test_a_reward_model_run_is_fixed_at_the_newest_label_and_trains_on_those_alone(sent):
    """Labels given after the launch (or while a lost worker's run waits to start again) are not
    trained on, and the run says which labels its model learned from."""
    from webapp.feedback.models import PreferenceLabel
    from webapp.rewards.selectors import preference_records

    project, user = project_with_labels([[[0], [1, 2]], [[2], [1], [0]]])
    newest = PreferenceLabel.objects.order_by("-pk").first().pk
    run = launch(project, user, eval_fraction=0.0)
    run.refresh_from_db()
    assert run.config["data"] == {"source": "labels", "through_label": newest}

    label_submit(task=make_task(project, prompt="later", completions=["a", "b"]), annotator=user,
                 ranking=[[1], [0]], submission_key="key-label-later")
    assert len(preference_records(project=project, data=run.config["data"])) == 2
    assert len(preference_records(project=project, data={"source": "labels"})) == 3  # a run stored before


def test_a_through_label_the_launch_names_is_kept_and_counted_alone(sent):
    from webapp.feedback.models import PreferenceLabel

    project, user = project_with_labels([[[0, 1, 2]], [[0], [1, 2]]])
    tie = PreferenceLabel.objects.order_by("pk").first().pk
    with pytest.raises(RunError, match="all 1 of the project's labels are ties"):
        launch(project, user, eval_fraction=0.0, data={"source": "labels", "through_label": tie})
    with pytest.raises(RunError, match='at most "through_label"'):
        launch(project, user, data={"source": "labels", "through_label": "newest"})
    run = launch(project, user, eval_fraction=0.0, data={"source": "labels", "through_label": tie + 1})
    assert run.config["data"]["through_label"] == tie + 1
