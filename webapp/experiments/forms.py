"""The New-run form: the engine's knobs with its defaults filled in, rewards with weights.

The form shapes input into a config dict; the engine's dataclasses validate it, and their
errors, which name a dotted field, are put back on the form field that holds it
(``field_for_error``): all of them at once in ``clean`` (``config_errors``), and whatever
``run_launch`` still refuses.
"""

from __future__ import annotations

import json
import re
import secrets

from django import forms

from webapp.core.json_input import json_error, storable_json
from webapp.datasets.models import PromptDataset
from webapp.experiments.models import PolicyModel, RunKind
from webapp.experiments.services import IDEMPOTENCY_KEY

REWARD_ROWS = 4
RM_PREFIX = "reward_model:"
JUDGE_PREFIX = "judge:"  # a tournament reward judged by one of the project's policies
RUBRIC_PREFIX = "rubric:"  # "rubric:<rubric id>:<policy id>": a rubric judged by a policy

# (dotted config path, label). The type and the default come from the engine's config.
KNOBS = [
    ("algorithm.estimator", "Advantage estimator"),
    ("algorithm.scale", "Advantage scale"),
    ("algorithm.loss_aggregation", "Loss aggregation"),
    ("algorithm.importance_level", "Importance ratio"),
    ("algorithm.surrogate", "Surrogate"),
    ("algorithm.clip_eps_low", "Clip ε low"),
    ("algorithm.clip_eps_high", "Clip ε high"),
    ("algorithm.clip_eps_low_incorrect", "Clip ε low, incorrect (DISPO)"),
    ("algorithm.clip_eps_high_incorrect", "Clip ε high, incorrect (DISPO)"),
    ("algorithm.beta", "KL β"),
    ("algorithm.num_iterations", "Updates per batch (μ)"),
    ("algorithm.mask_truncated_completions", "Mask truncated completions (DAPO overlong filtering)"),
    ("algorithm.curvature_mask", "Curvature mask (CAPO)"),
    ("algorithm.curvature_kl_threshold", "CAPO: largest predicted KL of a token's update"),
    ("algorithm.curvature_objective_threshold", "CAPO: largest predicted |change of objective|"),
    ("algorithm.curvature_top_k", "CAPO: tokens per position in the curvature model (0 = all)"),
    ("rollout.num_generations", "Completions per prompt (G)"),
    ("rollout.prompts_per_step", "Prompts per step"),
    ("rollout.max_new_tokens", "Max new tokens"),
    ("rollout.temperature", "Temperature"),
    ("rollout.budget_allocation", "Rollout budget"),
    ("rollout.min_generations", "Fewest completions per prompt (knapsack)"),
    ("rollout.max_generations", "Most completions per prompt (knapsack; 0 = 4 × G)"),
    ("optim.lr", "Learning rate"),
    ("optim.warmup_steps", "Warm-up steps"),
    ("policy.dtype", "Precision"),
    ("train.total_steps", "Total steps"),
    ("train.checkpoint_every", "Checkpoint every"),
    ("train.log_rollouts_fraction", "Fraction of steps whose trajectories are stored"),
    ("train.seed", "Seed"),
]

# Held-out prompts a policy run evaluates as it trains: greedy pass@1 and sampled pass@k.
HELD_OUT_KNOBS = [
    ("eval.every_steps", "Evaluate every N steps"),
    ("eval.num_samples", "Samples per prompt (n)"),
    ("eval.k", "k of pass@k"),
]


# An evaluation samples and scores; nothing it would train with applies.
EVALUATION_KNOBS = [
    ("rollout.greedy", "Greedy: one completion per prompt"),
    ("rollout.num_generations", "Completions per prompt (G)"),
    ("rollout.max_new_tokens", "Max new tokens"),
    ("rollout.temperature", "Temperature"),
    ("rollout.prompts_per_step", "Prompts per step"),
    ("policy.dtype", "Precision"),
    ("train.seed", "Seed"),
]


def form_name(path: str) -> str:
    return path.replace(".", "__")


def _lookup(config: dict, path: str):
    value = config
    for part in path.split("."):
        value = value[part]
    return value


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _choices_for(path: str) -> tuple[str, ...] | None:
    from workers.engine import config as engine_config

    return {
        "algorithm.estimator": engine_config.ESTIMATORS,
        "algorithm.scale": engine_config.SCALES,
        "algorithm.loss_aggregation": engine_config.LOSS_AGGREGATIONS,
        "algorithm.importance_level": engine_config.IMPORTANCE_LEVELS,
        "algorithm.surrogate": engine_config.SURROGATES,
        "algorithm.curvature_mask": engine_config.CURVATURE_MASKS,
        "policy.dtype": engine_config.DTYPES,
        "rollout.budget_allocation": engine_config.BUDGET_ALLOCATIONS,
    }.get(path)


