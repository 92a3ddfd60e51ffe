"""Writes on rubrics and comparison tasks. Assignment and labels live in ``labelling.py``;
the names the REST API uses are re-exported here."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models.functions import MD5

from webapp.core.json_input import UnstorableText, storable_text_check
from webapp.core.line_errors import LineErrors
from webapp.core.names import name_problem, name_strip
from webapp.core.uploads import UploadText
from webapp.experiments.models import Run, Trajectory
from webapp.feedback.errors import FeedbackError
from webapp.feedback.models import Candidate, ComparisonTask, Criterion, Rubric, RubricVersion
from webapp.feedback.parsing import (
    MAX_CANDIDATES,
    MAX_TASKS,
    check_task_count,
    iter_tasks_jsonl,
    prompt_display_text,
)

# The assignment and label services, re-exported so callers have one place to import from.
from webapp.feedback.labelling import (  # noqa: F401,E402
    assignment_skip, assignments_unskip, label_submit, label_submit_outcome, label_undo, task_next_for_annotator,
    task_next_with_progress,
)
from webapp.feedback.review import annotator_labels_reject, label_reject, label_restore  # noqa: F401,E402

SELECTIONS = ("random", "spread")


# ---------------------------------------------------------------- rubrics

MAX_CRITERION_WEIGHT = 1e6

def _criteria_clean(criteria: Sequence[dict]) -> list[dict]:
    if not criteria:
        raise FeedbackError("a rubric needs at least one criterion", field="criteria")
    try:
        storable_text_check(list(criteria))
    except UnstorableText as exc:
        raise FeedbackError(exc.within("criteria"), field="criteria") from None
    names, cleaned = set(), []
    for i, c in enumerate(criteria):
        name = (c.get("name") or "").strip()
        if not name:
            raise FeedbackError(f"criterion {i + 1} has no name", field="criteria")
        if name in names:
            raise FeedbackError(f"criterion name {name!r} is used twice", field="criteria")
        names.add(name)
        try:
            weight = float(c.get("weight", 1.0))
        except (TypeError, ValueError):
            raise FeedbackError(f"criterion {name!r} has a weight that is not a number", field="criteria") from None
        if not weight > 0:
            raise FeedbackError(f"criterion {name!r} needs a positive weight", field="criteria")
        if not weight <= MAX_CRITERION_WEIGHT:  # the weighted means (Quality page, rubric judge) stay finite
            raise FeedbackError(f"criterion {name!r} has a weight of {weight:g}; the most is {MAX_CRITERION_WEIGHT:g} "
                                "(weights count relative to each other)", field="criteria")
        scale = c.get("scale") or Criterion.Scale.LIKERT_5
        if scale not in Criterion.Scale.values:
            raise FeedbackError(f"criterion {name!r} has an unknown scale; use one of {', '.join(Criterion.Scale.values)}",
                                field="criteria")
        cleaned.append({"name": name, "description": c.get("description") or "", "weight": weight, "scale": scale})
    return cleaned


@transaction.atomic
def rubric_version_create(*, rubric: Rubric, criteria: Sequence[dict], user=None) -> RubricVersion:
    """A new version of the rubric holding exactly `criteria` (name, description, weight, scale)."""
    cleaned = _criteria_clean(criteria)
    rubric = Rubric.objects.select_for_update().get(pk=rubric.pk)
    last = rubric.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = RubricVersion.objects.create(rubric=rubric, number=last + 1, created_by=user)
    Criterion.objects.bulk_create([Criterion(version=version, position=i, **c) for i, c in enumerate(cleaned)])
    return version


@transaction.atomic
def rubric_create(*, project, name: str, criteria: Sequence[dict], description: str = "", user=None) -> Rubric:
    name = _rubric_name_clean(name)
    if Rubric.objects.filter(project=project, name=name).exists():
        raise FeedbackError(f"a rubric named {name!r} already exists", field="name")
    _description_check(description)
    rubric = Rubric(project=project, name=name, description=description)
    rubric.full_clean()
    _rubric_save(rubric)
    rubric_version_create(rubric=rubric, criteria=criteria, user=user)
    return rubric


def _description_check(description: str) -> None:
    try:
        storable_text_check(description)
    except UnstorableText as exc:
        raise FeedbackError(f"the description {exc}", field="description") from None


def _rubric_name_clean(name: str | None) -> str:
    name = name_strip(name)
    if problem := name_problem(name):
        raise FeedbackError(f"the name {problem}", field="name")
    return name


def _rubric_save(rubric: Rubric, **kwargs) -> None:
    """Save; FeedbackError on ``name`` when another rubric took the name after the checks (two
    requests at once), instead of the unique constraint's IntegrityError."""
    try:
        with transaction.atomic():
            rubric.save(**kwargs)
    except IntegrityError as exc:
        raise FeedbackError(f"a rubric named {rubric.name!r} already exists", field="name") from exc


