"""Launch a copy: a launch page's ``?from=<run id>`` fills the form with that run's settings, so
that launching it unchanged launches the same config; what cannot be filled in is said."""

import json
import re

import pytest
from django import forms
from django.test import Client
from django.urls import reverse

from tests.factories import (
    PASSWORD,
    make_dataset,
    make_policy,
    make_project,
    make_rubric,
    make_run,
    make_task,
    make_user,
    tiny_run_form_data,
)
from tests.webapp.experiments.test_dpo_runs import TINY, pairs_jsonl
from tests.webapp.experiments.test_local_folders import judged_by, trained_reward_model
from tests.webapp.experiments.test_sft_runs import annotator, label, toy_dataset
from webapp.experiments.models import PolicyModel, Run, RunKind
from webapp.experiments.policies import policy_delete
from webapp.experiments.run_copy import config_differences, copy_name, copy_name_of
from webapp.experiments.services import run_launch
from webapp.projects.models import Membership, Role
from webapp.rewards.models import RewardModel
from webapp.rewards.services import (
    pair_set_delete,
    pair_set_import,
    reward_model_delete,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]  # no task reaches a broker

PAGES = {RunKind.POLICY: "experiments:new", RunKind.EVALUATION: "experiments:new_evaluation",
         RunKind.DPO: "experiments:new_dpo", RunKind.SFT: "experiments:new_sft",
         RunKind.REWARD_MODEL: "rewards:train"}


def owner(project):
    return Membership.objects.get(project=project, role=Role.OWNER).user


def copy_page(client, run, page=None):
    return client.get(reverse(page or PAGES[run.kind], args=[run.project_id]) + f"?from={run.id}")


def unchanged(form) -> dict:
    """What a browser sends for the form as the page shows it (an unticked box sends nothing)."""
    data = {}
    for bound in form:
        value = bound.value()
        if isinstance(bound.field, forms.BooleanField):
            if value:
                data[bound.name] = "on"
        elif value is not None:
            data[bound.name] = value
    return data


def launch_copy_unchanged(client, run) -> Run:
    """GET the run's copy page and POST its form as shown: the run that launches."""
    url = reverse(PAGES[run.kind], args=[run.project_id]) + f"?from={run.id}"
    page = client.get(url)
    assert page.status_code == 200
    response = client.post(url, unchanged(page.context["form"]))
    assert response.status_code == 302, response.context["form"].errors
    return Run.objects.filter(project_id=run.project_id, kind=run.kind).exclude(pk=run.pk).get()


def policy_run(project, tmp_path, **changes) -> Run:
    """A policy run with knobs off their defaults, four kinds of reward, held-out prompts and
    settings no field shows."""
    config = {
        "policy": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 32,
                            "max_position_embeddings": 128}},
        "rollout": {"num_generations": 2, "prompts_per_step": 2, "max_new_tokens": 4, "top_p": 0.9},
        "algorithm": {"beta": 0.04, "estimator": "rloo"},
        "optim": {"lr": 3e-6, "weight_decay": 0.01},
        "filters": {"dynamic_sampling": True},
        "train": {"total_steps": 3, "checkpoint_every": 1, "device": "cpu"},
        "eval": {"every_steps": 2, "num_samples": 2, "k": 2, "temperature": 0.7},
        "rewards": [{"name": "exact_answer"},
                    {"name": "length", "max_tokens": 3, "weight": 0.5, "label": "short"},
                    {"name": "reward_model", "reward_model": trained_reward_model(project, tmp_path).id, "weight": 0.25},
                    {"name": "tournament", "judge_policy": judged_by(tmp_path, project).id, "weight": 0.1}],
        **changes,
    }
    return run_launch(project=project, user=owner(project), name="baseline", kind=RunKind.POLICY, config=config,
                      dataset=make_dataset(project), policy=make_policy(project),
                      eval_dataset=make_dataset(project, name="held out"))


# --- the same config again ----------------------------------------------------------------

