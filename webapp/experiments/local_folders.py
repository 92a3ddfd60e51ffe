"""The local folders a run's config may name: only those this project owns.

An engine config can point a worker at folders on its disk: a ``reward_model`` reward's
``path`` and a reward-model run's backbone ``path``. Those folders are not the caller's to
choose. A reward model is named by its id in this project (``{"name": "reward_model",
"reward_model": 3}``), which is resolved here to the folder it was saved to, or by that folder
itself (as the new-run form does); a judge (of a tournament or a rubric judge) is named by a
policy id (``{"name": "tournament", "judge_policy": 2}``) or as a model spec, and a rubric
judge's criteria by a rubric id (``"rubric": 4``); a backbone folder, and a
judge's folder, must be the folder of one of this project's policies (a local folder, which an
operator registers, or a checkpoint of one of its runs). Anything else, such as another
project's checkpoint folder, is refused with a RunError naming the field.
"""

from __future__ import annotations

import os
from typing import Any

from webapp.core.locks import rows_for_share
from webapp.experiments.errors import RunError
from webapp.experiments.models import PolicyModel, RunKind


def resolve_local_folders(*, project, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with reward models named by id replaced by their folders; RunError for a
    folder this project does not own. Shapes the engine refuses are left for its checks."""
    if kind in (RunKind.POLICY, RunKind.EVALUATION) and isinstance(config.get("rewards"), list):
        return {**config, "rewards": [_reward(project, i, r) for i, r in enumerate(config["rewards"])]}
    if kind == RunKind.REWARD_MODEL and config.get("path") is not None:
        if not isinstance(config["path"], str):
            raise RunError("must be a string: the folder of a local model", field="config.path")
        if not _one_of(config["path"], policy_folders(project=project)):
            raise RunError("is not the folder of a policy registered in this project (a local "
                           "folder, or a checkpoint of one of its runs)", field="config.path")
    return config


def policy_folders(*, project) -> list[str]:
    """The folders of the project's policies: registered local folders and the checkpoints
    policies were made from."""
    return [folder for _, folder in _policies_with_folders(project)]


def backbone_policy(*, project, kind: str, config: dict[str, Any]) -> PolicyModel | None:
    """The project's policy whose folder a reward-model run's backbone ``path`` names, if any.

    The launch records it as the run's policy, so that, like a policy run's, it is share-locked
    until the run is committed and kept while the run exists: deleting the policy is refused,
    and with it the deletion of the run whose checkpoint holds the backbone.
    """
    if kind != RunKind.REWARD_MODEL or not _usable(config.get("path")):
        return None
    return next((policy for policy, folder in _policies_with_folders(project) if same_folder(config["path"], folder)),
                None)


def _policies_with_folders(project) -> list[tuple[PolicyModel, str]]:
    policies = PolicyModel.objects.filter(project=project).select_related("checkpoint").order_by("pk")
    out = []
    for policy in policies.filter(source__in=[PolicyModel.Source.PATH, PolicyModel.Source.CHECKPOINT]):
        out.append((policy, policy.checkpoint.path if policy.checkpoint_id else policy.reference))
    return out


JUDGED_REWARDS = ("tournament", "rubric_judge")  # rewards a language model judges


def _reward(project, index: int, reward: Any) -> Any:
    if isinstance(reward, dict) and reward.get("name") == "rubric_judge":
        reward = _rubric_criteria(project, f"config.rewards[{index}]", reward)
    if isinstance(reward, dict) and reward.get("name") in JUDGED_REWARDS:
        return _judge(project, f"config.rewards[{index}]", reward)
    if not isinstance(reward, dict) or reward.get("name") != "reward_model":
        return reward
    from webapp.rewards.selectors import reward_models_ready

    field = f"config.rewards[{index}]"
    ready = reward_models_ready(project=project)
    if "reward_model" in reward:
        if "path" in reward:
            raise RunError("name the reward model by id or by path, not both", field=field)
        rm_id = _id(reward["reward_model"], "a reward model's", f"{field}.reward_model")
        rm = ready.filter(pk=rm_id).first()
        if rm is None:
            raise RunError(f"no trained reward model {rm_id} in this project",
                           field=f"{field}.reward_model")
        reward = {k: v for k, v in reward.items() if k != "reward_model"}
        return {**reward, "path": rm.path, "label": reward.get("label") or f"rm{rm.pk}"}
    path = reward.get("path")
    if isinstance(path, str) and not _one_of(path, ready.values_list("path", flat=True)):
        raise RunError("is not the folder of a trained reward model of this project; name the "
                       'reward model by id instead: {"name": "reward_model", "reward_model": <id>}',
                       field=f"{field}.path")
    return reward


def _id(value: Any, whose: str, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RunError(f"must be {whose} id (an integer), got {value!r}", field=field)
    return value


def _rubric_criteria(project, field: str, reward: dict[str, Any]) -> dict[str, Any]:
    """A rubric judge's criteria named by a rubric of this project (``"rubric": 2``) become that
    rubric's latest criteria (name, description, weight), its version recorded beside them."""
    if "rubric" not in reward:
        return reward
    if "criteria" in reward:
        raise RunError("name the criteria by rubric id or list them, not both", field=field)
    from webapp.feedback.models import Rubric  # noqa: PLC0415 (feedback imports experiments)

    rubric_id = _id(reward["rubric"], "a rubric's", f"{field}.rubric")
    rubric = Rubric.objects.filter(project=project, pk=rubric_id).first()
    if rubric is None or rubric.latest_version() is None:
        raise RunError(f"no rubric {rubric_id} in this project", field=f"{field}.rubric")
    return {**{k: v for k, v in reward.items() if k != "rubric"}, **rubric_judge_criteria(rubric)}


def rubric_judge_criteria(rubric) -> dict[str, Any]:
    """A rubric's latest criteria as a rubric judge's parameters, with the version recorded."""
    version = rubric.latest_version()
    return {"criteria": [{"name": c.name, "description": c.description, "weight": c.weight}
                         for c in version.criteria.order_by("position")],
            "rubric_version": version.pk}


def _judge(project, field: str, reward: dict[str, Any]) -> dict[str, Any]:
    """A judge named by a policy id (``"judge_policy": 3``) becomes that policy's engine spec; a
    judge given as a spec may name a local folder only if it is one of this project's policies
    (built-in and tiny judges name no folder)."""
    if "judge_policy" in reward:
        if "judge" in reward:
            raise RunError("name the judge by policy id or as a model spec, not both", field=field)
        policy_id = _id(reward["judge_policy"], "a policy's", f"{field}.judge_policy")
        policy = PolicyModel.objects.filter(project=project, pk=policy_id).select_related("checkpoint").first()
        if policy is None:
            raise RunError(f"no policy {policy_id} in this project", field=f"{field}.judge_policy")
        return {**{k: v for k, v in reward.items() if k != "judge_policy"}, "judge": policy.engine_spec()}
    judge = reward.get("judge")
    if isinstance(judge, dict) and judge.get("source") == "path" and judge.get("path") is not None:
        if not _one_of(judge["path"], policy_folders(project=project)):
            raise RunError("is not the folder of a policy registered in this project; name the judge "
                           'by policy id instead: {"name": "tournament", "judge_policy": <id>}',
                           field=f"{field}.judge.path")
    return reward


def _judge_folders(config: dict[str, Any]) -> dict[int, str]:
    """{reward index: folder} of the config's judges (tournaments, rubric judges) that are local
    folders."""
    rewards = config.get("rewards") if isinstance(config, dict) else None
    out = {}
    for index, reward in enumerate(rewards if isinstance(rewards, list) else []):
        judge = reward.get("judge") if isinstance(reward, dict) and reward.get("name") in JUDGED_REWARDS else None
        if isinstance(judge, dict) and judge.get("source") == "path" and _usable(judge.get("path")):
            out[index] = judge["path"]
    return out


def judge_policies_lock(*, project, config: dict[str, Any]) -> None:
    """Inside the launch's transaction: share-lock the policies whose folders the config's
    judges name, and RunError if one was deleted since ``resolve_local_folders``.
    A policy's deletion locks its row and then looks for active runs judging with it
    (``runs_judging_with``), so one of the two sees the other."""
    used = _judge_folders(config)
    if not used:
        return
    held = [checkpoint_path or reference for _, source, reference, checkpoint_path in rows_for_share(
        PolicyModel.objects.filter(project=project, source__in=[PolicyModel.Source.PATH, PolicyModel.Source.CHECKPOINT])
        .values_list("pk", "source", "reference", "checkpoint__path"))]
    for index, path in used.items():
        if not _one_of(path, held):
            raise RunError("the judge's policy was deleted while this run was being launched",
                           field=f"config.rewards[{index}].judge")


def runs_judging_with(*, policy: PolicyModel) -> list:
    """The project's runs, newest first, with a reward judged by this policy's folder."""
    from webapp.experiments.models import Run

    if policy.source not in (PolicyModel.Source.PATH, PolicyModel.Source.CHECKPOINT):
        return []
    folder = policy.checkpoint.path if policy.checkpoint_id else policy.reference
    runs = Run.objects.filter(project_id=policy.project_id, config__has_key="rewards").order_by("-id")
    return [run for run in runs.only("id", "name", "status", "kind", "config")
            if any(same_folder(path, folder) for path in _judge_folders(run.config).values())]


def reward_models_lock(*, project, config: dict[str, Any]) -> None:
    """Inside the launch's transaction: share-lock the rows of the project's reward models,
    and RunError if one the resolved config uses was deleted since ``resolve_local_folders``.

    A deletion locks the same row and then looks for active runs that use it, so either the
    launch commits first and the deletion sees its queued run, or the deletion commits first
    and the launch is refused here.
    """
    from webapp.rewards.models import RewardModel

    rewards = config.get("rewards")
    # A reward without a usable path is left to the engine's checks, which name what is missing.
    used = {index: reward for index, reward in enumerate(rewards if isinstance(rewards, list) else [])
            if isinstance(reward, dict) and reward.get("name") == "reward_model" and _usable(reward.get("path"))}
    if not used:
        return
    held = [path for (path,) in rows_for_share(
        RewardModel.objects.filter(project=project).exclude(path="").values_list("path"))]
    for index, reward in used.items():
        if not _one_of(reward.get("path"), held):
            raise RunError("the reward model was deleted while this run was being launched",
                           field=f"config.rewards[{index}]")


def same_folder(path: object, folder: object) -> bool:
    """Whether two strings name the same folder once links are resolved (False for non-paths)."""
    if not _usable(path) or not _usable(folder):
        return False
    return os.path.realpath(path) == os.path.realpath(folder)


def _usable(path: object) -> bool:
    return isinstance(path, str) and bool(path) and "\x00" not in path


def _one_of(path: object, folders) -> bool:
    return any(same_folder(path, folder) for folder in folders)
