"""The runs list filtered by name, kind and status, with a metric's latest value as a column to
sort by (as MLflow's runs table), the filters kept by the pager and the table's poll."""

import re

import pytest
from django.urls import reverse

from tests.factories import make_project, make_run, make_user
from tests.webapp.api.conftest import api_user, token_client
from tests.webapp.experiments.conftest import shown_runs as shown
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import Run, RunKind, RunStatus
from webapp.experiments.run_notes import run_notes_update
from webapp.experiments.views import RUNS_PAGE

pytestmark = pytest.mark.django_db


def page(client, project, **query) -> str:
    response = client.get(reverse("experiments:list", args=[project.id]), query)
    assert response.status_code == 200
    return response.content.decode()


def test_runs_are_filtered_by_a_part_of_the_name_kind_and_status(client, researcher):
    make_run(researcher, name="grpo-math-lr1e-6", status=RunStatus.SUCCEEDED)
    make_run(researcher, name="GRPO-math-lr3e-6", status=RunStatus.FAILED)
    make_run(researcher, name="dpo-math", kind=RunKind.DPO, status=RunStatus.SUCCEEDED)
    make_run(researcher, name="rm", kind=RunKind.REWARD_MODEL, status=RunStatus.RUNNING)
    assert shown(page(client, researcher, q="grpo")) == ["GRPO-math-lr3e-6", "grpo-math-lr1e-6"]  # any case
    assert shown(page(client, researcher, q="  math ", kind="dpo")) == ["dpo-math"]
    assert shown(page(client, researcher, status="succeeded")) == ["dpo-math", "grpo-math-lr1e-6"]
    html = page(client, researcher, q="nothing like it")
    assert shown(html) == [] and "No runs match these filters." in html and ">Clear</a>" in html
    assert "No runs yet." not in html
    assert ">Clear</a>" not in page(client, researcher)


def test_an_unknown_kind_or_status_is_said_and_filters_nothing(client, researcher):
    make_run(researcher, name="a")
    html = page(client, researcher, kind="ppo", status="done")
    assert shown(html) == ["a"]
    assert "Kind: Select a valid choice. ppo is not one of the available choices. It is left out." in html
    assert "Status: Select a valid choice. done is not one of the available choices. It is left out." in html


def test_a_metric_column_shows_each_runs_latest_value_and_sorts_by_it(client, researcher):
    low, high, _ = (make_run(researcher, name=n, status=RunStatus.SUCCEEDED) for n in ("low", "high", "none"))
    metric_points_upsert(run_id=low.id, points=[["reward", 1, 0.9], ["reward", 2, 0.25]])  # latest, not best
    metric_points_upsert(run_id=high.id, points=[["reward", 1, 0.5], ["loss", 1, 2.0]])
    html = page(client, researcher, metric="reward")
    assert '<th class="mono">reward</th>' in html
    assert shown(html) == ["none", "high", "low"]  # newest first still
    cells = re.findall(r'<td class="number">(.*?)</td>', html)
    assert cells == ['<span class="muted">–</span>', "0.5000", "0.2500"]
    assert shown(page(client, researcher, metric="reward", order="desc")) == ["high", "low", "none"]
    assert shown(page(client, researcher, metric="reward", order="asc")) == ["low", "high", "none"]  # none last
    options = re.findall(r'<option value="([^"]*)"', html.split('name="metric"')[1].split("</select>")[0])
    assert options == ["", "loss", "reward"]  # the project's keys


def test_a_metric_no_run_has_or_an_order_without_a_metric_is_said(client, researcher):
    make_run(researcher, name="a")
    html = page(client, researcher, metric="rewrad")
    assert "Metric column: Select a valid choice. rewrad is not one of the available choices." in html
    assert '<th class="mono">' not in html
    assert "Order: Choose a metric column to order by. It is left out." in page(client, researcher, order="desc")


def test_another_projects_metric_keys_are_not_offered(client, researcher):
    other = make_project(owner=make_user())
    metric_points_upsert(run_id=make_run(other, name="theirs").id, points=[["secret/key", 1, 1.0]])
    make_run(researcher, name="mine")
    html = page(client, researcher)
    assert "secret/key" not in html
    assert "Metric column: Select a valid choice." in page(client, researcher, metric="secret/key")


