"""What the feedback pages read stays bounded as a project's runs, trajectories and labels grow."""

import uuid

import pytest
from django.db import connection
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import make_dataset, make_run
from tests.webapp.feedback.conftest import login
from webapp.experiments.models import Trajectory
from webapp.feedback.head_to_head import comparison_tasks_head_to_head_outcome, head_to_head
from webapp.feedback.selectors import run_choices
from webapp.feedback.services import comparison_tasks_from_run, label_submit

pytestmark = pytest.mark.django_db


def _trajectories(run, n: int) -> None:
    Trajectory.objects.bulk_create([
        Trajectory(run=run, step=i, group_index=0, sample_index=0, prompt_text="p", completion=f"c{i}", reward=0.0,
                   length=1) for i in range(n)])


def test_runs_to_build_tasks_from_are_found_without_reading_every_trajectory(project):
    """Each run with trajectories once, newest first; asked per run (EXISTS), not by joining every
    trajectory of the project and removing the duplicates (DISTINCT), which read 100,000
    trajectories for a list of 37 runs (0.7 s for the head-to-head form)."""
    older, empty, newer = make_run(project, name="older"), make_run(project, name="empty"), make_run(project, name="newer")
    _trajectories(older, 20)
    _trajectories(newer, 2)
    with CaptureQueriesContext(connection) as queries:
        assert [r.name for r in run_choices(project=project)] == ["newer", "older"]
    [sql] = [q["sql"] for q in queries.captured_queries]
    assert "EXISTS" in sql.upper() and "DISTINCT" not in sql.upper()
    assert empty not in run_choices(project=project)


@pytest.mark.parametrize("page", ["task_from_run", "task_head_to_head"])
def test_the_forms_that_choose_a_run_list_each_run_once(client, project, researcher, page):
    for name in ("a", "b"):
        _trajectories(make_run(project, name=f"run {name}"), 5)
    body = login(client, researcher).get(reverse(f"feedback:{page}", args=[project.id])).content.decode()
    assert body.count(">run a<") == body.count(">run b<") >= 1


@pytest.mark.parametrize("groups", [3, 40])
def test_tasks_from_a_run_read_the_texts_of_the_chosen_completions_only(project, groups):
    """Two tasks from a step range of any size: the range's completions were all read into Python
    (500 MB for 64,000 completions of 2-8 kB) to keep the few that become candidates. Duplicate
    texts in a group still count once."""
    run = make_run(project)
    Trajectory.objects.bulk_create([
        Trajectory(run=run, step=g // 4, group_index=g % 4, sample_index=i, prompt_text=f"p{g}",
                   completion="same" if i < 2 else f"text {g}.{i}", reward=i / 4, length=1)
        for g in range(groups) for i in range(4)])
    made = []

    def count(sender, instance, **kwargs):
        made.append(instance)

    post_init.connect(count, sender=Trajectory)
    try:
        tasks = comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=100, k=3, max_tasks=2,
                                          seed=7)
    finally:
        post_init.disconnect(count, sender=Trajectory)
    assert len(made) <= 2 * 3
    for task in tasks:
        texts = [c.text for c in task.candidates.all()]
        assert len(set(texts)) == 3 and "same" in texts


@pytest.mark.parametrize("steps", [1, 12])
def test_head_to_head_tasks_read_the_texts_of_the_drawn_answers_only(project, steps):
    """Blind comparisons of two runs draw one answer of each per prompt: every trajectory of both
    runs, at every step, was read into Python (1 GB for two policy runs of 64,000 completions)."""
    dataset = make_dataset(project, n=6)
    prompts = list(dataset.prompts.order_by("index"))
    runs = [make_run(project, name=name) for name in ("base", "tuned")]
    Trajectory.objects.bulk_create([
        Trajectory(run=run, step=step, group_index=g, sample_index=i, prompt=p, prompt_text=p.text,
                   completion="same answer" if g == 0 else f"{run.name} {step}.{g}.{i}", reward=0.0, length=1)
        for run in runs for step in range(steps) for g, p in enumerate(prompts) for i in range(2)])
    made = []

    def count(sender, instance, **kwargs):
        made.append(instance)

    post_init.connect(count, sender=Trajectory)
    try:
        outcome = comparison_tasks_head_to_head_outcome(project=project, run_a=runs[0], run_b=runs[1], max_tasks=6,
                                                        seed=1)
    finally:
        post_init.disconnect(count, sender=Trajectory)
    assert (len(outcome.tasks), outcome.skipped_identical) == (5, 1)
    assert len(made) <= 2 * 5
    texts = [c.text for t in outcome.tasks for c in t.candidates.all()]
    assert all(text.split()[1].startswith(f"{steps - 1}.") for text in texts)


@pytest.mark.parametrize("opponents", [1, 4])
def test_a_runs_page_reads_its_head_to_head_results_in_queries_that_do_not_grow_with_its_opponents(
        client, project, researcher, annotator, opponents, django_assert_max_num_queries):
    """Two queries per run it was compared with, before."""
    dataset = make_dataset(project, n=2)
    prompts = list(dataset.prompts.order_by("index"))
    base, *others = [make_run(project, name=f"run{i}") for i in range(opponents + 1)]
    Trajectory.objects.bulk_create([
        Trajectory(run=run, step=0, group_index=g, sample_index=0, prompt=p, prompt_text=p.text,
                   completion=f"{run.name} {g}", reward=0.0, length=1)
        for run in (base, *others) for g, p in enumerate(prompts)])
    for other in others:
        for task in comparison_tasks_head_to_head_outcome(project=project, run_a=base, run_b=other, seed=1).tasks:
            first = task.candidates.get(position=0).metadata["run"] == base.pk
            label_submit(task=task, annotator=annotator, ranking=[[0], [1]] if first else [[1], [0]],
                         submission_key=uuid.uuid4().hex)
    login(client, researcher)
    with django_assert_max_num_queries(16):
        body = client.get(reverse("experiments:detail", args=[project.id, base.id])).content.decode()
    assert all(f">{other.name}<" in body for other in others)
    assert [head_to_head(project=project, run_a_id=base.id, run_b_id=o.id).a_wins for o in others] == [2] * opponents
    assert head_to_head(project=project, run_a_id=others[0].id, run_b_id=base.id).b_wins == 2
