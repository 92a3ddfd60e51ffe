"""Reads for rubrics, comparison tasks, the annotation workspace and the quality page.

Every lookup takes the project the caller was admitted to; another project's object is a 404.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import orjson
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Sum, TextField
from django.db.models.functions import Cast
from django.shortcuts import get_object_or_404

from webapp.experiments.models import Run, Trajectory
from webapp.feedback import agreement
from webapp.feedback.models import (
    Assignment, Candidate, ComparisonTask, Criterion, CriterionScore, PreferenceLabel, Rubric, RubricVersion,
)
from webapp.projects.models import Membership

LETTERS = "ABCDEFGHIJ"


def rubric_list(*, project) -> QuerySet[Rubric]:
    return Rubric.objects.filter(project=project).annotate(version_count=Count("versions"))


def rubrics_with_versions(*, project) -> QuerySet[Rubric]:
    """The project's rubrics that have a version (criteria a judge can score by), by name: one
    query, where asking each rubric for its latest version cost one a rubric."""
    return (Rubric.objects.filter(project=project)
            .filter(Exists(RubricVersion.objects.filter(rubric=OuterRef("pk")))).order_by("name"))


def rubric_get(*, project, rubric_id: int) -> Rubric:
    return get_object_or_404(Rubric, pk=rubric_id, project=project)


def rubric_versions(*, rubric: Rubric) -> QuerySet[RubricVersion]:
    return (rubric.versions.select_related("created_by").order_by("-number")
            .prefetch_related(Prefetch("criteria", queryset=Criterion.objects.order_by("position")))
            .annotate(label_count=Count("labels", distinct=True)))


# Read on every workspace render; through the ORM (a Subquery for the latest version) this one
# statement cost 1.0 ms of Python, as plain SQL 0.17 ms.
_CRITERIA_CURRENT_SQL = """
SELECT c.*, r.name AS rubric_name
  FROM {criteria} c INNER JOIN {versions} v ON v.id = c.version_id INNER JOIN {rubrics} r ON r.id = v.rubric_id
 WHERE c.version_id = (SELECT latest.id FROM {versions} latest
                        WHERE latest.rubric_id = (SELECT rubric_id FROM {versions} WHERE id = %s)
                        ORDER BY latest.number DESC LIMIT 1)
 ORDER BY c.position