def test_a_policy_runs_copy_launched_unchanged_has_its_config_datasets_and_policy(client, project, tmp_path):
    original = policy_run(project, tmp_path)
    copy = launch_copy_unchanged(client, original)
    assert copy.config == original.config
    assert (copy.policy, copy.dataset, copy.eval_dataset) == (original.policy, original.dataset, original.eval_dataset)
    assert copy.name == "baseline (copy)"


def test_a_copy_with_a_knob_changed_differs_from_the_original_in_that_knob_alone(client, project, tmp_path):
    original = policy_run(project, tmp_path)
    url = reverse("experiments:new", args=[project.id]) + f"?from={original.id}"
    data = {**unchanged(client.get(url).context["form"]), "algorithm__beta": 0.1, "optim__lr": 1e-5}
    assert client.post(url, data).status_code == 302
    copy = Run.objects.filter(project=project, kind=RunKind.POLICY).exclude(pk=original.pk).get()
    expected = {**original.config, "algorithm": {**original.config["algorithm"], "beta": 0.1},
                "optim": {**original.config["optim"], "lr": 1e-5}}
    assert copy.config == expected


def test_a_policy_in_the_address_wins_over_the_copied_runs(client, project, tmp_path):
    original = policy_run(project, tmp_path)
    other = make_policy(project, name="other")
    url = reverse("experiments:new", args=[project.id]) + f"?from={original.id}&policy={other.id}"
    form = client.get(url).context["form"]
    assert form["policy"].value() == other.id and form["optim__lr"].value() == 3e-6


def test_a_policy_runs_copy_shows_its_settings_in_the_fields_and_the_rest_as_json(client, project, tmp_path):
    original = policy_run(project, tmp_path)
    rm = RewardModel.objects.get(project=project)
    judge = PolicyModel.objects.get(project=project, name="judge")
    response = copy_page(client, original)
    form = response.context["form"]
    assert form["algorithm__beta"].value() == 0.04 and form["optim__lr"].value() == 3e-6
    assert form["algorithm__estimator"].value() == "rloo" and form["eval__every_steps"].value() == 2
    assert [form[f"reward_{i}_name"].value() for i in range(4)] == [
        "exact_answer", "length", f"reward_model:{rm.id}", f"judge:{judge.id}"]
    assert [form[f"reward_{i}_weight"].value() for i in range(4)] == [1.0, 0.5, 0.25, 0.1]
    assert json.loads(form["reward_1_params"].value()) == {"max_tokens": 3, "label": "short"}
    assert form["reward_2_params"].value() == ""  # its label is the one the row gives it
    assert json.loads(form["overrides"].value()) == {
        "policy": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 32,
                            "max_position_embeddings": 128}},
        "rollout": {"top_p": 0.9}, "optim": {"weight_decay": 0.01}, "filters": {"dynamic_sampling": True},
        "train": {"device": "cpu"}, "eval": {"temperature": 0.7}}
    html = response.content.decode()
    assert 'id="copy-of"' in html and "A copy of run" in html and 'id="copy-problems"' not in html


def test_an_evaluations_copy_launched_unchanged_has_its_config(client, project):
    rubric, judge = make_rubric(project, name="helpful"), make_policy(project, name="judge")
    original = run_launch(
        project=project, user=owner(project), name="eval", kind=RunKind.EVALUATION,
        config={"policy": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2}},
                "rollout": {"greedy": True, "max_new_tokens": 4, "prompts_per_step": 2, "use_chat_template": False},
                "train": {"device": "cpu", "seed": 3},
                "rewards": [{"name": "exact_answer"},
                            {"name": "rubric_judge", "rubric": rubric.id, "judge_policy": judge.id, "weight": 0.5,
                             "probes": False}]},
        dataset=make_dataset(project), policy=make_policy(project))
    copy = launch_copy_unchanged(client, original)
    assert copy.config == original.config
    assert (copy.policy, copy.dataset) == (original.policy, original.dataset)


