"""A grid sweep: the same launch once per combination of one or two settings' values (learning
rate × KL β, say), as W&B's grid sweeps and TRL's or verl's launch loops do.

The grid is ``{"optim.lr": [1e-6, 3e-6], "algorithm.beta": [0, 0.04]}``: each key a dotted engine
setting (or ``rewards[<i>].weight``), each value a list of 2–8 values (or one text of them
separated by commas), at most 16 runs in all. The pure functions below read, expand and name the
grid; ``sweep_launch`` checks every run's config with the engine before it creates any, then
creates them all in one transaction, each tagged with the sweep's tag. An evaluation is swept
over what it reads (its sampling, seed, rewards' weights: a policy at several temperatures, say),
the settings ``sweep_defaults`` gives for it; it trains nothing, so a training setting is refused.

Idempotency: a launch page's submission key ``K`` covers the whole sweep. Point ``i`` of ``n``
(in the grid's order) is created under the key ``sweep:<first 24 hex of SHA-256(K)>:<i>:<n>``
(within the 64 characters a creation key holds, whatever ``K``; sweeps launched before the count
was written have ``...:<i>``), with the digest ``run_create_once`` stores for its inputs; the
default tag, ``sweep-<first 8 hex of SHA-256(K)>``, comes from ``K`` too. A resent POST finds
exactly those runs (same keys, digests and tag) and answers them, creating nothing. Anything else
under ``K`` (a run, or a sweep with other settings) raises IdempotencyKeyReused; the same request
after some of the sweep's runs were deleted raises IdempotentOutcomeGone, naming them (the first
outcome can no longer be answered, and launching the sweep again takes a new key), as a key does
whose run is gone once all of them are. A single launch under ``K`` after its sweep is refused
(``sweep_launched_under``, read by ``form_launch`` and ``run_create_once``). Both look up what
``K`` made and create under it holding ``K``'s lock (``services.creation_key_lock``), so a run and
a sweep sent at once under one key cannot both be created. The API's Idempotency-Key is such a
``K`` (``sweep_create``); a sweep launched without one gets a random ``K`` that no request holds
(``new_sweep_key``). Either way a run's key says which sweep launched it (``sweep_identity``): an
evaluation's Results table compares the runs of its sweep with each other.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from webapp.core.deletion import first_few
from webapp.experiments.errors import IdempotencyKeyReused, IdempotentOutcomeGone, QueueUnavailable, RunError
from webapp.experiments.models import Run, RunKind, RunStatus, RunTag

MAX_SETTINGS = 2
MIN_VALUES = 2
MAX_VALUES = 8
MAX_RUNS = 16
NAME_MAX_LENGTH = 200  # Run.name's
# Set at launch by the chosen policy (``PolicyModel.engine_spec``): a sweep over them would be overwritten.
POLICY_SPEC_PATHS = ("policy.source", "policy.name", "policy.path")
REWARD_WEIGHT = re.compile(r"^rewards\[(\d+)\]\.weight$")
SWEEP_FIELD = "sweep"
# The kinds the New-run, DPO, SFT and New-evaluation pages launch.
SWEEP_KINDS = (RunKind.POLICY, RunKind.DPO, RunKind.SFT, RunKind.EVALUATION)
# What an evaluation reads of its config (``workers.engine.evaluation_run.evaluate_policy``): the
# policy, how it samples (not a knapsack's budget, which ``check_evaluable`` refuses), the rewards
# that score it, and of the loop its seed and device. It trains nothing: a sweep over any other
# setting (optim.lr, algorithm.beta, train.total_steps...) would launch the same evaluation again.
EVALUATION_SAMPLING_LEFT_OUT = ("budget_allocation", "min_generations", "max_generations")
EVALUATION_LOOP = ("seed", "device", "fast_path", "log_system_metrics")


@dataclass(frozen=True)
class SweepAxis:
    """One swept setting: its dotted ``path`` and its typed ``values``, in the order given."""

    path: str
    values: tuple


# ---------------------------------------------------------------- reading the grid

def sweep_parse(grid, *, defaults: dict, config: dict, kind: str | None = None) -> list[SweepAxis]:
    """The axes of ``grid`` (the JSON object the form or a client sends), each value typed as the
    engine's default at its path (``defaults``: the engine's config as JSON, ``sweep_defaults``)
    types it; a reward's weight is a number and names one of ``config``'s rewards. [] for no grid
    ({} or None). RunError on ``sweep`` names the setting or value at fault (for an evaluation,
    ``kind``, a setting it does not read says what it reads)."""
    if grid is None or grid == {}:
        return []
    if not isinstance(grid, dict):
        raise RunError('the sweep must be a JSON object of settings and their values, e.g. '
                       '{"optim.lr": [1e-6, 3e-6], "algorithm.beta": [0, 0.04]}', field=SWEEP_FIELD)
    if len(grid) > MAX_SETTINGS:
        raise RunError(f"a sweep varies at most {MAX_SETTINGS} settings; this one names {len(grid)} "
                       f"({', '.join(grid)})", field=SWEEP_FIELD)
    axes = [SweepAxis(path, _values(path, raw, _default_at(path, defaults=defaults, config=config, kind=kind)))
            for path, raw in grid.items()]
    runs = math.prod(len(axis.values) for axis in axes)
    if runs > MAX_RUNS:
        raise RunError(f"the grid makes {runs} runs ({' × '.join(str(len(a.values)) for a in axes)}); a sweep "
                       f"launches at most {MAX_RUNS}", field=SWEEP_FIELD)
    return axes


def sweep_defaults(kind: str) -> dict:
    """The engine's config of a ``kind`` run with every setting at its default, as JSON: what
    ``sweep_parse`` types a grid's values by; an evaluation's holds only the settings it reads
    (``EVALUATION_*``). RunError on ``kind`` for a kind no sweep launches."""
    if kind in (RunKind.POLICY, RunKind.EVALUATION):
        from workers.engine.config import every_default_dict

        defaults = every_default_dict()  # with the settings a config's JSON leaves out at their default
        if kind == RunKind.POLICY:
            return defaults
        return {"policy": defaults["policy"],
                "rollout": {k: v for k, v in defaults["rollout"].items() if k not in EVALUATION_SAMPLING_LEFT_OUT},
                "rewards": defaults["rewards"],
                "train": {k: v for k, v in defaults["train"].items() if k in EVALUATION_LOOP}}
    if kind == RunKind.DPO:
        from workers.engine.dpo_config import DPOTrainConfig

        return DPOTrainConfig().to_dict()
    if kind == RunKind.SFT:
        from workers.engine.sft_config import SFTTrainConfig

        return SFTTrainConfig().to_dict()
    raise RunError(f"a sweep launches {', '.join(SWEEP_KINDS[:-1])} or {SWEEP_KINDS[-1]} runs, not {kind} runs",
                   field="kind")


def _default_at(path: str, *, defaults: dict, config: dict, kind: str | None = None):
    """The engine's default at ``path``, whose type the swept values take."""
    if path.startswith("rewards"):
        match = REWARD_WEIGHT.match(path)
        if not match:
            raise RunError(f"{path!r}: of a reward, only its weight can be swept (rewards[<i>].weight)",
                           field=SWEEP_FIELD)
        rewards = config.get("rewards")
        count = len(rewards) if isinstance(rewards, list) else 0
        try:
            index = int(match[1])
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits()): past any reward
            index = count
        if index >= count:
            raise RunError(f"{path!r}: the run has {count} reward{'s' if count != 1 else ''}, counted from "
                           "rewards[0]", field=SWEEP_FIELD)
        return 1.0
    value = defaults
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            if kind == RunKind.EVALUATION:
                raise RunError(f"{path!r} is no setting of an evaluation, which samples and scores and trains "
                               "nothing: sweep how it samples (rollout.temperature, rollout.max_new_tokens, "
                               "rollout.top_p, rollout.num_generations...), train.seed, rewards[i].weight or "
                               "policy.dtype", field=SWEEP_FIELD)
            raise RunError(f"unknown setting {path!r}: name a setting of the engine's config as section.key, "
                           "e.g. optim.lr", field=SWEEP_FIELD)
        value = value[part]
    if isinstance(value, dict):
        raise RunError(f"{path!r} is a section, not a setting: name one of its keys, e.g. {path}.{next(iter(value))}",
                       field=SWEEP_FIELD)
    if path in POLICY_SPEC_PATHS:
        raise RunError(f"{path!r} is set by the chosen policy: launch once per policy instead", field=SWEEP_FIELD)
    if value is None or isinstance(value, list):
        raise RunError(f"{path!r} has no single-valued default to type the values by; set it in More config "
                       "(JSON), one launch per value", field=SWEEP_FIELD)
    return value


