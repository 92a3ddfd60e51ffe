"""Label review: a researcher rejects an annotator's label (a spammer's, a careless one's) so it
stops counting, and restores it. A rejected label is kept, with who rejected it, when and why;
it leaves the task's label_count (the task goes back into the queue), the exports, every
training read, the quality figures and head-to-head results; researchers still see it."""

import io
import json
import uuid

import pyarrow.parquet as pq
import pytest
from django.urls import reverse

from tests.factories import make_dataset, make_project, make_rubric, make_task, make_user
from tests.webapp.feedback.conftest import login
from tests.webapp.feedback.test_head_to_head import evaluated
from webapp.experiments.errors import RunError
from webapp.feedback import exports
from webapp.feedback.errors import FeedbackError, TaskFull
from webapp.feedback.head_to_head import comparison_tasks_head_to_head, head_to_head
from webapp.feedback.labelling import label_undo, task_next_for_annotator
from webapp.feedback.models import ComparisonTask, PreferenceLabel
from webapp.feedback.selectors import quality_report
from webapp.feedback.services import annotator_labels_reject, label_reject, label_restore, label_submit
from webapp.rewards.selectors import (
    dpo_pairs, dpo_pairs_check, label_count, preference_records, preference_source_check, sft_examples,
    sft_examples_check,
)

pytestmark = pytest.mark.django_db


def submit(task, user, ranking, **kwargs):
    return label_submit(task=task, annotator=user, ranking=ranking, submission_key=uuid.uuid4().hex, **kwargs)


def count_of(task) -> int:
    return ComparisonTask.objects.get(pk=task.pk).label_count


@pytest.fixture
def spammer(project):
    user = make_user()
    project.memberships.create(user=user, role="annotator")
    return user


# ---------------------------------------------------------------- services

def test_rejecting_keeps_the_label_with_who_when_and_why_and_takes_it_off_the_task_count(project, annotator,
                                                                                         researcher):
    task = make_task(project, required_labels=2)
    label = submit(task, annotator, [[0], [1]])
    assert count_of(task) == 1
    rejected = label_reject(label_id=label.pk, project=project, by=researcher, reason="  clicked A every time ")
    stored = PreferenceLabel.objects.get(pk=label.pk)  # kept, raw
    assert stored.rejected_at is not None and stored.rejected_by == researcher
    assert stored.rejection_reason == "clicked A every time" == rejected.rejection_reason
    assert stored.ranking == [[0], [1]]
    assert count_of(task) == 0


def test_rejecting_twice_and_restoring_twice_change_nothing_more(project, annotator, researcher):
    task = make_task(project, required_labels=2)
    label = submit(task, annotator, [[0], [1]])
    first = label_reject(label_id=label.pk, project=project, by=researcher, reason="spam")
    again = label_reject(label_id=label.pk, project=project, by=make_user(), reason="other")
    assert count_of(task) == 0
    assert (again.rejected_at, again.rejected_by_id, again.rejection_reason) == (
        first.rejected_at, researcher.pk, "spam")  # the first rejection stands
    restored = label_restore(label_id=label.pk, project=project, by=researcher)
    assert (restored.rejected_at, restored.rejected_by, restored.rejection_reason) == (None, None, "")
    assert count_of(task) == 1
    label_restore(label_id=label.pk, project=project, by=researcher)
    assert count_of(task) == 1


def test_restoring_a_label_that_counts_changes_nothing(project, annotator, researcher):
    task = make_task(project)
    label = submit(task, annotator, [[0], [1]])
    assert label_restore(label_id=label.pk, project=project, by=researcher).rejected_at is None
    assert count_of(task) == 1


def test_another_projects_label_is_not_found(project, annotator, researcher):
    other = make_project(annotator=annotator)
    label = submit(make_task(other), annotator, [[0], [1]])
    for review in (label_reject, label_restore):
        with pytest.raises(FeedbackError, match="no such label"):
            review(label_id=label.pk, project=project, by=researcher)
    assert PreferenceLabel.objects.get(pk=label.pk).rejected_at is None


def test_a_reason_over_500_characters_is_refused_and_nothing_changes(project, annotator, researcher):
    task = make_task(project)
    label = submit(task, annotator, [[0], [1]])
    with pytest.raises(FeedbackError, match="501 characters long; the most is 500"):
        label_reject(label_id=label.pk, project=project, by=researcher, reason="x" * 501)
    assert PreferenceLabel.objects.get(pk=label.pk).rejected_at is None and count_of(task) == 1