def test_a_dpo_runs_copy_launched_unchanged_has_its_config(client, project):
    pair_set = pair_set_import(project=project, name="toy", content=pairs_jsonl())
    original = run_launch(project=project, user=owner(project), name="dpo", kind=RunKind.DPO, policy=make_policy(project),
                          config={"policy": TINY, "optim": {"lr": 1e-2, "weight_decay": 0.1},
                                  "dpo": {"beta": 0.3, "loss_type": "ipo", "device": "cpu", "keep_checkpoints": 1},
                                  "data": {"source": "pairs", "pair_set": pair_set.id}})
    copy = launch_copy_unchanged(client, original)
    assert copy.config == original.config and copy.policy == original.policy


def test_an_sft_runs_copy_launched_unchanged_has_its_config_and_dataset(client, project):
    dataset = toy_dataset(project)
    original = run_launch(project=project, user=owner(project), name="sft", kind=RunKind.SFT, policy=make_policy(project),
                          config={"policy": TINY, "sft": {"epochs": 2, "device": "cpu"},
                                  "data": {"source": "dataset", "dataset": dataset.id}})
    copy = launch_copy_unchanged(client, original)
    assert copy.config == original.config and copy.dataset == dataset


def test_a_reward_model_runs_copy_launched_unchanged_has_its_config(client, project):
    from tests.webapp.rewards.test_reward_model_runs import TINY_RM
    from tests.webapp.rewards.test_reward_model_runs import pairs_jsonl as rm_pairs

    pair_set = pair_set_import(project=project, name="seed", content=rm_pairs())
    original = run_launch(project=project, user=owner(project), name="rm", kind=RunKind.REWARD_MODEL,
                          config={**TINY_RM, "margin": 0.5, "data": {"source": "pairs", "pair_set": pair_set.id}})
    copy = launch_copy_unchanged(client, original)
    assert copy.config == original.config


def test_a_copy_on_labels_says_it_takes_the_labels_given_by_its_own_launch(client, project):
    rater = annotator(project)
    label(make_task(project, completions=["a", "b"]), rater, [[0], [1]])
    original = run_launch(project=project, user=owner(project), name="dpo", kind=RunKind.DPO, policy=make_policy(project),
                          config={"policy": TINY, "dpo": {"device": "cpu"}, "data": {"source": "labels"}})
    through = original.config["data"]["through_label"]
    response = copy_page(client, original)
    assert response.context["form"]["pair_set"].value() == "labels"
    assert (f"It trained on the labels up to label {through}; the copy trains on every label given by the time "
            "it is launched.") in response.content.decode()


def test_a_copy_is_its_own_launch_not_a_repeat_of_the_original(client, project):
    from tests.webapp.experiments.test_form_launch import page_key

    url = reverse("experiments:new", args=[project.id])
    key = page_key(client, url)
    assert client.post(url, {**tiny_run_form_data(make_policy(project), make_dataset(project)),
                             "submission_key": key}).status_code == 302
    original = Run.objects.get(project=project)
    assert original.creation_key == key
    page = copy_page(client, original)
    assert page.context["form"]["submission_key"].value() != key
    copy = launch_copy_unchanged(client, original)
    assert copy.config == original.config and copy.creation_key not in ("", key)


# --- a run of a sweep ---------------------------------------------------------------------

def sweep_runs(project, grid, *, kind=RunKind.POLICY, name="grpo", config=None, **inputs) -> list[Run]:
    """The runs of a sweep over ``grid`` launched as the pages and the API launch one."""
    from webapp.experiments.sweeps import sweep_create

    if kind == RunKind.POLICY:
        inputs = {"dataset": make_dataset(project), "policy": make_policy(project), **inputs}
        config = config or {"train": {"device": "cpu"}, "rewards": [{"name": "exact_answer"},
                                                                    {"name": "length", "max_tokens": 3}]}
    return sweep_create(project=project, user=owner(project), idempotency_key=None, name=name, kind=kind,
                        config=config, grid=grid, **inputs).runs