def _range_for(path: str) -> dict[str, int]:
    """The engine's bounds on a whole-number setting, as the form field's min_value/max_value
    (the browser's min/max too), so a slip such as 1e10 is refused on its field."""
    from workers.engine import config as c

    low, high = {
        "algorithm.num_iterations": (1, c.MAX_ITERATIONS),
        "algorithm.curvature_top_k": (0, c.MAX_CURVATURE_TOP_K),
        "rollout.num_generations": (1, c.MAX_GENERATIONS),
        "rollout.prompts_per_step": (1, c.MAX_PROMPTS_PER_STEP),
        "rollout.max_new_tokens": (1, c.MAX_NEW_TOKENS),
        "rollout.min_generations": (0, c.MAX_GENERATIONS),
        "rollout.max_generations": (0, c.MAX_GENERATIONS),
        "train.total_steps": (1, c.MAX_STEPS),
        "train.checkpoint_every": (1, None),
        "optim.warmup_steps": (0, None),
        "eval.every_steps": (0, None),
        "eval.num_samples": (1, c.MAX_GENERATIONS),
        "eval.k": (1, c.MAX_GENERATIONS),
    }.get(path, (None, None))
    return {k: v for k, v in (("min_value", low), ("max_value", high)) if v is not None}


class LaunchForm(forms.Form):
    """A launch form carries ``submission_key``, made once as the page is shown and sent back with
    every submission of that page: a second click on Launch (or a resent POST) repeats the key, and
    ``form_launch`` answers the run the first one made instead of launching another."""

    submission_key = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.fields["submission_key"].initial = new_submission_key()

    def clean_submission_key(self) -> str:
        key = self.cleaned_data.get("submission_key") or ""
        return key if IDEMPOTENCY_KEY.match(key) else ""  # none (or a hand-made one): an ordinary launch

    json_fields = ("overrides", "settings")  # JSON of any setting: an error on one names its key

    def add_input_error(self, field: str | None, message: str) -> None:
        """Put an engine or service error about ``field`` (dotted, e.g. ``config.rollout.top_p``) on
        the form field that holds it (``field_for_error``), unless that one has an error already.
        On a JSON field the message starts with the key at fault, which the field holds among others
        (``rollout.top_p: must be in (0, 1]``)."""
        target = self.field_for_error(field)
        if target is not None and target in self.errors:
            return
        key = _json_key(field, target, self.json_fields)
        self.add_error(target, f"{key}: {message}" if key else message)

    def renew_submission_key(self) -> None:
        """A fresh key for the page shown again, so that its next submission launches anew."""
        self.data = self.data.copy()
        self.data["submission_key"] = new_submission_key()


SWEEP_HELP = ('Up to two settings of the config and their values, each applied over the settings above, e.g. '
              '{example} launches {count} runs. A setting is {settings} (i counted from 0 among the rewards '
              'chosen); 2 to 8 values each, at most 16 runs. Every run is checked before any is launched; each is '
              'named for its values and tagged, and {compare}.')


