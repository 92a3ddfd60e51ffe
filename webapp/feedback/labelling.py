"""Assignment of tasks to annotators and the writing of their labels.

Labels are written here, in the request, never through the broker: a broker or worker
outage cannot lose one. Submission is idempotent: a retried request carries the same
``submission_key`` and gets the label stored the first time; a retry carrying another
judgement (ranking, both bad, critique or scores) is refused with SubmissionChanged, so a
changed choice is never answered as saved. (task, annotator) is unique: a submission under
another key for a task the annotator labelled already is refused with LabelConflict, never
dropped silently. A new label for a regular task that has the labels it wants already is
refused with TaskFilled (its overlap holds whichever way the label came: an assignment that
lapsed while others filled the task, or the API, which needs none). A live (active, unexpired)
assignment reserves a slot: a new label from an annotator who holds none is refused with
TaskFilled too when the labels and the slots other annotators hold leave none free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from webapp.core.json_input import UnstorableText, storable_text_check
from webapp.feedback.errors import FeedbackError, LabelConflict, SubmissionChanged, TaskFilled
from webapp.feedback.models import Assignment, ComparisonTask, Criterion, CriterionScore, PreferenceLabel
from webapp.feedback.ranking import ranking_normalise
from webapp.feedback.selectors import AnnotationCounts, Progress, annotation_counts
from webapp.projects.models import Membership

ASSIGNMENT_TTL = timedelta(minutes=20)
GOLD_EVERY = 5  # one task in every GOLD_EVERY an annotator gets is a gold task, while any is left
UNDO_WINDOW_S = 30
MAX_TIME_SPENT_MS = 24 * 3_600_000
MAX_CRITIQUE_CHARS = 20_000
Status = Assignment.Status


def _membership_locked(*, project_id: int, annotator) -> None:
    """Lock the annotator's membership row: one annotator's assignment requests run one at a time.

    Plain SQL: only the lock is wanted, not the row (through the ORM: 0.7 ms of Python).
    """
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {_MEMBERS} WHERE project_id = %s AND user_id = %s{lock}",
                       [project_id, annotator.pk])
        if cursor.fetchone() is None:
            raise FeedbackError("the annotator is not a member of the task's project", field="annotator")


def assignments_expire(*, project, now=None) -> int:
    """Close active assignments past their expiry, so their tasks go back in the queue."""
    now = now or timezone.now()
    return Assignment.objects.filter(task__project=project, status=Status.ACTIVE, expires_at__lte=now).update(
        status=Status.EXPIRED, closed_at=now)


def assignments_release(*, project, annotator, now=None) -> int:
    """Close the annotator's active assignments in the project (they left it), so the tasks they
    held go back to the queue at once rather than when the assignments expire; how many."""
    now = now or timezone.now()
    return Assignment.objects.filter(task__project=project, annotator=annotator, status=Status.ACTIVE).update(
        status=Status.EXPIRED, closed_at=now)


def _gold_due(counts: AnnotationCounts) -> bool:
    """A gold task is due, and one may be left for this annotator.

    Each gold label is on a different gold task, so with no more gold tasks than gold labels
    none is left: no gold pick then (a project without gold tasks never runs one).
    """
    return counts.gold_tasks > counts.gold_done and counts.gold_done < (counts.done + 1) // GOLD_EVERY


_TASKS, _ASSIGNMENTS, _LABELS, _MEMBERS = (
    m._meta.db_table for m in (ComparisonTask, Assignment, PreferenceLabel, Membership))

# The pick, in SQL both backends read (built through the ORM it cost 1.8 ms of Python a call):
# this annotator's candidate tasks, least-annotated first (labels + live assignments).
# - Live assignments are counted once, in a grouped table hash-joined to the tasks, not by a
#   correlated count per task (which Postgres ran twice, for the filter and for the sort).
# - The annotator's own tasks are excluded by uncorrelated NOT IN, which Postgres hashes once
#   (`NOT (hashed SubPlan)`) whatever its statistics say. As NOT EXISTS anti-joins, a planner
#   that believed the annotator had no rows (statistics from before the labelling started)
#   chose a nested loop of every open task times every task the annotator had done.
# - Gold tasks go to every annotator once, whatever the overlap: {overlap} is empty for them.
# - On Postgres the row is locked with SKIP LOCKED ({lock}): annotators asking at the same
#   moment get different tasks instead of queueing on one.
_PICK_SQL = """
SELECT t.*, t.label_count + COALESCE(live.n, 0) AS claimed
  FROM {tasks} t
  LEFT JOIN (SELECT task_id, COUNT(*) AS n FROM {assignments}
              WHERE status = %s AND expires_at > %s GROUP BY task_id) live ON live.task_id = t.id
 WHERE t.project_id = %s AND t.is_gold = %s
   AND t.id NOT IN (SELECT task_id FROM {assignments} WHERE annotator_id = %s AND status IN (%s, %s))
   AND t.id NOT IN (SELECT task_id FROM {labels} WHERE annotator_id = %s){overlap}{passed_over}
 ORDER BY claimed, t.id
 LIMIT 1{lock}