def _criteria_of(version: RubricVersion | None) -> list[dict]:
    if version is None:
        return []
    return [{"name": c.name, "description": c.description, "weight": c.weight, "scale": c.scale}
            for c in version.criteria.order_by("position")]


@transaction.atomic
def rubric_update(*, rubric: Rubric, name: str, description: str, criteria: Sequence[dict], user=None) -> RubricVersion:
    """Rename/describe the rubric; a change of criteria makes a new version (old scores keep theirs).

    Returns the version now current: the new one, or the latest when the criteria did not change.
    """
    name = _rubric_name_clean(name)
    if Rubric.objects.filter(project_id=rubric.project_id, name=name).exclude(pk=rubric.pk).exists():
        raise FeedbackError(f"a rubric named {name!r} already exists", field="name")
    cleaned = _criteria_clean(criteria)
    _description_check(description)
    rubric.name, rubric.description = name, description
    rubric.full_clean()
    _rubric_save(rubric, update_fields=["name", "description"])
    latest = rubric.latest_version()
    if latest is not None and _criteria_of(latest) == cleaned:
        return latest
    return rubric_version_create(rubric=rubric, criteria=cleaned, user=user)


# ---------------------------------------------------------------- comparison tasks

@dataclass
class TaskSpec:
    prompt_text: str
    prompt_messages: list[dict] | None
    completions: list[str]
    gold_ranking: list[list[int]] | None = None
    metadata: list[dict] = field(default_factory=list)  # per candidate
    trajectory_ids: list[int | None] = field(default_factory=list)


def _required_labels_clean(required_labels) -> int:
    try:
        value = int(required_labels)
    except (TypeError, ValueError):
        raise FeedbackError("labels per task must be a whole number", field="required_labels") from None
    if not 1 <= value <= 100:
        raise FeedbackError("labels per task must be between 1 and 100", field="required_labels")
    return value


def _rubric_version_for(project, rubric: Rubric | None) -> RubricVersion | None:
    if rubric is None:
        return None
    if rubric.project_id != project.pk:
        raise FeedbackError("the rubric belongs to another project", field="rubric")
    return rubric.latest_version()


def task_prompt_of(trajectory: Trajectory) -> tuple[str, list[dict] | None]:
    """(prompt text, chat messages or None) of a task made from this trajectory: the prompt as the
    dataset holds it. The trajectory's own ``prompt_text`` is what the model was fed, chat
    template tokens included; it is used only when the dataset prompt is gone."""
    prompt = trajectory.prompt
    if prompt is None:  # an external trainer's prompt: text, or the messages it sent
        return trajectory.prompt_text, trajectory.prompt_messages
    if prompt.is_chat:
        return prompt_display_text(prompt.messages), prompt.messages
    return prompt.text, None


def _tasks_create(*, project, specs: Sequence[TaskSpec], required_labels: int, rubric_version, source_run=None
                  ) -> list[ComparisonTask]:
    """``source_run``: the run the tasks were made from (for tasks of two runs, the first; the
    candidates' metadata names each one's run)."""
    tasks = ComparisonTask.objects.bulk_create([
        ComparisonTask(project=project, source_run=source_run, source_run_name=source_run.name if source_run else "",
                       prompt_text=s.prompt_text,
                       prompt_messages=s.prompt_messages, rubric_version=rubric_version,
                       required_labels=required_labels, is_gold=s.gold_ranking is not None,
                       gold_ranking=s.gold_ranking)
        for s in specs
    ], batch_size=1000)
    Candidate.objects.bulk_create([
        Candidate(task=task, position=i, text=text,
                  trajectory_id=spec.trajectory_ids[i] if spec.trajectory_ids else None,
                  metadata=spec.metadata[i] if spec.metadata else {})
        for task, spec in zip(tasks, specs)
        for i, text in enumerate(spec.completions)
    ], batch_size=2000)
    return tasks


