"""A run's settings read back into its launch page's fields: "Launch a copy" (``?from=<run id>``).

Each ``*_run_copy`` function takes the run and the launch form built for its project (whose
choices say what the project still has: policies, reward models, judges, rubrics, preference
data) and returns the form's initial values with the list of what could not be filled in as
the run had it. Launched unchanged, the copy's config is the original's: the fields hold the
knobs, the reward rows the rewards, and "More config (JSON)" every other setting that differs
from the engine's default. The copy gets the page's own new submission key, as any page shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.http import Http404
from django.urls import reverse

from webapp.core.query import query_id
from webapp.experiments.forms import REWARD_ROWS, RM_PREFIX, form_name
from webapp.experiments.local_folders import same_folder
from webapp.experiments.models import Run, RunKind
from webapp.experiments.selectors import run_get
from webapp.experiments.sweeps import point_name_base

COPY_SUFFIX = " (copy)"

# The page that launches each kind of run (an external run is launched by its own trainer).
LAUNCH_PAGES = {
    RunKind.POLICY: "experiments:new",
    RunKind.EVALUATION: "experiments:new_evaluation",
    RunKind.DPO: "experiments:new_dpo",
    RunKind.SFT: "experiments:new_sft",
    RunKind.REWARD_MODEL: "rewards:train",
}

# The policy section's keys the chosen policy sets at launch (``PolicyModel.engine_spec``).
POLICY_SPEC_KEYS = ("policy.source", "policy.name", "policy.path")


@dataclass(frozen=True)
class RunCopy:
    """What a launch page shows for a copy of ``run``: ``initial`` for its form, and ``problems``,
    each a sentence saying what could not be filled in as the run had it, and why."""

    run: Run
    initial: dict
    problems: list[str] = field(default_factory=list)


def copy_url(run: Run) -> str | None:
    """The launch page that copies ``run``, or None for a kind no page launches."""
    page = LAUNCH_PAGES.get(run.kind)
    return f"{reverse(page, args=[run.project_id])}?from={run.pk}" if page else None


def copy_source(*, project, raw: str, kind: str) -> Run:
    """The run ``?from=`` names: one of this project's runs of ``kind``; 404 for anything else (no
    id, no such run, another project's, another kind's), as a page addressing an object answers."""
    run_id = query_id(raw)
    if run_id is None:
        raise Http404("No such run to copy.")
    run = run_get(project=project, run_id=run_id)
    if run.kind != kind:
        raise Http404("That run is not of the kind this page launches.")
    return run


def copy_fill(form, *, project, query, kind: str, read) -> RunCopy | None:
    """With ``?from=<run id>`` in ``query`` (a run's "Launch a copy" link), the launch ``form``
    shows that run's settings (``read``: one of the readers below) and the RunCopy is returned, for
    the page to say what could not be filled in; initial values the page set itself (``?policy=``)
    win. 404 unless the id is of a run of ``project`` of ``kind``; None without ``?from=``, and for a
    submitted ``form`` whose run is no longer in the project."""
    if "from" not in query:
        return None
    if form.is_bound and not Run.objects.filter(pk=query_id(query["from"]) or 0, project=project).exists():
        return None  # the run copied was deleted since the page was shown: the form holds all it launches
    copy = read(copy_source(project=project, raw=query["from"], kind=kind), form=form)
    form.initial = {**copy.initial, **form.initial}  # read before any field is: the form shows these
    return copy


def copy_name(name: str, max_length: int) -> str:
    """``"<name> (copy)"``, the name cut short so that the whole fits ``max_length``."""
    return name[:max_length - len(COPY_SUFFIX)].rstrip() + COPY_SUFFIX


def copy_name_of(name: str, config, max_length: int) -> str:
    """The copy's name of a run named ``name`` with ``config``: ``copy_name`` of it, or for a run
    of a sweep, named for its point (``sweeps.point_name``: ``"grpo · optim.lr=1e-05"``), of the
    sweep's name (``"grpo (copy)"``). The copy is a run of its own, with the point's values in its
    fields: not a point of that sweep, nor tagged as its runs are."""
    return copy_name(point_name_base(name, config) or name, max_length)


def config_differences(stored: dict, defaults: dict, shown: set[str], prefix: str = "") -> dict:
    """The settings of ``stored`` that differ from ``defaults``, nested as the config is, leaving
    out the dotted paths in ``shown`` (the form's own fields); a setting the defaults lack is kept."""
    out = {}
    for key, value in stored.items():
        path = f"{prefix}{key}"
        if path in shown:
            continue
        default = defaults.get(key) if isinstance(defaults, dict) else None
        if isinstance(value, dict) and isinstance(default, dict):
            nested = config_differences(value, default, shown, f"{path}.")
            if nested:
                out[key] = nested
        elif not isinstance(defaults, dict) or key not in defaults or value != default:
            out[key] = value
    return out


def _lookup(config: dict, path: str):
    value = config
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _knobs_initial(config: dict, knobs, defaults: dict | None = None) -> dict:
    """The knobs' values in ``config``; one it lacks (a setting its JSON leaves out at its
    default, e.g. rollout.budget_allocation) takes its value in ``defaults`` when given."""
    out = {}
    for path, _ in knobs:
        value = _lookup(config, path)
        if value is None and defaults is not None and not _present(config, path):
            value = _lookup(defaults, path)
        out[form_name(path)] = value
    return out


def _present(config: dict, path: str) -> bool:
    *sections, key = path.split(".")
    for part in sections:
        config = config.get(part) if isinstance(config, dict) else None
    return isinstance(config, dict) and key in config


def _overrides(stored: dict, defaults: dict, shown: set[str]) -> str:
    differences = config_differences(stored, defaults, shown)
    return json.dumps(differences, indent=2) if differences else "{}"


# ---------------------------------------------------------------- policy runs and evaluations

def policy_run_copy(run: Run, *, form) -> RunCopy:
    """A policy run or evaluation as the New-run or New-evaluation ``form`` (``NewRunForm``) shows it."""
    from webapp.experiments.run_config import with_engine_defaults

    config = with_engine_defaults(run.config if isinstance(run.config, dict) else {})
    problems = []
    initial = {"name": copy_name_of(run.name, run.config, form.fields["name"].max_length),
               **_knobs_initial(config, [*form.knobs, *form.held_out_knobs], form.defaults)}
    for name, what in (("policy", "policy"), ("dataset", "prompt dataset"), ("eval_dataset", "held-out dataset")):
        if name not in form.fields:
            continue
        value = getattr(run, f"{name}_id")
        initial[name] = value
        if value is None and name != "eval_dataset":
            problems.append(f"The {what} this run used was deleted, so that field is empty: choose one.")
    rows, reward_problems = reward_rows(config.get("rewards"), form=form)
    initial.update(rows)
    problems += reward_problems
    shown = {path for path, _ in [*form.knobs, *form.held_out_knobs]} | {"rewards", *POLICY_SPEC_KEYS}
    initial["overrides"] = _overrides(config, form.defaults, shown)
    return RunCopy(run=run, initial=initial, problems=problems)


def reward_rows(rewards, *, form) -> tuple[dict, list[str]]:
    """The reward rows' initial values for a stored ``rewards`` list, and a sentence for each
    reward that no row of ``form`` can hold (its reward model, judge or rubric gone, too many)."""
    initial = {}
    problems = []
    row = 0
    for index, reward in enumerate(rewards if isinstance(rewards, list) else []):
        if not isinstance(reward, dict):
            continue
        what = f"Reward {index + 1} ({reward.get('label') or reward.get('name')})"
        if row == REWARD_ROWS:
            problems.append(f"{what}: the form has {REWARD_ROWS} reward rows, so it was left out.")
            continue
        choice, params, problem = _reward_choice(reward, form=form)
        if choice is None:
            problems.append(f"{what}: {problem}, so it was left out: choose another reward in its place.")
            continue
        if problem:
            problems.append(f"{what}: {problem}.")
        initial.update({f"reward_{row}_name": choice, f"reward_{row}_weight": reward.get("weight", 1.0),
                        f"reward_{row}_params": json.dumps(params) if params else ""})
        row += 1
    for empty in range(row, REWARD_ROWS):
        initial.update({f"reward_{empty}_name": "", f"reward_{empty}_weight": 1.0, f"reward_{empty}_params": ""})
    return initial, problems


def _reward_choice(reward: dict, *, form) -> tuple[str | None, dict, str]:
    """(the row's choice, its parameters, a note) for one stored reward; the choice is None when
    no row can hold it, the note then saying why."""
    name = reward.get("name")
    params = {k: v for k, v in reward.items() if k not in ("name", "weight")}
    choices = {value for value, _ in form.fields["reward_0_name"].choices}
    if name == "reward_model":
        choice = next((c for c, path in form.reward_model_paths.items() if same_folder(reward.get("path"), path)), None)
        if choice is None:
            return None, {}, "its reward model was deleted or is no longer a trained one of this project"
        params.pop("path")
        _drop_default_label(params, f"rm{choice[len(RM_PREFIX):]}")
        return choice, params, ""
    if name == "tournament":
        choice = _judge_choice(reward.get("judge"), form.judge_specs)
        if choice is None:
            return None, {}, "the policy that judged it was deleted"
        params.pop("judge")
        return choice, params, ""
    if name == "rubric_judge":
        return _rubric_choice(reward, params, form=form)
    if name not in choices:
        return None, {}, f"no reward is called {name!r} any more"
    return name, params, ""


def _drop_default_label(params: dict, default: str) -> None:
    """The label the form gives the choice anyway is left out of the row's parameters; a reward
    that had none (launched over the API) keeps none (``"label": null``), as the form's default
    would name its metrics otherwise."""
    if "label" not in params:
        params["label"] = None
    elif params["label"] == default:
        del params["label"]


def _judge_choice(judge, specs: dict[str, dict]) -> str | None:
    """The choice whose policy's engine spec is ``judge`` (a folder compared as a folder)."""
    for choice, spec in specs.items():
        if spec == judge or (isinstance(judge, dict) and spec.get("source") == judge.get("source") == "path"
                             and set(spec) == set(judge) and same_folder(spec["path"], judge["path"])):
            return choice
    return None


def _rubric_choice(reward: dict, params: dict, *, form) -> tuple[str | None, dict, str]:
    # Imported here: feedback imports experiments.
    from webapp.feedback.models import RubricVersion

    version = (RubricVersion.objects.filter(pk=reward.get("rubric_version")).select_related("rubric").first()
               if isinstance(reward.get("rubric_version"), int) else None)
    if version is None:
        return None, {}, "its rubric was deleted (or its criteria were listed without one)"
    judges = {choice: spec for choice, (rubric, spec) in form.rubric_judges.items() if rubric.pk == version.rubric_id}
    choice = _judge_choice(reward.get("judge"), judges)
    if choice is None:
        return None, {}, "the policy that judged it was deleted"
    for key in ("judge", "criteria", "rubric_version"):
        params.pop(key, None)
    rubric, _ = form.rubric_judges[choice]
    _drop_default_label(params, f"rubric{rubric.pk}")
    latest = rubric.latest_version()
    note = (f"the rubric “{rubric.name}” was edited since (version {version.number}, now {latest.number}); the "
            "copy is judged by its latest criteria" if latest.pk != version.pk else "")
    return choice, params, note


# ---------------------------------------------------------------- DPO and SFT runs

def offline_run_copy(run: Run, *, form) -> RunCopy:
    """A DPO or SFT run as its launch ``form`` (``DPORunForm``, ``SFTRunForm``) shows it."""
    from workers.engine.errors import ConfigError

    config = run.config if isinstance(run.config, dict) else {}
    defaults = form.config_class()().to_dict()
    trainer = {k: v for k, v in config.items() if k != "data"}
    try:
        trainer = form.config_class().from_dict(trainer).to_dict()  # settings added since filled in
    except (ConfigError, TypeError, ValueError, AttributeError, KeyError):
        pass  # a config the engine now refuses is shown as stored; the launch names what is wrong
    problems = []
    initial = {"name": copy_name_of(run.name, run.config, form.fields["name"].max_length), "policy": run.policy_id,
               **_knobs_initial(trainer, form.knobs)}
    if run.policy_id is None:
        problems.append("The policy this run trained was deleted, so that field is empty: choose one.")
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    wanted = {k: v for k, v in data.items() if k != "through_label"}
    choice = next((c for c, _ in form.fields[form.data_field].choices if form.data_section(c) == wanted), None)
    initial[form.data_field] = choice
    problems += _data_problems(data, found=choice is not None)
    shown = {path for path, _ in form.knobs} | set(POLICY_SPEC_KEYS)
    for path, label, value in _unchoosable_knobs(trainer, form):
        shown.discard(path)  # the value goes to More config (JSON), which wins over the field
        initial[form_name(path)] = _lookup(defaults, path)
        problems.append(f"Its {label} ({json.dumps(value)}) is more than the {label} field can show, so it is in "
                        "More config (JSON), which decides over that field.")
    initial["overrides"] = _overrides(trainer, defaults, shown)
    return RunCopy(run=run, initial=initial, problems=problems)


def _unchoosable_knobs(trainer: dict, form) -> list[tuple[str, str, object]]:
    """(path, label, value) of each choice knob whose stored value is none of its choices: a
    DPO run's list of losses (``dpo.loss_type``), which the Loss select cannot hold."""
    choices = form.knob_choices()
    return [(path, label, value) for path, label in form.knobs
            if path in choices and (value := _lookup(trainer, path)) is not None
            and (not isinstance(value, str) or value not in choices[path])]


def _data_problems(data: dict, *, found: bool) -> list[str]:
    """What the copy's data field cannot repeat: data gone, or labels fixed at an older one."""
    source = data.get("source")
    if not found:
        what = {"labels": "the project's labels (it has none now)",
                "pairs": f"pair set {data.get('pair_set')}, since deleted",
                "dataset": f"prompt dataset {data.get('dataset')}, since deleted"}.get(source, "data the form cannot show")
        return [f"The data it trained on ({what}) cannot be chosen, so that field is empty: choose the data."]
    if source == "labels" and data.get("through_label") is not None:
        return [(f"It trained on the labels up to label {data['through_label']}; the copy trains on every label "
                 "given by the time it is launched.")]
    return []


# ---------------------------------------------------------------- reward-model runs

def reward_model_run_copy(run: Run, *, form) -> RunCopy:
    """A reward-model run as the Train-a-reward-model ``form`` (``RewardModelRunForm``) shows it:
    its trainer settings are all in the form's JSON, its data and margins in their fields."""
    config = run.config if isinstance(run.config, dict) else {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    settings = {k: v for k, v in config.items() if k != "data"}
    wanted = "labels" if data.get("source") == "labels" else f"pairs:{data.get('pair_set')}"
    found = wanted in {c for c, _ in form.fields["data"].choices}
    margins = data.get("strength_margins")
    initial = {"name": copy_name_of(run.name, run.config, form.fields["name"].max_length), "data": wanted if found else None,
               "strength_margins": ", ".join(str(m) for m in margins) if isinstance(margins, list) else "",
               "settings": json.dumps(settings, indent=2)}
    return RunCopy(run=run, initial=initial, problems=_data_problems(data, found=found))
