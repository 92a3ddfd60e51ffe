"""Assignment (overlap, least-annotated first, expiry, skip, gold) and label submission."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import make_project, make_rubric, make_task, make_user
from webapp.feedback import labelling
from webapp.feedback.errors import FeedbackError, LabelConflict, SubmissionChanged
from webapp.feedback.models import Assignment, ComparisonTask, CriterionScore, PreferenceLabel
from webapp.feedback.services import (
    assignment_skip, label_submit, label_submit_outcome, label_undo, rubric_update, task_next_for_annotator,
)

pytestmark = pytest.mark.django_db


def key() -> str:
    return uuid.uuid4().hex


def submit(task, user, ranking=((0,), (1,)), **kwargs):
    return label_submit(task=task, annotator=user, ranking=[list(t) for t in ranking],
                        submission_key=kwargs.pop("submission_key", key()), **kwargs)


# ---------------------------------------------------------------- overlap and order

def test_next_task_is_least_annotated_first():
    a, b, c = make_user(), make_user(), make_user()
    project = make_project(annotator=[a, b, c])
    t1, t2 = make_task(project, required_labels=2), make_task(project, required_labels=2)
    assert task_next_for_annotator(project=project, annotator=a) == t1
    # t1 now has one live assignment, t2 none: b gets t2, then c gets t1 again (tie broken by id).
    assert task_next_for_annotator(project=project, annotator=b) == t2
    assert task_next_for_annotator(project=project, annotator=c) == t1


def test_a_task_stops_being_offered_once_it_has_its_labels():
    a, b, c = make_user(), make_user(), make_user()
    project = make_project(annotator=[a, b, c])
    task = make_task(project, required_labels=2)
    submit(task_next_for_annotator(project=project, annotator=a), a)
    submit(task_next_for_annotator(project=project, annotator=b), b)
    assert task_next_for_annotator(project=project, annotator=c) is None
    task.refresh_from_db()
    assert task.label_count == 2


def test_live_assignments_count_towards_the_overlap():
    a, b = make_user(), make_user()
    project = make_project(annotator=[a, b])
    make_task(project, required_labels=1)
    assert task_next_for_annotator(project=project, annotator=a) is not None
    assert task_next_for_annotator(project=project, annotator=b) is None


def test_an_annotator_never_gets_the_same_task_twice():
    a = make_user()
    project = make_project(annotator=a)
    task = make_task(project, required_labels=3)
    submit(task_next_for_annotator(project=project, annotator=a), a)
    assert task_next_for_annotator(project=project, annotator=a) is None
    task.refresh_from_db()
    assert task.label_count == 1


def test_a_held_assignment_comes_back_on_reload():
    a = make_user()
    project = make_project(annotator=a)
    make_task(project), make_task(project)
    first = task_next_for_annotator(project=project, annotator=a)
    assert task_next_for_annotator(project=project, annotator=a) == first
    assert Assignment.objects.filter(annotator=a).count() == 1


def test_a_removed_member_s_held_task_goes_back_to_the_queue_at_once():
    """Removed mid-task, an annotator held their task from the others until it expired (20 min)."""
    from webapp.projects.models import Membership
    from webapp.projects.services import membership_remove

    a, b, owner = make_user(), make_user(), make_user()
    project = make_project(owner=owner, annotator=[a, b])
    task = make_task(project, required_labels=1)
    other = make_task(make_project(annotator=a), required_labels=1)
    assert task_next_for_annotator(project=project, annotator=a) == task
    assert task_next_for_annotator(project=other.project, annotator=a) == other
    membership_remove(membership=Membership.objects.get(project=project, user=a))
    assert task_next_for_annotator(project=project, annotator=b) == task
    assert Assignment.objects.get(task=task, annotator=a).status == Assignment.Status.EXPIRED
    assert Assignment.objects.get(task=other, annotator=a).status == Assignment.Status.ACTIVE  # another project's


def test_expired_assignments_are_requeued_for_others():
    a, b = make_user(), make_user()
    project = make_project(annotator=[a, b])
    task = make_task(project, required_labels=1)
    assert task_next_for_annotator(project=project, annotator=a) == task
    later = timezone.now() + labelling.ASSIGNMENT_TTL + timedelta(seconds=1)
    assert task_next_for_annotator(project=project, annotator=b, now=later) == task
    # a comes back late: the task is b's now, and a's stale assignment is closed as expired.
    assert task_next_for_annotator(project=project, annotator=a, now=later) is None
    assert Assignment.objects.get(annotator=a).status == Assignment.Status.EXPIRED


def test_skipped_tasks_go_to_others_but_not_back_to_the_skipper():
    a, b = make_user(), make_user()
    project = make_project(annotator=[a, b])
    task = make_task(project, required_labels=1)
    assert task_next_for_annotator(project=project, annotator=a) == task
    assignment_skip(task=task, annotator=a)
    assert task_next_for_annotator(project=project, annotator=a) is None
    assert task_next_for_annotator(project=project, annotator=b) == task


def test_an_annotator_takes_back_their_own_skips_only():
    from webapp.feedback.selectors import skipped_still_open
    from webapp.feedback.services import assignments_unskip

    a, b = make_user(), make_user()
    project, other = make_project(annotator=[a, b]), make_project(annotator=a)
    first, second, full = make_task(project), make_task(project), make_task(project)
    elsewhere = make_task(other)
    for task in (first, second, full):
        assignment_skip(task=task, annotator=a)
    assignment_skip(task=first, annotator=b)
    assignment_skip(task=elsewhere, annotator=a)
    submit(full, b)  # full now has its one label: a's skip of it gives nothing back
    assert task_next_for_annotator(project=project, annotator=a) is None
    assert skipped_still_open(project=project, annotator=a) == 2
    assert assignments_unskip(project=project, annotator=a) == 3
    assert skipped_still_open(project=project, annotator=a) == 0
    assert {task_next_for_annotator(project=project, annotator=a)} <= {first, second}
    assert Assignment.objects.get(task=first, annotator=b).status == Assignment.Status.SKIPPED  # b's stays
    assert Assignment.objects.get(task=elsewhere, annotator=a).status == Assignment.Status.SKIPPED  # other project
    with pytest.raises(FeedbackError, match="not a member"):
        assignments_unskip(project=project, annotator=make_user())


@pytest.mark.django_db(transaction=True)
def test_taking_back_skips_holds_the_annotators_lock_until_it_commits(monkeypatch):
    """The membership row lock serialises one annotator's assignment requests; taken in
    autocommit, it was released before the skips were reopened, so it guarded nothing."""
    from webapp.feedback.services import assignments_unskip

    a = make_user()
    project = make_project(annotator=a)
    assignment_skip(task=make_task(project), annotator=a)
    locked_inside_a_transaction = []
    lock = labelling._membership_locked

    def spy(**kwargs):
        locked_inside_a_transaction.append(connection.in_atomic_block)
        return lock(**kwargs)

    monkeypatch.setattr(labelling, "_membership_locked", spy)
    assert assignments_unskip(project=project, annotator=a) == 1
    assert locked_inside_a_transaction == [True]


def test_non_members_get_no_task():
    project = make_project(annotator=make_user())
    make_task(project)
    with pytest.raises(FeedbackError, match="not a member"):
        task_next_for_annotator(project=project, annotator=make_user())


def test_every_fifth_task_is_gold_while_gold_is_left():
    a = make_user()
    project = make_project(annotator=a)
    regular = [make_task(project) for _ in range(8)]
    gold = make_task(project, gold_ranking=[[1], [0]])
    served = []
    for _ in range(6):
        task = task_next_for_annotator(project=project, annotator=a)
        served.append(task)
        submit(task, a)
    assert served[4] == gold
    assert served[:4] == regular[:4] and served[5] == regular[4]


def test_gold_tasks_go_to_every_annotator_whatever_their_overlap():
    users = [make_user() for _ in range(3)]
    project = make_project(annotator=users)
    gold = make_task(project, required_labels=1, gold_ranking=[[0], [1]])
    for user in users:
        for _ in range(4):
            submit(make_task(project), user)
        assert task_next_for_annotator(project=project, annotator=user) == gold
        submit(gold, user)
    gold.refresh_from_db()
    assert gold.label_count == 3


# ---------------------------------------------------------------- submission

def test_submit_stores_ranking_closes_the_assignment_and_counts_the_label():
    a = make_user()
    project = make_project(annotator=a)
    make_task(project)
    task = task_next_for_annotator(project=project, annotator=a)
    label = submit(task, a, ranking=[[1], [0]], critique="  B is right  ", time_spent_ms=4200)
    assert (label.ranking, label.critique, label.time_spent_ms) == ([[1], [0]], "B is right", 4200)
    task.refresh_from_db()
    assert task.label_count == 1
    assert Assignment.objects.get(task=task, annotator=a).status == Assignment.Status.COMPLETED


def test_resubmitting_the_same_key_returns_the_stored_label():
    a = make_user()
    project = make_project(annotator=a)
    task = make_task(project, required_labels=2)
    k = key()
    first, created = label_submit_outcome(task=task, annotator=a, ranking=[[0], [1]], critique=" ok ",
                                          time_spent_ms=900, submission_key=k)
    again, created_again = label_submit_outcome(task=task, annotator=a, ranking=[[0], [1]], critique="ok",
                                                time_spent_ms=4000, submission_key=k)  # a later retry
    assert created and not created_again
    assert again.pk == first.pk and again.ranking == [[0], [1]] and again.time_spent_ms == 900
    task.refresh_from_db()
    assert task.label_count == 1 and PreferenceLabel.objects.count() == 1


@pytest.mark.parametrize("changed", [
    {"ranking": [[1], [0]]}, {"ranking": [[0, 1]], "both_bad": True}, {"critique": "on second thought"},
])
def test_a_retry_with_the_same_key_but_another_judgement_is_refused_and_the_first_stands(changed):
    """A lost answer, then the annotator changes their choice and submits the same form again:
    the first judgement was stored, and the changed one must not be answered 'saved'."""
    a = make_user()
    project = make_project(annotator=a)
    task = make_task(project, required_labels=2)
    k = key()
    first = submit(task, a, ranking=[[0], [1]], submission_key=k)
    with pytest.raises(SubmissionChanged, match=f"saved already \\(label {first.pk}\\) with another judgement") as info:
        label_submit_outcome(task=task, annotator=a, **{"ranking": [[0], [1]], **changed}, submission_key=k)
    assert isinstance(info.value, LabelConflict) and info.value.field == "submission_key"
    [stored] = PreferenceLabel.objects.filter(task=task)
    assert (stored.pk, stored.ranking, stored.both_bad, stored.critique) == (first.pk, [[0], [1]], False, "")
    task.refresh_from_db()
    assert task.label_count == 1


def test_a_second_judgement_under_a_new_key_is_refused_and_changes_nothing():
    a = make_user()
    project = make_project(annotator=a)
    task = make_task(project, required_labels=2)
    first = submit(task, a, ranking=[[0], [1]])
    with pytest.raises(LabelConflict, match=f"labelled this task already \\(label {first.pk}\\)") as info:
        submit(task, a, ranking=[[1], [0]], critique="changed my mind")
    assert info.value.field == "submission_key" and info.value.label == first
    [stored] = PreferenceLabel.objects.filter(task=task)
    assert (stored.ranking, stored.critique, stored.submission_key) == ([[0], [1]], "", first.submission_key)
    task.refresh_from_db()
    assert task.label_count == 1


def test_a_key_reused_on_another_task_is_refused():
    a = make_user()
    project = make_project(annotator=a)
    k = key()
    submit(make_task(project), a, submission_key=k)
    with pytest.raises(FeedbackError, match="already used"):
        submit(make_task(project), a, submission_key=k)


@pytest.mark.parametrize("ranking, both_bad, field", [
    ([[0]], False, "ranking"), ([[0], [0, 1]], False, "ranking"), ([[0], [1]], True, "both_bad"),
])
def test_bad_rankings_are_refused_and_nothing_is_stored(ranking, both_bad, field):
    a = make_user()
    project = make_project(annotator=a)
    task = make_task(project)
    with pytest.raises(FeedbackError) as caught:
        label_submit(task=task, annotator=a, ranking=ranking, both_bad=both_bad, submission_key=key())
    assert caught.value.field == field
    assert not PreferenceLabel.objects.exists()


def test_outsiders_cannot_label_a_projects_task():
    project = make_project(annotator=make_user())
    with pytest.raises(FeedbackError, match="not a member"):
        submit(make_task(project), make_user())


def test_scores_record_the_rubric_version_they_were_given_under():
    a = make_user()
    project = make_project(annotator=a)
    rubric = make_rubric(project)
    task = make_task(project, rubric=rubric)
    old = {c.name: c for c in rubric.latest_version().criteria.all()}
    rubric_update(rubric=rubric, name=rubric.name, description="", criteria=[{"name": "Helpful", "scale": "ten"}])
    # The page was opened before the edit: scores against version 1 are recorded as version 1.
    label = submit(task, a, scores={0: {old["Correct"].pk: 1, old["Clear"].pk: 4}, 1: {old["Correct"].pk: 0}})
    assert label.rubric_version.number == 1
    assert sorted(CriterionScore.objects.filter(label=label).values_list("candidate__position", "value")) == [
        (0, 1.0), (0, 4.0), (1, 0.0)]


def test_a_retry_compares_the_rubric_scores_too():
    a = make_user()
    project = make_project(annotator=a)
    task = make_task(project, rubric=make_rubric(project), required_labels=2)
    criteria = {c.name: c for c in task.rubric_version.criteria.all()}
    k = key()
    scores = {0: {criteria["Correct"].pk: 1, criteria["Clear"].pk: 4}}
    first = submit(task, a, scores=scores, submission_key=k)
    again, created = label_submit_outcome(task=task, annotator=a, ranking=[[0], [1]], scores=scores, submission_key=k)
    assert (again.pk, created) == (first.pk, False)
    with pytest.raises(SubmissionChanged):
        label_submit_outcome(task=task, annotator=a, ranking=[[0], [1]], submission_key=k,
                             scores={0: {criteria["Correct"].pk: 1, criteria["Clear"].pk: 5}})
    assert sorted(CriterionScore.objects.filter(label=first).values_list("value", flat=True)) == [1.0, 4.0]


@pytest.mark.parametrize("scores, message", [
    ({0: {"CORRECT": 2}}, "from 0 to 1"),
    ({0: {"CLEAR": 0}}, "from 1 to 5"),
    ({0: {"CLEAR": 2.5}}, "whole number"),
    ({5: {"CLEAR": 2}}, "no candidate at position 5"),
    ({0: {999999: 2}}, "not part of this task's rubric"),
])
def test_out_of_range_scores_are_refused(scores, message):
    a = make_user()
    project = make_project(annotator=a)
    rubric = make_rubric(project)
    task = make_task(project, rubric=rubric)
    ids = {c.name.upper(): c.pk for c in rubric.latest_version().criteria.all()}
    scores = {p: {ids.get(c, c): v for c, v in by.items()} for p, by in scores.items()}
    with pytest.raises(FeedbackError, match=message):
        submit(task, a, scores=scores)
    assert not PreferenceLabel.objects.exists()


def test_scores_from_another_rubric_are_refused():
    a = make_user()
    project = make_project(annotator=a)
    task = make_task(project, rubric=make_rubric(project))
    other = make_rubric(project).latest_version().criteria.first()
    with pytest.raises(FeedbackError, match="not part of this task's rubric"):
        submit(task, a, scores={0: {other.pk: 1}})


# ---------------------------------------------------------------- undo

def test_undo_within_the_window_removes_the_label_and_gives_the_task_back():
    a = make_user()
    project = make_project(annotator=a)
    make_task(project), make_task(project)
    task = task_next_for_annotator(project=project, annotator=a)
    label = submit(task, a)
    task_next_for_annotator(project=project, annotator=a)  # the next one is already assigned
    assert label_undo(label_id=label.pk, annotator=a) == task
    assert not PreferenceLabel.objects.exists()
    task.refresh_from_db()
    assert task.label_count == 0
    assert task_next_for_annotator(project=project, annotator=a) == task


def test_undo_after_the_window_is_refused():
    a = make_user()
    project = make_project(annotator=a)
    label = submit(make_task(project), a)
    with pytest.raises(FeedbackError, match="30 seconds"):
        label_undo(label_id=label.pk, annotator=a, now=timezone.now() + timedelta(seconds=31))
    assert PreferenceLabel.objects.filter(pk=label.pk).exists()


def test_nobody_can_undo_someone_elses_label():
    a, b = make_user(), make_user()
    project = make_project(annotator=[a, b])
    label = submit(make_task(project), a)
    with pytest.raises(FeedbackError, match="no such label"):
        label_undo(label_id=label.pk, annotator=b)


def test_label_count_stays_exact_after_undo_and_resubmit():
    a = make_user()
    project = make_project(annotator=a)
    task = make_task(project)
    label = submit(task, a)
    label_undo(label_id=label.pk, annotator=a)
    submit(task, a, ranking=[[1], [0]])
    assert ComparisonTask.objects.get(pk=task.pk).label_count == 1


# ---------------------------------------------------------------- counts and query budget

def test_counts_for_the_workspace_and_gold_mixing():
    from webapp.feedback.selectors import AnnotationCounts, annotation_counts

    a, b = make_user(), make_user()
    project = make_project(annotator=[a, b])
    regular = [make_task(project, required_labels=3) for _ in range(3)]
    gold = make_task(project, gold_ranking=[[0], [1]])
    submit(make_task(project, required_labels=1), b)  # full: wants nothing more
    submit(regular[0], a), submit(regular[1], a), submit(regular[0], b), submit(gold, a)
    elsewhere = make_project(annotator=a)
    submit(make_task(elsewhere), a)
    assert annotation_counts(project=project, annotator=a) == AnnotationCounts(
        done=3, gold_done=1, open_slots=(3 - 2) + (3 - 1) + 3, gold_tasks=1, held=0)
    assert annotation_counts(project=elsewhere, annotator=b) == AnnotationCounts(0, 0, 0, 0, 0)
    held = task_next_for_annotator(project=project, annotator=b)
    assert annotation_counts(project=project, annotator=b).held == 1
    later = timezone.now() + labelling.ASSIGNMENT_TTL + timedelta(seconds=1)
    assert annotation_counts(project=project, annotator=b).held == 1  # expired or not
    assert task_next_for_annotator(project=project, annotator=b, now=later) is not None
    assert Assignment.objects.filter(annotator=b, task=held, status=Assignment.Status.EXPIRED).exists()
    assert annotation_counts(project=project, annotator=b).held == 1  # the stale one closed, a new one


def test_no_gold_pick_when_no_gold_task_is_left(django_assert_num_queries):
    a = make_user()
    project = make_project(annotator=a)
    tasks = [make_task(project) for _ in range(6)]
    with CaptureQueriesContext(connection) as fresh:
        first = task_next_for_annotator(project=project, annotator=a)
    for task in tasks[:4]:
        submit(task, a)  # a gold task is due now, but the project has none
    with django_assert_num_queries(len(fresh)):
        assert task_next_for_annotator(project=project, annotator=a) not in {first, None}


# ---------------------------------------------------------------- concurrency

def test_a_task_filled_between_pick_and_claim_is_passed_over():
    """The claim re-counts the picked task's claims in a statement of its own (see _CLAIM_SQL)."""
    a, b, c = make_user(), make_user(), make_user()
    project = make_project(annotator=[a, b, c])
    full, spare = make_task(project, required_labels=1), make_task(project, required_labels=1)
    injected = []

    def another_annotator_claims_first(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not injected and "claimed" in sql:  # right after the pick, before the claim
            injected.append(Assignment.objects.create(task=full, annotator=c,
                                                      expires_at=timezone.now() + labelling.ASSIGNMENT_TTL))
        return result

    with connection.execute_wrapper(another_annotator_claims_first):
        assert task_next_for_annotator(project=project, annotator=a) == spare
    assert injected and not Assignment.objects.filter(task=full, annotator=a).exists()
    assert task_next_for_annotator(project=project, annotator=b) is None


def test_a_task_the_annotator_labelled_between_pick_and_claim_is_passed_over():
    """The annotator's other tab stores their label on the picked task after the pick read the
    labels: the claim must not assign them a task they have labelled (it would come back to them
    as their next task, hold one of its slots for 20 minutes, and make undoing that label fail)."""
    a = make_user()
    project = make_project(annotator=a)
    labelled, spare = make_task(project, required_labels=2), make_task(project, required_labels=2)
    injected = []

    def the_other_tab_labels_first(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not injected and "claimed" in sql:  # right after the pick, before the claim
            injected.append(True)
            injected.append(submit(labelled, a))
        return result

    with connection.execute_wrapper(the_other_tab_labels_first):
        assert task_next_for_annotator(project=project, annotator=a) == spare
    assert injected and not Assignment.objects.filter(task=labelled, annotator=a, status=Assignment.Status.ACTIVE).exists()
    label_undo(label_id=injected[1].pk, annotator=a)  # the task comes back to them, once
    assert Assignment.objects.filter(task=labelled, annotator=a, status=Assignment.Status.ACTIVE).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not connection.features.has_select_for_update_skip_locked, reason="needs SKIP LOCKED")
def test_a_task_locked_by_another_request_is_skipped_not_waited_for():
    import threading

    from django.db import connections, transaction

    a, b = make_user(), make_user()
    project = make_project(annotator=[a, b])
    first, second = make_task(project, required_labels=2), make_task(project, required_labels=2)
    locked, release = threading.Event(), threading.Event()

    def hold_the_first_row():
        try:
            with transaction.atomic():
                ComparisonTask.objects.select_for_update().get(pk=first.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_first_row)
    holder.start()
    try:
        assert locked.wait(10)
        assert task_next_for_annotator(project=project, annotator=a) == second
    finally:
        release.set()
        holder.join()
    assert task_next_for_annotator(project=project, annotator=b) == first
