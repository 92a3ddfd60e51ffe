"""Blind human comparisons of two runs: each task puts one answer of each run to the same prompt
side by side, in shuffled order; the labels give how often people prefer one run's answers.

This is how a change is judged when no reward captures it (a checkpoint against its base, two
reward models' policies): the two runs are usually evaluation runs of two policies on one
dataset. Each candidate's metadata names its run (``run``, ``run_name``), so the result stays
readable after either run is deleted; the annotators never see it. The task's ``source_run`` is
the first run (the model holds one); the task list names both from the candidates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.db import transaction
from django.db.models.functions import MD5

from webapp.experiments.models import Run, Trajectory
from webapp.feedback.agreement import wilson_interval
from webapp.feedback.errors import FeedbackError
from webapp.feedback.models import Candidate, ComparisonTask, PreferenceLabel, Rubric
from webapp.feedback.parsing import MAX_TASKS
from webapp.feedback.services import (
    TaskSpec, _required_labels_clean, _rubric_version_for, _tasks_create, task_prompt_of,
)


@dataclass(frozen=True)
class HeadToHeadTasks:
    tasks: list[ComparisonTask]
    skipped_identical: int  # prompts passed over because the two answers drawn were the same text


@transaction.atomic
def comparison_tasks_head_to_head_outcome(*, project, run_a: Run, run_b: Run, max_tasks: int = 100,
                                          required_labels: int = 1, rubric: Rubric | None = None,
                                          seed: int = 0) -> HeadToHeadTasks:
    """One task per prompt both runs answered and no earlier task of this project put to them
    both: one completion of each (drawn at random from the run's latest step with that prompt),
    in shuffled order. A prompt whose two drawn answers are the same text makes no task (the
    annotator could only pick one at random, and the pick would count as a win); they are
    counted in ``skipped_identical``. The prompt is the dataset's (``task_prompt_of``); the
    first run is the tasks' ``source_run``. FeedbackError naming the field changes nothing."""
    for field, run in (("run_a", run_a), ("run_b", run_b)):
        if run.project_id != project.pk:
            raise FeedbackError("the run belongs to another project", field=field)
    if run_a.pk == run_b.pk:
        raise FeedbackError("choose two different runs", field="run_b")
    if not 1 <= int(max_tasks) <= MAX_TASKS:
        raise FeedbackError(f"the number of tasks must be between 1 and {MAX_TASKS}", field="max_tasks")
    required = _required_labels_clean(required_labels)
    version = _rubric_version_for(project, rubric)
    answers_a, answers_b = _latest_answers(run_a), _latest_answers(run_b)
    shared = sorted(set(answers_a) & set(answers_b) - _prompts_compared(project, run_a, run_b))
    if not shared:
        raise FeedbackError(f"“{run_a.name}” and “{run_b.name}” answered no prompt in common that is not in a task "
                            "already (their trajectories must come from the same dataset)", field="run_b")
    rng = random.Random(seed)
    rng.shuffle(shared)
    picks, skipped = [], 0
    for prompt_id in shared:
        if len(picks) == int(max_tasks):
            break
        chosen = [(run_a, rng.choice(answers_a[prompt_id])), (run_b, rng.choice(answers_b[prompt_id]))]
        rng.shuffle(chosen)
        if chosen[0][1].digest == chosen[1][1].digest:
            skipped += 1
            continue
        picks.append((prompt_id, chosen))
    full = Trajectory.objects.select_related("prompt").in_bulk([a.pk for _, chosen in picks for _, a in chosen])
    specs = []
    for prompt_id, picked in picks:
        chosen = [(run, full[a.pk]) for run, a in picked]
        prompt_text, messages = task_prompt_of(chosen[0][1])
        specs.append(TaskSpec(
            prompt_text=prompt_text, prompt_messages=messages,
            completions=[t.completion for _, t in chosen],
            metadata=[{"run": run.pk, "run_name": run.name, "prompt_id": prompt_id, "step": t.step,
                       "sample_index": t.sample_index, "reward": t.reward, "rewards": t.rewards}
                      for run, t in chosen],
            trajectory_ids=[t.pk for _, t in chosen],
        ))
    if not specs:
        raise FeedbackError(f"on every prompt left to compare, the answers drawn from “{run_a.name}” and "
                            f"“{run_b.name}” are the same text ({skipped} prompt(s)); there is nothing to choose "
                            "between", field="run_b")
    tasks = _tasks_create(project=project, specs=specs, required_labels=required, rubric_version=version,
                          source_run=run_a)
    return HeadToHeadTasks(tasks=tasks, skipped_identical=skipped)


def comparison_tasks_head_to_head(*, project, run_a: Run, run_b: Run, max_tasks: int = 100, required_labels: int = 1,
                                  rubric: Rubric | None = None, seed: int = 0) -> list[ComparisonTask]:
    """The tasks of ``comparison_tasks_head_to_head_outcome``."""
    return comparison_tasks_head_to_head_outcome(project=project, run_a=run_a, run_b=run_b, max_tasks=max_tasks,
                                                 required_labels=required_labels, rubric=rubric, seed=seed).tasks


@dataclass(frozen=True)
class _Answer:
    """A completion as drawing answers reads it: the text only as a digest (a policy run may hold
    a million completions of kilobytes each; the chosen ones are read whole afterwards)."""
    pk: int
    prompt_id: int
    step: int
    digest: str


def _latest_answers(run: Run) -> dict[int, list[_Answer]]:
    """{prompt id: the run's completions of it at the latest step that has it}."""
    out: dict[int, list[_Answer]] = {}
    latest: dict[int, int] = {}
    rows = (Trajectory.objects.filter(run=run, prompt__isnull=False).annotate(digest=MD5("completion"))
            .order_by("step", "group_index", "sample_index").values_list("pk", "prompt_id", "step", "digest"))
    for t in (_Answer(*row) for row in rows.iterator(chunk_size=5000)):
        if latest.get(t.prompt_id) != t.step:
            latest[t.prompt_id], out[t.prompt_id] = t.step, []
        out[t.prompt_id].append(t)
    return out


def _prompts_compared(project, run_a: Run, run_b: Run) -> set[int]:
    """Prompts of tasks of this project that already hold an answer of each run."""
    runs_of_task: dict[int, set[int]] = {}
    prompt_of_task: dict[int, int] = {}
    for task_id, metadata in Candidate.objects.filter(
            task__project=project, metadata__run__in=[run_a.pk, run_b.pk]).values_list("task_id", "metadata"):
        if isinstance(metadata, dict) and "prompt_id" in metadata:
            runs_of_task.setdefault(task_id, set()).add(metadata.get("run"))
            prompt_of_task[task_id] = metadata["prompt_id"]
    return {prompt_of_task[t] for t, runs in runs_of_task.items() if runs >= {run_a.pk, run_b.pk}}


@dataclass(frozen=True)
class HeadToHead:
    """What the labels on the two runs' tasks say, from the point of view of run ``a``."""

    a_wins: int
    b_wins: int
    ties: int  # both_bad votes included
    tasks: int

    @property
    def labels(self) -> int:
        return self.a_wins + self.b_wins + self.ties

    @property
    def win_rate(self) -> float | None:
        """The share of labels preferring ``a``, a tie counting half; None without labels."""
        return (self.a_wins + self.ties / 2) / self.labels if self.labels else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The Wilson score interval (95 %) of ``win_rate`` over the labels."""
        return None if self.win_rate is None else wilson_interval(self.win_rate, self.labels)


def head_to_head(*, project, run_a_id: int, run_b_id: int) -> HeadToHead:
    """Counts over the labels of this project's tasks that put an answer of each run side by side."""
    return head_to_heads(project=project, run_id=run_a_id, other_ids=[run_b_id]).get(run_b_id, HeadToHead(0, 0, 0, 0))


def head_to_heads(*, project, run_id: int, other_ids) -> dict[int, HeadToHead]:
    """{other run id: ``head_to_head`` of the run against it}, read in two queries however many
    the others (the run's page shows every run it was compared with)."""
    others = set(other_ids) - {run_id}
    positions: dict[int, dict[int, int]] = {}  # task -> {run id: candidate position}
    for task_id, position, metadata in Candidate.objects.filter(
            task__project=project, metadata__run__in=[run_id, *others]).values_list("task_id", "position", "metadata"):
        run = metadata.get("run") if isinstance(metadata, dict) else None
        if (run == run_id or run in others) and "prompt_id" in metadata:
            positions.setdefault(task_id, {})[run] = position
    tasks = {t: p for t, p in positions.items() if len(p) == 2 and run_id in p}  # task -> {run id: position}
    counts = {other: [0, 0, 0, 0] for other in others}  # a wins, b wins, ties, tasks
    for p in tasks.values():
        counts[next(r for r in p if r != run_id)][3] += 1
    for task_id, ranking, both_bad in PreferenceLabel.objects.filter(task_id__in=list(tasks), rejected_at__isnull=True).values_list(
            "task_id", "ranking", "both_bad"):
        other = next(r for r in tasks[task_id] if r != run_id)
        tier = {position: i for i, members in enumerate(ranking) for position in members}
        a, b = tier.get(tasks[task_id][run_id]), tier.get(tasks[task_id][other])
        outcome = 2 if both_bad or a is None or b is None or a == b else (0 if a < b else 1)
        counts[other][outcome] += 1
    return {other: HeadToHead(a_wins=a_wins, b_wins=b_wins, ties=ties, tasks=n)
            for other, (a_wins, b_wins, ties, n) in counts.items()}


def head_to_head_opponents(*, project, run: Run) -> list[tuple[int, str]]:
    """(run id, run name) of every run whose answers were put beside this run's in a task."""
    mine = set(Candidate.objects.filter(task__project=project, metadata__run=run.pk).values_list("task_id", flat=True))
    found: dict[int, str] = {}
    for metadata in Candidate.objects.filter(task_id__in=mine).values_list("metadata", flat=True):
        if isinstance(metadata, dict) and "prompt_id" in metadata and metadata.get("run") not in (None, run.pk):
            found[metadata["run"]] = metadata.get("run_name", "")
    return sorted(found.items())