def test_a_rejected_task_goes_back_into_the_queue_for_another_annotator_not_the_rejected_one(
        project, annotator, researcher, spammer):
    task = make_task(project)
    label = submit(task, spammer, [[0], [1]])
    assert task_next_for_annotator(project=project, annotator=annotator) is None  # full
    label_reject(label_id=label.pk, project=project, by=researcher)
    assert task_next_for_annotator(project=project, annotator=annotator) == task
    assert task_next_for_annotator(project=project, annotator=spammer) is None  # they labelled it once
    submit(task, annotator, [[1], [0]])
    assert count_of(task) == 1
    # The reopened slot is filled again: restoring the first label is refused (it would put the
    # task over its overlap, 2 of 1); see the next test.
    with pytest.raises(FeedbackError):
        label_restore(label_id=label.pk, project=project, by=researcher)
    assert count_of(task) == 1


def test_restoring_a_label_of_a_task_filled_again_is_refused_naming_the_fix_and_nothing_changes(
        project, annotator, researcher, spammer):
    """A rejection reopens a slot, which the queue gives to another annotator; restoring the
    rejected label after that put the task over its overlap (4 of 3). It is refused, the label
    still rejected, and the message says to reject one of the task's labels first."""
    third = make_user()
    project.memberships.create(user=third, role="annotator")
    task = make_task(project, required_labels=2)
    spam = submit(task, spammer, [[0], [1]])
    submit(task, annotator, [[1], [0]])
    label_reject(label_id=spam.pk, project=project, by=researcher, reason="spam")
    assert task_next_for_annotator(project=project, annotator=third) == task
    kept = submit(task, third, [[1], [0]])
    assert count_of(task) == 2
    with pytest.raises(TaskFull) as refused:
        label_restore(label_id=spam.pk, project=project, by=researcher)
    assert refused.value.field == "label"
    assert refused.value.message == (
        f"task {task.pk} has 2 counting labels of the 2 labels it wants: restoring label {spam.pk} would put it "
        "over its overlap. Reject one of its labels first to count this one instead")
    stored = PreferenceLabel.objects.get(pk=spam.pk)
    assert (stored.rejected_at is not None, stored.rejected_by, stored.rejection_reason) == (True, researcher, "spam")
    assert count_of(task) == 2
    # The fix the message names: reject another, then the restore counts it in that one's place.
    label_reject(label_id=kept.pk, project=project, by=researcher)
    assert label_restore(label_id=spam.pk, project=project, by=researcher).rejected_at is None
    assert count_of(task) == 2


def test_a_gold_tasks_label_is_restored_whatever_its_count(project, annotator, researcher, spammer):
    """A gold task has no overlap: every annotator labels it once, so its count passes
    required_labels and a restore is never refused."""
    gold = make_task(project, gold_ranking=[[0], [1]])
    first = submit(gold, spammer, [[1], [0]])
    submit(gold, annotator, [[0], [1]])
    label_reject(label_id=first.pk, project=project, by=researcher)
    submit(gold, researcher, [[0], [1]])
    assert count_of(gold) == 2
    assert label_restore(label_id=first.pk, project=project, by=researcher).rejected_at is None
    assert count_of(gold) == 3


def test_an_annotator_cannot_undo_a_rejected_label(project, annotator, researcher):
    task = make_task(project, required_labels=2)
    label = submit(task, annotator, [[0], [1]])
    label_reject(label_id=label.pk, project=project, by=researcher)
    with pytest.raises(FeedbackError, match="rejected by a researcher"):
        label_undo(label_id=label.pk, annotator=annotator)
    assert PreferenceLabel.objects.filter(pk=label.pk).exists() and count_of(task) == 0


def test_rejecting_all_of_an_annotators_labels(project, annotator, researcher, spammer):
    tasks = [make_task(project, required_labels=2) for _ in range(3)]
    spam = [submit(t, spammer, [[0], [1]]) for t in tasks]
    kept = submit(tasks[0], annotator, [[1], [0]])
    label_reject(label_id=spam[0].pk, project=project, by=researcher, reason="first")
    assert annotator_labels_reject(project=project, annotator_id=spammer.pk, by=researcher, reason="spam") == 2
    assert [count_of(t) for t in tasks] == [1, 0, 0]
    reasons = dict(PreferenceLabel.objects.filter(annotator=spammer).values_list("pk", "rejection_reason"))
    assert reasons == {spam[0].pk: "first", spam[1].pk: "spam", spam[2].pk: "spam"}
    assert PreferenceLabel.objects.get(pk=kept.pk).rejected_at is None
    assert annotator_labels_reject(project=project, annotator_id=spammer.pk, by=researcher) == 0  # idempotent
    assert [count_of(t) for t in tasks] == [1, 0, 0]


