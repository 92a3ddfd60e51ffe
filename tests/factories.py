"""Plain factory functions for test fixtures; each creates real rows through the services."""

import itertools

from django.contrib.auth import get_user_model

from webapp.datasets.parsing import PromptRow
from webapp.datasets.services import dataset_create
from webapp.experiments.models import PolicyModel, Run, RunKind
from webapp.projects.models import Membership, Project, Role

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-staple-9"


def make_user(username: str | None = None, password: str = PASSWORD):
    username = username or f"user{next(_seq)}"
    return get_user_model().objects.create_user(username=username, password=password)


def make_project(name: str | None = None, **members) -> Project:
    """A project; keyword arguments map roles to users, e.g. make_project(owner=u, annotator=[a, b])."""
    project = Project.objects.create(name=name or f"Project {next(_seq)}", slug=f"p-{next(_seq)}")
    for role, users in members.items():
        for user in users if isinstance(users, (list, tuple)) else [users]:
            Membership.objects.create(project=project, user=user, role=Role(role))
    return project


def make_dataset(project, name: str | None = None, n: int = 4, user=None):
    rows = [PromptRow(text=f"What is {i} + {i}?", reference=str(2 * i)) for i in range(n)]
    return dataset_create(project=project, name=name or f"dataset-{next(_seq)}", rows=rows, user=user)


def make_policy(project, name: str | None = None) -> PolicyModel:
    return PolicyModel.objects.create(project=project, name=name or f"tiny-{next(_seq)}", source=PolicyModel.Source.TINY)


def make_run(project, kind: str = RunKind.POLICY, **fields) -> Run:
    """A run row stored directly (config not validated): for tests of what surrounds a run."""
    return Run.objects.create(project=project, name=fields.pop("name", f"run-{next(_seq)}"), kind=kind, **fields)


# ---------------------------------------------------------------- feedback

def make_rubric(project, name: str | None = None, criteria: list[dict] | None = None, user=None):
    from webapp.feedback.services import rubric_create

    criteria = criteria or [{"name": "Correct", "scale": "binary", "weight": 2.0},
                            {"name": "Clear", "scale": "likert5"}]
    return rubric_create(project=project, name=name or f"rubric-{next(_seq)}", criteria=criteria, user=user)


def make_task(project, completions: list[str] | None = None, prompt: str = "Say hi.", required_labels: int = 1,
              rubric=None, gold_ranking=None, prompt_messages=None):
    """One comparison task stored through the JSONL import service."""
    import json

    from webapp.feedback.services import comparison_tasks_import_jsonl

    row = {"prompt": prompt_messages or prompt, "completions": completions or ["Hi!", "Hello there."]}
    if gold_ranking is not None:
        row["gold_ranking"] = gold_ranking
    [task] = comparison_tasks_import_jsonl(project=project, content=json.dumps(row),
                                           required_labels=required_labels, rubric=rubric)
    return task


# ---------------------------------------------------------------- runs on workers

def tiny_run_config(total_steps: int = 3, checkpoint_every: int = 1, **sections) -> dict:
    """A policy-run config small enough for a step to take a fraction of a second on a CPU."""
    config = {
        "policy": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 32,
                            "max_position_embeddings": 128}},
        "rollout": {"num_generations": 2, "prompts_per_step": 2, "max_new_tokens": 4},
        "rewards": [{"name": "exact_answer"}, {"name": "length", "max_tokens": 3, "weight": 0.5}],
        "train": {"total_steps": total_steps, "checkpoint_every": checkpoint_every, "device": "cpu"},
    }
    config.update(sections)
    return config


def tiny_run_form_data(policy, dataset, name: str = "tiny run", total_steps: int = 3, checkpoint_every: int = 1) -> dict:
    """POST data of the New-run form for a tiny run (the engine's defaults elsewhere)."""
    import json

    from workers.engine.config import every_default_dict

    from webapp.experiments.forms import HELD_OUT_KNOBS, KNOBS, form_name

    defaults = every_default_dict()  # with the settings left out of the JSON at their default
    data = {"name": name, "policy": policy.id, "dataset": dataset.id}
    for path, _ in KNOBS + HELD_OUT_KNOBS:
        section, key = path.split(".")
        if defaults[section][key] is not None:  # an optional knob left blank
            data[form_name(path)] = defaults[section][key]
    tiny = tiny_run_config(total_steps, checkpoint_every)
    for section in ("rollout", "train"):
        for key, value in tiny[section].items():
            if form_name(f"{section}.{key}") in data:
                data[form_name(f"{section}.{key}")] = value
    data.update({"reward_0_name": "exact_answer", "reward_0_weight": 1.0, "reward_0_params": "",
                 "reward_1_name": "length", "reward_1_weight": 0.5, "reward_1_params": '{"max_tokens": 3}'})
    data["overrides"] = json.dumps({"policy": tiny["policy"], "train": {"device": "cpu"}})
    return data


def dead_process_name() -> str:
    """How a claim names a worker process (``execution.process_name``), for one that has run on
    this machine and exited (killed, as by the system): what a lost attempt leaves behind."""
    import subprocess
    import sys

    import psutil

    from webapp.experiments.execution import process_name

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    name = process_name(psutil.Process(child.pid))
    child.kill()
    child.wait(timeout=10)
    return name
