"""A label is refused when its task has the labels it wants already (its overlap). The queue
never hands out a full task, but a label could still take one over: an annotator whose
assignment lapsed while others claimed and finished the task, or a label posted over the API,
which needs no assignment, was stored as a third label of a task wanting two (label_count past
required_labels, the prompt weighted above the others in exports, agreement and training).
Now the write is refused (the API: 409), nothing is stored and the annotator's assignment is
released, so their next task is another. Retries of the annotator's own label, rejected labels
(which do not count) and gold tasks (labelled by everyone) are unchanged."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_project, make_task, make_user
from tests.webapp.api.conftest import token_client
from tests.webapp.feedback.conftest import login
from tests.webapp.feedback.lock_races import first_holds_second_waits
from webapp.feedback.errors import LabelConflict, TaskFilled
from webapp.feedback.models import Assignment, ComparisonTask, PreferenceLabel
from webapp.feedback.services import (
    label_reject,
    label_restore,
    label_submit,
    label_submit_outcome,
    label_undo,
    task_next_for_annotator,
)

pytestmark = pytest.mark.django_db
Status = Assignment.Status


def submit(task, user, ranking=([0], [1]), **kwargs):
    return label_submit(task=task, annotator=user, ranking=[list(t) for t in ranking],
                        submission_key=kwargs.pop("submission_key", uuid.uuid4().hex), **kwargs)


def count_of(task) -> int:
    return ComparisonTask.objects.get(pk=task.pk).label_count


@pytest.fixture
def team():
    """Three annotators of one project."""
    a, b, c = make_user(), make_user(), make_user()
    return make_project(annotator=[a, b, c]), a, b, c


def lapsed_then_filled(project, a, b, *, required_labels=1):
    """A task that ``a`` was assigned, whose assignment lapsed, and that ``b`` then took from the
    queue and labelled, filling it; and a spare task for the queue to go on to."""
    task = make_task(project, prompt="the full one", required_labels=required_labels)
    spare = make_task(project, prompt="the spare one", required_labels=required_labels)
    assert task_next_for_annotator(project=project, annotator=a) == task
    Assignment.objects.filter(task=task, annotator=a).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert task_next_for_annotator(project=project, annotator=b) == task  # least annotated, and free again
    submit(task, b)
    assert count_of(task) == required_labels
    return task, spare


# ---------------------------------------------------------------- the service

def test_a_lapsed_annotator_s_label_on_a_filled_task_is_refused_and_their_assignment_released(team):
    project, a, b, _ = team
    task, spare = lapsed_then_filled(project, a, b)
    with pytest.raises(TaskFilled) as refused:
        submit(task, a, ranking=([1], [0]))
    assert refused.value.field == "task"
    assert refused.value.message == (f"task {task.pk} already has the 1 label it wants; nothing was stored (this label "
                                     "would put it over its overlap)")
    assert list(PreferenceLabel.objects.filter(task=task).values_list("annotator_id", flat=True)) == [b.pk]
    assert count_of(task) == 1
    held = Assignment.objects.get(task=task, annotator=a)
    assert held.status == Status.EXPIRED and held.closed_at is not None
    assert task_next_for_annotator(project=project, annotator=a) == spare


def test_a_label_without_an_assignment_cannot_take_a_full_task_over_its_overlap(team):
    project, a, b, c = team
    task = make_task(project, required_labels=2)
    submit(task, a)
    submit(task, b)
    with pytest.raises(TaskFilled, match=f"task {task.pk} already has the 2 labels it wants; nothing was stored"):
        submit(task, c)
    assert PreferenceLabel.objects.filter(task=task).count() == 2 and count_of(task) == 2
    assert not Assignment.objects.filter(task=task, annotator=c).exists()


def test_a_task_over_its_overlap_already_says_how_many_labels_it_has(team):
    """A researcher lowered the overlap (the task admin) after the labels came in."""
    project, a, b, c = team
    task = make_task(project, required_labels=2)
    submit(task, a)
    submit(task, b)
    ComparisonTask.objects.filter(pk=task.pk).update(required_labels=1)
    with pytest.raises(TaskFilled, match="already has 2 counting labels of the 1 label it wants"):
        submit(task, c)
    assert count_of(task) == 2


def test_the_annotator_s_own_label_is_still_answered_on_a_full_task(team):
    """A retry of the label that filled the task gets that label back, as before; a second
    judgement under a new key is still the LabelConflict it was."""
    project, a, _, _ = team
    task = make_task(project, required_labels=1)
    key = uuid.uuid4().hex
    first, created = label_submit_outcome(task=task, annotator=a, ranking=[[0], [1]], submission_key=key)
    again, created_again = label_submit_outcome(task=task, annotator=a, ranking=[[0], [1]], submission_key=key)
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert count_of(task) == 1


def test_an_undone_label_can_be_given_again(team):
    project, a, _, _ = team
    task = make_task(project, required_labels=1)
    label = submit(task, a)
    label_undo(label_id=label.pk, annotator=a)
    again = submit(task, a, ranking=([1], [0]))
    assert again.ranking == [[1], [0]] and count_of(task) == 1


def test_a_rejected_label_does_not_count_towards_the_overlap(team):
    project, a, b, _ = team
    researcher = make_user()
    project.memberships.create(user=researcher, role="researcher")
    task = make_task(project, required_labels=1)
    spam = submit(task, a)
    label_reject(label_id=spam.pk, project=project, by=researcher)
    assert submit(task, b).task_id == task.pk
    assert count_of(task) == 1 and PreferenceLabel.objects.filter(task=task).count() == 2


def test_a_gold_task_takes_every_annotator_s_label(team):
    project, a, b, c = team
    task = make_task(project, required_labels=1, gold_ranking=[[0], [1]])
    for user in (a, b, c):
        submit(task, user)
    assert count_of(task) == 3


# ---------------------------------------------------------------- the workspace and the API

def post_label(client, project, task, htmx=False, **data):
    data.setdefault("submission_key", uuid.uuid4().hex)
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(reverse("feedback:submit", args=[project.id, task.id]), {"choice": "b", **data}, **headers)


def test_the_workspace_says_the_task_filled_and_moves_on_to_the_next(client, team):
    project, a, b, _ = team
    task, spare = lapsed_then_filled(project, a, b)
    response = post_label(login(client, a), project, task, htmx=True)
    body = response.content.decode()
    assert response.status_code == 200  # htmx swaps it in (it swaps no 4xx)
    assert body.lstrip().startswith('<section id="workspace"')
    assert (f"Nothing was saved: task {task.pk} already has the 1 label it wants, from other annotators while it was "
            "open here; it has left your queue") in body
    assert f'data-task="{spare.pk}"' in body and "the spare one" in body and "the full one" not in body
    assert response["HX-Push-Url"] == reverse("feedback:annotate", args=[project.id])
    assert not PreferenceLabel.objects.filter(task=task, annotator=a).exists() and count_of(task) == 1
    assert Assignment.objects.get(task=task, annotator=a).status == Status.EXPIRED


def test_a_plain_post_on_a_filled_task_is_redirected_to_the_next_task_with_the_refusal(client, team):
    project, a, b, _ = team
    task, spare = lapsed_then_filled(project, a, b)
    response = post_label(login(client, a), project, task)
    assert response.status_code == 302 and response["Location"] == reverse("feedback:annotate", args=[project.id])
    page = client.get(response["Location"]).content.decode()
    assert f"Nothing was saved: task {task.pk} already has the 1 label it wants" in page
    assert f'data-task="{spare.pk}"' in page
    assert not PreferenceLabel.objects.filter(task=task, annotator=a).exists() and count_of(task) == 1


def test_the_workspace_still_answers_a_double_posted_form_on_the_task_it_filled(client, team):
    project, a, _, _ = team
    task = make_task(project, required_labels=1)
    login(client, a)
    key = uuid.uuid4().hex
    assert post_label(client, project, task, submission_key=key).status_code == 302
    again = post_label(client, project, task, submission_key=key, htmx=True)
    assert again.status_code == 200 and "Nothing was saved" not in again.content.decode()
    assert PreferenceLabel.objects.filter(task=task).count() == 1 and count_of(task) == 1


def test_the_api_answers_409_for_a_label_on_a_full_task_and_stores_nothing(team):
    project, a, _, c = team
    task = make_task(project, required_labels=1)
    url = f"/api/v1/tasks/{task.pk}/labels/"
    first = token_client(a).post(url, {"ranking": [[0], [1]], "submission_key": "key-of-a-1"}, format="json")
    assert first.status_code == 201
    Assignment.objects.create(task=task, annotator=c, expires_at=timezone.now() - timedelta(minutes=1))
    refused = token_client(c).post(url, {"ranking": [[1], [0]], "submission_key": "key-of-c-1"}, format="json")
    assert refused.status_code == 409, refused.content
    error = refused.json()["error"]
    assert error["code"] == "conflict"
    assert error["message"] == (f"task {task.pk} already has the 1 label it wants; nothing was stored (this label "
                                "would put it over its overlap)")
    assert list(PreferenceLabel.objects.values_list("annotator_id", flat=True)) == [a.pk] and count_of(task) == 1
    assert Assignment.objects.get(task=task, annotator=c).status == Status.EXPIRED
    replay = token_client(a).post(url, {"ranking": [[0], [1]], "submission_key": "key-of-a-1"}, format="json")
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]


# ---------------------------------------------------------------- two submissions at once

@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks (and pg_stat_activity to see the wait)")
def test_two_labels_for_a_task_s_last_slot_at_once_store_one():
    """The second waits on the task row the first locked, and reads the count the first committed."""
    a, b = make_user(), make_user()
    project = make_project(annotator=[a, b])
    task = make_task(project, required_labels=1)
    outcome = first_holds_second_waits(lambda: submit(task, a), lambda: submit(task, b))
    assert isinstance(outcome["first"], PreferenceLabel)
    assert isinstance(outcome["second"], TaskFilled), outcome["second"]
    assert list(PreferenceLabel.objects.values_list("annotator_id", flat=True)) == [a.pk] and count_of(task) == 1


# ---------------------------------------------------------------- the queue never shows a task it would refuse

def test_a_label_over_the_api_cannot_take_a_held_slot_so_the_holder_keeps_the_task(team):
    """``a`` holds a live assignment of a task wanting one label; ``b`` labels it over the API
    (no assignment needed). A live assignment holds its slot, so ``b``'s label is refused and
    ``a``'s next page still hands them the task (filling a held task over the API was how it
    came back full, before slots were held; a restored label still can: the test below)."""
    project, a, b, _ = team
    task = make_task(project, prompt="the full one", required_labels=1)
    make_task(project, prompt="the spare one", required_labels=1)
    assert task_next_for_annotator(project=project, annotator=a) == task
    with pytest.raises(TaskFilled):
        submit(task, b)
    assert count_of(task) == 0
    assert task_next_for_annotator(project=project, annotator=a) == task
    assert Assignment.objects.get(task=task, annotator=a).status == Status.ACTIVE


def test_a_held_task_filled_by_a_restored_label_is_not_shown_again(team):
    project, a, b, _ = team
    researcher = make_user()
    project.memberships.create(user=researcher, role="researcher")
    task = make_task(project, prompt="the full one", required_labels=1)
    spare = make_task(project, prompt="the spare one", required_labels=1)
    spam = submit(task, b)
    label_reject(label_id=spam.pk, project=project, by=researcher)
    assert task_next_for_annotator(project=project, annotator=a) == task  # its slot is free again
    label_restore(label_id=spam.pk, project=project, by=researcher)  # and taken back
    assert count_of(task) == 1
    assert task_next_for_annotator(project=project, annotator=a) == spare


def test_a_held_gold_task_and_a_held_task_with_room_still_come_back(team):
    project, a, b, _ = team
    task = make_task(project, required_labels=2)
    make_task(project, required_labels=2)
    assert task_next_for_annotator(project=project, annotator=a) == task
    submit(task, b)  # one of its two
    assert task_next_for_annotator(project=project, annotator=a) == task
    gold = make_task(project, required_labels=1, gold_ranking=[[0], [1]])
    Assignment.objects.filter(annotator=a).delete()
    Assignment.objects.create(task=gold, annotator=a, expires_at=timezone.now() + timedelta(minutes=5))
    submit(gold, b)
    assert task_next_for_annotator(project=project, annotator=a) == gold


def test_the_annotate_page_shows_the_next_task_not_the_held_one_filled_meanwhile(client, team):
    project, a, b, _ = team
    task = make_task(project, prompt="the full one", required_labels=1)
    spare = make_task(project, prompt="the spare one", required_labels=1)
    researcher = make_user()
    project.memberships.create(user=researcher, role="researcher")
    spam = submit(task, b)
    label_reject(label_id=spam.pk, project=project, by=researcher)
    assert task_next_for_annotator(project=project, annotator=a) == task  # its slot is free again
    label_restore(label_id=spam.pk, project=project, by=researcher)  # and taken back while a holds it
    page = login(client, a).get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert f'data-task="{spare.pk}"' in page and "the full one" not in page


# ---------------------------------------------------------------- a repeat racing for the last slot

@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks (and pg_stat_activity to see the wait)")
def test_a_double_submit_that_fills_the_last_slot_answers_the_label_stored_not_task_filled():
    """The same submission sent twice at once (a double click, a retry) for a task's last slot: the
    second waited on the task row, and its lookup of an earlier label ran in a snapshot from before
    that wait, so it saw the task full but not its own label, and was refused with TaskFilled
    ("nothing was saved") though the label was stored. It gets the stored label back, as any retry."""
    a = make_user()
    project = make_project(annotator=[a])
    task = make_task(project, required_labels=1)
    key = uuid.uuid4().hex

    def send():
        return label_submit_outcome(task=task, annotator=a, ranking=[[0], [1]], submission_key=key)

    outcome = first_holds_second_waits(send, send)
    first, created = outcome["first"]
    assert created
    assert not isinstance(outcome["second"], Exception), outcome["second"]
    again, created_again = outcome["second"]
    assert (again.pk, created_again) == (first.pk, False)
    assert count_of(task) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks (and pg_stat_activity to see the wait)")
def test_a_second_judgement_racing_for_the_last_slot_is_a_label_conflict_naming_the_first():
    """Two tabs of one annotator, two keys, one task with one slot: the second is the LabelConflict
    it always was (naming the first label), not TaskFilled."""
    a = make_user()
    project = make_project(annotator=[a])
    task = make_task(project, required_labels=1)
    outcome = first_holds_second_waits(lambda: submit(task, a), lambda: submit(task, a, ranking=([1], [0])))
    assert isinstance(outcome["second"], LabelConflict), outcome["second"]
    assert outcome["second"].label.pk == outcome["first"].pk
    assert count_of(task) == 1


def test_a_task_page_that_others_filled_gives_way_to_the_next_task(client, team):
    """/annotate/<task>/ (where an undo leads) showed the form of a task others had filled since,
    whose label would only be refused; it now goes on to the caller's next task, saying why. A task
    the caller labelled, and a gold task, still show."""
    project, a, b, c = team
    task = make_task(project, prompt="the full one", required_labels=1)
    spare = make_task(project, prompt="the spare one", required_labels=1)
    submit(task, b)
    url = reverse("feedback:annotate_task", args=[project.id, task.id])
    response = login(client, a).get(url)
    assert response.status_code == 302 and response["Location"] == reverse("feedback:annotate", args=[project.id])
    page = client.get(response["Location"]).content.decode()
    assert f"Task {task.pk} already has the 1 label it wants, from other annotators; here is your next task." in page
    assert f'data-task="{spare.pk}"' in page and "the full one" not in page
    own = login(client, b).get(url)
    assert own.status_code == 200 and "the full one" in own.content.decode()
    gold = make_task(project, prompt="the gold one", required_labels=1, gold_ranking=[[0], [1]])
    submit(gold, b)
    shown = login(client, c).get(reverse("feedback:annotate_task", args=[project.id, gold.id]))
    assert shown.status_code == 200 and "the gold one" in shown.content.decode()