class SweepLaunchForm(LaunchForm):
    """A launch form that may launch a grid sweep of ``sweep_kind`` runs: ``sweep``, settings and
    their values as JSON (``webapp.experiments.sweeps``), read into ``cleaned_data["sweep_axes"]``
    ([] for one run) by ``clean_sweep_axes``, which the form's ``clean`` calls once its config is
    known. ``sweep_example`` (a grid and its count of runs) is the one the field's help shows."""

    sweep_kind = ""
    sweep_example = ('{"optim.lr": [1e-6, 3e-6, 1e-5], "algorithm.beta": [0, 0.04]}', 6)
    # what the help says a setting may be, and where the sweep's runs are compared
    sweep_settings = "section.key, or rewards[i].weight"
    sweep_compare = "the runs list shows them to compare"
    sweep = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2, "class": "mono"}), initial="",
        label="Sweep (JSON, optional: one run per combination of values)")
    sweep_tag = forms.CharField(
        required=False, max_length=40, label="Sweep tag",
        help_text="The tag the sweep's runs get (no commas); empty: sweep- and a short id.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        example, count = self.sweep_example
        self.fields["sweep"].help_text = SWEEP_HELP.format(example=example, count=count, settings=self.sweep_settings,
                                                           compare=self.sweep_compare)

    def clean_sweep(self):
        raw = self.cleaned_data.get("sweep") or ""
        if not raw.strip():
            return {}
        value = _json_field(raw)
        if not isinstance(value, dict):
            raise forms.ValidationError('Must be a JSON object, e.g. {"optim.lr": [1e-6, 3e-6]}.')
        return value

    def clean_sweep_axes(self) -> None:
        """The sweep's axes, typed by the engine's defaults of ``sweep_kind`` (``sweep_defaults``)
        and this form's config, into ``cleaned_data["sweep_axes"]``; a refusal on the sweep field."""
        from webapp.experiments.errors import RunError
        from webapp.experiments.sweeps import sweep_defaults, sweep_parse

        self.cleaned_data["sweep_axes"] = []
        if "sweep" not in self.fields:
            return
        grid = self.cleaned_data.get("sweep")
        if not grid:
            if (self.cleaned_data.get("sweep_tag") or "").strip():
                self.add_error("sweep_tag", "A sweep tag goes with a sweep: fill in Sweep, or leave the tag empty.")
            return
        try:
            self.cleaned_data["sweep_axes"] = sweep_parse(grid, defaults=sweep_defaults(self.sweep_kind),
                                                          config=self.config(), kind=self.sweep_kind)
        except RunError as exc:
            self.add_error("sweep", exc.message)

    def sweep_sampled_generations(self) -> int | None:
        """The completions per prompt of a sweep's points that sample, where greedy points take
        one (``sweeps.point_config``); None: the config's num_generations at every point."""
        return None


def _json_key(field: str | None, target: str | None, json_fields) -> str:
    """The key of the JSON ``target`` field that the dotted ``field`` names ("" when none)."""
    if not field or not field.startswith("config.") or target is None:
        return ""
    path = field[len("config."):]
    if target in json_fields:
        return path
    if re.fullmatch(r"reward_\d+_params", target) and "]." in path:  # rewards[1].max_tokens: its row's parameter
        return path[path.index("]") + 2:]
    return ""


def new_submission_key() -> str:
    return secrets.token_urlsafe(18)  # 24 characters of A-Z a-z 0-9 - _


class NewRunForm(SweepLaunchForm):
    trains = True  # a policy run: the engine's training rules apply
    sweep_kind = RunKind.POLICY
    knobs = KNOBS  # the engine settings the form shows, each as a field
    held_out_knobs = HELD_OUT_KNOBS  # shown beside eval_dataset
    name = forms.CharField(max_length=200)
    policy = forms.ModelChoiceField(queryset=PolicyModel.objects.none())
    dataset = forms.ModelChoiceField(queryset=PromptDataset.objects.none())
    eval_dataset = forms.ModelChoiceField(
        queryset=PromptDataset.objects.none(), required=False, label="Held-out prompts", empty_label="— none —",
        help_text="Prompts the run never trains on, scored every N steps and at the last by the run's 0/1 reward "
                  "(exact match with their references when it has none): greedy pass@1 and pass@k from n "
                  "samples, charted as eval/greedy_pass@1 and eval/pass@k; each greedy answer is kept.")
    overrides = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}), initial="{}",
        label="More config (JSON, merged over the fields above)",
        help_text='Any other engine setting, e.g. {"policy": {"tiny": {"hidden_size": 32}}, "filters": {"dynamic_sampling": true}}.',
    )

    def __init__(self, *args, project, reward_models=(), **kwargs):
        super().__init__(*args, **kwargs)
        from workers.engine.config import config_field_help, every_default_dict
        from workers.engine.rewards import REWARDS, reward_catalog, reward_common_keys

        # every setting's default, those a config's JSON leaves out at their default too
        # (rollout.budget_allocation...), so each can be a field and a sweep can name it
        self.defaults = every_default_dict()
        # The reference shown under the reward rows: each component's parameters, and the keys
        # any row's parameters may add (the row's own columns hold name and weight).
        self.reward_catalog = reward_catalog()
        self.reward_common_keys = [k for k in reward_common_keys() if k["name"] not in ("name", "weight")]
        help_texts = config_field_help()
        self.fields["policy"].queryset = PolicyModel.objects.filter(project=project)
        self.fields["dataset"].queryset = PromptDataset.objects.filter(project=project)
        if self.held_out_knobs:
            self.fields["eval_dataset"].queryset = PromptDataset.objects.filter(project=project)
        else:
            del self.fields["eval_dataset"]
        self.nothing_to_choose = set()  # "policy", "dataset": the project has none yet (the page says what to do)
        for name in ("policy", "dataset"):  # the only choice there is comes chosen
            only = list(self.fields[name].queryset.values_list("pk", flat=True)[:2])
            if len(only) == 1:
                self.fields[name].initial = only[0]
            elif not only:
                self.nothing_to_choose.add(name)
        for path, label in [*self.knobs, *self.held_out_knobs]:
            default = _lookup(self.defaults, path)
            choices = _choices_for(path)
            common = {"label": label, "initial": default, "help_text": help_texts.get(path, "")}
            if choices:
                field = forms.ChoiceField(choices=[(c, c) for c in choices], **common)
            elif isinstance(default, bool):
                field = forms.BooleanField(required=False, **common)
            elif default is None:  # optional: blank is null, the engine's "same as …"
                field = forms.FloatField(required=False, **common)
            elif isinstance(default, int):
                field = forms.IntegerField(**common, **_range_for(path))
            else:
                field = forms.FloatField(**common)
            self.fields[form_name(path)] = field
        # A reward model and a tournament's judge are chosen among this project's own.
        reward_choices = [("", "—")] + [(name, name) for name in sorted(REWARDS)
                                         if name not in ("reward_model", "tournament", "rubric_judge")]
        reward_choices += [(f"{RM_PREFIX}{rm.pk}", f"Reward model: {rm.name}") for rm in reward_models]
        self.reward_model_paths = {f"{RM_PREFIX}{rm.pk}": rm.path for rm in reward_models}
        # A tournament ranks a group against itself: it trains, but cannot score an evaluation.
        policies = list(self.fields["policy"].queryset.select_related("checkpoint"))
        judges = policies if self.trains else []
        reward_choices += [(f"{JUDGE_PREFIX}{p.pk}", f"Tournament judged by {p.name}") for p in judges]
        self.judge_specs = {f"{JUDGE_PREFIX}{p.pk}": p.engine_spec() for p in judges}
        from webapp.feedback.selectors import rubrics_with_versions  # noqa: PLC0415 (feedback imports experiments)

        rubrics = list(rubrics_with_versions(project=project))
        reward_choices += [(f"{RUBRIC_PREFIX}{r.pk}:{p.pk}", f"Rubric “{r.name}” judged by {p.name}")
                           for r in rubrics for p in policies]
        self.rubric_judges = {f"{RUBRIC_PREFIX}{r.pk}:{p.pk}": (r, p.engine_spec()) for r in rubrics for p in policies}
        default_rewards = self.defaults["rewards"]
        for i in range(REWARD_ROWS):
            initial = default_rewards[i] if i < len(default_rewards) else {}
            params = {k: v for k, v in initial.items() if k not in ("name", "weight", "label")}
            self.fields[f"reward_{i}_name"] = forms.ChoiceField(
                choices=reward_choices, required=False, initial=initial.get("name", ""), label=f"Reward {i + 1}")
            self.fields[f"reward_{i}_weight"] = forms.FloatField(
                required=False, initial=initial.get("weight", 1.0), label="Weight")
            self.fields[f"reward_{i}_params"] = forms.CharField(
                required=False, initial=json.dumps(params) if params else "", label="Parameters (JSON)",
                widget=forms.TextInput(attrs={"placeholder": "{} (optional, JSON)", "class": "mono"}))

    @property
    def knob_fields(self):
        return [self[form_name(path)] for path, _ in self.knobs]

    @property
    def held_out_fields(self):
        return [self[form_name(path)] for path, _ in self.held_out_knobs]

    @property
    def reward_rows(self):
        return [(self[f"reward_{i}_name"], self[f"reward_{i}_weight"], self[f"reward_{i}_params"])
                for i in range(REWARD_ROWS)]

    def clean_overrides(self):
        raw = self.cleaned_data.get("overrides") or ""
        if not raw.strip():
            return {}
        value = _json_field(raw)
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object.")
        return value

    def clean(self):
        cleaned = super().clean()
        rewards = []
        for i in range(REWARD_ROWS):
            name = cleaned.get(f"reward_{i}_name")
            if not name:
                continue
            weight = cleaned.get(f"reward_{i}_weight")
            raw = (cleaned.get(f"reward_{i}_params") or "").strip()
            try:
                params = _json_field(raw) if raw else {}
            except forms.ValidationError as exc:
                self.add_error(f"reward_{i}_params", exc)
                continue
            if not isinstance(params, dict):
                self.add_error(f"reward_{i}_params", "Must be a JSON object.")
                continue
            reward = {**params, "name": name, "weight": 1.0 if weight is None else weight}
            if name.startswith(RM_PREFIX):
                if name not in self.reward_model_paths:
                    self.add_error(f"reward_{i}_name", "That reward model is not ready.")
                    continue
                reward.update(name="reward_model", path=self.reward_model_paths[name])
                reward.setdefault("label", f"rm{name[len(RM_PREFIX):]}")
            elif name.startswith(JUDGE_PREFIX):  # the choice field only offers this project's
                reward.update(name="tournament", judge=self.judge_specs[name])
            elif name.startswith(RUBRIC_PREFIX):
                from webapp.experiments.local_folders import rubric_judge_criteria  # noqa: PLC0415

                rubric, judge = self.rubric_judges[name]
                reward.update(name="rubric_judge", judge=judge, **rubric_judge_criteria(rubric))
                reward.setdefault("label", f"rubric{rubric.pk}")
            rewards.append((i, reward))
        if not rewards and not self.errors:
            self.add_error("reward_0_name", "Choose at least one reward.")
        self.reward_rows_used = [i for i, _ in rewards]
        cleaned["rewards"] = [reward for _, reward in rewards]
        # The engine's checks too, all of them at once, on every field the form could read.
        from workers.engine.config import check_trainable, config_errors
        from workers.engine.errors import ConfigError

        errors = []
        if self.trains:
            try:
                check_trainable(self.config())
            except ConfigError as exc:
                errors.append(exc)
        for exc in errors or config_errors(self.config()):
            self.add_input_error(f"config.{exc.field}", exc.message)
        self.clean_sweep_axes()
        return cleaned

    def config(self) -> dict:
        """The config the form describes (not yet validated by the engine); fields that did not
        parse are left out, so the engine's defaults stand in for them."""
        config: dict = {}
        for path, _ in [*self.knobs, *self.held_out_knobs]:
            section, key = path.split(".")
            if form_name(path) in self.cleaned_data:
                config.setdefault(section, {})[key] = self.cleaned_data[form_name(path)]
        if self.cleaned_data.get("rewards"):
            config["rewards"] = self.cleaned_data["rewards"]
        return _deep_merge(config, self.cleaned_data.get("overrides") or {})

    def field_for_error(self, field: str | None) -> str | None:
        """The form field that holds an engine/service error's dotted field (None: the whole form)."""
        if not field:
            return None
        if field in ("name", "policy", "dataset", "eval_dataset") and field in self.fields:
            return field
        if field.startswith("config."):
            path = field[len("config."):]
            if path.startswith("rewards["):
                index = int(path[len("rewards["):path.index("]")])
                rest = path[path.index("]") + 2:] if "]." in path else ""
                rows = getattr(self, "reward_rows_used", [])
                if index < len(rows):
                    row = rows[index]
                    return f"reward_{row}_{'weight' if rest == 'weight' else 'name' if rest == 'name' else 'params'}"
            name = form_name(path)
            if name in self.fields:
                return name
            return "overrides"
        return None