def test_the_pager_and_the_poll_keep_the_filters(client, researcher):
    Run.objects.bulk_create([Run(project=researcher, name=f"sweep {i:03}", kind="policy", status=RunStatus.RUNNING)
                             for i in range(RUNS_PAGE + 3)])
    make_run(researcher, name="other")
    first = page(client, researcher, q="sweep", kind="policy")
    assert "Page 1 of 2 (53 runs)" in first
    assert 'href="?page=2&amp;q=sweep&amp;kind=policy"' in first
    url = reverse("experiments:list", args=[researcher.id])
    assert f'hx-get="{url}?q=sweep&amp;kind=policy"' in first
    second = client.get(url, {"page": 2, "q": "sweep", "kind": "policy"}, HTTP_HX_REQUEST="true").content.decode()
    assert shown(second) == ["sweep 002", "sweep 001", "sweep 000"]
    assert f'hx-get="{url}?page=2&amp;q=sweep&amp;kind=policy"' in second
    assert 'href="?q=sweep&amp;kind=policy"' in second  # back to page 1, filters kept


def test_the_filter_form_escapes_what_it_echoes(client, researcher):
    make_run(researcher, name="a")
    html = page(client, researcher, q='"><script>alert(1)</script>')
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_the_api_lists_runs_whose_name_contains_the_search(researcher):
    owner = api_user()
    project = make_project(owner=owner)
    make_run(project, name="GRPO sweep 1")
    make_run(project, name="dpo")
    api = token_client(owner)
    names = [r["name"] for r in api.get(f"/api/v1/projects/{project.id}/runs/", {"search": "grpo"}).json()["results"]]
    assert names == ["GRPO sweep 1"]
    assert len(api.get(f"/api/v1/projects/{project.id}/runs/", {"search": ""}).json()["results"]) == 2


def tag_hrefs(html: str) -> list[str]:
    return re.findall(r'<a class="badge tag" href="([^"]*)">', html)


def test_a_tag_link_keeps_the_other_filters_and_goes_back_to_the_first_page(client, researcher):
    Run.objects.bulk_create([Run(project=researcher, name=f"sweep {i:03}", kind="policy", status=RunStatus.RUNNING)
                             for i in range(RUNS_PAGE + 3)])
    oldest = Run.objects.get(name="sweep 000")
    run_notes_update(run_id=oldest.id, project=researcher, tags=["lr sweep"])
    metric_points_upsert(run_id=oldest.id, points=[["reward", 1, 0.5]])
    html = page(client, researcher, page=2, q="sweep", kind="policy", status="running", metric="reward")
    assert "Page 2 of 2" in html
    assert tag_hrefs(html) == ["?q=sweep&amp;tag=lr+sweep&amp;kind=policy&amp;status=running&amp;metric=reward"]
    followed = page(client, researcher, q="sweep", tag="lr sweep", kind="policy", status="running", metric="reward")
    assert shown(followed) == ["sweep 000"]
    # a tag link on a list already filtered by a tag and ordered by a metric replaces the tag, keeps the order
    html = page(client, researcher, tag="other", metric="reward", order="desc")
    assert shown(html) == []
    html = page(client, researcher, tag="lr sweep", metric="reward", order="desc")
    assert tag_hrefs(html) == ["?tag=lr+sweep&amp;metric=reward&amp;order=desc"]


def test_a_tag_link_encodes_the_tag_and_the_search(client, researcher):
    run = make_run(researcher, name="a&b #1 café")
    run_notes_update(run_id=run.id, project=researcher, tags=["a&b #x é"])
    html = page(client, researcher, q="a&b #1 café")
    assert tag_hrefs(html) == ["?q=a%26b+%231+caf%C3%A9&amp;tag=a%26b+%23x+%C3%A9"]
    assert shown(page(client, researcher, q="a&b #1 café", tag="a&b #x é")) == ["a&amp;b #1 café"]