def test_rejecting_all_labels_of_someone_without_labels_here_names_the_annotator(project, annotator, researcher):
    other = make_project(annotator=annotator)
    submit(make_task(other), annotator, [[0], [1]])
    with pytest.raises(FeedbackError, match="no labels in this project") as info:
        annotator_labels_reject(project=project, annotator_id=annotator.pk, by=researcher)
    assert info.value.field == "annotator"
    assert PreferenceLabel.objects.get(annotator=annotator).rejected_at is None


# ---------------------------------------------------------------- left out of every read that counts

@pytest.fixture
def reviewed(project, annotator, researcher, spammer):
    """Two tasks each labelled by the annotator (A > B) and the spammer (B > A); the spammer's rejected."""
    tasks = [make_task(project, completions=[f"good {i}", f"bad {i}"], required_labels=2) for i in range(2)]
    for task in tasks:
        submit(task, annotator, [[0], [1]])
        submit(task, spammer, [[1], [0]])
    annotator_labels_reject(project=project, annotator_id=spammer.pk, by=researcher, reason="spam")
    return tasks


def test_exports_leave_rejected_labels_out(project, annotator, reviewed):
    pairs = [json.loads(line) for line in exports.preference_pairs_jsonl(project=project, include_ties=True)]
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("good 0", "bad 0"), ("good 1", "bad 1")]
    raw = [json.loads(line) for line in exports.raw_labels_jsonl(project=project)]
    assert [r["annotator"] for r in raw] == [annotator.username] * 2
    table = pq.read_table(io.BytesIO(b"".join(exports.raw_labels_parquet(project=project))))
    assert table.column("annotator").to_pylist() == [annotator.username] * 2


def test_training_reads_and_launch_counts_leave_rejected_labels_out(project, reviewed):
    assert label_count(project=project) == 2
    fixed = preference_source_check(project=project, data={"source": "labels"})
    assert fixed["through_label"] == PreferenceLabel.objects.filter(rejected_at__isnull=True).order_by("-id")[0].pk
    records = preference_records(project=project, data={"source": "labels", "through_label": 10**9})
    assert [(r.completions[0], r.ranking) for r in records] == [("good 0", [[0], [1]]), ("good 1", [[0], [1]])]
    assert [p.chosen for p in dpo_pairs(project=project, data={"source": "labels", "through_label": 10**9})] == [
        "good 0", "good 1"]
    assert [e.completion for e in sft_examples(project=project, data={"source": "labels", "through_label": 10**9})] \
        == ["good 0", "good 1"]
    assert dpo_pairs_check(project=project, data={"source": "labels"})["through_label"] == fixed["through_label"]


def test_a_project_whose_labels_are_all_rejected_has_none_to_train_on(project, annotator, researcher):
    submit(make_task(project), annotator, [[0], [1]])
    annotator_labels_reject(project=project, annotator_id=annotator.pk, by=researcher)
    for check in (preference_source_check, dpo_pairs_check, sft_examples_check):
        with pytest.raises(RunError, match="no preference labels yet"):
            check(project=project, data={"source": "labels"})


def test_quality_figures_leave_rejected_labels_out_and_count_them_per_annotator(
        project, annotator, researcher, spammer, reviewed):
    report = quality_report(project=project)
    assert report["label_count"] == 2
    assert report["agreement"].total == 0  # one counted label per task: nobody to agree with
    rows = {a.username: a for a in report["annotators"]}
    assert (rows[annotator.username].labels, rows[annotator.username].rejected) == (2, 0)
    assert (rows[spammer.username].labels, rows[spammer.username].rejected) == (0, 2)
    assert rows[spammer.username].agreement is None