class NewEvaluationForm(NewRunForm):
    """An evaluation run: the policy sampled over every prompt of the dataset, in order, and
    scored with the rewards; the run's page sums it up (reward, accuracy, pass@k)."""

    trains = False
    sweep_kind = RunKind.EVALUATION
    sweep_example = ('{"rollout.temperature": [0.6, 1.0], "train.seed": [0, 1, 2]}', 6)
    # an evaluation trains nothing: optim.lr, algorithm.beta... are refused (sweeps.sweep_parse)
    sweep_settings = ("one an evaluation reads: how it samples (rollout.temperature, rollout.top_p, "
                      "rollout.max_new_tokens, rollout.num_generations, rollout.greedy...), train.seed, "
                      "policy.dtype or rewards[i].weight")
    sweep_compare = ("once finished each one's Results table shows the others beside it, naming what the sweep "
                     "set otherwise (swept: ...)")
    knobs = EVALUATION_KNOBS
    held_out_knobs = []  # an evaluation is all held out

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rollout__prompts_per_step"].help_text = (
            "Prompts sampled at once: one step. The dataset is covered once, in order.")
        self.fields["overrides"].help_text = ('Any other engine setting, e.g. {"rollout": {"top_p": 0.95}} '
                                              'or {"train": {"device": "cpu"}}.')
        self.fields["rollout__num_generations"].help_text += (
            " Sampling only: greedy decoding takes one, as does each greedy point of a sweep.")
        self.fields["rollout__num_generations"].required = False  # blank with Greedy; the engine names it otherwise

    def clean(self):
        cleaned = super().clean()
        if self["rollout__num_generations"].value() in (None, ""):
            if not cleaned.get("rollout__greedy"):
                self.errors.pop("rollout__num_generations", None)  # the engine's "expected a whole number, got None"
                self.add_error("rollout__num_generations", "Required when sampling (at least 2), or tick Greedy.")
            elif not self._group_size_in_json() and self._sweep_samples():
                self.add_error("rollout__num_generations",
                               "Required when a point of the sweep samples (rollout.greedy false): at least 2.")
        return cleaned

    def _group_size_in_json(self) -> bool:
        """Whether the JSON sets num_generations: the user's own, kept whatever the decoding."""
        overrides = self.cleaned_data.get("overrides") or {}
        rollout = overrides.get("rollout") if isinstance(overrides, dict) else None
        return isinstance(rollout, dict) and "num_generations" in rollout

    def _sweep_samples(self) -> bool:
        """Whether the sweep has a point that samples though Greedy is ticked (and sets no G itself)."""
        axes = {axis.path: axis.values for axis in self.cleaned_data.get("sweep_axes") or []}
        return False in axes.get("rollout.greedy", ()) and "rollout.num_generations" not in axes

    def config(self) -> dict:
        """As the New-run form's, except that greedy decoding takes one completion per prompt
        whatever the G field says (the field is for sampling), unless the JSON sets G itself."""
        config = super().config()
        rollout = config.get("rollout")
        if isinstance(rollout, dict) and rollout.get("greedy") is True and not self._group_size_in_json():
            config["rollout"] = {**rollout, "num_generations": 1}
        return config

    def sweep_sampled_generations(self) -> int | None:
        """The G field, for sampling only, applies per point of a sweep as it does to one run: a
        point that decodes greedily (swept or ticked) takes one completion per prompt, a point that
        samples the field's G, as the API's sweep does with a config that leaves G out. None (the
        config's G everywhere) when the JSON sets G, which is the user's own, or the field is blank."""
        if self._group_size_in_json():
            return None
        return self.cleaned_data.get("rollout__num_generations")


