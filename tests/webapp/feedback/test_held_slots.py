"""A live (active, unexpired) assignment holds a slot of its task for its annotator.

The queue counted live assignments towards a task's overlap, but a label submitted without one
(over the API, which needs none) was checked against the labels alone: after an annotator undid
a label, the task came back to them with a live assignment, and someone else's API label could
fill it meanwhile, so the first annotator's re-label was refused as TaskFilled. Now a new label
from an annotator who holds no live assignment of the task is refused when the counting labels
and the slots other annotators hold leave none free; a holder is refused only when the labels
alone fill the task, as before; gold tasks take every annotator's label, as before."""

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
from webapp.feedback.errors import TaskFilled
from webapp.feedback.models import Assignment, ComparisonTask, PreferenceLabel
from webapp.feedback.services import label_submit, label_undo, task_next_for_annotator

pytestmark = pytest.mark.django_db
Status = Assignment.Status


def submit(task, user, ranking=([0], [1]), **kwargs):
    return label_submit(task=task, annotator=user, ranking=[list(t) for t in ranking],
                        submission_key=kwargs.pop("submission_key", uuid.uuid4().hex), **kwargs)


def api_label(user, task, ranking=([1], [0])):
    return token_client(user).post(f"/api/v1/tasks/{task.pk}/labels/",
                                   {"ranking": [list(t) for t in ranking], "submission_key": uuid.uuid4().hex},
                                   format="json")


def count_of(task) -> int:
    return ComparisonTask.objects.get(pk=task.pk).label_count


@pytest.fixture
def team():
    a, b, c = make_user(), make_user(), make_user()
    return make_project(annotator=[a, b, c]), a, b, c


def labelled_then_undone(project, a, *, required_labels=1):
    """A task ``a`` took from the queue, labelled and withdrew: it is theirs again, with a live assignment."""
    task = make_task(project, required_labels=required_labels)
    assert task_next_for_annotator(project=project, annotator=a) == task
    label = submit(task, a)
    label_undo(label_id=label.pk, annotator=a)
    assert count_of(task) == 0
    assert Assignment.objects.get(task=task, annotator=a).status == Status.ACTIVE
    return task


def test_after_an_undo_a_label_over_the_api_cannot_take_the_slot_and_the_re_label_is_stored(team):
    project, a, b, _ = team
    task = labelled_then_undone(project, a)
    refused = api_label(b, task)
    assert refused.status_code == 409, refused.content
    assert refused.json()["error"]["message"] == (
        f"task {task.pk} has 0 counting labels of the 1 label it wants, and the slot left is held by another "
        "annotator labelling it now (an open assignment); nothing was stored (this label would take a slot held "
        "for them)")
    assert not PreferenceLabel.objects.filter(task=task, annotator=b).exists() and count_of(task) == 0
    assert not Assignment.objects.filter(task=task, annotator=b).exists()
    again = submit(task, a, ranking=([1], [0]))
    assert again.ranking == [[1], [0]] and count_of(task) == 1
    assert Assignment.objects.get(task=task, annotator=a).status == Status.COMPLETED


def test_after_an_undo_and_the_re_label_the_api_label_is_refused_as_the_task_is_full(team):
    project, a, b, _ = team
    task = labelled_then_undone(project, a)
    submit(task, a, ranking=([1], [0]))
    with pytest.raises(TaskFilled, match=f"task {task.pk} already has the 1 label it wants"):
        submit(task, b)
    assert list(PreferenceLabel.objects.filter(task=task).values_list("annotator_id", flat=True)) == [a.pk]


def test_a_lapsed_assignment_holds_no_slot(team):
    project, a, b, _ = team
    task = labelled_then_undone(project, a)
    Assignment.objects.filter(task=task, annotator=a).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert submit(task, b).annotator_id == b.pk and count_of(task) == 1
    with pytest.raises(TaskFilled):  # a's assignment lapsed: the task filled meanwhile, as before
        submit(task, a)


def test_a_label_without_an_assignment_takes_a_slot_nobody_holds(team):
    project, a, b, c = team
    task = make_task(project, required_labels=2)
    assert task_next_for_annotator(project=project, annotator=a) == task  # a holds one of the two slots
    assert submit(task, b).task_id == task.pk  # the other is free
    with pytest.raises(TaskFilled, match="the slot left is held by another annotator"):
        submit(task, c)  # 1 label + a's slot: none left
    assert submit(task, a).task_id == task.pk and count_of(task) == 2