"""
_PICK_OVERLAP = """
   AND t.label_count < t.required_labels AND t.label_count + COALESCE(live.n, 0) < t.required_labels"""

# The assignment, made only if the task still has room (for a regular task): the count runs
# in this new statement. Under READ COMMITTED the pick saw a snapshot taken before it waited
# for (or skipped) locks; an assignment another annotator committed in between is visible
# only to a later statement, and the row lock we hold makes this count final. So is a label
# of this annotator's own (another tab; labels do not take the membership lock): a task they
# labelled meanwhile is passed over, not assigned to them again.
_CLAIM_SQL = """
INSERT INTO {assignments} (task_id, annotator_id, status, assigned_at, expires_at, closed_at)
SELECT t.id, %s, %s, %s, %s, NULL FROM {tasks} t WHERE t.id = %s
   AND NOT EXISTS (SELECT 1 FROM {labels} l WHERE l.task_id = t.id AND l.annotator_id = %s){overlap}
"""
_CLAIM_OVERLAP = """
   AND t.label_count + (SELECT COUNT(*) FROM {assignments} a
                         WHERE a.task_id = t.id AND a.status = %s AND a.expires_at > %s) < t.required_labels"""


def _claim_first(*, project, annotator, now, gold: bool, tries: int = 5) -> ComparisonTask | None:
    """Pick this annotator's next task and assign it to them; None when none is left.

    A regular task found full once locked (see _CLAIM_SQL) is passed over for the next one.
    """
    tables = {"tasks": _TASKS, "assignments": _ASSIGNMENTS, "labels": _LABELS}
    lock = " FOR UPDATE OF t SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    db_now = connection.ops.adapt_datetimefield_value(now)
    claim_sql = _CLAIM_SQL.format(**tables, overlap="" if gold else _CLAIM_OVERLAP.format(**tables))
    claim_params = [annotator.pk, Status.ACTIVE, connection.ops.adapt_datetimefield_value(timezone.now()),
                    connection.ops.adapt_datetimefield_value(now + ASSIGNMENT_TTL)]
    passed_over: list[int] = []
    for _ in range(tries):
        sql = _PICK_SQL.format(**tables, overlap="" if gold else _PICK_OVERLAP, lock=lock, passed_over=(
            f"\n   AND t.id NOT IN ({', '.join(['%s'] * len(passed_over))})" if passed_over else ""))
        params = [Status.ACTIVE, db_now, project.pk, gold, annotator.pk, Status.COMPLETED, Status.SKIPPED,
                  annotator.pk, *passed_over]
        task = next(iter(ComparisonTask.objects.raw(sql, params)), None)
        if task is None:
            return None
        with connection.cursor() as cursor:
            cursor.execute(claim_sql, [*claim_params, task.pk, annotator.pk, *([] if gold else [Status.ACTIVE, db_now])])
            if cursor.rowcount == 1:
                return task
        passed_over.append(task.pk)
    return None


@dataclass(frozen=True)
class NextTask:
    task: ComparisonTask | None  # None: nothing left for this annotator
    progress: Progress  # the annotator's counter, read in the same transaction


@transaction.atomic
def task_next_with_progress(*, project, annotator, now=None) -> NextTask:
    """The task this annotator should label next, assigned to them, and their progress counter.

    An unexpired assignment the annotator already holds comes back first (a reload does not
    burn a task), unless others filled its regular task meanwhile (it is released: a label on it
    would be refused with TaskFilled). Otherwise the least-annotated task that still needs labels and that this
    annotator has neither labelled nor skipped; every GOLD_EVERY-th task is a gold task while
    one is left. On Postgres the candidate row is locked with SKIP LOCKED, so annotators asking
    at the same moment get different tasks instead of waiting on each other. Expired
    assignments stop counting the moment they expire (the queries compare ``expires_at``), so
    requeueing needs no background job.
    """
    now = now or timezone.now()
    _membership_locked(project_id=project.pk, annotator=annotator)
    # Assigning a task changes none of these figures, so the workspace shows them as read here.
    counts = annotation_counts(project=project, annotator=annotator)
    held = list(Assignment.objects.filter(annotator=annotator, task__project=project, status=Status.ACTIVE)
                .select_related("task").order_by("assigned_at", "id")) if counts.held else []
    # A held task that others filled meanwhile (labels over the API need no assignment, a review
    # may restore a label) would only be refused (TaskFilled) when labelled: it is let go, as a
    # stale assignment is, and not shown.
    live = [a for a in held if a.expires_at > now and (a.task.is_gold or a.task.label_count < a.task.required_labels)]
    if live:
        return NextTask(live[0].task, counts.progress)
    if held:  # this annotator's own stale assignments, or ones on full tasks: close them before a new one is made
        Assignment.objects.filter(pk__in=[a.pk for a in held]).update(status=Status.EXPIRED, closed_at=now)
    task = None
    if _gold_due(counts):
        task = _claim_first(project=project, annotator=annotator, now=now, gold=True)
    if task is None:
        task = _claim_first(project=project, annotator=annotator, now=now, gold=False)
    if task is None:
        assignments_expire(project=project, now=now)  # tidy the books while the queue is quiet
        return NextTask(None, counts.progress)
    # The picked row as it is: the workspace needs no rubric join (it has the criteria) and
    # a join in the pick would run for every open task before the sort.
    return NextTask(task, counts.progress)


def task_next_for_annotator(*, project, annotator, now=None) -> ComparisonTask | None:
    """The task this annotator should label next, assigned to them; None when nothing is left.

    See ``task_next_with_progress``.
    """
    return task_next_with_progress(project=project, annotator=annotator, now=now).task


@transaction.atomic
def assignment_skip(*, task: ComparisonTask, annotator, now=None) -> None:
    """The annotator passes on this task: it goes back to the queue for others, not for them."""
    now = now or timezone.now()
    _membership_locked(project_id=task.project_id, annotator=annotator)
    closed = Assignment.objects.filter(task=task, annotator=annotator, status=Status.ACTIVE).update(
        status=Status.SKIPPED, closed_at=now)
    if not closed:
        Assignment.objects.create(task=task, annotator=annotator, status=Status.SKIPPED, expires_at=now, closed_at=now)


@transaction.atomic
def assignments_unskip(*, project, annotator, now=None) -> int:
    """The annotator's skipped tasks of this project go back to their queue (they come round
    again as any other task they have not labelled); how many skips were taken back. The
    skips are closed as expired, the status of an assignment no longer in effect."""
    now = now or timezone.now()
    _membership_locked(project_id=project.pk, annotator=annotator)
    return Assignment.objects.filter(task__project=project, annotator=annotator, status=Status.SKIPPED).update(
        status=Status.EXPIRED, closed_at=now)


def _scores_clean(scores, *, task: ComparisonTask, k: int, criteria: Sequence[Criterion] | None = None
                  ) -> tuple[list[tuple[int, Criterion, float]], int | None]:
    """[(candidate position, criterion, value)] and the rubric version they were given under.

    ``scores`` maps candidate position -> {criterion id: value}. All criteria must come from one
    version of the task's rubric (a rubric edited while the page was open still records the
    version the annotator saw). ``criteria``: criteria of the task's rubric the caller has
    read already; the database is asked only about others.
    """
    if not scores:
        return [], None
    if not isinstance(scores, Mapping):
        raise FeedbackError("scores must map candidate positions to {criterion id: value}", field="scores")
    if task.rubric_version_id is None:
        raise FeedbackError("this task has no rubric to score against", field="scores")
    wanted: list[tuple[int, int, float]] = []
    for position, by_criterion in scores.items():
        try:
            position = int(position)
        except (TypeError, ValueError):
            raise FeedbackError(f"candidate position {position!r} is not a number", field="scores") from None
        if not 0 <= position < k:
            raise FeedbackError(f"there is no candidate at position {position}", field="scores")
        if not isinstance(by_criterion, Mapping):
            raise FeedbackError("scores must map candidate positions to {criterion id: value}", field="scores")
        for criterion_id, value in by_criterion.items():
            try:
                wanted.append((position, int(criterion_id), float(value)))
            except (TypeError, ValueError):
                raise FeedbackError(f"score {value!r} for criterion {criterion_id!r} is not a number",
                                    field="scores") from None
    wanted_ids = {c for _, c, _ in wanted}
    criteria = {c.pk: c for c in criteria or ()}
    if not wanted_ids <= criteria.keys():
        criteria = {c.pk: c for c in Criterion.objects.filter(
            pk__in=wanted_ids, version__rubric__versions=task.rubric_version_id).distinct()}
    cleaned = []
    for position, criterion_id, value in wanted:
        criterion = criteria.get(criterion_id)
        if criterion is None:
            raise FeedbackError(f"criterion {criterion_id} is not part of this task's rubric", field="scores")
        low, high = criterion.bounds
        if not (low <= value <= high and value == int(value)):
            raise FeedbackError(f"{criterion.name!r} takes a whole number from {low} to {high}, got {value:g}",
                                field="scores")
        cleaned.append((position, criterion, value))
    versions = {c.version_id for _, c, _ in cleaned}
    if len(versions) > 1:
        raise FeedbackError("the scores mix criteria from different rubric versions; reload the task", field="scores")
    return cleaned, versions.pop()


def _repeated(existing: PreferenceLabel | None, *, task: ComparisonTask, annotator, key: str
              ) -> PreferenceLabel | None:
    """The label this submission replays (same key, same task and annotator), or None.

    FeedbackError for a key used on another label; LabelConflict for this annotator's label on
    this task stored under another key (a second judgement, not a retry)."""
    if existing is not None and (existing.task_id != task.pk or existing.annotator_id != annotator.pk):
        raise FeedbackError("this submission key was already used for another label", field="submission_key")
    if existing is not None and existing.submission_key != key:
        raise LabelConflict(existing)
    return existing


def _replayed(existing: PreferenceLabel, *, tiers, both_bad: bool, strength: int | None, critique: str, scores,
              candidate_ids) -> PreferenceLabel:
    """``existing`` when this retry carries the judgement it stored; SubmissionChanged if not.
    (Only a retry reads the stored scores: the first submission of a key never comes here.)"""
    asked = {(candidate_ids[position], criterion.pk, value) for position, criterion, value in scores}
    if (existing.ranking != tiers or existing.both_bad != both_bad or existing.strength != strength
            or existing.critique != critique
            or set(existing.scores.values_list("candidate_id", "criterion_id", "value")) != asked):
        raise SubmissionChanged(existing)
    return existing


def _existing_label(*, task: ComparisonTask, annotator, key: str) -> PreferenceLabel | None:
    """The label this submission repeats: same key, or this annotator's label on this task."""
    existing = PreferenceLabel.objects.filter(Q(submission_key=key) | Q(task=task, annotator=annotator)).first()
    return _repeated(existing, task=task, annotator=annotator, key=key)