class RewardModelRunForm(LaunchForm):
    """A reward-model run: a name, its preference data, and the trainer's settings."""

    name = forms.CharField(max_length=200)
    data = forms.ChoiceField(label="Preference data")
    strength_margins = forms.CharField(
        label="Margins by preference strength", required=False, max_length=200,
        help_text="Labels only: three numbers, the Bradley-Terry margins of labels whose choice is slightly "
                  "better, better and much better (as Llama 2's reward model), each 0 to 20, e.g. 0.33, 0.67, 1. Empty: "
                  "every label gets the settings' margin.")
    settings = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "class": "mono"}), label="Trainer settings (JSON)",
        help_text="The reward-model trainer's config; its defaults are filled in.",
    )

    def __init__(self, *args, pair_sets=(), label_count: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        from workers.engine.rm_trainer import RewardModelTrainConfig

        choices = [("labels", f"This project's preference labels ({label_count})")]
        choices += [(f"pairs:{s.pk}", f"Imported pairs: {s.name} ({s.pair_count})") for s in pair_sets]
        self.fields["data"].choices = choices
        self.no_preference_data = not label_count and len(choices) == 1  # the page says what to do first
        self.fields["settings"].initial = json.dumps(RewardModelTrainConfig().to_dict(), indent=2)

    def clean_settings(self):
        value = _json_field(self.cleaned_data["settings"])
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object.")
        return value

    def clean_strength_margins(self):
        text = self.cleaned_data["strength_margins"].strip()
        if not text:
            return None
        try:
            return [float(part) for part in text.replace(",", " ").split()]
        except ValueError:
            raise forms.ValidationError("Write three numbers, e.g. 0.33, 0.67, 1.") from None

    def clean(self):
        data = super().clean()
        if data.get("strength_margins") is not None and data.get("data", "labels") != "labels":
            self.add_error("strength_margins", "Margins by strength go with the project's labels: pairs carry "
                                               "their own margin, if any.")
        return data

    def config(self) -> dict:
        data = self.cleaned_data["data"]
        source = {"source": "labels"} if data == "labels" else {"source": "pairs", "pair_set": int(data.split(":")[1])}
        if self.cleaned_data.get("strength_margins") is not None:
            source["strength_margins"] = self.cleaned_data["strength_margins"]
        return {**self.cleaned_data["settings"], "data": source}

    def field_for_error(self, field: str | None) -> str | None:
        if field == "name":
            return "name"
        if field == "config.data.strength_margins":
            return "strength_margins"
        if field == "config.data":
            return "data"
        return "settings" if field and field.startswith("config") else None


# The DPO run's settings on the form (the rest through its JSON field).
DPO_KNOBS = [
    ("dpo.beta", "β"),
    ("dpo.loss_type", "Loss"),
    ("dpo.label_smoothing", "Label smoothing (cDPO ε)"),
    ("dpo.epochs", "Epochs"),
    ("dpo.batch_size", "Pairs per micro-batch"),
    ("dpo.gradient_accumulation_steps", "Gradient accumulation"),
    ("dpo.max_length", "Max length (tokens)"),
    ("optim.lr", "Learning rate"),
    ("optim.warmup_steps", "Warm-up steps"),
    ("policy.dtype", "Precision"),
    ("dpo.checkpoint_every", "Checkpoint every"),
    ("dpo.seed", "Seed"),
]

# The SFT run's settings on the form (the rest through its JSON field).
SFT_KNOBS = [
    ("sft.epochs", "Epochs"),
    ("sft.batch_size", "Examples per micro-batch"),
    ("sft.gradient_accumulation_steps", "Gradient accumulation"),
    ("sft.max_length", "Max length (tokens)"),
    ("optim.lr", "Learning rate"),
    ("optim.warmup_steps", "Warm-up steps"),
    ("policy.dtype", "Precision"),
    ("sft.checkpoint_every", "Checkpoint every"),
    ("sft.seed", "Seed"),
]


class _OfflineRunForm(SweepLaunchForm):
    """A run that trains a policy offline (DPO, SFT): a policy of the project, its data (the
    ``data_field``, whose choices ``data_choices`` gives), and the trainer's settings: ``knobs`` as
    fields with the engine's defaults and help, the rest through the JSON ``overrides``."""

    knobs = ()
    data_field = "data"
    name = forms.CharField(max_length=200)
    policy = forms.ModelChoiceField(queryset=PolicyModel.objects.none())
    overrides = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}), initial="{}",
        label="More config (JSON, merged over the fields above)")

    def config_class(self):
        raise NotImplementedError

    def field_help(self) -> dict[str, str]:
        raise NotImplementedError

    def knob_choices(self) -> dict[str, tuple[str, ...]]:
        return {"policy.dtype": _choices_for("policy.dtype")}

    def data_choices(self, project) -> list[tuple[str, str]]:
        raise NotImplementedError

    def data_section(self, value: str) -> dict:
        raise NotImplementedError

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        defaults = self.config_class()().to_dict()
        help_texts = self.field_help()
        self.fields["policy"].queryset = PolicyModel.objects.filter(project=project)
        data = self.fields[self.data_field]
        data.choices = self.data_choices(project)
        if len(data.choices) == 1:  # the only choice there is comes chosen
            data.initial = data.choices[0][0]
        only = list(self.fields["policy"].queryset.values_list("pk", flat=True)[:2])
        if len(only) == 1:
            self.fields["policy"].initial = only[0]
        self.nothing_to_choose = set() if only else {"policy"}  # the page says what to do first
        choices = self.knob_choices()
        section = self.knobs[0][0].split(".")[0]
        for path, label in self.knobs:
            default = _lookup(defaults, path)
            common = {"label": label, "initial": default, "help_text": help_texts.get(path, "")}
            if path in choices:
                field = forms.ChoiceField(choices=[(c, c) for c in choices[path]], **common)
            elif isinstance(default, int):
                field = forms.IntegerField(min_value=0 if path in ("optim.warmup_steps", f"{section}.seed") else 1,
                                           **common)
            else:
                field = forms.FloatField(**common)
            self.fields[form_name(path)] = field

    @property
    def knob_fields(self):
        return [self[form_name(path)] for path, _ in self.knobs]

    def clean_overrides(self):
        raw = self.cleaned_data.get("overrides") or ""
        value = _json_field(raw) if raw.strip() else {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object.")
        return value

    def clean(self):
        cleaned = super().clean()
        from workers.engine.errors import ConfigError

        try:
            self.config_class().from_dict({k: v for k, v in self.config().items() if k != "data"})
        except ConfigError as exc:
            self.add_input_error(f"config.{exc.field}", exc.message)
        self.clean_sweep_axes()
        return cleaned

    def config(self) -> dict:
        """The config the form describes; fields that did not parse are left out (the engine's
        defaults stand in for them)."""
        config: dict = {}
        for path, _ in self.knobs:
            section, key = path.split(".")
            if form_name(path) in self.cleaned_data:
                config.setdefault(section, {})[key] = self.cleaned_data[form_name(path)]
        config = _deep_merge(config, self.cleaned_data.get("overrides") or {})
        data = self.cleaned_data.get(self.data_field)
        if data:
            config["data"] = self.data_section(data)
        return config

    def field_for_error(self, field: str | None) -> str | None:
        if field in ("name", "policy"):
            return field
        if field == "config.data":
            return self.data_field
        if field and field.startswith("config."):
            name = form_name(field[len("config."):])
            return name if name in self.fields else "overrides"
        return None


class DPORunForm(_OfflineRunForm):
    """A DPO run: a policy of the project, its preference data (the annotators' labels, or one of
    its pair sets), and the DPO settings."""

    knobs = DPO_KNOBS
    sweep_kind = RunKind.DPO
    data_field = "pair_set"
    pair_set = forms.ChoiceField(
        label="Preference data",
        help_text="The annotators' labels (each pair of answers a ranking puts apart, the better one chosen; "
                  "labels given after the launch are not used), or a set of pairs ({prompt, chosen, rejected}) "
                  "imported or made from a run.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["policy"].help_text = "The policy trained; its weights before training are the reference."
        self.fields["overrides"].help_text = (
            'Any other DPO setting, e.g. {"dpo": {"device": "cpu", "keep_checkpoints": 3}} or '
            '{"optim": {"weight_decay": 0.01}}; a weighted list of losses (TRL\'s MPO) as '
            '{"dpo": {"loss_type": ["sigmoid", "sft"], "loss_weights": [0.8, 1.0]}}.')
        self.fields[form_name("dpo.loss_type")].help_text += (
            " A list of losses set in More config (JSON) decides over this field.")

    def config_class(self):
        from workers.engine.dpo_config import DPOTrainConfig

        return DPOTrainConfig

    def field_help(self) -> dict[str, str]:
        from workers.engine.dpo_config import dpo_field_help

        return dpo_field_help()

    def knob_choices(self) -> dict[str, tuple[str, ...]]:
        from workers.engine.dpo_config import DPO_LOSS_TYPES

        return {**super().knob_choices(), "dpo.loss_type": DPO_LOSS_TYPES}

    def data_choices(self, project) -> list[tuple[str, str]]:
        # Imported here: rewards imports experiments.
        from webapp.rewards.selectors import label_count, pair_set_list

        labels = label_count(project=project)
        return (([("labels", f"This project's preference labels ({labels})")] if labels else [])
                + [(str(s.pk), f"Pairs: {s.name} ({s.pair_count} pairs)") for s in pair_set_list(project=project)])

    def data_section(self, value: str) -> dict:
        return {"source": "labels"} if value == "labels" else {"source": "pairs", "pair_set": int(value)}


class SFTRunForm(_OfflineRunForm):
    """An SFT run: a policy of the project, its examples (the annotators' top-ranked answers, a pair
    set's chosen answers, or a prompt dataset's references), and the SFT settings."""

    knobs = SFT_KNOBS
    sweep_kind = RunKind.SFT
    data_field = "data"
    data = forms.ChoiceField(
        label="Examples",
        help_text="What the policy learns to answer: each label's top-ranked answer(s) (ties and 'both bad' "
                  "left out; labels given after the launch are not used), a pair set's chosen answers, or a "
                  "prompt dataset's reference answers (every row needs one).")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["policy"].help_text = "The policy fine-tuned; the run registers the result as a new policy."
        self.fields["overrides"].help_text = (
            'Any other SFT setting, e.g. {"sft": {"device": "cpu", "keep_checkpoints": 3}} or '
            '{"optim": {"weight_decay": 0.01}}.')

    def config_class(self):
        from workers.engine.sft_config import SFTTrainConfig

        return SFTTrainConfig

    def field_help(self) -> dict[str, str]:
        from workers.engine.sft_config import sft_field_help

        return sft_field_help()

    def data_choices(self, project) -> list[tuple[str, str]]:
        from webapp.rewards.selectors import label_count, pair_set_list

        labels = label_count(project=project)
        datasets = PromptDataset.objects.filter(project=project).order_by("name")
        return (([("labels", f"Top-ranked answers of this project's labels ({labels})")] if labels else [])
                + [(f"pairs:{s.pk}", f"Chosen answers: {s.name} ({s.pair_count} pairs)")
                   for s in pair_set_list(project=project)]
                + [(f"dataset:{d.pk}", f"References: {d.name}") for d in datasets])

    def data_section(self, value: str) -> dict:
        if value == "labels":
            return {"source": "labels"}
        source, pk = value.split(":")
        return {"source": source, "pair_set" if source == "pairs" else "dataset": int(pk)}


def _json_field(raw: str):
    """A form field's JSON value, or ValidationError saying what is wrong (a syntax error with
    its line and column, or a value the database cannot store)."""
    try:
        return storable_json(raw)
    except ValueError as exc:
        message = json_error(exc)
        raise forms.ValidationError(f"{message[:1].upper()}{message[1:]}.") from None
