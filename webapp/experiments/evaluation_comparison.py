"""Which finished evaluations an evaluation run's Results table compares with it figure by figure.

Pure functions of what each run was launched with. Two evaluations on one dataset compare when
they sampled alike and were scored by the same rewards (``evaluated_alike``): the policy may
differ (comparing policies is the point), and so may the seed. An evaluation sweep
(``webapp.experiments.sweeps``) makes one policy's runs that differ on purpose in the sampling
they sweep (a temperature, greedy or not, the token cap): among themselves, comparing them is the
point too. So a run of the same sweep as the reference, evaluating the same policy on the same
dataset with the same rewards, compares whatever it sampled, and its row names the settings in
which it differs (``Comparison.swept``). Runs of one sweep are one config with each point's values
set (``sweeps.point_config``), so what differs between two of them is what the sweep set: its
swept settings, and the group size a greedy point takes with them. Any other run that sampled
otherwise (or a run of the sweep with another policy, dataset or rewards) stays not comparable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

# How an evaluation samples: what must match for its figures to compare with another's.
SAMPLING_KEYS = ("greedy", "num_generations", "temperature", "top_p", "max_new_tokens", "use_chat_template")


@dataclass(frozen=True)
class Evaluated:
    """What an evaluation run was launched with: its stored ``config``, its policy and dataset,
    and ``sweep``, the sweep that launched it (``sweeps.sweep_identity``), None for a run
    launched alone."""

    config: dict
    policy_id: int | None
    dataset_id: int | None
    sweep: tuple | None = None

    @cached_property
    def read(self) -> dict:
        """The config as the engine reads it today (``run_config.with_engine_defaults``): a config
        stored before a setting existed has it at its default; {} for no config."""
        return _engine_read(self.config) if isinstance(self.config, dict) else {}


@dataclass(frozen=True)
class Comparison:
    """``alike``: whether the row's figures compare with the reference's. ``swept``: for a run of
    the reference's sweep, the settings whose values differ from the reference's, as (dotted
    path, this run's value), in path order; () for any other run."""

    alike: bool
    swept: tuple[tuple[str, object], ...] = ()

    @property
    def swept_text(self) -> list[str]:
        """``swept`` as the row shows it: ``["rollout.temperature = 1.0", "rollout.greedy = true"]``."""
        return [f"{path} = {setting_text(value)}" for path, value in self.swept]


def evaluated_alike(config) -> tuple:
    """What must match for two evaluations' figures to be comparable: how they sampled and the
    rewards (with their weights and parameters) that scored them; not the policy, nor the seed."""
    if not isinstance(config, dict):
        return ()
    return _alike_key(_engine_read(config))  # a config stored before a setting existed compares alike


def _alike_key(config: dict) -> tuple:
    if not config:
        return ()
    rollout = config.get("rollout") if isinstance(config.get("rollout"), dict) else {}
    sampling = {k: rollout.get(k) for k in SAMPLING_KEYS}
    if sampling["greedy"] is True:  # the most likely token whatever the temperature and top-p
        sampling.update(temperature=None, top_p=None)
    return tuple(sampling.values()), _rewards(config)


def compare(reference: Evaluated | None, other: Evaluated) -> Comparison:
    """How ``other``'s row of the Results table compares with the run ``reference`` (None: there is
    no run to compare with, and every row compares). Alike when both sampled and were scored alike
    (``evaluated_alike``); a run of the reference's sweep, of the same policy, dataset and rewards,
    is alike whatever it sampled (what differs is what the sweep set), and names what differs."""
    if reference is None:
        return Comparison(alike=True)
    same_sweep = reference.sweep is not None and reference.sweep == other.sweep
    swept = config_differences(reference.read, other.read) if same_sweep else ()
    if _alike_key(reference.read) == _alike_key(other.read):
        return Comparison(alike=True, swept=swept)
    alike = (same_sweep and reference.policy_id == other.policy_id and reference.dataset_id == other.dataset_id
             and bool(reference.read) and bool(other.read) and _rewards(reference.read) == _rewards(other.read))
    return Comparison(alike=alike, swept=swept)


def config_differences(reference: dict, other: dict) -> tuple[tuple[str, object], ...]:
    """The settings (dotted paths; a reward's as ``rewards[<i>].<key>``) whose values differ
    between two configs (as the engine reads them), each with ``other``'s value (None where it has
    none), in path order."""
    mine, theirs = _settings(reference), _settings(other)
    return tuple((path, theirs.get(path)) for path in sorted(mine.keys() | theirs.keys())
                 if mine.get(path, _MISSING) != theirs.get(path, _MISSING))


def setting_text(value) -> str:
    """A setting's value as JSON writes it (true, 1.0, 1e-05, null), a word as itself."""
    return value if isinstance(value, str) else json.dumps(value)


_MISSING = object()


def _engine_read(config: dict) -> dict:
    from webapp.experiments.run_config import with_engine_defaults  # noqa: PLC0415

    return with_engine_defaults(config)


def _rewards(config: dict) -> str:
    return json.dumps(config.get("rewards"), sort_keys=True)


def _settings(config: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_settings(value, f"{path}."))
        elif path == "rewards" and isinstance(value, list):
            for i, reward in enumerate(value):
                out.update(_settings(reward, f"rewards[{i}].") if isinstance(reward, dict) else {f"rewards[{i}]": reward})
        else:
            out[path] = value
    return out
