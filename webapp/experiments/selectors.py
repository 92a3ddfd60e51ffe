"""Reads on runs, metrics, trajectories and checkpoints; every run lookup is scoped to a project."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.shortcuts import get_object_or_404
from django.utils import timezone

from webapp.experiments import metric_history
from webapp.experiments.metric_rollups import TOP_LEVEL
from webapp.experiments.models import (
    TERMINAL_STATUSES,
    Checkpoint,
    HeldOutAnswer,
    MetricChunk,
    MetricRollup,
    PolicyModel,
    Run,
    RunArtifact,
    RunKind,
    RunStatus,
    RunTag,
    Trajectory,
)
from webapp.experiments.run_search import LOOKUPS, Condition, config_matches


def run_list(*, project, kind: str | None = None, status: str | None = None, name_contains: str = "",
             tag: str = "", where: Sequence[Condition] = (), created_after: date | datetime | None = None,
             created_before: date | datetime | None = None, metric: str = "",
             metric_order: str = "") -> QuerySet[Run]:
    """The project's runs, newest first, filtered by kind, status, a part of the name, a tag
    (both in any case), ``where``'s conditions on settings and metrics (``run_search``) and when
    they were created (``runs_created_between``).

    With ``metric`` each run carries ``metric_value``, that metric's value at its highest step
    (None for a run without it); ``metric_order`` "desc" or "asc" sorts by it, runs without the
    metric last, then newest first."""
    runs = Run.objects.filter(project=project).select_related("policy", "dataset")
    if kind:
        runs = runs.filter(kind=kind)
    if status:
        runs = runs.filter(status=status)
    if name_contains:
        runs = runs.filter(name__icontains=name_contains)
    if tag:
        runs = runs.filter(pk__in=RunTag.objects.filter(name__iexact=tag).values("run_id"))
    if where:
        runs = runs_where(runs, where)
    runs = runs_created_between(runs, after=created_after, before=created_before)
    order = ["-created_at", "-id"]  # ties broken, so that pages neither repeat nor skip a run
    if metric:
        runs = runs.annotate(metric_value=_metric_latest_value(metric))
        if metric_order in ("desc", "asc"):
            value = F("metric_value")
            order = [value.desc(nulls_last=True) if metric_order == "desc" else value.asc(nulls_last=True), *order]
    return runs.order_by(*order)


def _metric_latest_value(key: str) -> Subquery:
    """A run's latest value of ``key`` (at its highest step), as a subquery on the run's row."""
    return Subquery(MetricRollup.objects.filter(run=OuterRef("pk"), key=key, level=TOP_LEVEL)
                    .order_by("-bucket").values("last_value")[:1])


def runs_where(runs: QuerySet[Run], conditions: Sequence[Condition]) -> QuerySet[Run]:
    """``runs`` that meet every condition: settings are compared in Python on the stored configs of
    ``runs`` (numbers as numbers, lists by index), metrics in SQL on their latest values."""
    if any(c.source == "config" for c in conditions):
        ids = [pk for pk, config in runs.values_list("pk", "config") if config_matches(config, conditions)]
        runs = runs.filter(pk__in=ids)
    for i, condition in enumerate(c for c in conditions if c.source == "metrics"):
        alias = f"where_metric_{i}"
        runs = runs.annotate(**{alias: _metric_latest_value(condition.name)})
        if condition.op == "!=":
            runs = runs.filter(**{f"{alias}__isnull": False}).exclude(**{alias: condition.value})
        else:
            runs = runs.filter(**{f"{alias}__{LOOKUPS[condition.op]}": condition.value})
    return runs


def _instant(value: date | datetime, *, day_end: bool = False) -> datetime:
    """An aware datetime: a datetime's own (a naive one read in the server's time zone), a date's
    day start (with ``day_end``, the next day's)."""
    if not isinstance(value, datetime):
        if day_end and value == date.max:  # no next day to start
            return timezone.make_aware(datetime.max)
        value = datetime.combine(value + timedelta(days=1) if day_end else value, time.min)
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def runs_created_between(runs: QuerySet[Run], *, after: date | datetime | None = None,
                         before: date | datetime | None = None) -> QuerySet[Run]:
    """``runs`` created between the two bounds, both included: a date is its whole day (in the
    server's time zone, UTC), a datetime its instant."""
    if after is not None:
        runs = runs.filter(created_at__gte=_instant(after))
    if isinstance(before, datetime):
        runs = runs.filter(created_at__lte=_instant(before))
    elif before is not None:
        runs = runs.filter(created_at__lt=_instant(before, day_end=True))
    return runs


def created_range_is_empty(after: date | datetime | None, before: date | datetime | None) -> bool:
    """True when ``before`` ends before ``after`` starts, so that no run can be in between."""
    if after is None or before is None:
        return False
    start, end = _instant(after), _instant(before, day_end=True)
    return end < start if isinstance(before, datetime) else end <= start


def project_metric_keys(*, project, only: str | None = None, limit: int = 500) -> list[str]:
    """The metric keys the project's runs have, sorted (at most ``limit``); with ``only``, that
    key if a run has it (a cheap check where the whole list is not shown)."""
    rows = MetricRollup.objects.filter(run__project=project, level=TOP_LEVEL)
    if only is not None:
        rows = rows.filter(key=only)
    rows = rows.order_by("key").values_list("key", flat=True).distinct()
    return list(rows[:limit])


def run_get(*, project, run_id: int) -> Run:
    """A run of this project, or 404 (also for another project's run)."""
    return get_object_or_404(Run.objects.select_related("policy", "dataset", "eval_dataset"), pk=run_id, project=project)


def policy_list(*, project) -> QuerySet[PolicyModel]:
    """The project's policies by name, each with ``run_count`` (runs that trained or evaluated it) and
    its checkpoint's run."""
    return (PolicyModel.objects.filter(project=project).select_related("checkpoint__run", "created_by")
            .annotate(run_count=Count("runs")).order_by("name"))


def policy_get(*, project, policy_id: int) -> PolicyModel:
    """A policy of this project, or 404 (also for another project's policy)."""
    return get_object_or_404(policy_list(project=project), pk=policy_id)


def policy_registered_alike(*, project, user, name: str, source: str, reference: str = "",
                            checkpoint_id: int | None = None) -> PolicyModel | None:
    """The policy ``user`` registered in the project under ``name`` (any case) from the same model
    (the same built-in, folder or checkpoint; a tiny one), or None: the same registration sent
    again, as a double click on Register does."""
    import os  # noqa: PLC0415

    from webapp.core.names import name_strip  # noqa: PLC0415

    policy = (PolicyModel.objects.filter(project=project, name__iexact=name_strip(name or ""), source=source)
              .filter(created_by=user).first() if getattr(user, "pk", None) else None)
    if policy is None:
        return None
    reference = (reference or "").strip()
    if source == PolicyModel.Source.CHECKPOINT:
        same = policy.checkpoint_id == checkpoint_id
    elif source == PolicyModel.Source.PATH:
        same = bool(reference) and policy.reference == os.path.normpath(reference)
    else:
        same = policy.reference == reference
    return policy if same else None


def policy_runs(*, policy: PolicyModel) -> QuerySet[Run]:
    """The runs that trained from the policy, newest first."""
    return policy.runs.order_by("-id").only("id", "name", "status", "project_id")


def checkpoints_to_start_from(*, project, limit: int = 500) -> QuerySet[Checkpoint]:
    """Checkpoints of the project's finished policy, DPO and SFT runs, newest run and latest step first: what
    a policy may be made from (a running run prunes its older checkpoints as it goes)."""
    return (Checkpoint.objects.filter(run__project=project, run__kind__in=[RunKind.POLICY, RunKind.DPO, RunKind.SFT],
                                      run__status__in=TERMINAL_STATUSES)
            .select_related("run").order_by("-run_id", "-step")[:limit])


def comparison_runs(*, run: Run, search: str = "", limit: int = 20) -> QuerySet[Run]:
    """Other runs of the run's project to overlay on its charts, newest first, at most ``limit``:
    without ``search`` those of the run's kind; with it those of any kind whose name or one of
    whose tags contains it (in any case), so that an older baseline can be found."""
    search = search.strip()
    if not search:
        return run_list(project=run.project, kind=run.kind).exclude(pk=run.pk)[:limit]
    tagged = RunTag.objects.filter(name__icontains=search).values("run_id")
    return (run_list(project=run.project).filter(Q(name__icontains=search) | Q(pk__in=tagged))
            .exclude(pk=run.pk)[:limit])


def metric_history_downsampled(*, run_ids, keys, max_points: int,
                               step_min: int | None = None, step_max: int | None = None) -> list[dict]:
    """The metric series of ``run_ids`` (all keys when ``keys`` is empty), each at most ``max_points``.

    Returns ``[{"run_id", "key", "steps": [...], "values": [...], "downsampled": bool,
    "extremes": [...]}]`` sorted by run and key. A series whose range holds more than
    ``max_points`` steps is cut into ``max_points // 4`` buckets, each keeping its first, last, min
    and max points (``extremes``: the indices of those kept only as a min or max, which smoothing
    skips); the work happens in SQL on pre-aggregated rollups. Callers must pass only runs the user
    may see.
    """
    return metric_history.history(run_ids=[int(r) for r in run_ids], keys=list(keys or []),
                                  max_points=max_points, step_min=step_min, step_max=step_max)


# Keys whose first chunks one statement finds (SQLite allows 500 terms in a UNION ALL), and
# chunks read by id a statement (within SQLite's 999 parameters).
KEYS_PER_QUERY = 100
CHUNKS_PER_QUERY = 500


def _first_chunks(*, run_id: int, starts: dict[str, int], step_max: int | None,
                  limit: int) -> Iterator[tuple[str, list, object]]:
    """(key, points, recorded_at) of each key's first ``limit`` chunks ending at or after its
    start step, in key then step order. One key: one statement. More: their ids in one statement
    (each key a bounded range of the (run, key, step_max) index), then the chunks as they are
    consumed, ``CHUNKS_PER_QUERY`` at a time."""
    if len(starts) == 1:
        [(key, lo)] = starts.items()
        chunks = MetricChunk.objects.filter(run_id=run_id, key=key, step_max__gte=lo)
        if step_max is not None:
            chunks = chunks.filter(step_min__lte=step_max)
        for points, recorded_at in chunks.order_by("step_max").values_list("points", "recorded_at")[:limit]:
            yield key, points, recorded_at
        return
    table = MetricChunk._meta.db_table
    upper = " AND step_min <= %s" if step_max is not None else ""
    parts, params = [], []
    for i, (key, lo) in enumerate(starts.items()):
        parts.append(f"SELECT * FROM (SELECT {i} AS k, step_max, id FROM {table} WHERE run_id = %s AND key = %s "
                     f"AND step_max >= %s{upper} ORDER BY step_max LIMIT %s) AS key{i}")
        params += [run_id, key, lo, *([step_max] if step_max is not None else []), limit]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        ids = [chunk_id for _, _, chunk_id in sorted(cursor.fetchall())]
    for start in range(0, len(ids), CHUNKS_PER_QUERY):
        wanted = ids[start:start + CHUNKS_PER_QUERY]
        rows = {chunk_id: row for chunk_id, *row in MetricChunk.objects.filter(pk__in=wanted)
                .values_list("id", "key", "points", "recorded_at")}
        for chunk_id in wanted:
            yield rows[chunk_id]


def metric_clocks(*, run_ids) -> dict[int, list[tuple[int, float]]]:
    """run_id → [(step, seconds since the epoch)]: when each run's metrics were recorded, at up to
    200 steps, for a chart's time axis (``metric_history.run_clocks``). Callers must pass only
    runs the user may see."""
    return metric_history.run_clocks(run_ids=[int(r) for r in run_ids])


def metric_points_page(*, run_id: int, limit: int, key: str | None = None, step_min: int | None = None,
                       step_max: int | None = None, after: tuple[str, int] | None = None) -> list[dict]:
    """Up to ``limit`` raw points of a run in (key, step) order, starting after the point ``after``.

    Keyset paging over the chunks: per key, only the chunks ending at or after the first wanted
    step are read, in step order, and at most as many as points are still wanted (every chunk
    holds at least one in range, but for one that straddles the whole range, then its key's
    only one), so a page costs about ``limit`` points however long the run. The keys are read
    1, 2, 4 … (up to ``KEYS_PER_QUERY``) at a time: most pages hold points of one key, and a key
    at a time cost a query per key, a hundred for a page of one step of 100 metrics.
    Returns [{"run_id", "key", "step", "value", "recorded_at"}].
    """
    keys = [key] if key else list(MetricRollup.objects.filter(run_id=run_id, level=TOP_LEVEL)
                                  .order_by("key").values_list("key", flat=True).distinct())
    if after is not None:
        keys = [k for k in keys if k >= after[0]]
    out: list[dict] = []
    size = 1
    while keys and len(out) < limit:
        need = limit - len(out)
        batch, keys = keys[:min(need, size)], keys[min(need, size):]
        size = min(2 * size, KEYS_PER_QUERY)
        starts = {k: max(step_min or 0, after[1] + 1) if after is not None and k == after[0] else step_min or 0
                  for k in batch}
        for k, points, recorded_at in _first_chunks(run_id=run_id, starts=starts, step_max=step_max, limit=need):
            for step, value in points:
                if step >= starts[k] and (step_max is None or step <= step_max):
                    out.append({"run_id": run_id, "key": k, "step": step, "value": value, "recorded_at": recorded_at})
                    if len(out) == limit:
                        return out
    return out


def metric_keys(*, run_ids) -> list[str]:
    """Every metric key any of the runs has, sorted."""
    rows = (MetricRollup.objects.filter(run_id__in=list(run_ids), level=TOP_LEVEL)
            .order_by("key").values_list("key", flat=True).distinct())
    return list(rows)


def metric_latest(*, run_ids, keys=None) -> dict[int, dict[str, dict]]:
    """{run_id: {key: {"step", "value"}}}: the value at the highest step of each series."""
    rows = MetricRollup.objects.filter(run_id__in=list(run_ids), level=TOP_LEVEL)
    if keys:
        rows = rows.filter(key__in=list(keys))
    out: dict[int, dict[str, dict]] = {}
    for run_id, key, step, value in rows.order_by("run_id", "key", "bucket").values_list(
        "run_id", "key", "last_step", "last_value"
    ):
        out.setdefault(run_id, {})[key] = {"step": step, "value": value}  # the last bucket wins
    return out


# The distinct steps of a run's rows, one index probe per step (the next step after the last
# found): SELECT DISTINCT read every row of the run, 64 a step and a million over a long run,
# on every 5-second poll of a live run's trajectories. Both backends run it ((run, step, …) index).
_STEPS_SQL = """
WITH RECURSIVE steps(step) AS (
    SELECT MIN(step) FROM {table} WHERE run_id = %s
    UNION ALL
    SELECT (SELECT MIN(step) FROM {table} WHERE run_id = %s AND step > steps.step) FROM steps WHERE steps.step IS NOT NULL
)
SELECT step FROM steps WHERE step IS NOT NULL
"""


def _distinct_steps(model, run: Run) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(_STEPS_SQL.format(table=model._meta.db_table), [run.pk, run.pk])
        return [step for (step,) in cursor.fetchall()]


def trajectory_steps(*, run: Run) -> list[int]:
    """Steps of the run that have stored trajectories, ascending."""
    return _distinct_steps(Trajectory, run)


def step_choices(steps: list[int], chosen: int | None, *, recent: int = 50, spread: int = 100) -> list[int]:
    """The steps a step picker lists: all of them for a short run; for a long one the ``recent``
    newest, about ``spread`` evenly spaced before them, the first and the chosen one. A live run's
    picker is re-sent every few seconds, and one option per step of a 5,000-step run is 150 kB."""
    if len(steps) <= recent + spread:
        return steps
    every = -(-(len(steps) - recent) // spread)
    kept = {*steps[-recent:], *steps[: len(steps) - recent: every], steps[0]}
    if chosen in steps:
        kept.add(chosen)
    return sorted(kept)


TRAJECTORY_ORDERINGS = {
    "slot": ("group_index", "sample_index"),
    "reward": ("group_index", "-reward", "sample_index"),
    "-reward": ("group_index", "reward", "sample_index"),
    "advantage": ("group_index", "-advantage", "sample_index"),
}


def trajectory_groups(*, run: Run, step: int, order: str = "reward") -> list[dict]:
    """The step's prompt groups: [{"group_index", "prompt_text", "trajectories": [...], "mean_reward"}]."""
    ordering = TRAJECTORY_ORDERINGS.get(order, TRAJECTORY_ORDERINGS["reward"])
    groups: dict[int, dict] = {}
    for trajectory in Trajectory.objects.filter(run=run, step=step).order_by(*ordering):
        group = groups.setdefault(trajectory.group_index, {
            "group_index": trajectory.group_index, "prompt_text": trajectory.prompt_text, "trajectories": [],
        })
        group["trajectories"].append(trajectory)
    for group in groups.values():
        rewards = [t.reward for t in group["trajectories"]]
        group["mean_reward"] = sum(rewards) / len(rewards)
        group["reward_keys"] = sorted({k for t in group["trajectories"] for k in t.rewards})
    return [groups[i] for i in sorted(groups)]


def held_out_steps(*, run: Run) -> list[int]:
    """Steps at which the run's held-out answers were stored, ascending."""
    return _distinct_steps(HeldOutAnswer, run)


HELD_OUT_VIEWS = ("all", "wrong", "changed")


def held_out_scorer(*, run: Run) -> str:
    """The key of the 0/1 reward that scored the run's held-out prompts."""
    from workers.engine.config import TrainConfig  # noqa: PLC0415 (light, no torch)
    from workers.engine.errors import ConfigError  # noqa: PLC0415

    try:
        return TrainConfig.from_dict(run.config).held_out_reward.key
    except ConfigError:  # a run's config was validated at launch; an old one may not be now
        return "exact_answer"


@dataclass
class HeldOutRow:
    index: int  # the prompt's position in the held-out dataset
    prompt: str
    reference: str
    answer: HeldOutAnswer
    before: bool | None  # correct at the evaluation before this one; None at the first


def held_out_answers(*, run: Run, step: int, show: str = "all") -> QuerySet[HeldOutAnswer]:
    """The held-out prompts' greedy answers at ``step``, in dataset order, each with its prompt
    and ``before``: whether it was right at the previous evaluated step (None at the first);
    ``show`` "wrong" keeps the wrong answers, "changed" those that became right or wrong since
    then. Filtered in SQL, so that a page of them is all that is read of a large held-out set."""
    previous = (HeldOutAnswer.objects.filter(run=run, step__lt=step).order_by("-step")
                .values_list("step", flat=True).first())
    before = (Subquery(HeldOutAnswer.objects.filter(run=run, step=previous, prompt=OuterRef("prompt"))
                       .order_by().values("correct")[:1]) if previous is not None else Value(None, BooleanField()))
    answers = (HeldOutAnswer.objects.filter(run=run, step=step).select_related("prompt")
               .annotate(before=before).order_by("prompt__index"))
    if show == "wrong":
        answers = answers.filter(correct=False)
    elif show == "changed":
        answers = answers.filter(before__isnull=False).exclude(before=F("correct"))
    return answers


def held_out_rows(answers) -> list[HeldOutRow]:
    """``held_out_answers`` (or a page of them) as table rows."""
    return [HeldOutRow(a.prompt.index, a.prompt.display_text, a.prompt.reference, a, a.before) for a in answers]


def artifact_list(*, run: Run) -> QuerySet[RunArtifact]:
    """The run's artifacts by path."""
    return RunArtifact.objects.filter(run=run).order_by("path")


def artifact_get(*, run: Run, path: str) -> RunArtifact:
    """The run's artifact at ``path``, or 404 (also for a path another run has)."""
    return get_object_or_404(RunArtifact, run=run, path=path)


def checkpoint_list(*, run: Run) -> QuerySet[Checkpoint]:
    return Checkpoint.objects.filter(run=run).order_by("step")


def checkpoint_get(*, run: Run, checkpoint_id: int) -> Checkpoint:
    """A checkpoint of this run, or 404 (also for another run's)."""
    return get_object_or_404(Checkpoint, pk=checkpoint_id, run=run)


def policies_from_run(*, run: Run) -> QuerySet[PolicyModel]:
    """The policies made from the run's checkpoints (a DPO or SFT run registers its last one), latest step first."""
    return PolicyModel.objects.filter(checkpoint__run=run).select_related("checkpoint").order_by("-checkpoint__step", "pk")


def reward_model_runs(*, project) -> QuerySet[Run]:
    return run_list(project=project, kind=RunKind.REWARD_MODEL)


def run_deletion_summary(*, run: Run) -> dict[str, int]:
    """What deleting the run removes (trajectories, held-out answers, checkpoints, metric series) and what it keeps
    (comparison tasks made from it, with their labels), for the confirmation page."""
    from webapp.feedback.models import ComparisonTask, PreferenceLabel  # noqa: PLC0415 (feedback imports experiments)

    tasks = ComparisonTask.objects.filter(source_run=run)
    return {
        "trajectories": Trajectory.objects.filter(run=run).count(),
        "held_out_answers": HeldOutAnswer.objects.filter(run=run).count(),
        "checkpoints": Checkpoint.objects.filter(run=run).count(),
        "artifacts": RunArtifact.objects.filter(run=run).count(),
        "metric_series": len(metric_keys(run_ids=[run.pk])),
        "tasks": tasks.count(),
        "labels": PreferenceLabel.objects.filter(task__in=tasks).count(),
    }


def evaluation_results(*, project, dataset_id: int | None, include: int | None = None, limit: int = 20) -> list[dict]:
    """The finished evaluation runs of the project on one dataset, newest first (at most
    ``limit``, and the run ``include`` whatever its age), each as {"run", "summary": {figure:
    value}, "sampling": {"G", "greedy", "temperature", "top_p", "max_new_tokens", "accuracy", "rewards"},
    "alike": bool, "swept": ["rollout.temperature = 1.0", ...]}, the ``eval/`` prefix taken off its
    figures. Runs sampled or scored differently are not comparable figure by figure: "alike" says
    whether a row compares with the run ``include`` (always true without it), as
    ``evaluation_comparison.compare`` rules: sampled and scored alike, or a run of its sweep with
    the same policy and rewards; "swept" names the settings such a run of its sweep set otherwise."""
    from webapp.experiments.evaluation_comparison import Comparison, compare  # noqa: PLC0415

    evaluations = run_list(project=project, kind=RunKind.EVALUATION)
    finished = evaluations.filter(dataset_id=dataset_id, status=RunStatus.SUCCEEDED)
    runs = list(finished[:limit])
    if include is not None and include not in {r.id for r in runs}:
        runs += list(finished.filter(pk=include))
    latest = metric_latest(run_ids=[r.id for r in runs])
    reference = None
    if include is not None:
        run = next((r for r in runs if r.id == include), None)
        if run is None:  # not finished yet: its config still says how it samples
            run = Run.objects.filter(project=project, kind=RunKind.EVALUATION, pk=include).first()
        reference = _evaluated(run) if run is not None else None
    out = []
    for run in runs:
        figures = {key[len("eval/"):]: point["value"] for key, point in latest.get(run.id, {}).items()
                   if key.startswith("eval/")}
        if figures:
            comparison = (Comparison(alike=True) if reference is None or run.id == include
                          else compare(reference, _evaluated(run)))
            out.append({"run": run, "summary": figures, "sampling": _sampling(run.config),
                        "alike": comparison.alike, "swept": comparison.swept_text})
    return out


def _evaluated(run: Run):
    from webapp.experiments.evaluation_comparison import Evaluated  # noqa: PLC0415
    from webapp.experiments.sweeps import sweep_identity  # noqa: PLC0415

    return Evaluated(config=run.config, policy_id=run.policy_id, dataset_id=run.dataset_id,
                     sweep=sweep_identity(creation_key=run.creation_key, created_by_id=run.created_by_id))


def _sampling(config) -> dict:
    """How an evaluation sampled, from its stored (validated, defaults filled) config."""
    rollout = config.get("rollout", {}) if isinstance(config, dict) else {}
    rewards = config.get("rewards", []) if isinstance(config, dict) else []
    accuracy = config.get("accuracy_reward") if isinstance(config, dict) else None
    if accuracy is None:
        from workers.engine.config import TrainConfig  # noqa: PLC0415 (light, no torch)

        try:
            accuracy = TrainConfig.from_dict(config).accuracy_reward
        except Exception:  # noqa: BLE001 (a config stored before a change of rules: show no accuracy reward)
            accuracy = None
    return {"G": rollout.get("num_generations"), "greedy": rollout.get("greedy") is True,
            "temperature": rollout.get("temperature"), "top_p": rollout.get("top_p"),
            "max_new_tokens": rollout.get("max_new_tokens"), "accuracy": accuracy,
            "rewards": [r.get("label") or r.get("name") for r in rewards if isinstance(r, dict)]}


def _column_order(name: str) -> tuple:
    fixed = ["reward", "reward_std", "accuracy"]
    if name in fixed:
        return (0, fixed.index(name), 0, name)
    if name.startswith("pass@"):
        return (1, 0, int(name[5:]) if name[5:].isdigit() else 0, name)
    if name.startswith("rewards/"):
        return (2, 0, 0, name)
    return (3, 0, 0, name)


COUNT_FIGURES = frozenset({"prompts", "completions"})  # whole numbers: shown without decimals


def evaluation_columns(results: list[dict]) -> list[dict]:
    """The figures of ``evaluation_results`` as table columns, in ``_column_order``: each as
    {"name", "decimals"}, one number of decimals for every row of a column (a count none, any
    other figure 3), so that 0 shows as 0.000 beside 0.100, not as 0."""
    names = sorted({name for r in results for name in r["summary"]}, key=_column_order)
    return [{"name": name, "decimals": 0 if name in COUNT_FIGURES else 3} for name in names]
