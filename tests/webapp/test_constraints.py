"""Database constraints hold even when code forgets them."""

import pytest
from django.db import IntegrityError, transaction

from tests.factories import make_project, make_run, make_user
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import MetricChunk, MetricPoint, Run
from webapp.feedback.models import Candidate, ComparisonTask, PreferenceLabel
from webapp.projects.models import Membership

pytestmark = pytest.mark.django_db


def chunk(run, key, steps):
    return MetricChunk.objects.create(run=run, key=key, step_min=steps[0], step_max=steps[-1],
                                      points=[[s, 1.0] for s in steps])


def test_metric_point_is_unique_per_run_key_and_step():
    """Points live in chunks; the database refuses two chunks of one series whose step ranges meet."""
    project = make_project(owner=make_user())
    run, other = make_run(project), make_run(project)
    chunk(run, "reward", [1, 3])
    chunk(run, "reward", [4, 9])
    chunk(run, "kl", [1, 3])  # another series
    chunk(other, "reward", [1, 3])  # another run
    for steps in ([3], [2], [0, 10], [9, 12]):
        with pytest.raises(IntegrityError), transaction.atomic():
            chunk(run, "reward", steps)
    moved = MetricChunk.objects.get(run=run, key="reward", step_min=4)
    moved.step_min = 2
    with pytest.raises(IntegrityError), transaction.atomic():
        moved.save()
    assert MetricPoint.objects.filter(run=run, key="reward").count() == 4


def test_metric_points_written_twice_are_one_point():
    run = make_run(make_project(owner=make_user()))
    metric_points_upsert(run_id=run.id, points=[("reward", s, 0.5) for s in range(10)])
    metric_points_upsert(run_id=run.id, points=[("reward", s, 0.7) for s in range(5, 15)])
    rows = list(MetricPoint.objects.filter(run=run).order_by("step").values_list("step", "value"))
    assert rows == [(s, 0.5) for s in range(5)] + [(s, 0.7) for s in range(5, 15)]


def test_one_label_per_annotator_and_task():
    annotator = make_user()
    project = make_project(annotator=annotator)
    task = ComparisonTask.objects.create(project=project, prompt_text="p")
    Candidate.objects.bulk_create([Candidate(task=task, position=i, text=f"c{i}") for i in range(2)])
    PreferenceLabel.objects.create(task=task, annotator=annotator, ranking=[[0], [1]], submission_key="k1")
    PreferenceLabel.objects.create(task=task, annotator=make_user(), ranking=[[1], [0]], submission_key="k2")
    with pytest.raises(IntegrityError), transaction.atomic():
        PreferenceLabel.objects.create(task=task, annotator=annotator, ranking=[[1], [0]], submission_key="k3")


def test_run_status_outside_the_machine_is_refused_by_the_database():
    run = make_run(make_project(owner=make_user()))
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.filter(pk=run.pk).update(status="exploded")


def test_run_progress_stays_in_unit_interval():
    run = make_run(make_project(owner=make_user()))
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.filter(pk=run.pk).update(progress=1.5)


def test_one_membership_per_user_and_project():
    user = make_user()
    project = make_project(owner=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(project=project, user=user, role="annotator")


def test_gold_task_needs_its_ranking():
    project = make_project(owner=make_user())
    with pytest.raises(IntegrityError), transaction.atomic():
        ComparisonTask.objects.create(project=project, prompt_text="p", is_gold=True)