""".format(criteria=Criterion._meta.db_table, versions=RubricVersion._meta.db_table, rubrics=Rubric._meta.db_table)


def criteria_current(*, task: ComparisonTask) -> list[Criterion]:
    """The criteria annotators score the task on: the latest version of the task's rubric.

    Each carries its rubric's name as ``rubric_name``.
    """
    if task.rubric_version_id is None:
        return []
    return list(Criterion.objects.raw(_CRITERIA_CURRENT_SQL, [task.rubric_version_id]))


def task_list(*, project) -> QuerySet[ComparisonTask]:
    return (ComparisonTask.objects.filter(project=project).annotate(k=Count("candidates"))
            .select_related("rubric_version__rubric", "source_run").order_by("-id"))


@dataclass(frozen=True)
class SourceRun:
    id: int | None  # None: the run was deleted since
    name: str


def tasks_with_compared_runs(tasks) -> list[ComparisonTask]:
    """The tasks, each with ``compared_runs``: the runs whose answers a blind two-run task puts
    side by side, as its candidates' metadata names them (first run first), live ones with their
    id; an empty list for other tasks."""
    tasks = list(tasks)
    found: dict[int, dict[int, str]] = defaultdict(dict)
    # Only tasks made from runs: an imported task's candidates carry whatever metadata its file gave
    from_runs = [t.pk for t in tasks if t.source_run_name]
    for task_id, metadata in (Candidate.objects.filter(task_id__in=from_runs, metadata__has_key="prompt_id")
                              .order_by("task_id", "position").values_list("task_id", "metadata")):
        run = metadata.get("run") if isinstance(metadata, dict) else None
        if isinstance(run, int) and not isinstance(run, bool):
            found[task_id][run] = str(metadata.get("run_name", ""))
    live = set(Run.objects.filter(pk__in={r for runs in found.values() for r in runs}).values_list("pk", flat=True))
    for task in tasks:
        runs = found.get(task.pk, {})
        order = sorted(runs, key=lambda r: r != task.source_run_id)  # stable: the first run, then the other
        task.compared_runs = ([SourceRun(id=r if r in live else None, name=runs[r]) for r in order]
                              if len(runs) > 1 else [])
    return tasks


def task_get(*, project, task_id: int) -> ComparisonTask:
    """A task of this project with its candidates, or 404 (also for another project's task)."""
    return get_object_or_404(
        ComparisonTask.objects.select_related("rubric_version__rubric").prefetch_related(
            Prefetch("candidates", queryset=Candidate.objects.order_by("position"))),
        pk=task_id, project=project)


def task_filled_without(*, task: ComparisonTask, annotator) -> bool:
    """A regular task that has the labels it wants (``required_labels`` counting ones), none of
    them this annotator's: a label of theirs would be refused (``labelling.TaskFilled``)."""
    return (not task.is_gold and task.label_count >= task.required_labels
            and not PreferenceLabel.objects.filter(task=task, annotator=annotator).exists())


def task_labels(*, task: ComparisonTask) -> QuerySet[PreferenceLabel]:
    """Every label of the task, rejected ones too (researchers review them here)."""
    return (task.labels.select_related("annotator", "rubric_version", "rejected_by")
            .prefetch_related("scores__criterion", "scores__candidate").order_by("created_at"))


def label_get(*, project, label_id: int) -> PreferenceLabel:
    """A label of this project, or 404 (also for another project's label)."""
    return get_object_or_404(PreferenceLabel, pk=label_id, task__project=project)


def label_annotator_get(*, project, annotator_id: int):
    """The user with labels in this project under ``annotator_id`` (a former member too), or 404."""
    user_model = PreferenceLabel._meta.get_field("annotator").related_model
    return get_object_or_404(user_model.objects.filter(
        Exists(PreferenceLabel.objects.filter(annotator=OuterRef("pk"), task__project=project))), pk=annotator_id)


def run_choices(*, project) -> QuerySet[Run]:
    """Runs of the project that recorded trajectories, for building tasks from them: one index
    probe per run (a join with DISTINCT read every trajectory of the project)."""
    stored = Trajectory.objects.filter(run=OuterRef("pk"))
    return Run.objects.filter(Exists(stored), project=project).order_by("-created_at")


@dataclass(frozen=True)
class Progress:
    done: int
    open_slots: int
    rejected: int = 0  # of the annotator's labels, those a researcher rejected in review


@dataclass(frozen=True)
class AnnotationCounts:
    done: int  # this annotator's labels in the project
    gold_done: int  # of those, labels on gold tasks
    open_slots: int  # labels the project's regular tasks still want
    gold_tasks: int  # gold tasks in the project
    held: int  # this annotator's active assignments in the project (expired or not)
    rejected: int = 0  # of the annotator's labels, those a researcher rejected in review

    @property
    def progress(self) -> Progress:
        return Progress(done=self.done, open_slots=self.open_slots, rejected=self.rejected)


_LABELS, _TASKS, _ASSIGNMENTS = (m._meta.db_table for m in (PreferenceLabel, ComparisonTask, Assignment))
# One statement, plain SQL both backends read: built through the ORM the same figures cost
# 1.9 ms of Python per call.
_COUNTS_SQL = f"""
SELECT mine.done, mine.gold_done, mine.rejected, project.open_slots, project.gold_tasks,
       (SELECT COUNT(*) FROM {_ASSIGNMENTS} a INNER JOIN {_TASKS} t ON t.id = a.task_id
         WHERE a.annotator_id = %s AND a.status = %s AND t.project_id = %s) AS held FROM
  (SELECT COUNT(*) AS done, COUNT(CASE WHEN t.is_gold THEN 1 END) AS gold_done,
          COUNT(l.rejected_at) AS rejected
     FROM {_LABELS} l INNER JOIN {_TASKS} t ON t.id = l.task_id
    WHERE l.annotator_id = %s AND t.project_id = %s) mine,
  (SELECT COALESCE(SUM(CASE WHEN NOT is_gold AND label_count < required_labels
                            THEN required_labels - label_count END), 0) AS open_slots,
          COUNT(CASE WHEN is_gold THEN 1 END) AS gold_tasks
     FROM {_TASKS} WHERE project_id = %s) project
"""


def annotation_counts(*, project, annotator) -> AnnotationCounts:
    """The workspace counter and what choosing the annotator's next task needs to know, in one query."""
    with connection.cursor() as cursor:
        cursor.execute(_COUNTS_SQL, [annotator.pk, Assignment.Status.ACTIVE, project.pk,
                                     annotator.pk, project.pk, project.pk])
        done, gold_done, rejected, open_slots, gold_tasks, held = cursor.fetchone()
    return AnnotationCounts(done=done, gold_done=gold_done, open_slots=open_slots, gold_tasks=gold_tasks, held=held,
                            rejected=rejected)


def rejected_labels_of(*, project, annotator) -> QuerySet[PreferenceLabel]:
    """The annotator's own labels in the project that a researcher rejected in review, newest
    rejection first, with their tasks (for the annotator's page that says why)."""
    return (PreferenceLabel.objects.filter(task__project=project, annotator=annotator, rejected_at__isnull=False)
            .select_related("task").order_by("-rejected_at", "-id"))


def skipped_still_open(*, project, annotator) -> int:
    """Tasks the annotator skipped that they have not labelled and that still take a label
    (a gold task always does): what "show my skipped tasks again" would give back."""
    return (ComparisonTask.objects.filter(project=project, assignments__annotator=annotator,
                                          assignments__status=Assignment.Status.SKIPPED)
            .filter(Q(is_gold=True) | Q(label_count__lt=F("required_labels")))
            .exclude(labels__annotator=annotator).distinct().count())


def annotator_labels_counted(*, project, annotator_id: int) -> int:
    """How many of the annotator's labels in the project still count: what rejecting all of them rejects."""
    return PreferenceLabel.objects.filter(task__project=project, annotator_id=annotator_id,
                                          rejected_at__isnull=True).count()


def annotation_progress(*, project, annotator) -> Progress:
    return annotation_counts(project=project, annotator=annotator).progress


@dataclass(frozen=True)
class CandidateView:
    position: int
    letter: str
    text: str


def workspace_candidates(*, task: ComparisonTask) -> list[CandidateView]:
    return [CandidateView(position=c.position, letter=LETTERS[c.position], text=c.text)
            for c in sorted(task.candidates.all(), key=lambda c: c.position)]


# ---------------------------------------------------------------- quality


@dataclass
class AnnotatorQuality:
    annotator_id: int
    username: str
    labels: int = 0
    timed_labels: int = 0  # those whose time is known (null: sent without a time and an assignment)
    time_spent_ms: int = 0
    agreement: float | None = None
    agreement_n: int = 0
    tau_b: float | None = None
    tau_b_n: int = 0
    gold_accuracy: float | None = None
    gold_n: int = 0
    rejected: int = 0  # labels rejected in review: kept, counted in none of the figures

    @property
    def labels_per_hour(self) -> float | None:
        return agreement.labels_per_hour(self.timed_labels, self.time_spent_ms)


@dataclass
class CriterionAlpha:
    rubric: str
    criterion: str
    scale: str
    alpha: float | None
    units: int


TOTAL_REWARD = ("total",)  # the weighted sum a run trained on; no reward's name (a string) equals it


def reward_agreement_rows(*, project, labels: list[agreement.RawLabel] | agreement.LabelColumns | None = None,
                          run_id: int | None = None) -> list[agreement.RewardAgreement]:
    """Each reward's agreement with the annotators over the project's tasks made from runs
    (from one run's trajectories, or head to head from two runs' answers), or only those made
    from the run ``run_id``: the total first, then the components by name.

    The rewards are those the candidates were made with (their metadata keeps them), so the
    figures outlive the runs; two candidates are compared only if the same run scored them.
    """
    candidates = Candidate.objects.filter(task__project=project).filter(
        Q(task__source_run_name__gt="") | Q(metadata__has_key="run"))
    if run_id is not None:
        candidates = candidates.filter(Q(task__source_run_id=run_id) | Q(metadata__run=run_id))
    scores: dict[int, dict[int, dict]] = defaultdict(dict)
    sources: dict[int, dict[int, object]] = defaultdict(dict)
    for task_id, position, metadata in candidates.values_list("task_id", "position", "metadata"):
        if not isinstance(metadata, dict) or "reward" not in metadata:
            continue
        rewards = metadata.get("rewards")
        scores[task_id][position] = {**(rewards if isinstance(rewards, dict) else {}), TOTAL_REWARD: metadata["reward"]}
        sources[task_id][position] = metadata.get("run", "task")  # a task made from one run: one source
    if labels is None:
        labels = [agreement.RawLabel(task_id=t, annotator_id=a, ranking=r) for t, a, r in
                  PreferenceLabel.objects.filter(task__project=project, task_id__in=candidates.values("task_id"),
                                                 rejected_at__isnull=True)
                  .values_list("task_id", "annotator_id", "ranking")]
    figures = agreement.reward_agreement(labels, scores, sources)
    return sorted(figures.values(), key=lambda f: (f.key != TOTAL_REWARD, str(f.key)))


def quality_report(*, project) -> dict:
    """Agreement, tau-b, gold accuracy, per-criterion alpha and pace, for the project and each annotator.

    Rejected labels (see ``review.py``) count in none of the figures; each annotator's row says
    how many of theirs were rejected (an annotator whose labels all were has a row of them alone)."""
    # Read as text and each distinct ranking decoded once: Django's JSONField decoded every
    # label's with json.loads, a fifth of the page's time at 15,000 labels.
    decoded: dict[str, list] = {}
    raw = agreement.LabelColumns.from_rows(
        (task_id, annotator_id, ranking, decoded.get(ranking) or decoded.setdefault(ranking, orjson.loads(ranking)))
        for task_id, annotator_id, ranking in PreferenceLabel.objects.filter(task__project=project,
                                                                            rejected_at__isnull=True)
        .values_list("task_id", "annotator_id", Cast("ranking", TextField())))
    gold = dict(ComparisonTask.objects.filter(project=project, is_gold=True).values_list("id", "gold_ranking"))
    pairwise, tau = agreement.agreement_and_tau(raw)
    gold_figure = agreement.gold_accuracy(raw, gold)

    names = dict(Membership.objects.filter(project=project).values_list("user_id", "user__username"))
    people: dict[int, AnnotatorQuality] = {}
    # Counted in SQL, per annotator: labels, those with a time (pace is of the labels whose
    # time is known), that time, and the rejected ones.
    for annotator_id, counted, timed, spent, rejected in (
            PreferenceLabel.objects.filter(task__project=project).values("annotator_id")
            .annotate(counted=Count("id", filter=Q(rejected_at__isnull=True)),
                      timed=Count("time_spent_ms", filter=Q(rejected_at__isnull=True)),
                      spent=Sum("time_spent_ms", filter=Q(rejected_at__isnull=True)),
                      rejected=Count("id", filter=Q(rejected_at__isnull=False)))
            .order_by("annotator_id").values_list("annotator_id", "counted", "timed", "spent", "rejected")):
        people[annotator_id] = AnnotatorQuality(annotator_id, names.get(annotator_id, "(former member)"),
                                                labels=counted, timed_labels=timed, time_spent_ms=spent or 0,
                                                rejected=rejected)
    for annotator_id, person in people.items():
        for figure, value_attr, n_attr in ((pairwise, "agreement", "agreement_n"), (tau, "tau_b", "tau_b_n"),
                                           (gold_figure, "gold_accuracy", "gold_n")):
            ratio = figure.per_annotator.get(annotator_id)
            if ratio is not None:
                setattr(person, value_attr, ratio.value)
                setattr(person, n_attr, ratio.total)
    timed_labels = sum(p.timed_labels for p in people.values())
    time_spent = sum(p.time_spent_ms for p in people.values())
    return {
        "reward_agreement": reward_agreement_rows(project=project, labels=raw),
        "label_count": sum(p.labels for p in people.values()),
        "agreement": pairwise.overall,
        "tau_b": tau.overall,
        "gold_accuracy": gold_figure.overall,
        "labels_per_hour": agreement.labels_per_hour(timed_labels, time_spent),
        "criterion_alphas": criterion_alphas(project=project),
        "annotators": sorted(people.values(), key=lambda p: p.username),
    }


def criterion_alphas(*, project) -> list[CriterionAlpha]:
    """Krippendorff's alpha of each rubric criterion (by rubric, name and scale, so a criterion
    kept across versions of its rubric is one) over the labels that count.

    A unit is one candidate of one task, rated by the labels on it. The scores are read as
    four numbers each and grouped with numpy: reading each row's rubric and criterion names
    and grouping in Python took a third of the page at 150,000 scores."""
    rows = list(CriterionScore.objects.filter(label__task__project=project, label__rejected_at__isnull=True)
                .values_list("criterion_id", "label__task_id", "candidate_id", "value"))
    if not rows:
        return []
    columns = np.array(rows, dtype=np.float64)  # (N, 4); ids are exact in a float64 below 2**53
    criterion, task, candidate, values = columns[:, 0].astype(np.int64), columns[:, 1].astype(np.int64), \
        columns[:, 2].astype(np.int64), columns[:, 3]
    units = task * (int(candidate.max()) + 1) + candidate  # (N,) one number per (task, candidate)
    named = {pk: (rubric, name, scale) for pk, rubric, name, scale in Criterion.objects.filter(
        pk__in=np.unique(criterion).tolist()).values_list("pk", "version__rubric__name", "name", "scale")}
    keys = sorted(set(named.values()))
    group_of = {pk: keys.index(key) for pk, key in named.items()}
    groups = np.vectorize(group_of.__getitem__, otypes=[np.int64])(criterion)  # (N,)
    alphas = []
    for g, (rubric, name, scale) in enumerate(keys):
        mine = groups == g
        alpha, pairable = agreement.alpha_ordinal_by_unit(units[mine], values[mine])
        alphas.append(CriterionAlpha(rubric=rubric, criterion=name, scale=scale, alpha=alpha, units=pairable))
    return alphas