def _values(path: str, raw, default) -> tuple:
    if isinstance(raw, str):
        raw = [part for part in (p.strip() for p in raw.split(",")) if part]
    if not isinstance(raw, list):
        raise RunError(f"{path}: give a list of values, e.g. [1e-6, 3e-6]", field=SWEEP_FIELD)
    if not MIN_VALUES <= len(raw) <= MAX_VALUES:
        raise RunError(f"{path}: {len(raw)} value{'s' if len(raw) != 1 else ''}; a swept setting takes "
                       f"{MIN_VALUES} to {MAX_VALUES}", field=SWEEP_FIELD)
    values = [_typed(path, value, default) for value in raw]
    for i, value in enumerate(values):
        if value in values[:i]:
            raise RunError(f"{path}: the value {value_text(value)} is listed twice", field=SWEEP_FIELD)
    return tuple(values)


def _typed(path: str, raw, default):
    """``raw`` as the type of ``default`` (bool, int, float or text); RunError naming it if it is not one."""
    shown = raw if isinstance(raw, str) else json.dumps(raw)
    text = raw.strip() if isinstance(raw, str) else None
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        if text is not None and text.lower() in ("true", "false"):
            return text.lower() == "true"
        what = "true or false"
    elif isinstance(default, int):
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if text is not None and re.fullmatch(r"[+-]?\d+", text):
            try:
                return int(text)
            except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits())
                raise RunError(f"{path} = {text[:12]}…: a whole number of {len(text)} digits, far past any "
                               "value the setting takes", field=SWEEP_FIELD) from None
        what = "a whole number"
    elif isinstance(default, float):
        number = None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            try:
                number = float(raw)
            except OverflowError:  # a JSON whole number past a float's range (1 and 400 zeros)
                pass
        elif text is not None:
            try:
                number = float(text)
            except ValueError:
                pass
        if number is not None and math.isfinite(number):
            return number
        what = "a finite number"
    else:
        if text:
            return text
        what = "a word (text)"
    raise RunError(f"{path} = {shown}: expected {what}, as its default {value_text(default)} is", field=SWEEP_FIELD)


