"""A task remembers the run it was made from, by name, after the run is deleted."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_run, make_user
from webapp.experiments.models import RunStatus, Trajectory
from webapp.experiments.services import run_delete
from webapp.feedback.models import ComparisonTask
from webapp.feedback.services import comparison_tasks_from_run


def run_with_a_group(project, name):
    run = make_run(project, status=RunStatus.SUCCEEDED, name=name)
    for sample in range(2):
        Trajectory.objects.create(run=run, step=0, group_index=0, sample_index=sample, prompt_text="2+2?",
                                  completion=f"answer {sample}", reward=sample, length=2)
    return run


@pytest.mark.django_db
def test_the_task_list_names_a_deleted_source_run_and_links_a_live_one(client, settings, tmp_path):
    settings.STEER_CHECKPOINT_DIR = tmp_path
    user = make_user()
    project = make_project(owner=user)
    gone, live = run_with_a_group(project, "<b>grpo</b> v1"), run_with_a_group(project, "grpo v2")
    [from_gone] = comparison_tasks_from_run(project=project, run=gone, step_min=0, step_max=0, k=2)
    comparison_tasks_from_run(project=project, run=live, step_min=0, step_max=0, k=2)
    assert from_gone.source_run_name == "<b>grpo</b> v1"
    run_delete(run_id=gone.id)

    client.login(username=user.username, password=PASSWORD)
    body = client.get(reverse("feedback:tasks", args=[project.id])).content.decode()
    assert "&lt;b&gt;grpo&lt;/b&gt; v1 <span class=\"muted\">(deleted run)</span>" in body
    assert f'<a href="{reverse("experiments:detail", args=[project.id, live.id])}">grpo v2</a>' in body
    assert ">import<" not in body
    api_task = client.get(f"/api/v1/tasks/{from_gone.id}/").json()
    assert (api_task["source_run"], api_task["source_run_name"]) == (None, "<b>grpo</b> v1")


@pytest.mark.django_db(transaction=True)
def test_the_migration_copies_the_names_of_existing_source_runs():
    executor = MigrationExecutor(connection)
    executor.migrate([("feedback", "0002_assignment_indexes")])
    old = executor.loader.project_state([("feedback", "0002_assignment_indexes")]).apps
    project = old.get_model("projects", "Project").objects.create(name="p", slug="p")
    run = old.get_model("experiments", "Run").objects.create(project=project, name="grpo v1", kind="external")
    Task = old.get_model("feedback", "ComparisonTask")
    made, imported = (Task.objects.create(project=project, source_run=run, prompt_text="q"),
                      Task.objects.create(project=project, prompt_text="q"))

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert ComparisonTask.objects.get(pk=made.pk).source_run_name == "grpo v1"
    assert ComparisonTask.objects.get(pk=imported.pk).source_run_name == ""