def test_rubric_score_agreement_leaves_rejected_labels_out(project, annotator, researcher, spammer):
    rubric = make_rubric(project, criteria=[{"name": "Correct", "scale": "binary"}])
    criterion = rubric.latest_version().criteria.get()
    task = make_task(project, rubric=rubric, required_labels=2)
    submit(task, annotator, [[0], [1]], scores={0: {criterion.pk: 1}, 1: {criterion.pk: 0}})
    spam = submit(task, spammer, [[0], [1]], scores={0: {criterion.pk: 0}, 1: {criterion.pk: 1}})
    assert [a.units for a in quality_report(project=project)["criterion_alphas"]] == [2]
    label_reject(label_id=spam.pk, project=project, by=researcher)
    assert [a.units for a in quality_report(project=project)["criterion_alphas"]] == [0]


def test_head_to_head_leaves_rejected_labels_out(researcher):
    project = make_project(researcher=researcher)
    dataset = make_dataset(project, n=2)
    base, tuned = evaluated(project, dataset, "base"), evaluated(project, dataset, "tuned")
    [task, _] = comparison_tasks_head_to_head(project=project, run_a=base, run_b=tuned, required_labels=2, seed=1)
    good, bad = make_user(), make_user()
    for user in (good, bad):
        project.memberships.create(user=user, role="annotator")
    by_run = {c.metadata["run"]: c.position for c in task.candidates.all()}
    submit(task, good, [[by_run[tuned.pk]], [by_run[base.pk]]])
    spam = submit(task, bad, [[by_run[base.pk]], [by_run[tuned.pk]]])
    assert (head_to_head(project=project, run_a_id=tuned.pk, run_b_id=base.pk).labels) == 2
    label_reject(label_id=spam.pk, project=project, by=researcher)
    result = head_to_head(project=project, run_a_id=tuned.pk, run_b_id=base.pk)
    assert (result.labels, result.a_wins, result.b_wins) == (1, 1, 0)


# ---------------------------------------------------------------- pages

def test_the_task_page_offers_reject_and_shows_a_rejected_label_with_restore(client, project, annotator, researcher):
    task = make_task(project, required_labels=2)
    label = submit(task, annotator, [[0], [1]])
    login(client, researcher)
    page = reverse("feedback:task_detail", args=[project.id, task.id])
    body = client.get(page).content.decode()
    reject_url = reverse("feedback:label_reject", args=[project.id, label.pk])
    assert f'action="{reject_url}"' in body and "csrfmiddlewaretoken" in body
    response = client.post(reject_url, {"reason": "<b>spam</b>"})
    assert response.status_code == 302 and response["Location"] == page
    assert count_of(task) == 0
    body = client.get(page).content.decode()
    assert f"rejected</span> by {researcher.username}" in body
    assert "&lt;b&gt;spam&lt;/b&gt;" in body and "<b>spam</b>" not in body  # escaped, never marked safe
    restore_url = reverse("feedback:label_restore", args=[project.id, label.pk])
    assert f'action="{restore_url}"' in body and f'action="{reject_url}"' not in body
    assert client.post(restore_url).status_code == 302
    assert count_of(task) == 1 and PreferenceLabel.objects.get(pk=label.pk).rejected_at is None


def test_the_task_page_says_why_a_restore_is_refused_and_changes_nothing(client, project, annotator, researcher,
                                                                         spammer):
    task = make_task(project)
    spam = submit(task, spammer, [[0], [1]])
    label_reject(label_id=spam.pk, project=project, by=researcher)
    submit(task, annotator, [[1], [0]])  # the slot filled again
    login(client, researcher)
    response = client.post(reverse("feedback:label_restore", args=[project.id, spam.pk]), follow=True)
    body = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("feedback:task_detail", args=[project.id, task.id])
    assert f"Label {spam.pk} was not restored: task {task.pk} has 1 counting label of the 1 label it wants" in body
    assert "Reject one of its labels first" in body and "was restored" not in body
    assert PreferenceLabel.objects.get(pk=spam.pk).rejected_at is not None and count_of(task) == 1


def test_a_reject_with_a_reason_too_long_says_so_and_changes_nothing(client, project, annotator, researcher):
    task = make_task(project)
    label = submit(task, annotator, [[0], [1]])
    login(client, researcher)
    response = client.post(reverse("feedback:label_reject", args=[project.id, label.pk]), {"reason": "x" * 501},
                           follow=True)
    assert "longer than 500 characters" in response.content.decode()
    assert PreferenceLabel.objects.get(pk=label.pk).rejected_at is None