def test_slots_held_by_others_do_not_refuse_an_annotator_who_holds_one(team):
    """A holder is refused only when the labels alone fill the task (unchanged), even if more
    annotators hold it than it has slots left (an assignment re-opened by an undo, say)."""
    project, a, _, c = team
    task = make_task(project, required_labels=1)
    later = timezone.now() + timedelta(minutes=10)
    Assignment.objects.create(task=task, annotator=a, expires_at=later)
    Assignment.objects.create(task=task, annotator=c, expires_at=later)
    assert submit(task, c).annotator_id == c.pk and count_of(task) == 1


def test_a_gold_task_takes_a_label_whoever_holds_it(team):
    project, a, b, _ = team
    task = make_task(project, required_labels=1, gold_ranking=[[0], [1]])
    Assignment.objects.create(task=task, annotator=a, expires_at=timezone.now() + timedelta(minutes=10))
    assert submit(task, b).task_id == task.pk
    assert submit(task, a).task_id == task.pk and count_of(task) == 2


def test_the_workspace_of_a_lapsed_annotator_says_the_slot_is_held_and_moves_on(client, team):
    project, a, b, _ = team
    task = make_task(project, prompt="the held one", required_labels=1)
    spare = make_task(project, prompt="the spare one", required_labels=1)
    assert task_next_for_annotator(project=project, annotator=a) == task
    Assignment.objects.filter(task=task, annotator=a).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert task_next_for_annotator(project=project, annotator=b) == task  # b holds it now
    response = login(client, a).post(reverse("feedback:submit", args=[project.id, task.id]),
                                     {"choice": "b", "submission_key": uuid.uuid4().hex}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert (f"Nothing was saved: task {task.pk} is being labelled by another annotator, who holds its last open "
            "slot; it has left your queue") in body
    assert f'data-task="{spare.pk}"' in body
    assert count_of(task) == 0 and Assignment.objects.get(task=task, annotator=a).status == Status.EXPIRED


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks (and pg_stat_activity to see the wait)")
def test_a_label_waiting_on_an_undo_sees_the_slot_it_hands_back():
    """The undo locks the task row (its label_count) and re-opens the assignment; a label without
    an assignment that waited for that lock reads the assignment committed meanwhile."""
    a, b = make_user(), make_user()
    project = make_project(annotator=[a, b])
    task = make_task(project, required_labels=1)
    assert task_next_for_annotator(project=project, annotator=a) == task
    label = submit(task, a)
    outcome = first_holds_second_waits(lambda: label_undo(label_id=label.pk, annotator=a), lambda: submit(task, b))
    assert isinstance(outcome["second"], TaskFilled), outcome["second"]
    assert outcome["second"].held == 1
    assert not PreferenceLabel.objects.filter(task=task).exists() and count_of(task) == 0
    assert submit(task, a).annotator_id == a.pk and count_of(task) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks (and pg_stat_activity to see the wait)")
def test_a_label_waiting_on_a_holder_s_label_does_not_count_that_holder_twice():
    """Of two slots, a holds one; a's label commits while b's, without an assignment, waits on
    the task row: a's slot became a label, and the other slot is still free for b."""
    a, b = make_user(), make_user()
    project = make_project(annotator=[a, b])
    task = make_task(project, required_labels=2)
    assert task_next_for_annotator(project=project, annotator=a) == task
    outcome = first_holds_second_waits(lambda: submit(task, a), lambda: submit(task, b))
    assert isinstance(outcome["first"], PreferenceLabel)
    assert isinstance(outcome["second"], PreferenceLabel), outcome["second"]
    assert count_of(task) == 2


def test_the_workspace_says_so_when_others_hold_every_slot_left(client, team):
    """The message read 'task N is being labelled by other annotators, who hold the slots it has
    left; it has left your queue': 'it has left' twice, of a slot and of the queue."""
    project, a, b, c = team
    task = make_task(project, prompt="the held one", required_labels=2)
    assert task_next_for_annotator(project=project, annotator=a) == task
    Assignment.objects.filter(task=task, annotator=a).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert task_next_for_annotator(project=project, annotator=b) == task
    assert task_next_for_annotator(project=project, annotator=c) == task  # b and c hold both slots
    response = login(client, a).post(reverse("feedback:submit", args=[project.id, task.id]),
                                     {"choice": "b", "submission_key": uuid.uuid4().hex}, HTTP_HX_REQUEST="true")
    assert (f"Nothing was saved: task {task.pk} is being labelled by other annotators, who hold its open slots; "
            "it has left your queue") in response.content.decode()
    assert count_of(task) == 0
