"""The run page's Compare picker finds any run of the project by its name or a tag (?find=, as
a plain GET form or htmx as you type), not only the 20 newest of the run's kind, and never a run
of another project."""

import re

import pytest
from django.urls import reverse

from tests.factories import make_project, make_run, make_user
from webapp.experiments.models import RunKind, RunTag
from webapp.experiments.views import COMPARE_CHOICES

pytestmark = pytest.mark.django_db


def offered(html: str) -> list[str]:
    """The names of the runs the picker offers, in its order."""
    return re.findall(r'<input type="checkbox" data-name="([^"]*)" name="compare"', html)


def ticked(html: str) -> list[str]:
    return re.findall(r'name="compare" value="(\d+)" checked', html)


HTMX = {"HX-Request": "true", "HX-Target": "compare-candidates"}  # the search box's request


def detail(client, run, headers=None, **query):
    return client.get(reverse("experiments:detail", args=[run.project_id, run.id]), query, headers=headers)


def busy_project(project):
    """A baseline of last week and a DPO run, under 25 newer policy runs; the newest is the run."""
    baseline = make_run(project, name="grpo baseline")
    RunTag.objects.create(run=baseline, name="paper-v1")
    make_run(project, name="dpo from labels", kind=RunKind.DPO)
    runs = [make_run(project, name=f"policy {i}") for i in range(25)]
    return runs[-1]


def test_the_picker_offers_the_newest_of_the_runs_kind_and_says_a_search_finds_the_rest(client, researcher):
    run = busy_project(researcher)
    html = detail(client, run).content.decode()
    assert offered(html) == [f"policy {i}" for i in range(23, 23 - COMPARE_CHOICES, -1)]
    assert ("The 20 newest runs of this run's kind (Policy RL); search to find any run of the project by its name "
            "or a tag.") in html
    assert 'name="find"' in html and 'role="search"' in html


def test_a_search_finds_an_older_run_by_its_name_or_a_tag_of_any_kind(client, researcher):
    run = busy_project(researcher)
    assert offered(detail(client, run, find="BASELINE").content.decode()) == ["grpo baseline"]
    assert offered(detail(client, run, find="paper").content.decode()) == ["grpo baseline"]  # a part of a tag
    html = detail(client, run, find="from labels").content.decode()
    assert offered(html) == ["dpo from labels"] and "(DPO from preference pairs)</span></label>" in html  # another kind, said
    assert '<details class="compare" open>' in html and 'value="from labels"' in html


def test_the_htmx_search_answers_the_candidates_alone_keeping_the_ticked_runs(client, researcher):
    run = busy_project(researcher)
    ticked_run = make_run(researcher, name="policy ticked")
    response = detail(client, run, HTMX, find="baseline", compare=[ticked_run.id])
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html and "Metrics" not in html
    assert offered(html) == ["grpo baseline", "policy ticked"]
    assert ticked(html) == [str(ticked_run.id)]
    nothing = detail(client, run, HTMX, find="no such run").content.decode()
    assert offered(nothing) == [] and "No other run's name or tag contains “no such run”." in nothing


def test_a_search_offers_at_most_the_picker_s_count_and_says_there_are_more(client, researcher):
    run = busy_project(researcher)
    html = detail(client, run, find="policy").content.decode()
    assert len(offered(html)) == COMPARE_CHOICES and "policy 24" not in offered(html)  # the run itself
    assert "there are more: add to the search" in html


def test_a_search_never_offers_another_projects_run_nor_the_run_itself(client, researcher):
    run = make_run(researcher, name="baseline mine")
    make_run(researcher, name="baseline older")
    theirs = make_run(make_project(owner=make_user()), name="baseline theirs")
    RunTag.objects.create(run=theirs, name="baseline")
    for headers in (None, HTMX):
        assert offered(detail(client, run, headers, find="baseline").content.decode()) == ["baseline older"]


def test_the_picker_shows_when_the_only_other_runs_are_of_another_kind(client, researcher):
    make_run(researcher, name="dpo", kind=RunKind.DPO)
    run = make_run(researcher, name="policy")
    html = detail(client, run).content.decode()
    assert offered(html) == [] and 'id="compare-find"' in html
    alone = make_run(researcher, name="alone", kind=RunKind.SFT)
    RunTag.objects.all().delete()
    researcher.runs.exclude(pk=alone.pk).delete()
    assert 'id="compare-find"' not in detail(client, alone).content.decode()  # no other run to find


def test_the_search_and_the_names_are_escaped(client, researcher):
    make_run(researcher, name='<img src=x onerror="alert(1)">')
    run = make_run(researcher, name="policy")
    html = detail(client, run, find='<img src=x onerror="alert(1)">').content.decode()
    assert '<img src=x' not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