@transaction.atomic
def comparison_tasks_import_jsonl(*, project, content: str | UploadText, required_labels: int = 1, rubric: Rubric | None = None,
                                  user=None) -> list[ComparisonTask]:
    """Tasks from JSONL (see ``parsing.py``); TaskImportError names every bad line and imports nothing.

    The file is read and its tasks written IMPORT_BATCH at a time, in this one transaction: an
    import holds a batch of rows (and the tasks it made, without their candidates), not the
    file's; a bad line anywhere rolls back what was written before it, and the lines after it
    are still read to name every bad one."""
    required = _required_labels_clean(required_labels)
    version = _rubric_version_for(project, rubric)
    errors = LineErrors()
    tasks: list[ComparisonTask] = []
    batch: list[TaskSpec] = []
    count = 0
    for r in iter_tasks_jsonl(content, errors):
        count += 1
        if errors or count > MAX_TASKS:  # refused in the end: only counted from here on
            batch.clear()
            continue
        batch.append(TaskSpec(prompt_text=r.prompt_text, prompt_messages=r.prompt_messages, completions=r.completions,
                              gold_ranking=r.gold_ranking, metadata=[dict(r.metadata) for _ in r.completions]))
        if len(batch) >= IMPORT_BATCH:
            tasks += _tasks_create(project=project, specs=batch, required_labels=required, rubric_version=version)
            batch = []
    if batch and not errors:
        tasks += _tasks_create(project=project, specs=batch, required_labels=required, rubric_version=version)
    check_task_count(count, errors)
    return tasks


# Tasks parsed, then written, this many at a time by an import
IMPORT_BATCH = 1000


@dataclass(frozen=True)
class _Sample:
    """What choosing a run's completions for tasks reads of each one: its text only as a digest
    (the completions of a step range may be a million texts of kilobytes each)."""
    pk: int
    step: int
    group_index: int
    sample_index: int
    reward: float
    digest: str


def _pick_spread(samples: list[_Sample], k: int) -> list[_Sample]:
    """k samples spread evenly over the group's reward range: lowest, highest and between."""
    ordered = sorted(samples, key=lambda t: (t.reward, t.sample_index))
    n = len(ordered)
    return [ordered[round(i * (n - 1) / (k - 1))] for i in range(k)]