# ---------------------------------------------------------------- expanding and naming it

def sweep_points(axes: list[SweepAxis]) -> list[tuple[tuple[str, object], ...]]:
    """Every combination, the first setting varying slowest: ((path, value), ...) per run."""
    return [tuple(zip((a.path for a in axes), values, strict=True))
            for values in itertools.product(*(a.values for a in axes))]


def value_text(value) -> str:
    """A value as a run's name shows it: 1e-05, 0, 0.04, 8, true, grpo."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text.removesuffix(".0")
    return str(value)


def point_label(point) -> str:
    return ", ".join(f"{path}={value_text(value)}" for path, value in point)


POINT_SEPARATOR = " · "
# A swept setting as a point's label names it: section.key (or deeper), or a reward's weight.
LABEL_PATH = re.compile(r"(?:^|, )([A-Za-z_]\w*(?:\.\w+)+|rewards\[\d+\]\.weight)=")


def point_name(name: str, point, max_length: int = NAME_MAX_LENGTH) -> str:
    """``"<name> · optim.lr=1e-05, algorithm.beta=0"``, the name cut short so that the whole fits."""
    suffix = f"{POINT_SEPARATOR}{point_label(point)}"
    if len(suffix) >= max_length:
        return f"{name}{suffix}"[:max_length]
    return name[:max_length - len(suffix)].rstrip() + suffix


def point_name_base(name: str, config) -> str | None:
    """The name a sweep's run was given (``point_name``) less its point: ``"grpo"`` for ``"grpo ·
    optim.lr=1e-05, algorithm.beta=0"`` when ``config`` (the run's) holds exactly those values at
    those settings, as the sweep set them. None for a name that ends in no such point (a plain
    run's, or a sweep's run renamed since), or one with nothing before its point."""
    base, separator, label = name.rpartition(POINT_SEPARATOR)
    paths = LABEL_PATH.findall(label)
    # a greedy sweep's names list the group size beside the swept settings (``named_points``)
    if not separator or not base.strip() or not paths or len(paths) > MAX_SETTINGS + 1 or len(set(paths)) < len(paths):
        return None
    point = []
    for path in paths:
        value = _config_value(config, path)
        if value is _MISSING:
            return None
        point.append((path, value))
    return base.rstrip() if point_label(point) == label else None


_MISSING = object()


def _config_value(config, path: str):
    """The value at ``path`` (dotted, or ``rewards[<i>].weight``) of ``config``; _MISSING when none."""
    if match := REWARD_WEIGHT.match(path):
        rewards = config.get("rewards") if isinstance(config, dict) else None
        index = int(match[1])
        reward = rewards[index] if isinstance(rewards, list) and index < len(rewards) else None
        return reward.get("weight", _MISSING) if isinstance(reward, dict) else _MISSING
    value = config
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return _MISSING if isinstance(value, dict | list) else value


GROUP_SIZE = "rollout.num_generations"


def point_config(config: dict, point, *, sampled_generations: int | None = None) -> dict:
    """``config`` with the point's values set at their paths (sections made where missing). A
    section or reward the config gives as something other than an object is left as given, for
    the engine's check to refuse as it refuses it in a single launch.

    ``sampled_generations`` (the New-evaluation page's G field, which is for sampling only): unless
    the point sets num_generations itself, a point that decodes greedily takes one completion per
    prompt (as the engine's default for greedy, ``run_config.greedy_takes_one``) and a point that
    samples takes this many. None: the config's num_generations holds at every point (the API's
    rule: a config that names it keeps it, greedy or not)."""
    out = _point_values(config, point)
    rollout = out.get("rollout")
    if sampled_generations is not None and GROUP_SIZE not in dict(point) and isinstance(rollout, dict):
        rollout["num_generations"] = 1 if rollout.get("greedy") is True else sampled_generations
    return out


def named_points(points, configs: list[dict]) -> list[tuple[tuple[str, object], ...]]:
    """Each point as its run's name lists it: its own settings, then the group size
    (``rollout.num_generations``) where the runs' configs (``configs``, as the engine accepted
    them) differ in it without the grid setting it: a greedy point takes one completion
    (``point_config``, ``run_config.greedy_takes_one``) where the sampled ones take several, so
    every run of such a sweep says how many it takes, as it would for a swept setting."""
    sizes = [_config_value(config, GROUP_SIZE) for config in configs]
    if len(set(sizes)) < 2 or _MISSING in sizes or any(GROUP_SIZE in dict(point) for point in points):
        return list(points)
    return [(*point, (GROUP_SIZE, size)) for point, size in zip(points, sizes, strict=True)]


def _point_values(config: dict, point) -> dict:
    out = copy.deepcopy(config)
    for path, value in point:
        if match := REWARD_WEIGHT.match(path):
            reward = out["rewards"][int(match[1])]
            if isinstance(reward, dict):
                reward["weight"] = value
            continue
        *sections, key = path.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                break
        else:
            node[key] = value
    return out


def sweep_stem(submission_key: str) -> str:
    """``sweep:<first 24 hex of SHA-256(K)>:``, which begins the creation key of each run of K's sweep."""
    return f"sweep:{hashlib.sha256(submission_key.encode()).hexdigest()[:24]}:"


