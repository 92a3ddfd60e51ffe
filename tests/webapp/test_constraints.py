"""Database constraints hold even when code forgets them."""

import pytest
from django.db import IntegrityError, transaction

from tests.factories import make_project, make_run, make_user
from webapp.experiments.models import MetricPoint, Run
from webapp.feedback.models import Candidate, ComparisonTask, PreferenceLabel
from webapp.projects.models import Membership

pytestmark = pytest.mark.django_db


def test_metric_point_is_unique_per_run_key_and_step():
    run = make_run(make_project(owner=make_user()))
    MetricPoint.objects.create(run=run, key="reward", step=3, value=1.0)
    MetricPoint.objects.create(run=run, key="reward", step=4, value=1.0)
    MetricPoint.objects.create(run=run, key="kl", step=3, value=1.0)
    with pytest.raises(IntegrityError), transaction.atomic():
        MetricPoint.objects.create(run=run, key="reward", step=3, value=2.0)


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
