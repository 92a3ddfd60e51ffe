"""Review of labels: a researcher rejects an annotator's label (a spammer's, a careless one's)
so that it stops counting, or restores it, as Label Studio's review does.

A rejected label is kept, raw, with who rejected it, when and why; it is left out of the
task's ``label_count`` (so the task goes back into the queue for another annotator), the
exports, every training read and the quality figures. Researchers still see it on the task's
page and over the API. A restore is refused while the task has the labels it wants (its slot
was filled again), so a review never puts a task over its overlap. Runs fix their labels at
launch by id (``through_label``), not by review state; a reward-model, DPO or SFT run's first
attempt keeps what it read in the run's folder (``webapp.rewards.data_snapshots``), so a label
rejected or restored after that attempt read the labels no longer changes the run, even when a
worker starts it again.

Who may review (owner, researcher) is the caller's check: the pages' ``research_required``,
the API's ``RESEARCH`` role set. ``project`` scopes the label: another project's is not found.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from webapp.feedback.errors import FeedbackError, TaskFull
from webapp.feedback.models import ComparisonTask, PreferenceLabel

MAX_REASON_CHARS = 500


def _reason_clean(reason: str | None) -> str:
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON_CHARS:
        raise FeedbackError(f"the reason is {len(reason)} characters long; the most is {MAX_REASON_CHARS}",
                            field="reason")
    return reason


def _label_locked(*, label_id: int, project) -> PreferenceLabel:
    label = (PreferenceLabel.objects.select_for_update(of=("self",))
             .filter(pk=label_id, task__project=project).first())
    if label is None:
        raise FeedbackError("there is no such label in this project", field="label")
    return label


@transaction.atomic
def label_reject(*, label_id: int, project, by, reason: str = "", now=None) -> PreferenceLabel:
    """Reject the label: it stays stored but stops counting, and its task wants one label more.

    Rejecting a rejected label changes nothing (its first rejection stands) and answers it.
    FeedbackError for a label not in ``project`` or a reason over 500 characters.
    """
    reason = _reason_clean(reason)
    label = _label_locked(label_id=label_id, project=project)
    if label.rejected_at is not None:
        return label
    label.rejected_at, label.rejected_by, label.rejection_reason = now or timezone.now(), by, reason
    label.save(update_fields=["rejected_at", "rejected_by", "rejection_reason"])
    # As label_undo: the label row is locked, the task row is locked by this update.
    ComparisonTask.objects.filter(pk=label.task_id, label_count__gt=0).update(label_count=F("label_count") - 1)
    return label


@transaction.atomic
def label_restore(*, label_id: int, project, by=None) -> PreferenceLabel:
    """Undo a rejection: the label counts again (its task's ``label_count`` too). Restoring a
    label that is not rejected changes nothing and answers it. ``by`` is the reviewer (kept for
    the callers' symmetry; a restored label keeps no reviewer).

    TaskFull (a FeedbackError), nothing changed, when the task has its ``required_labels``
    already: the rejection reopened a slot that the queue has since given to another annotator,
    whose label filled it. Restoring would put the task over the overlap the researcher set
    (4 of 3), weighting its prompt above the others in the exports, agreement and training;
    which label to drop is the reviewer's choice, so the message says to reject one first. The
    queue itself never fills a task beyond it (its claim checks for room). A gold task has no
    overlap (every annotator labels it once): its labels are always restored.
    """
    label = _label_locked(label_id=label_id, project=project)
    if label.rejected_at is None:
        return label
    # One conditional update, which locks the task row as a label's submission does: a label
    # submitted at the same moment is counted before or after this check, never beside it.
    counted = (ComparisonTask.objects.filter(pk=label.task_id)
               .filter(Q(is_gold=True) | Q(label_count__lt=F("required_labels")))
               .update(label_count=F("label_count") + 1))
    if not counted:
        task = ComparisonTask.objects.values("label_count", "required_labels").get(pk=label.task_id)
        raise TaskFull(label_id=label.pk, task_id=label.task_id, **task)
    label.rejected_at, label.rejected_by, label.rejection_reason = None, None, ""
    label.save(update_fields=["rejected_at", "rejected_by", "rejection_reason"])
    return label


@transaction.atomic
def annotator_labels_reject(*, project, annotator_id: int, by, reason: str = "", now=None) -> int:
    """Reject every label of the annotator in the project that still counts; how many (0 when
    all are rejected already). FeedbackError for an annotator who has no labels in the project,
    or a reason over 500 characters.

    One transaction: the labels are locked, then their tasks in id order (two reviews of
    annotators who labelled the same tasks take them in one order), each task's count down by
    one (an annotator labels a task once). A label the annotator submits meanwhile is not rejected.
    """
    reason = _reason_clean(reason)
    labels = PreferenceLabel.objects.filter(task__project=project, annotator_id=annotator_id)
    if not labels.exists():
        raise FeedbackError("this annotator has no labels in this project", field="annotator")
    found = list(labels.filter(rejected_at__isnull=True).select_for_update(of=("self",))
                 .order_by("id").values_list("id", "task_id"))
    if not found:
        return 0
    task_ids = sorted({task_id for _, task_id in found})
    list(ComparisonTask.objects.select_for_update().filter(pk__in=task_ids).order_by("id").values_list("id"))
    PreferenceLabel.objects.filter(pk__in=[label_id for label_id, _ in found]).update(
        rejected_at=now or timezone.now(), rejected_by=by, rejection_reason=reason)
    ComparisonTask.objects.filter(pk__in=task_ids, label_count__gt=0).update(label_count=F("label_count") - 1)
    return len(found)
