"""A reward-model run on labels that cannot train (all ties, or the decisive ones all held out
for evaluation) is refused at launch, not failed by the worker ('every record is a tie')."""

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


def test_a_training_that_diverges_to_a_nan_loss_ends_its_run_instead_of_crashing_the_task(sent):
    """A margin of 1e300 makes the loss NaN; registering {"loss": NaN} failed on PostgreSQL's
    JSON column and the exception left the run running."""
    from webapp.rewards.models import RewardModel

    project, user = project_with_labels([[[0], [1, 2]], [[2], [1], [0]], [[1], [0, 2]], [[0], [2], [1]]])
    run = launch(project, user, margin=1e300, eval_fraction=0.0)
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED
    metrics = RewardModel.objects.get(training_run=run).metrics
    assert "loss" not in metrics and all(value == value for value in metrics.values())