def launch_copy_of_sweep_run(client, run, page=None) -> Run:
    """GET the run's copy page and POST its form as shown: the one run that launches."""
    url = reverse(page or PAGES[run.kind], args=[run.project_id]) + f"?from={run.id}"
    before = set(Run.objects.values_list("pk", flat=True))
    response = client.post(url, unchanged(client.get(url).context["form"]))
    assert response.status_code == 302, response.context["form"].errors
    return Run.objects.exclude(pk__in=before).get()


@pytest.mark.parametrize("grid", [
    {"optim.lr": [1e-6, 1e-5], "algorithm.beta": [0, 0.04]},
    {"rewards[1].weight": [0.25, 2]},
    {"algorithm.estimator": ["grpo", "rloo"], "algorithm.mask_truncated_completions": [True, False]},
])
def test_a_sweep_runs_copy_is_named_without_its_point_and_joins_no_sweep(client, project, grid):
    runs = sweep_runs(project, grid)
    original = runs[-1]
    assert original.name.startswith("grpo · ")
    form = copy_page(client, original).context["form"]
    assert form["name"].value() == "grpo (copy)"
    assert not form["sweep"].value() and not form["sweep_tag"].value()
    copy = launch_copy_of_sweep_run(client, original)
    assert copy.name == "grpo (copy)"
    assert copy.config == original.config  # the point's values, in the fields
    assert not copy.tags.exists() and not copy.creation_key.startswith("sweep:")
    assert set(Run.objects.filter(tags__name=original.tags.get().name)) == set(runs)


def test_a_dpo_sweep_runs_copy_is_named_without_its_point(client, project):
    pair_set = pair_set_import(project=project, name="toy", content=pairs_jsonl())
    [_, original] = sweep_runs(project, {"dpo.beta": [0.1, 0.5]}, kind=RunKind.DPO, name="dpo",
                               config={"policy": TINY, "dpo": {"device": "cpu"},
                                       "data": {"source": "pairs", "pair_set": pair_set.id}},
                               policy=make_policy(project))
    assert original.name == "dpo · dpo.beta=0.5"
    copy = launch_copy_of_sweep_run(client, original)
    assert copy.name == "dpo (copy)" and copy.config["dpo"]["beta"] == 0.5 and not copy.tags.exists()


def test_a_sweep_runs_long_name_loses_its_point_and_fits_the_field():
    from webapp.experiments.sweeps import point_name

    name = point_name("x" * 300, (("optim.lr", 1e-5),))  # the sweep's name cut to fit the point
    assert name == "x" * 183 + " · optim.lr=1e-05"
    assert copy_name_of(name, {"optim": {"lr": 1e-5}}, 200) == "x" * 183 + " (copy)"
    assert copy_name_of(name, {"optim": {"lr": 1e-5}}, 100) == "x" * 93 + " (copy)"


@pytest.mark.parametrize(("name", "config"), [
    ("grpo · optim.lr=3e-06", {"optim": {"lr": 1e-5}}),  # renamed since, or named by hand: not its values
    ("grpo · optim.lr=1e-05", {"optim": {}}),
    ("grpo · v2", {"optim": {"lr": 1e-5}}),
    ("baseline", {"optim": {"lr": 1e-5}}),
    (" · optim.lr=1e-05", {"optim": {"lr": 1e-5}}),  # nothing before the point
    ("grpo · optim.lr=1e-05, optim.lr=1e-05", {"optim": {"lr": 1e-5}}),
])
def test_a_name_that_ends_in_no_point_of_its_config_is_copied_whole(name, config):
    assert copy_name_of(name, config, 200) == name + " (copy)"


# --- what could not be filled in ----------------------------------------------------------

