"""What the run pages read stays bounded as a run's stored answers grow."""

import json

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import PASSWORD, make_dataset, make_project, make_run, make_user
from webapp.experiments.models import HeldOutAnswer, RunStatus, Trajectory
from webapp.experiments.selectors import held_out_steps, trajectory_steps
from webapp.experiments.views import HELD_OUT_PAGE

pytestmark = pytest.mark.django_db


def _answers(run, held_out, step, correct):
    HeldOutAnswer.objects.bulk_create([
        HeldOutAnswer(run=run, step=step, prompt=p, completion=f"answer {p.index}", correct=correct(p.index),
                      samples_correct=0, samples=2, length=2) for p in held_out.prompts.all()])


@pytest.fixture
def loaded_answers():
    """How many HeldOutAnswer objects a block of code makes."""
    made = []

    def count(sender, instance, **kwargs):
        made.append(instance)

    post_init.connect(count, sender=HeldOutAnswer)
    yield made
    post_init.disconnect(count, sender=HeldOutAnswer)


@pytest.mark.parametrize("prompts", [3, 2 * HELD_OUT_PAGE + 30])
def test_the_held_out_page_reads_one_page_of_answers_however_many_prompts(client, loaded_answers, prompts,
                                                                          django_assert_max_num_queries):
    """A page of 100 answers, whatever the held-out set (up to 50,000 prompts): every answer of
    the step, and every answer of the step before, were read into Python to show 100."""
    user = make_user()
    project = make_project(researcher=user)
    held_out = make_dataset(project, n=prompts)
    run = make_run(project, status=RunStatus.SUCCEEDED, eval_dataset=held_out)
    _answers(run, held_out, 1, lambda i: i % 2 == 0)
    _answers(run, held_out, 2, lambda i: i % 3 == 0)
    assert client.login(username=user.username, password=PASSWORD)
    url = reverse("experiments:held_out", args=[project.id, run.id])
    loaded_answers.clear()
    with django_assert_max_num_queries(12):
        body = client.get(url, {"show": "changed"}).content.decode()
    assert len(loaded_answers) <= HELD_OUT_PAGE
    changed = [i for i in range(prompts) if (i % 2 == 0) != (i % 3 == 0)]
    table = body[body.index('id="held-out"'):body.index("</table>")]
    assert table.count("<tr class=") == min(len(changed), HELD_OUT_PAGE)
    assert f">answer {changed[0]}<" in table and table.count("newly ") == table.count("<tr class=")
    last = client.get(url, {"show": "changed", "page": 3}).content.decode()
    if len(changed) > 2 * HELD_OUT_PAGE:
        assert f">answer {changed[-1]}<" in last and f"({len(changed)} prompts)" in last
    wrong = client.get(url, {"show": "wrong", "step": 1}).content.decode()
    assert ">answer 1<" in wrong and ">answer 0<" not in wrong


def _rows_read(sql: str, table: str) -> int:
    """Rows PostgreSQL's plan for ``sql`` read from ``table`` (index scans preferred, as on a large table)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")  # as on a table that has been in use
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan

    def walk(node):
        own = node["Actual Rows"] * node["Actual Loops"] if node.get("Relation Name") == table else 0
        return own + sum(walk(child) for child in node.get("Plans", []))

    return walk(plan[0]["Plan"])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's plan")
@pytest.mark.parametrize("per_step", [2, 40])
def test_the_steps_of_a_runs_trajectories_cost_a_probe_per_step_not_a_read_per_row(per_step):
    """The trajectory browser lists a run's steps on every 5-second poll of a live run: a read of
    every row (DISTINCT) cost 300 ms for a run of 5,000 steps × 64 completions."""
    project = make_project()
    run, other = make_run(project), make_run(project)
    for r, steps in ((run, [0, 5, 6, 30]), (other, [1, 2])):
        Trajectory.objects.bulk_create([
            Trajectory(run=r, step=s, group_index=0, sample_index=i, prompt_text="p", completion="c", reward=0.0,
                       length=1) for s in steps for i in range(per_step)])
    with CaptureQueriesContext(connection) as queries:
        assert trajectory_steps(run=run) == [0, 5, 6, 30]
        assert held_out_steps(run=run) == []
    [sql, _] = [q["sql"] for q in queries.captured_queries]
    assert _rows_read(sql, Trajectory._meta.db_table) <= 2 * 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's plan")
def test_a_page_of_a_runs_trajectories_ranked_by_reward_reads_about_a_page_of_rows():
    """?ordering=-reward pages through a run's trajectories by reward: each page read and sorted
    every row of the run (1 s a page for 320,000 trajectories) before an index led with (run, reward)."""
    from tests.webapp.api.conftest import api_user, token_client

    user = api_user()
    project = make_project(owner=user)
    run = make_run(project)
    Trajectory.objects.bulk_create([
        Trajectory(run=run, step=s, group_index=0, sample_index=0, prompt_text="p", completion=f"c{s}",
                   reward=(s * 37 % 400) / 400, length=1) for s in range(400)])
    api = token_client(user)
    with CaptureQueriesContext(connection) as queries:
        body = api.get(f"/api/v1/runs/{run.id}/trajectories/?ordering=-reward&page_size=10").json()
    assert [r["reward"] for r in body["results"]] == [(399 - i) / 400 for i in range(10)]
    [sql] = [q["sql"] for q in queries.captured_queries if 'FROM "experiments_trajectory"' in q["sql"]]
    assert _rows_read(sql, Trajectory._meta.db_table) <= 20
    ranked = api.get(body["next"]).json()["results"]
    assert [r["reward"] for r in ranked] == [(389 - i) / 400 for i in range(10)]