SWEEP_KEY = re.compile(r"^(sweep:[0-9a-f]{24}:)\d{1,3}(?::\d{1,3})?$")


def sweep_identity(*, creation_key: str, created_by_id: int | None) -> tuple | None:
    """Which sweep launched a run, from its creation key (``sweep_keys``): (its creator, the
    sweep's stem); None for a run launched alone (or by a sweep launched without a key before
    every sweep had one). The creator is part of it: two users' keys may be alike."""
    match = SWEEP_KEY.match(creation_key or "")
    return (created_by_id, match[1]) if match else None


def sweep_keys(submission_key: str, count: int) -> list[str]:
    """The creation keys of a sweep's ``count`` runs, derived from the page's key: each holds its
    point's index and the sweep's count."""
    stem = sweep_stem(submission_key)
    return [f"{stem}{i}:{count}" for i in range(count)]


def _key_point(creation_key: str, stem: str) -> tuple[int, int | None] | None:
    """(index, count of the sweep) that a run's ``creation_key`` under ``stem`` holds: count None
    for a sweep launched before keys held it; None for a key that is no sweep's."""
    parts = creation_key.removeprefix(stem).split(":")
    if len(parts) > 2 or not all(part.isdigit() and len(part) <= 3 for part in parts):
        return None
    return int(parts[0]), (int(parts[1]) if len(parts) == 2 else None)


def new_sweep_key() -> str:
    """A key for a sweep launched without one: random, so that no request repeats it."""
    return secrets.token_urlsafe(18)


def default_tag(submission_key: str | None) -> str:
    """``sweep-<8 hex>``: from the page's key (the same again when the page is resent), else at random."""
    return "sweep-" + (hashlib.sha256(submission_key.encode()).hexdigest()[:8] if submission_key
                       else secrets.token_hex(4))