# Lock the task row (label_count stays exact under concurrent submissions), check that the
# annotator belongs to the task's project, and find the id of the label this submission would
# repeat (as _existing_label: same key, or this annotator's label on this task, newest first),
# in one statement. The lookup runs in the statement's snapshot, which predates any wait for
# the lock: a repeat committed by a concurrent request meanwhile is caught by the insert's
# unique constraints (see the IntegrityError branch), or, on a task found full, by a second lookup
# (a statement of its own, after the wait). The task's own columns are read from the
# row as locked (Postgres returns the version committed while it waited): its label_count,
# the labels that count (a rejected label is left out of it, a withdrawn one deleted), is
# final until this transaction ends, so two submissions for a task's last slot store one label.
#
# Slots held: an active, unexpired assignment reserves a slot of the task for its annotator (the
# queue counts it so, see _PICK_SQL). The statement also reads this annotator's active assignment
# of the task (one at most: assignment_one_active_per_annotator), live if not past its expiry; its
# times also give a label sent without a time its time (_time_spent_on_assignment).
# A holder is refused only when the counting labels alone fill the task, as before. A new label
# from an annotator who holds none (over the API, or after their assignment lapsed) is refused
# when the counting labels and the slots other annotators hold leave no slot free, so it cannot
# take the slot of someone labelling the task now, e.g. of an annotator who just undid their
# label (label_undo hands the task back with a live assignment). Those slots are counted by
# _held_by_others_now, once the row is locked, not by a subquery here: see there.
_LOCK_SQL = """
SELECT t.id, (SELECT l.id FROM {labels} l WHERE l.submission_key = %s OR (l.task_id = t.id AND l.annotator_id = %s)
               ORDER BY l.created_at DESC LIMIT 1),
       t.label_count, t.required_labels, t.is_gold, a.assigned_at, a.expires_at
  FROM {tasks} t INNER JOIN {members} m ON m.project_id = t.project_id AND m.user_id = %s
  LEFT JOIN {assignments} a ON a.task_id = t.id AND a.annotator_id = %s AND a.status = %s
 WHERE t.id = %s{lock}
"""


