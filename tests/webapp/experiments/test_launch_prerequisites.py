"""A launch page of a project without what the run needs (a policy, a prompt dataset, preference
data) says what to do first, with a link to do it; once it is there the notice is gone."""

import pytest
from django.urls import reverse

from tests.factories import make_dataset, make_policy
from webapp.rewards.services import pair_set_import

pytestmark = pytest.mark.django_db


def page(client, name, project) -> str:
    response = client.get(reverse(name, args=[project.id]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("name, verb", [("experiments:new", "train it"), ("experiments:new_evaluation", "evaluate it"),
                                        ("experiments:new_dpo", "train it"), ("experiments:new_sft", "train it")])
def test_a_project_without_a_policy_is_told_to_register_one(client, project, name, verb):
    html = page(client, name, project)
    register = reverse("policies:new", args=[project.id])
    assert (f'This project has no policy yet: <a href="{register}">register one</a> (a built-in model, a tiny '
            f"model, or a checkpoint of a finished run) before a run can {verb}.") in html
    make_policy(project)
    assert 'id="no-policy"' not in page(client, name, project)


@pytest.mark.parametrize("name, verb", [("experiments:new", "train on it"),
                                        ("experiments:new_evaluation", "evaluate on it")])
def test_a_project_without_a_prompt_dataset_is_told_to_import_one(client, project, name, verb):
    make_policy(project)
    html = page(client, name, project)
    assert 'id="no-policy"' not in html
    assert (f'This project has no prompt dataset yet: <a href="{reverse("datasets:import", args=[project.id])}">'
            f"import one</a> before a run can {verb}.") in html
    make_dataset(project)
    assert 'id="no-dataset"' not in page(client, name, project)


def test_a_project_without_preference_data_is_told_how_to_get_some_before_training_a_reward_model(client, project):
    from tests.webapp.rewards.test_reward_model_runs import pairs_jsonl

    html = page(client, "rewards:train", project)
    assert "This project has no preference data yet: label some tasks" in html
    assert f'<a href="{reverse("rewards:import_pairs", args=[project.id])}">import a set of pairs</a>' in html
    pair_set_import(project=project, name="seed", content=pairs_jsonl())
    assert 'id="no-preference-data"' not in page(client, "rewards:train", project)