def test_a_deleted_reward_model_is_named_and_its_row_left_out(client, project, tmp_path):
    original = policy_run(project, tmp_path)
    Run.objects.filter(pk=original.pk).update(status="succeeded")
    reward_model_delete(reward_model_id=RewardModel.objects.get(project=project).id)
    response = copy_page(client, original)
    form = response.context["form"]
    judge = PolicyModel.objects.get(project=project, name="judge")
    assert [form[f"reward_{i}_name"].value() for i in range(4)] == ["exact_answer", "length", f"judge:{judge.id}", ""]
    html = response.content.decode()
    rm_label = original.config["rewards"][2]["label"]
    assert (f"Reward 3 ({rm_label}): its reward model was deleted or is no longer a trained one of this project, "
            "so it was left out: choose another reward in its place.") in html


def test_a_deleted_judge_policy_is_named_and_its_row_left_out(client, project, tmp_path):
    original = policy_run(project, tmp_path)
    Run.objects.filter(pk=original.pk).update(status="succeeded")
    policy_delete(policy_id=PolicyModel.objects.get(project=project, name="judge").id)
    response = copy_page(client, original)
    assert response.context["form"]["reward_3_name"].value() == ""
    assert ("Reward 4 (tournament): the policy that judged it was deleted, so it was left out"
            in response.content.decode())


def test_a_run_whose_policy_is_gone_leaves_the_field_empty_and_says_so(client, project):
    make_policy(project)  # another one: the page would choose the only one there is
    original = run_launch(project=project, user=owner(project), name="r", kind=RunKind.POLICY,
                          config={"train": {"device": "cpu"}}, dataset=make_dataset(project),
                          policy=make_policy(project))
    Run.objects.filter(pk=original.pk).update(policy=None)  # Run.policy may be null
    response = copy_page(client, original)
    assert response.context["form"]["policy"].value() is None
    assert "The policy this run used was deleted, so that field is empty: choose one." in response.content.decode()


def test_a_deleted_pair_set_leaves_the_data_empty_and_says_so(client, project):
    pair_set = pair_set_import(project=project, name="toy", content=pairs_jsonl())
    pair_set_import(project=project, name="other", content=pairs_jsonl())
    original = run_launch(project=project, user=owner(project), name="dpo", kind=RunKind.DPO, policy=make_policy(project),
                          config={"policy": TINY, "dpo": {"device": "cpu"},
                                  "data": {"source": "pairs", "pair_set": pair_set.id}})
    Run.objects.filter(pk=original.pk).update(status="succeeded")
    pair_set_delete(pair_set_id=pair_set.id)
    response = copy_page(client, original)
    assert response.context["form"]["pair_set"].value() is None
    assert (f"The data it trained on (pair set {pair_set.id}, since deleted) cannot be chosen, so that field is "
            "empty: choose the data.") in response.content.decode()


def test_a_rubric_edited_since_is_judged_by_its_latest_criteria_and_the_page_says_so(client, project):
    from webapp.feedback.services import rubric_update

    rubric, judge = make_rubric(project, name="helpful"), make_policy(project, name="judge")
    original = run_launch(project=project, user=owner(project), name="r", kind=RunKind.POLICY,
                          config={"train": {"device": "cpu"}, "rollout": {"num_generations": 2},
                                  "rewards": [{"name": "exact_answer"},
                                              {"name": "rubric_judge", "rubric": rubric.id, "judge_policy": judge.id}]},
                          dataset=make_dataset(project), policy=make_policy(project))
    rubric_update(rubric=rubric, name="helpful", description="", criteria=[{"name": "Kind", "scale": "binary"}])
    response = copy_page(client, original)
    assert response.context["form"]["reward_1_name"].value() == f"rubric:{rubric.id}:{judge.id}"
    assert ("Reward 2 (rubric" in response.content.decode()
            and "the rubric “helpful” was edited since (version 1, now 2); the copy is judged by its latest criteria"
            in response.content.decode())


def test_the_copy_name_is_cut_to_fit_the_field():
    assert copy_name("baseline", 200) == "baseline (copy)"
    assert copy_name("x" * 200, 200) == "x" * 193 + " (copy)"