def test_annotators_cannot_review_and_other_projects_labels_are_404(client, project, annotator, researcher):
    task = make_task(project, required_labels=2)
    label = submit(task, annotator, [[0], [1]])
    login(client, annotator)
    for name in ("label_reject", "label_restore"):
        assert client.post(reverse(f"feedback:{name}", args=[project.id, label.pk])).status_code == 403
    assert client.get(reverse("feedback:annotator_reject", args=[project.id, annotator.pk])).status_code == 403
    assert PreferenceLabel.objects.get(pk=label.pk).rejected_at is None
    other = make_project(annotator=annotator)
    foreign = submit(make_task(other), annotator, [[0], [1]])
    client.logout()
    login(client, researcher)
    for name in ("label_reject", "label_restore"):
        assert client.post(reverse(f"feedback:{name}", args=[project.id, foreign.pk])).status_code == 404
    assert client.get(reverse("feedback:label_reject", args=[project.id, label.pk])).status_code == 405


def test_the_quality_page_rejects_all_of_an_annotators_labels_after_a_confirm_page(
        client, project, annotator, researcher, spammer):
    tasks = [make_task(project, required_labels=2) for _ in range(3)]
    for task in tasks:
        submit(task, spammer, [[0], [1]])
    submit(tasks[0], annotator, [[0], [1]])
    login(client, researcher)
    confirm = reverse("feedback:annotator_reject", args=[project.id, spammer.pk])
    quality = client.get(reverse("feedback:quality", args=[project.id])).content.decode()
    assert f'href="{confirm}"' in quality and "Rejected" in quality
    body = client.get(confirm).content.decode()
    assert "the 3 labels of" in body and "csrfmiddlewaretoken" in body
    assert PreferenceLabel.objects.filter(rejected_at__isnull=False).count() == 0  # GET changes nothing
    response = client.post(confirm, {"reason": "random clicks"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("feedback:quality", args=[project.id])
    page = response.content.decode()
    assert f"Rejected 3 labels of {spammer.username}" in page
    row = page.split(f"<td>{spammer.username}</td>")[1].split("</tr>")[0]
    assert row.startswith("<td>0</td><td>3</td>")  # labels counted, rejected
    assert set(PreferenceLabel.objects.filter(annotator=spammer).values_list("rejection_reason", flat=True)) == {
        "random clicks"}
    assert [count_of(t) for t in tasks] == [1, 0, 0]


def test_the_confirm_page_is_404_for_someone_without_labels_in_the_project(client, project, researcher):
    outsider = make_user()
    other = make_project(annotator=outsider)
    submit(make_task(other), outsider, [[0], [1]])
    login(client, researcher)
    assert client.get(reverse("feedback:annotator_reject", args=[project.id, outsider.pk])).status_code == 404
    assert client.post(reverse("feedback:annotator_reject", args=[project.id, outsider.pk])).status_code == 404
    assert PreferenceLabel.objects.get(annotator=outsider).rejected_at is None


def test_an_annotator_sees_how_many_of_their_labels_were_rejected_and_why(client, project, annotator, researcher):
    other = make_user()
    project.memberships.create(user=other, role="annotator")
    mine = submit(make_task(project, prompt="What is 2+2?"), annotator, [[0], [1]])
    theirs = submit(make_task(project, prompt="their task"), other, [[0], [1]])
    label_reject(label_id=mine.id, project=project, by=researcher, reason="read both <b>before</b> choosing")
    label_reject(label_id=theirs.id, project=project, by=researcher, reason="someone else's")
    make_task(project)  # a task left, so the workspace shows its counter
    login(client, annotator)
    html = client.get(reverse("feedback:annotate", args=[project.id])).content.decode()
    url = reverse("feedback:my_rejected", args=[project.id])
    assert f'(<a href="{url}">1 rejected in review</a>)' in html
    html = client.get(url).content.decode()
    assert "What is 2+2?" in html and "read both &lt;b&gt;before&lt;/b&gt; choosing" in html
    assert "their task" not in html and "someone else" not in html
    label_restore(label_id=mine.id, project=project)
    assert "None of your labels in this project was rejected." in client.get(url).content.decode()
    assert "rejected in review" not in client.get(reverse("feedback:annotate", args=[project.id])).content.decode()
    stranger = make_project(owner=make_user())
    assert client.get(reverse("feedback:my_rejected", args=[stranger.id])).status_code == 404