# ---------------------------------------------------------------- launching it

@dataclass(frozen=True)
class SweepLaunch:
    """The runs a sweep launched, in the grid's order, and the tag they carry; ``created`` is
    False when a resent submission answered the runs launched before."""

    tag: str
    runs: list[Run]
    created: bool


def sweep_check(*, kind: str, points, configs: list[dict]) -> list[dict]:
    """Every point's config as the engine accepts it (as a launch checks it: ``validate_config``),
    or RunError on ``sweep``, the message naming each refused value, or each refused point."""
    from webapp.experiments.run_config import validate_config

    problems: list[str] = []
    validated: list[dict] = []
    for point, config in zip(points, configs, strict=True):
        try:
            validated.append(validate_config(kind, config))
        except RunError as exc:
            where = (exc.field or "").removeprefix("config.")
            swept = dict(point)
            problem = (f"{where} = {value_text(swept[where])}: {exc.message}" if where in swept
                       else f"at {point_label(point)}: {where + ': ' if where else ''}{exc.message}")
            if problem not in problems:
                problems.append(problem)
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise RunError(f"nothing was launched: {shown}", field=SWEEP_FIELD)
    return validated


def sweep_launch(*, project, user, submission_key: str | None, name: str, kind: str, config: dict,
                 axes: list[SweepAxis], tag: str = "", dataset=None, policy=None, eval_dataset=None,
                 sampled_generations: int | None = None) -> SweepLaunch:
    """Launch one run per point of the grid ``axes`` over ``config``: all or none. Every point's
    config (``point_config``, with ``sampled_generations``) is checked first; then the runs are
    created (``run_launch``) in one transaction, each named for its point and tagged ``tag``
    (default: ``default_tag``). RunError changes nothing. With a ``submission_key`` (see the
    module's docstring), a repeat answers the first launch."""
    from kombu.exceptions import OperationalError

    from webapp.experiments.run_notes import tags_clean
    from webapp.experiments.services import creation_digest, creation_key_lock, run_launch

    points = sweep_points(axes)
    if len(points) < MIN_VALUES:
        raise RunError("a sweep needs at least one setting with two values or more", field=SWEEP_FIELD)
    configs = [point_config(config, point, sampled_generations=sampled_generations) for point in points]
    named = named_points(points, sweep_check(kind=kind, points=points, configs=configs))
    try:
        [tag] = tags_clean([tag]) or [default_tag(submission_key)]
    except RunError as exc:
        raise RunError(exc.message, field="sweep_tag") from exc
    names = [point_name(name, point) for point in named]
    # Without a key (the API's Idempotency-Key left out) the runs are keyed by a fresh one that no
    # request holds: no repeat finds them, but they are known as one sweep's (``sweep_identity``).
    keys = sweep_keys(submission_key or new_sweep_key(), len(points))
    digests = [creation_digest(name=n, kind=kind, config=c, dataset=dataset, policy=policy, eval_dataset=eval_dataset)
               if submission_key else "" for n, c in zip(names, configs, strict=True)]
    runs: list[Run] = []
    try:
        with transaction.atomic():
            if submission_key:  # what the key made is looked up, and the runs created, one request at a time
                creation_key_lock(project=project, user=user, key=submission_key)
                if earlier := _sweep_created_with(project=project, user=user, submission_key=submission_key,
                                                  names=names, digests=digests, tag=tag):
                    return SweepLaunch(tag=tag, runs=earlier, created=False)
            for point, run_name, run_config, key, digest in zip(points, names, configs, keys, digests, strict=True):
                try:
                    run = run_launch(project=project, user=user, name=run_name, kind=kind, config=run_config,
                                     dataset=dataset, policy=policy, eval_dataset=eval_dataset,
                                     creation_key=key, creation_digest=digest)
                except (IdempotencyKeyReused, QueueUnavailable):
                    raise
                except RunError as exc:
                    field = SWEEP_FIELD if (exc.field or "").startswith("config.") else exc.field
                    raise RunError(f"at {point_label(point)}: {exc.message}; nothing was launched",
                                   field=field) from exc
                RunTag.objects.create(run=run, name=tag)
                runs.append(run)
    except OperationalError as exc:  # a task sent on commit: the runs are stored, no worker will see them
        Run.objects.filter(pk__in=[r.pk for r in runs], status=RunStatus.QUEUED).delete()
        raise QueueUnavailable("the task queue (the broker at CELERY_BROKER_URL) cannot be reached, so the sweep "
                               "was not launched and nothing was stored; launch it again once the broker is up") from exc
    except (IntegrityError, ValidationError):  # the same page sent again while the first was creating
        if submission_key and (earlier := _sweep_created_with(
                project=project, user=user, submission_key=submission_key, names=names, digests=digests, tag=tag)):
            return SweepLaunch(tag=tag, runs=earlier, created=False)
        raise
    return SweepLaunch(tag=tag, runs=runs, created=True)