def test_config_differences_keep_what_differs_from_the_defaults_and_no_field_shows():
    defaults = {"a": {"b": 1, "c": 2, "d": {"e": 3}}, "f": [1, 2]}
    stored = {"a": {"b": 1, "c": 5, "d": {"e": 4}, "new": 1}, "f": [1, 2], "g": None}
    assert config_differences(stored, defaults, {"a.c"}) == {"a": {"d": {"e": 4}, "new": 1}, "g": None}
    assert config_differences(defaults, defaults, set()) == {}


# --- who may copy what --------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["abc", "", "-1", "²", "99999999"])
def test_a_from_that_names_no_run_is_404(client, project, raw):
    url = reverse("experiments:new", args=[project.id]) + f"?from={raw}"
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("kind", list(PAGES))
def test_another_projects_run_is_404_on_every_launch_page(client, project, kind):
    theirs = make_run(make_project(owner=make_user()), kind=kind, config={})
    assert copy_page(client, theirs, PAGES[kind]).status_code == 404


@pytest.mark.parametrize(("kind", "page"), [(RunKind.POLICY, "experiments:new_evaluation"),
                                            (RunKind.EVALUATION, "experiments:new"),
                                            (RunKind.DPO, "experiments:new_sft"),
                                            (RunKind.SFT, "rewards:train"),
                                            (RunKind.REWARD_MODEL, "experiments:new_dpo"),
                                            (RunKind.EXTERNAL, "experiments:new")])
def test_a_run_of_another_kind_is_404(client, project, kind, page):
    run = make_run(project, kind=kind, config={})
    response = client.get(reverse(page, args=[project.id]) + f"?from={run.id}")
    assert response.status_code == 404
    assert client.post(reverse(page, args=[project.id]) + f"?from={run.id}", {"name": "x"}).status_code == 404
    assert Run.objects.filter(project=project).count() == 1


def test_an_annotator_cannot_open_a_copy(project, tmp_path):
    original = policy_run(project, tmp_path)
    user = annotator(project)
    other = Client()
    other.login(username=user.username, password=PASSWORD)
    assert copy_page(other, original).status_code in (403, 404)


# --- the link ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(PAGES))
def test_the_run_page_links_to_a_copy_on_its_kinds_launch_page(client, project, kind):
    run = make_run(project, kind=kind, config={}, status="succeeded")
    html = client.get(reverse("experiments:detail", args=[project.id, run.id])).content.decode()
    href = reverse(PAGES[kind], args=[project.id]) + f"?from={run.id}"
    assert re.search(rf'<a id="launch-copy" href="{re.escape(href)}">Launch a copy</a>', html)


def test_an_external_run_has_no_copy_link(client, project):
    run = make_run(project, kind=RunKind.EXTERNAL, config={})
    html = client.get(reverse("experiments:detail", args=[project.id, run.id])).content.decode()
    assert 'id="launch-copy"' not in html


def test_the_copy_page_escapes_the_runs_name(client, project):
    original = run_launch(project=project, user=owner(project), name="<b>bold</b>", kind=RunKind.POLICY,
                          config={"train": {"device": "cpu"}}, dataset=make_dataset(project),
                          policy=make_policy(project))
    html = copy_page(client, original).content.decode()
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_rewards_past_the_forms_rows_are_named_as_left_out(client, project):
    rewards = [{"name": "exact_answer"}] + [{"name": "length", "max_tokens": 3, "label": f"len{i}"} for i in range(4)]
    original = run_launch(project=project, user=owner(project), name="r", kind=RunKind.POLICY,
                          config={"train": {"device": "cpu"}, "rewards": rewards},
                          dataset=make_dataset(project), policy=make_policy(project))
    response = copy_page(client, original)
    assert [response.context["form"][f"reward_{i}_name"].value() for i in range(4)] == ["exact_answer"] + ["length"] * 3
    assert "Reward 5 (len3): the form has 4 reward rows, so it was left out." in response.content.decode()
