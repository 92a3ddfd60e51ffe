"""Runs ticked on the runs list open on the first one's page with the others overlaid, and the
run page reads the runs to compare from its address (?compare=), so an overlay can be linked."""

import re

import pytest
from django.urls import reverse

from tests.factories import make_project, make_run, make_user
from webapp.experiments.models import RunKind, RunStatus
from webapp.experiments.selectors import comparison_runs
from webapp.experiments.views import MAX_COMPARED_RUNS

pytestmark = pytest.mark.django_db


def ticked(html: str) -> list[str]:
    return re.findall(r'name="compare" value="(\d+)" checked', html)


def test_the_runs_ticked_on_the_list_open_on_the_first_ones_page(client, researcher):
    a, b, c = (make_run(researcher, name=n) for n in ("a", "b", "c"))
    url = reverse("experiments:compare", args=[researcher.id])
    response = client.get(url, {"run": [c.id, a.id, "x", c.id, b.id]})
    assert response.status_code == 302
    assert response["Location"] == f"/projects/{researcher.id}/runs/{c.id}/?compare={a.id}&compare={b.id}#charts"


@pytest.mark.parametrize("count", [0, 1, MAX_COMPARED_RUNS + 2])
def test_fewer_than_two_or_more_than_the_charts_overlay_go_back_to_the_list_saying_so(client, researcher, count):
    runs = [make_run(researcher, name=f"r{i}") for i in range(max(count, 1))]
    response = client.get(reverse("experiments:compare", args=[researcher.id]),
                          {"run": [r.id for r in runs[:count]]}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("experiments:list", args=[researcher.id])
    assert f"Tick from two to {MAX_COMPARED_RUNS + 1} runs to compare" in response.content.decode()


def test_another_projects_run_is_not_compared(client, researcher):
    mine = make_run(researcher, name="mine")
    theirs = make_run(make_project(owner=make_user()), name="theirs")
    response = client.get(reverse("experiments:compare", args=[researcher.id]), {"run": [mine.id, theirs.id]},
                          follow=True)
    assert "(1 ticked)" in response.content.decode() and "theirs" not in response.content.decode()


def test_the_run_page_ticks_the_runs_its_address_names_even_older_ones_or_of_another_kind(client, researcher):
    old_dpo = make_run(researcher, name="old dpo", kind=RunKind.DPO, status=RunStatus.SUCCEEDED)
    runs = [make_run(researcher, name=f"policy {i}") for i in range(25)]
    base, recent = runs[-1], runs[-2]
    assert runs[0] not in comparison_runs(run=base)  # beyond the 20 newest the page offers
    html = client.get(reverse("experiments:detail", args=[researcher.id, base.id]),
                      {"compare": [recent.id, runs[0].id, old_dpo.id]}).content.decode()
    assert sorted(ticked(html)) == sorted(str(r.id) for r in (recent, runs[0], old_dpo))
    assert '<details class="compare" open>' in html
    assert "not found in this project" not in html


def test_runs_to_compare_not_found_are_counted_alike_whatever_they_are(client, researcher):
    base = make_run(researcher, name="base")
    mine = make_run(researcher, name="mine")
    theirs = make_run(make_project(owner=make_user()), name="their secret run")
    html = client.get(reverse("experiments:detail", args=[researcher.id, base.id]),
                      {"compare": [mine.id, theirs.id, 999_999_999, "abc", base.id]}).content.decode()
    assert ticked(html) == [str(mine.id)]
    assert "3 runs to compare in the address were not found in this project." in html
    assert "their secret run" not in html
    html = client.get(reverse("experiments:detail", args=[researcher.id, base.id])).content.decode()
    assert ticked(html) == [] and '<details class="compare">' in html


def test_the_list_offers_the_compare_button_with_two_runs_or_more(client, researcher):
    url = reverse("experiments:list", args=[researcher.id])
    make_run(researcher, name="one")
    assert 'id="compare-form"' not in client.get(url).content.decode()
    run = make_run(researcher, name="two")
    html = client.get(url).content.decode()
    assert 'id="compare-form"' in html
    assert (f'<input type="checkbox" form="compare-form" name="run" value="{run.id}" id="compare-{run.id}" '
            f'hx-preserve="true" aria-label="Compare two">') in html