def sweep_create(*, project, user, idempotency_key: str | None, name: str, kind: str, config, grid,
                 tag: str = "", dataset=None, policy=None, eval_dataset=None) -> SweepLaunch:
    """A sweep launched from one request (the API's): the ``grid`` read for ``kind`` over ``config``
    (``sweep_parse``), then launched (``sweep_launch``) under the ``idempotency_key``, which covers
    the whole sweep as a launch page's key does. RunError naming the input at fault changes nothing;
    IdempotencyKeyReused when the key created anything else."""
    from webapp.experiments.run_config import parse_config_json
    from webapp.experiments.services import idempotency_key_check

    idempotency_key_check(idempotency_key, creates="sweep to launch")
    defaults = sweep_defaults(kind)
    config = parse_config_json(config)
    axes = sweep_parse(grid, defaults=defaults, config=config, kind=kind)
    return sweep_launch(project=project, user=user, submission_key=idempotency_key, name=name, kind=kind,
                        config=config, axes=axes, tag=tag, dataset=dataset, policy=policy, eval_dataset=eval_dataset)


def sweep_launched_under(*, project, user, submission_key: str) -> bool:
    """Whether a sweep was launched under this page's key (which a single launch may not reuse)."""
    return Run.objects.filter(project=project, created_by=user,
                              creation_key__startswith=sweep_stem(submission_key)).exists()


def _sweep_created_with(*, project, user, submission_key: str, names: list[str], digests: list[str],
                        tag: str) -> list[Run] | None:
    """The runs this page's sweep made, when exactly these (a run per point of ``names``, each
    with its ``digests``, tagged ``tag``); None when the key made nothing (or nothing is left of
    it). IdempotencyKeyReused when it made anything else: a run, or a sweep with other settings;
    IdempotentOutcomeGone when it made this sweep, some of whose runs were deleted since."""
    single = Run.objects.filter(project=project, created_by=user, creation_key=submission_key).first()
    if single is not None:
        raise IdempotencyKeyReused(f"this Idempotency-Key already created run {single.pk} (“{single.name}”), not a "
                                   "sweep; nothing was launched: send a new Idempotency-Key to launch this sweep",
                                   field="Idempotency-Key")
    stem = sweep_stem(submission_key)
    stored = list(Run.objects.filter(project=project, created_by=user, creation_key__startswith=stem)
                  .prefetch_related("tags"))
    if not stored:
        return None
    points = {run.pk: _key_point(run.creation_key, stem) for run in stored}
    counts = {point[1] for point in points.values() if point is not None and point[1] is not None}
    earlier = {points[run.pk][0]: run for run in stored if points[run.pk] is not None}
    count = len(names)
    same = (None not in points.values() and counts <= {count} and len(earlier) == len(stored)
            and all(i < count and run.creation_digest == digests[i] and tag in {t.name for t in run.tags.all()}
                    for i, run in earlier.items()))
    if not same:
        what = (f"a sweep of {next(iter(counts))} runs" if len(counts) == 1
                else f"a sweep ({len(stored)} of whose runs are left)")
        raise IdempotencyKeyReused(f"this Idempotency-Key already launched {what} with other settings; nothing was "
                                   "launched: send a new Idempotency-Key to launch this sweep, or that sweep's own "
                                   "request to get its runs again", field="Idempotency-Key")
    gone = [i for i in range(count) if i not in earlier]
    if gone:
        shown = first_few([f"“{names[i]}”" for i in gone], len(gone))
        which = (f"its run {gone[0] + 1} of {count} ({shown}) was" if len(gone) == 1
                 else f"{len(gone)} of its {count} runs ({shown}) were")
        raise IdempotentOutcomeGone(f"this Idempotency-Key launched this sweep, but {which} deleted since, so the "
                                    "sweep cannot be answered as it was launched; nothing was launched: send a new "
                                    "Idempotency-Key to launch the sweep again", field="Idempotency-Key",
                                    deleted=which)
    return [earlier[i] for i in range(count)]
