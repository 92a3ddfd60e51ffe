"""The duration_ms filter: label times (stored in ms) as people read them."""

import json
import uuid

import pytest
from django.urls import reverse

from tests.factories import make_task
from tests.webapp.feedback.conftest import login
from webapp.feedback.services import label_submit
from webapp.feedback.templatetags.durations import duration_ms


@pytest.mark.parametrize(("ms", "shown"), [
    (0, "0 ms"), (1, "1 ms"), (850, "850 ms"), (999, "999 ms"),
    (1000, "1.0 s"), (1049, "1.0 s"), (1050, "1.1 s"), (4200, "4.2 s"), (4249, "4.2 s"), (59_949, "59.9 s"),
    (59_950, "1 min 00 s"), (60_000, "1 min 00 s"), (65_000, "1 min 05 s"), (65_499, "1 min 05 s"),
    (65_500, "1 min 06 s"), (599_000, "9 min 59 s"), (3_599_499, "59 min 59 s"),
    (3_599_500, "1 h 00 min"), (3_600_000, "1 h 00 min"), (3_780_000, "1 h 03 min"), (24 * 3_600_000, "24 h 00 min"),
])
def test_a_duration_reads_in_the_unit_that_suits_it(ms, shown):
    assert duration_ms(ms) == shown


@pytest.mark.parametrize("value", ["850", 4.2, -1, True])
def test_what_is_not_a_count_of_milliseconds_shows_nothing(value):
    assert duration_ms(value) == ""


def test_a_time_not_known_shows_a_dash():
    """None: a label sent without a time and without an assignment (see test_time_spent_unknown.py)."""
    assert duration_ms(None) == "—"


@pytest.mark.django_db
def test_the_task_page_and_the_admin_show_label_times_for_people_and_the_export_keeps_milliseconds(
        client, project, annotator, researcher):
    task = make_task(project, required_labels=2)
    for user, spent in ((annotator, 65_000), (researcher, 850)):
        label_submit(task=task, annotator=user, ranking=[[0], [1]], submission_key=uuid.uuid4().hex,
                     time_spent_ms=spent)
    login(client, researcher)
    body = client.get(reverse("feedback:task_detail", args=[project.id, task.id])).content.decode()
    assert '<td class="duration">1 min 05 s</td>' in body and '<td class="duration">850 ms</td>' in body
    assert "65000" not in body
    exported = client.get(reverse("feedback:export_labels", args=[project.id]))
    lines = b"".join(exported.streaming_content).splitlines() if exported.streaming else exported.content.splitlines()
    assert sorted(json.loads(line)["time_spent_ms"] for line in lines) == [850, 65_000]

    researcher.is_staff = researcher.is_superuser = True
    researcher.save()
    changelist = client.get(reverse("admin:feedback_preferencelabel_changelist")).content.decode()
    assert "1 min 05 s" in changelist and "850 ms" in changelist