@transaction.atomic
def comparison_tasks_from_run(*, project, run: Run, step_min: int, step_max: int, k: int = 2,
                              selection: str = "random", max_tasks: int = 100, required_labels: int = 1,
                              rubric: Rubric | None = None, seed: int = 0) -> list[ComparisonTask]:
    """Tasks from a run's trajectories: one task per prompt group, k of its completions.

    ``selection="random"`` draws groups and completions at random; ``"spread"`` takes the groups
    whose rewards spread widest and, within each, completions from the lowest to the highest
    reward. Groups already turned into tasks of this project are skipped, so a second call
    adds new tasks rather than copies. Candidate order is shuffled so position says nothing.
    """
    if run.project_id != project.pk:
        raise FeedbackError("the run belongs to another project", field="run")
    if selection not in SELECTIONS:
        raise FeedbackError(f"selection must be one of {', '.join(SELECTIONS)}", field="selection")
    if not 2 <= int(k) <= MAX_CANDIDATES:
        raise FeedbackError(f"k must be between 2 and {MAX_CANDIDATES}", field="k")
    if step_min < 0 or step_max < step_min:
        raise FeedbackError("the step range must go from a step ≥ 0 up to a later or equal step", field="step_max")
    if not 1 <= int(max_tasks) <= MAX_TASKS:
        raise FeedbackError(f"the number of tasks must be between 1 and {MAX_TASKS}", field="max_tasks")
    required = _required_labels_clean(required_labels)
    version = _rubric_version_for(project, rubric)

    used = set(Candidate.objects.filter(task__project=project, trajectory__run=run)
               .values_list("trajectory__step", "trajectory__group_index"))
    groups: dict[tuple[int, int], list[_Sample]] = defaultdict(list)
    rows = (Trajectory.objects.filter(run=run, step__gte=step_min, step__lte=step_max)
            .annotate(digest=MD5("completion")).order_by("step", "group_index", "sample_index")
            .values_list("pk", "step", "group_index", "sample_index", "reward", "digest"))
    for t in (_Sample(*row) for row in rows.iterator(chunk_size=5000)):
        if (t.step, t.group_index) not in used:
            groups[(t.step, t.group_index)].append(t)
    for key, samples in groups.items():  # one candidate per distinct text: identical ones give no choice
        groups[key] = list({t.digest: t for t in reversed(samples)}.values())[::-1]
    eligible = [(key, samples) for key, samples in groups.items() if len(samples) >= k]
    if not eligible:
        largest = max((len(samples) for samples in groups.values()), default=0)
        where = "" if step_min == 0 and step_max >= 2**31 - 1 else f" in steps {step_min}–{step_max}"
        if not groups:
            stored = Trajectory.objects.filter(run=run, step__gte=step_min, step__lte=step_max).exists()
            raise FeedbackError(f"no unused prompt group{where}: every one is in a task already (a group "
                                "becomes tasks once)" if stored else f"the run stored no completions{where}",
                                field="step_min")
        if largest < 2:
            raise FeedbackError(f"in each unused prompt group{where} every completion is the same text: there is "
                                "nothing to compare", field="step_min")
        raise FeedbackError(f"k is {k}, but the run's unused prompt groups{where} have at most {largest} "
                            f"different completions each: choose k ≤ {largest}", field="k")

    rng = random.Random(seed)
    if selection == "spread":
        eligible.sort(key=lambda item: (-(max(t.reward for t in item[1]) - min(t.reward for t in item[1])), item[0]))
    else:
        rng.shuffle(eligible)
    picks = []
    for _key, samples in eligible[:max_tasks]:
        chosen = _pick_spread(samples, k) if selection == "spread" else rng.sample(samples, k)
        rng.shuffle(chosen)
        picks.append(chosen)
    full = Trajectory.objects.select_related("prompt").in_bulk([t.pk for chosen in picks for t in chosen])
    specs = []
    for picked in picks:
        chosen = [full[t.pk] for t in picked]
        prompt_text, messages = task_prompt_of(chosen[0])
        specs.append(TaskSpec(
            prompt_text=prompt_text, prompt_messages=messages,
            completions=[t.completion for t in chosen],
            metadata=[{"reward": t.reward, "step": t.step, "group_index": t.group_index,
                       "sample_index": t.sample_index, "rewards": t.rewards} for t in chosen],
            trajectory_ids=[t.pk for t in chosen],
        ))
    return _tasks_create(project=project, specs=specs, required_labels=required, rubric_version=version,
                         source_run=run)


@transaction.atomic
def candidates_detach_discarded(*, run_id: int, after_step: int) -> int:
    """Unlink the candidates made from the run's trajectories past ``after_step``, which an attempt
    that resumes from its checkpoint at ``after_step`` is about to discard; returns how many.

    Nothing annotators made is lost: a candidate keeps its own text and the metadata copied at
    its making (reward, step, indices), its task keeps its labels, and its metadata records
    ``discarded_on_resume`` (the step the run resumed from) in place of the link. Keeping the
    trajectory instead would not keep what was ranked: the resumed attempt writes its own
    completion into the same (step, group, sample) slot.
    """
    candidates = list(Candidate.objects.select_for_update()
                      .filter(trajectory__run_id=run_id, trajectory__step__gt=after_step))
    for candidate in candidates:
        metadata = candidate.metadata if isinstance(candidate.metadata, dict) else {}
        candidate.metadata = {**metadata, "discarded_on_resume": {"run": run_id, "resumed_from_step": after_step}}
        candidate.trajectory = None
    Candidate.objects.bulk_update(candidates, ["metadata", "trajectory"], batch_size=500)
    return len(candidates)


@transaction.atomic
def comparison_task_set_gold(*, task: ComparisonTask, gold_ranking) -> ComparisonTask:
    """Mark a task gold with a known ranking (or clear it with None)."""
    from webapp.feedback.ranking import ranking_normalise

    if gold_ranking is None:
        task.is_gold, task.gold_ranking = False, None
    else:
        try:
            ranking = ranking_normalise(gold_ranking, k=task.candidates.count())
        except ValueError as exc:
            raise FeedbackError(str(exc), field="gold_ranking") from None
        if len(ranking) == 1:
            raise FeedbackError("a gold ranking must order at least two candidates", field="gold_ranking")
        task.is_gold, task.gold_ranking = True, ranking
    task.save(update_fields=["is_gold", "gold_ranking"])
    return task
