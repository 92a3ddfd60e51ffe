"""The runs list: a page at a time, newest first, polling its own page while a run on it is active."""

import pytest
from django.urls import reverse

from tests.factories import make_run
from tests.webapp.experiments.conftest import shown_runs as shown
from webapp.experiments.models import Run, RunStatus
from webapp.experiments.views import RUNS_PAGE

pytestmark = pytest.mark.django_db


def test_many_runs_are_listed_a_page_at_a_time_newest_first(client, researcher):
    Run.objects.bulk_create([Run(project=researcher, name=f"run {i:03}", kind="policy", status=RunStatus.SUCCEEDED)
                             for i in range(RUNS_PAGE * 2 + 5)])
    url = reverse("experiments:list", args=[researcher.id])
    first = client.get(url).content.decode()
    assert len(shown(first)) == RUNS_PAGE and shown(first)[0] == f"run {RUNS_PAGE * 2 + 4:03}"
    assert f"Page 1 of 3 ({RUNS_PAGE * 2 + 5} runs)" in first and 'href="?page=2"' in first
    last = client.get(url, {"page": 3}).content.decode()
    assert shown(last) == [f"run {i:03}" for i in range(4, -1, -1)]
    assert 'href="?page=2"' in last and "Page 3 of 3" in last
    assert shown(client.get(url, {"page": "x"}).content.decode()) == shown(first)  # a bad page: the first


def test_the_table_polls_its_own_page_while_a_run_on_it_is_active(client, researcher):
    active = make_run(researcher, name="still running", status=RunStatus.RUNNING)
    Run.objects.bulk_create([Run(project=researcher, name=f"done {i}", kind="policy", status=RunStatus.SUCCEEDED)
                             for i in range(RUNS_PAGE)])
    url = reverse("experiments:list", args=[researcher.id])
    assert "hx-trigger" not in client.get(url).content.decode()  # page 1: all finished
    second = client.get(url, {"page": 2}, HTTP_HX_REQUEST="true")
    assert second.status_code == 200 and shown(second.content.decode()) == [active.name]
    assert f'hx-get="{url}?page=2"' in second.content.decode()
    active.status = RunStatus.SUCCEEDED
    active.save()
    assert client.get(url, {"page": 2}, HTTP_HX_REQUEST="true").status_code == 286  # stop polling


def test_one_page_of_runs_shows_no_pager(client, researcher):
    make_run(researcher, status=RunStatus.QUEUED)
    html = client.get(reverse("experiments:list", args=[researcher.id])).content.decode()
    assert "Page 1 of" not in html and 'aria-label="Pages of runs"' not in html
