"""The runs list and the API's runs filtered by when they were created (``created_after`` and
``created_before``, both included), beside the other filters and the pager."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from tests.factories import make_project, make_run
from tests.webapp.api.conftest import api_user, token_client
from tests.webapp.experiments.conftest import shown_runs as shown
from webapp.experiments.models import Run, RunKind
from webapp.experiments.views import RUNS_PAGE

pytestmark = pytest.mark.django_db


def created(project, name: str, when: str, **fields) -> Run:
    run = make_run(project, name=name, **fields)
    Run.objects.filter(pk=run.pk).update(created_at=datetime.fromisoformat(when).replace(tzinfo=UTC))
    return run


def week(project) -> None:
    created(project, "monday", "2026-11-30T09:00")
    created(project, "tuesday-late", "2026-12-01T23:59:59")
    created(project, "wednesday", "2026-12-02T00:00", kind=RunKind.DPO)
    created(project, "friday", "2026-12-04T12:00")


def page(client, project, **query) -> str:
    response = client.get(reverse("experiments:list", args=[project.id]), query)
    assert response.status_code == 200
    return response.content.decode()


def test_the_runs_list_keeps_the_days_between_the_two_dates_both_included(client, researcher):
    week(researcher)
    assert shown(page(client, researcher, created_after="2026-12-01")) == ["friday", "wednesday", "tuesday-late"]
    assert shown(page(client, researcher, created_before="2026-12-01")) == ["tuesday-late", "monday"]
    html = page(client, researcher, created_after="2026-12-01", created_before="2026-12-02", kind="dpo")
    assert shown(html) == ["wednesday"]  # with the other filters
    assert 'type="date" name="created_after" value="2026-12-01"' in html and ">Clear</a>" in html


def test_a_bad_date_or_a_range_ending_before_it_starts_is_said_and_filters_nothing(client, researcher):
    week(researcher)
    html = page(client, researcher, created_after="2026-13-01")
    assert shown(html) == ["friday", "wednesday", "tuesday-late", "monday"]
    assert "Created on or after: Enter a valid date. It is left out." in html
    html = page(client, researcher, created_after="2026-12-02", created_before="2026-12-01")
    assert "Created on or before: 2026-12-01 is before 2026-12-02, the day the range starts. It is left out." in html
    assert shown(html) == ["friday", "wednesday"]  # the valid bound still applies


def test_the_pager_keeps_the_dates(client, researcher):
    for i in range(RUNS_PAGE + 1):
        created(researcher, f"new-{i}", f"2026-12-03T10:{i:02d}")
    created(researcher, "old", "2026-11-01T10:00")
    html = page(client, researcher, created_after="2026-12-03")
    assert "created_after=2026-12-03" in html.split('rel="next"')[0].rsplit("href=", 1)[1]
    assert "old" not in shown(page(client, researcher, created_after="2026-12-03", page=2))


def api_names(api, project, **query):
    response = api.get(f"/api/v1/projects/{project.id}/runs/", query)
    assert response.status_code == 200, response.content
    return [r["name"] for r in response.json()["results"]]


def test_the_api_takes_iso_dates_and_datetimes_both_included():
    owner = api_user()
    project = make_project(owner=owner)
    week(project)
    api = token_client(owner)
    assert api_names(api, project, created_after="2026-12-01", created_before="2026-12-01") == ["tuesday-late"]
    assert api_names(api, project, created_after="2026-12-02T00:00:00Z") == ["friday", "wednesday"]
    assert api_names(api, project, created_before="2026-12-02T00:00:00Z") == ["wednesday", "tuesday-late", "monday"]
    # an offset is read as such (01:00+02:00 is 23:00 UTC the day before); a naive datetime as UTC
    assert api_names(api, project, created_after="2026-12-02T01:00:00+02:00", created_before="2026-12-02") == [
        "wednesday", "tuesday-late"]
    assert api_names(api, project, created_after="2026-12-04T12:00") == ["friday"]


@pytest.mark.parametrize(("query", "field", "said"), [
    ({"created_after": "last week"}, "created_after", "'last week' is no date or datetime"),
    ({"created_before": "2026-02-30"}, "created_before", "'2026-02-30' is no date or datetime"),
    ({"created_before": ""}, "created_before", "'' is no date or datetime"),
    ({"created_after": "2026-12-03", "created_before": "2026-12-02T23:00Z"}, "created_before",
     "2026-12-02T23:00:00+00:00 is before created_after, 2026-12-03: the range holds no run"),
])
def test_the_api_answers_400_naming_a_bad_date_and_lists_nothing(query, field, said):
    owner = api_user()
    project = make_project(owner=owner)
    response = token_client(owner).get(f"/api/v1/projects/{project.id}/runs/", query)
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert list(fields) == [field] and said in fields[field][0]


def test_the_api_dates_never_show_another_projects_runs():
    owner = api_user()
    mine, theirs = make_project(owner=owner), make_project(owner=api_user())
    created(mine, "mine", "2026-12-02T10:00")
    created(theirs, "theirs", "2026-12-02T10:00")
    assert api_names(token_client(owner), mine, created_after="2026-12-01") == ["mine"]


def test_the_last_day_there_is_and_a_datetime_past_it_answer_without_a_server_error(client, researcher):
    week(researcher)
    assert shown(page(client, researcher, created_before="9999-12-31")) == ["friday", "wednesday", "tuesday-late",
                                                                            "monday"]
    owner = api_user()
    project = make_project(owner=owner)
    api = token_client(owner)
    assert api_names(api, project, created_before="9999-12-31") == []
    response = api.get(f"/api/v1/projects/{project.id}/runs/", {"created_before": "9999-12-31T23:00:00-05:00"})
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["created_before"]
