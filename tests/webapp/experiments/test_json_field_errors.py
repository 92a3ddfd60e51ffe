"""An error in a launch form's JSON field (More config, Trainer settings, a reward's parameters)
names the key at fault: the field holds many settings, so 'must be in (0, 1]' alone says too little."""

import json

import pytest
from django.urls import reverse

from tests.factories import (
    make_dataset,
    make_policy,
    tiny_run_form_data,
)
from tests.webapp.experiments.test_sft_runs import form_data as sft_form_data
from tests.webapp.experiments.test_sft_runs import toy_dataset
from webapp.experiments.models import Run

pytestmark = pytest.mark.django_db


def errors(response, field) -> list[str]:
    assert response.status_code == 400
    return response.context["form"].errors[field]


@pytest.mark.parametrize("overrides, message", [
    ({"rollout": {"top_p": 5}}, "rollout.top_p: must be in (0, 1]"),
    ({"train": {"keep_checkpoints": -1}}, "train.keep_checkpoints: must be >= 0 (0 keeps all)"),
    ({"filters": {"dynamic_sampling": "x"}}, "filters.dynamic_sampling: expected true or false, got 'x'"),
    ({"bogus": 1}, "bogus: unknown key; known keys here:"),
])
def test_more_config_names_the_setting_it_refuses(client, project, overrides, message):
    data = {**tiny_run_form_data(make_policy(project), make_dataset(project)), "overrides": json.dumps(overrides)}
    [error] = errors(client.post(reverse("experiments:new", args=[project.id]), data), "overrides")
    assert error.startswith(message)
    assert not Run.objects.exists()


@pytest.mark.parametrize("params, message", [
    ({"max_tokens": -1}, "max_tokens: must be > 0"),
    ({"bogus": 1}, "bogus: unknown parameter for reward 'length'"),
])
def test_a_rewards_parameters_name_the_parameter_refused(client, project, params, message):
    data = {**tiny_run_form_data(make_policy(project), make_dataset(project)), "reward_1_params": json.dumps(params)}
    [error] = errors(client.post(reverse("experiments:new", args=[project.id]), data), "reward_1_params")
    assert error.startswith(message)


def test_an_sft_runs_more_config_names_the_setting(client, project):
    data = sft_form_data(make_policy(project), f"dataset:{toy_dataset(project).id}",
                         overrides=json.dumps({"sft": {"keep_checkpoints": -1}}))
    assert errors(client.post(reverse("experiments:new_sft", args=[project.id]), data), "overrides") == [
        "sft.keep_checkpoints: must be >= 0 (0 keeps all)"]


@pytest.mark.parametrize("settings, message", [
    ({"epochs": 0}, "epochs: must be at least 1, got 0"),
    ({"lr": "x"}, "lr: must be a finite float, got 'x'"),
])
def test_a_reward_models_trainer_settings_name_the_setting(client, project, settings, message):
    from tests.webapp.rewards.test_reward_model_runs import pairs_jsonl
    from webapp.rewards.services import pair_set_import

    pair_set = pair_set_import(project=project, name="seed", content=pairs_jsonl())
    response = client.post(reverse("rewards:train", args=[project.id]), {
        "name": "rm", "data": f"pairs:{pair_set.id}", "settings": json.dumps(settings)})
    assert errors(response, "settings") == [message]
    assert not Run.objects.exists()


def test_an_error_on_a_field_of_its_own_is_not_prefixed(client, project):
    data = {**tiny_run_form_data(make_policy(project), make_dataset(project)), "rollout__temperature": "-1"}
    assert errors(client.post(reverse("experiments:new", args=[project.id]), data), "rollout__temperature") == [
        "must be > 0 (use a small value, e.g. 0.1, for near-greedy sampling)"]