def _held_by_others_now(*, task_id: int, annotator_id: int, now) -> int:
    """The task's live assignments of other annotators, counted once the task row is locked.

    Not a subquery of _LOCK_SQL: those read the snapshot the statement started with, before any
    wait for the row lock, while the task's label_count comes from the row as locked. A slot
    reserved while that lock was held and committed meanwhile (the queue's pick locks the task
    row; label_undo updates its label_count) would be missed, and an assignment closed meanwhile
    by its holder's label counted twice, as a slot and as a label. A new statement (read
    committed) sees both as committed, and until this transaction ends no other request can
    reserve a slot of the task (an expiry or a skip may only free one). Run only for a new label from an annotator without a live assignment of a
    regular task (over the API, or lapsed), never for the workspace's usual submission."""
    return Assignment.objects.filter(task_id=task_id, status=Status.ACTIVE, expires_at__gt=now).exclude(
        annotator_id=annotator_id).count()


def label_submit_outcome(*, task: ComparisonTask, annotator, ranking, both_bad: bool = False, critique: str = "",
                         scores: Mapping | None = None, time_spent_ms: int | None = None, submission_key: str,
                         criteria: Sequence[Criterion] | None = None,
                         strength: int | None = None) -> tuple[PreferenceLabel, bool]:
    """(label, created): like ``label_submit``, saying whether this call stored the label
    (False: a retry with the key of the label stored)."""
    key = (submission_key or "").strip()
    if not 8 <= len(key) <= 64:
        raise FeedbackError("a submission key of 8 to 64 characters is required", field="submission_key")
    candidate_ids = {c.position: c.pk for c in task.candidates.all()}
    k = len(candidate_ids)
    try:
        tiers = ranking_normalise(ranking, k=k)
    except ValueError as exc:
        raise FeedbackError(str(exc), field="ranking") from None
    if both_bad and len(tiers) != 1:
        raise FeedbackError("'both bad' is a tie of every candidate; the ranking must be one tier", field="both_bad")
    _strength_check(strength, k=k, tiers=tiers)
    if len(critique or "") > MAX_CRITIQUE_CHARS:
        raise FeedbackError(f"the critique is longer than {MAX_CRITIQUE_CHARS} characters", field="critique")
    try:
        storable_text_check(critique or "")
    except UnstorableText as exc:
        raise FeedbackError(f"the critique {exc}", field="critique") from None
    cleaned_scores, scored_version = _scores_clean(scores, task=task, k=k, criteria=criteria)
    try:
        spent = None if time_spent_ms is None else min(max(int(time_spent_ms), 0), MAX_TIME_SPENT_MS)
    except (TypeError, ValueError):
        raise FeedbackError("time spent must be a whole number of milliseconds", field="time_spent_ms") from None

    judgement = dict(tiers=tiers, both_bad=bool(both_bad), strength=strength, critique=(critique or "").strip(),
                     scores=cleaned_scores, candidate_ids=candidate_ids)
    now = timezone.now()
    full = None
    try:
        with transaction.atomic():
            lock = " FOR UPDATE OF t" if connection.features.has_select_for_update else ""
            with connection.cursor() as cursor:
                cursor.execute(_LOCK_SQL.format(labels=_LABELS, tasks=_TASKS, members=_MEMBERS,
                                                assignments=_ASSIGNMENTS, lock=lock),
                               [key, annotator.pk, annotator.pk, annotator.pk, Status.ACTIVE, task.pk])
                row = cursor.fetchone()
            if row is None:
                raise FeedbackError("the annotator is not a member of the task's project", field="annotator")
            if row[1] is not None:
                existing = _repeated(PreferenceLabel.objects.filter(pk=row[1]).first(), task=task, annotator=annotator,
                                     key=key)
                if existing is not None:  # (None: withdrawn since; store this one)
                    return _replayed(existing, **judgement), False
            label_count, required_labels, is_gold = row[2:5]
            assigned_at, expires_at = (_as_datetime(v) for v in row[5:])
            holds = expires_at is not None and expires_at > now
            held_by_others = 0
            if not (is_gold or holds or label_count >= required_labels):  # no slot of its own: others' are theirs
                held_by_others = _held_by_others_now(task_id=task.pk, annotator_id=annotator.pk, now=now)
            if is_gold or label_count + held_by_others < required_labels:
                if spent is None:
                    spent = _time_spent_on_assignment(assigned_at, expires_at, now=now)
                label = _label_store(task=task, annotator=annotator, judgement=judgement, time_spent_ms=spent,
                                     submission_key=key, rubric_version_id=scored_version or task.rubric_version_id,
                                     now=now)
            else:
                # The lookup above ran in a snapshot from before any wait for the task row, so a repeat
                # of this submission (or this annotator's label under another key) that filled the task
                # meanwhile is unseen there, and would otherwise be refused as a stranger's: look again.
                existing = _existing_label(task=task, annotator=annotator, key=key)
                if existing is not None:
                    return _replayed(existing, **judgement), False
                # refused; the annotator's hold on the task is let go (committed): their next task is another
                Assignment.objects.filter(task=task, annotator=annotator, status=Status.ACTIVE).update(
                    status=Status.EXPIRED, closed_at=now)
                full = TaskFilled(task_id=task.pk, label_count=label_count, required_labels=required_labels,
                                  held=held_by_others if label_count < required_labels else 0)
    except IntegrityError:
        # A concurrent request with the same key, or for the same task and annotator, got there first.
        existing = _existing_label(task=task, annotator=annotator, key=key)
        if existing is None:
            raise
        return _replayed(existing, **judgement), False
    if full is not None:
        raise full
    return label, True


def _as_datetime(value):
    """A datetime column read by plain SQL, aware: on SQLite it comes naive (UTC), or as text."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def _time_spent_on_assignment(assigned_at, expires_at, *, now) -> int | None:
    """For a label sent without a time (a form posted without the page's timestamps, the API
    without ``time_spent_ms``): the time since the annotator's active assignment of the task was
    made (``assigned_at``), at most its expiry window (past it the task was no longer held for
    them, so the time is not known to be spent on it); None, unknown, without an active
    assignment (both None)."""
    if assigned_at is None or expires_at is None:
        return None
    window = max(expires_at - assigned_at, timedelta(0))
    elapsed = min(max(now - assigned_at, timedelta(0)), window)
    return min(int(elapsed.total_seconds() * 1000), MAX_TIME_SPENT_MS)


def _label_store(*, task: ComparisonTask, annotator, judgement: dict, time_spent_ms: int | None,
                 submission_key: str, rubric_version_id: int | None, now) -> PreferenceLabel:
    """Store the label, its scores and its count on the task; close the annotator's assignment.
    (In the caller's transaction, which holds the task row's lock.)"""
    label = PreferenceLabel(task=task, annotator=annotator, ranking=judgement["tiers"], both_bad=judgement["both_bad"],
                            strength=judgement["strength"], critique=judgement["critique"], time_spent_ms=time_spent_ms,
                            submission_key=submission_key, rubric_version_id=rubric_version_id)
    # The foreign keys are objects in hand and uniqueness is the database's job (see the caller's except).
    label.full_clean(exclude=["task", "annotator", "rubric_version"], validate_unique=False, validate_constraints=False)
    label.save()
    candidate_ids = judgement["candidate_ids"]
    CriterionScore.objects.bulk_create([
        CriterionScore(label=label, candidate_id=candidate_ids[position], criterion=criterion, value=value)
        for position, criterion, value in judgement["scores"]
    ])
    ComparisonTask.objects.filter(pk=task.pk).update(label_count=F("label_count") + 1)
    Assignment.objects.filter(task=task, annotator=annotator, status=Status.ACTIVE).update(
        status=Status.COMPLETED, closed_at=now)
    return label


def _strength_check(strength, *, k: int, tiers) -> None:
    """FeedbackError unless ``strength`` is None, or 1-3 on a pairwise label that prefers one answer."""
    if strength is None:
        return
    if isinstance(strength, bool) or not isinstance(strength, int) or not 1 <= strength <= 3:
        raise FeedbackError(f"the strength must be 1 (slightly better), 2 (better) or 3 (much better), got {strength!r}",
                            field="strength")
    if k != 2 or len(tiers) != 2:
        raise FeedbackError("a strength says how much better the preferred answer is: it goes only with a label "
                            "of two answers that prefers one (not a tie, 'both bad' or a ranking of more)",
                            field="strength")


def label_submit(*, task: ComparisonTask, annotator, ranking, both_bad: bool = False, critique: str = "",
                 scores: Mapping | None = None, time_spent_ms: int | None = None, submission_key: str,
                 criteria: Sequence[Criterion] | None = None, strength: int | None = None) -> PreferenceLabel:
    """Store one annotator's judgement of a task, or return the one a retry with the same
    ``submission_key`` stored. LabelConflict (a FeedbackError) when the annotator labelled the
    task already under another key: nothing changes.

    ``ranking``: tiers of candidate positions, best first (``[[1], [0]]`` = B over A,
    ``[[0, 1]]`` a tie). ``both_bad``: a pairwise "both are bad" vote; the ranking is then one
    tier. ``strength``: optional, with two candidates and one preferred, how much better it is
    (1 slightly, 2 better, 3 much better). ``scores``: {candidate position: {criterion id: value}}
    against the task's rubric.
    ``time_spent_ms``: as the client measured it; None (not sent): the time since the annotator's
    active assignment of the task was made, at most its expiry window, or, without one, None
    (unknown; pages show "—", figures of pace leave the label out).
    ``submission_key``: made once per shown form by the client; retries send it again.
    ``criteria``: the task's current criteria (``selectors.criteria_current``) when the caller
    has them; scores against those need no lookup.
    Any active assignment of the task to this annotator is closed as completed; a label
    without one (e.g. over the API) is accepted too. TaskFilled (a FeedbackError) for a new label
    on a regular task that has its ``required_labels`` counting labels already (others filled
    it while this annotator's assignment lapsed, say), or, from an annotator without a live
    assignment of the task, whose free slots are held by other annotators' live assignments:
    nothing is stored and the annotator's assignment of the task is released. A retry of the annotator's own label is answered as
    above, full task or not. FeedbackError names the bad input.
    """
    label, _created = label_submit_outcome(task=task, annotator=annotator, ranking=ranking, both_bad=both_bad,
                                           critique=critique, scores=scores, time_spent_ms=time_spent_ms,
                                           submission_key=submission_key, criteria=criteria, strength=strength)
    return label


@transaction.atomic
def label_undo(*, label_id: int, annotator, now=None, window_s: int = UNDO_WINDOW_S) -> ComparisonTask:
    """Withdraw the annotator's own label within ``window_s`` seconds; the task comes back to them."""
    now = now or timezone.now()
    label = (PreferenceLabel.objects.select_for_update().select_related("task")
             .filter(pk=label_id, annotator=annotator).first())
    if label is None:
        raise FeedbackError("there is no such label of yours to undo", field="label")
    if label.rejected_at is not None:  # it no longer counts; a reviewed label is kept, raw
        raise FeedbackError("this label was rejected by a researcher; it is kept and cannot be undone", field="label")
    if (now - label.created_at).total_seconds() > window_s:
        raise FeedbackError(f"a label can be undone for {window_s} seconds only; this one is kept", field="label")
    task = label.task
    label.delete()
    ComparisonTask.objects.filter(pk=task.pk, label_count__gt=0).update(label_count=F("label_count") - 1)
    reopened = (Assignment.objects.filter(task=task, annotator=annotator, status=Status.COMPLETED)
                .order_by("-assigned_at").first())
    if reopened is not None:
        reopened.status, reopened.expires_at, reopened.closed_at = Status.ACTIVE, now + ASSIGNMENT_TTL, None
        reopened.save(update_fields=["status", "expires_at", "closed_at"])
    else:
        Assignment.objects.create(task=task, annotator=annotator, expires_at=now + ASSIGNMENT_TTL)
    task.refresh_from_db(fields=["label_count"])
    return task
