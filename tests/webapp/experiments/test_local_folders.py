"""A run's config names worker folders only through this project's own records."""

import json

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_dataset, make_policy, make_project, make_run, make_user, tiny_run_form_data
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.errors import RunError
from webapp.experiments.models import PolicyModel, Run, RunKind
from webapp.experiments.services import run_launch
from webapp.rewards.models import RewardModel

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]  # no task reaches a broker

TINY_RM = {"backbone": "tiny", "batch_size": 4, "max_length": 32, "device": "cpu"}


def trained_reward_model(project, tmp_path, name="rm"):
    folder = tmp_path / f"{project.slug}-{name}"
    folder.mkdir()
    run = make_run(project, kind=RunKind.REWARD_MODEL)
    return RewardModel.objects.create(project=project, name=name, training_run=run, backbone="tiny",
                                      path=str(folder))


def policy_body(project, rewards):
    return {"name": "x", "kind": "policy", "dataset": make_dataset(project).id,
            "policy": make_policy(project).id,
            "config": {"train": {"total_steps": 1, "device": "cpu"}, "rewards": rewards}}


def test_an_api_run_names_its_projects_reward_model_by_id_and_gets_its_folder(tmp_path):
    user = api_user()
    mine = make_project(owner=user)
    rm = trained_reward_model(mine, tmp_path)
    r = token_client(user).post(f"/api/v1/projects/{mine.id}/runs/",
                                policy_body(mine, [{"name": "reward_model", "reward_model": rm.id}]),
                                format="json")
    assert r.status_code == 201, r.json()
    assert Run.objects.get(pk=r.json()["id"]).config["rewards"][0] == {
        "name": "reward_model", "weight": 1.0, "label": f"rm{rm.id}", "path": rm.path}


@pytest.mark.parametrize("how", ["by-path", "by-id"])
def test_an_api_run_cannot_use_another_projects_reward_model(tmp_path, how):
    user = api_user()
    mine = make_project(owner=user)
    theirs = trained_reward_model(make_project(owner=make_user()), tmp_path)
    reward = ({"name": "reward_model", "path": theirs.path} if how == "by-path"
              else {"name": "reward_model", "reward_model": theirs.id})
    r = token_client(user).post(f"/api/v1/projects/{mine.id}/runs/", policy_body(mine, [reward]),
                                format="json")
    assert r.status_code == 400
    fields = list(r.json()["error"]["fields"])
    assert fields == ["config.rewards[0].path" if how == "by-path" else "config.rewards[0].reward_model"]
    assert not Run.objects.filter(project=mine).exists()


@pytest.mark.parametrize("reward, field, words", [
    ({"name": "reward_model", "path": "/etc"}, "config.rewards[0].path", "not the folder of a trained reward model"),
    ({"name": "reward_model", "reward_model": "3"}, "config.rewards[0].reward_model", "an integer"),
    ({"name": "reward_model", "reward_model": 10**9}, "config.rewards[0].reward_model", "no trained reward model"),
])
def test_a_reward_model_reward_outside_the_project_is_refused_by_name(reward, field, words):
    user = make_user()
    project = make_project(owner=user)
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=user, name="r", kind=RunKind.POLICY,
                   config={"rewards": [reward]}, dataset=make_dataset(project),
                   policy=make_policy(project))
    assert info.value.field == field and words in info.value.message
    assert not Run.objects.exists()


def test_an_untrained_reward_model_of_the_project_is_refused(tmp_path):
    user = make_user()
    project = make_project(owner=user)
    rm = RewardModel.objects.create(project=project, name="pending", backbone="tiny")  # no folder yet
    with pytest.raises(RunError, match="no trained reward model"):
        run_launch(project=project, user=user, name="r", kind=RunKind.POLICY,
                   config={"rewards": [{"name": "reward_model", "reward_model": rm.id}]},
                   dataset=make_dataset(project), policy=make_policy(project))


def test_the_new_run_form_cannot_smuggle_another_projects_reward_model(client, tmp_path):
    user = make_user()
    mine = make_project(researcher=user)
    theirs = trained_reward_model(make_project(owner=make_user()), tmp_path)
    data = tiny_run_form_data(make_policy(mine), make_dataset(mine))
    overrides = {**json.loads(data["overrides"]), "rewards": [{"name": "reward_model", "path": theirs.path}]}
    data["overrides"] = json.dumps(overrides)
    assert client.login(username=user.username, password=PASSWORD)
    response = client.post(reverse("experiments:new", args=[mine.id]), data)
    assert response.status_code == 400
    assert "not the folder of a trained reward model" in response.content.decode()
    assert not Run.objects.filter(project=mine).exists()


@pytest.mark.parametrize("path", [5, True, ["/tmp"], {"a": 1}])
def test_a_backbone_path_that_is_no_string_is_refused_on_its_field(path):
    user = make_user()
    project = make_project(owner=user)
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=user, name="rm", kind=RunKind.REWARD_MODEL,
                   config={**TINY_RM, "backbone": "causal_lm", "path": path})
    assert info.value.field == "config.path" and "must be a string" in info.value.message
    assert not Run.objects.exists()


def test_a_reward_model_run_s_backbone_folder_must_be_a_registered_model_of_the_project(tmp_path):
    user = make_user()
    mine = make_project(owner=user)
    other = make_project(owner=make_user())
    folder = tmp_path / "their-llm"
    folder.mkdir()
    PolicyModel.objects.create(project=other, name="llm", source=PolicyModel.Source.PATH, reference=str(folder))
    config = {**TINY_RM, "backbone": "causal_lm", "path": str(folder)}
    with pytest.raises(RunError) as info:
        run_launch(project=mine, user=user, name="rm", kind=RunKind.REWARD_MODEL, config=config)
    assert info.value.field == "config.path"
    assert not Run.objects.exists()

    PolicyModel.objects.create(project=mine, name="llm", source=PolicyModel.Source.PATH, reference=str(folder))
    with pytest.raises(RunError) as info:  # now the folder is ours, and the data is what is missing
        run_launch(project=mine, user=user, name="rm", kind=RunKind.REWARD_MODEL, config=config)
    assert info.value.field == "config.data"


@pytest.mark.parametrize("reward", [{"name": "reward_model"}, {"name": "reward_model", "path": 3}])
def test_a_reward_model_reward_without_a_usable_path_gets_the_engines_message(reward):
    project = make_project()
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=None, name="x", kind=RunKind.POLICY, dataset=make_dataset(project),
                   policy=make_policy(project), config={"rewards": [{"name": "exact_answer"}, reward]})
    assert info.value.field.startswith("config.rewards[1]") and "deleted" not in info.value.message


# ------------------------------------------------------------------ a tournament's judge

def test_an_api_run_names_its_tournament_judge_by_policy_id_and_gets_its_spec(tmp_path):
    user = api_user()
    mine = make_project(owner=user)
    folder = tmp_path / "judge"
    folder.mkdir()
    judge = PolicyModel.objects.create(project=mine, name="judge", source=PolicyModel.Source.PATH,
                                       reference=str(folder))
    r = token_client(user).post(f"/api/v1/projects/{mine.id}/runs/",
                                policy_body(mine, [{"name": "tournament", "judge_policy": judge.id}]),
                                format="json")
    assert r.status_code == 201, r.json()
    assert Run.objects.get(pk=r.json()["id"]).config["rewards"][0] == {
        "name": "tournament", "weight": 1.0, "judge": {"source": "path", "path": str(folder)}}


@pytest.mark.parametrize("reward, field, words", [
    ({"name": "tournament", "judge_policy": "2"}, "config.rewards[0].judge_policy", "an integer"),
    ({"name": "tournament", "judge_policy": 10**9}, "config.rewards[0].judge_policy", "no policy"),
    ({"name": "tournament", "judge_policy": 1, "judge": {"source": "tiny"}}, "config.rewards[0]", "not both"),
    ({"name": "tournament", "judge": {"source": "path", "path": "/etc"}}, "config.rewards[0].judge.path",
     "not the folder of a policy registered in this project"),
])
def test_a_tournament_judge_outside_the_project_is_refused_by_name(reward, field, words):
    user = make_user()
    project = make_project(owner=user)
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=user, name="r", kind=RunKind.POLICY,
                   config={"rewards": [reward]}, dataset=make_dataset(project),
                   policy=make_policy(project))
    assert info.value.field == field and words in info.value.message
    assert not Run.objects.exists()


def test_another_projects_policy_cannot_judge():
    user = make_user()
    mine = make_project(owner=user)
    theirs = make_policy(make_project(owner=make_user()))
    with pytest.raises(RunError) as info:
        run_launch(project=mine, user=user, name="r", kind=RunKind.POLICY,
                   config={"rewards": [{"name": "tournament", "judge_policy": theirs.id}]},
                   dataset=make_dataset(mine), policy=make_policy(mine))
    assert info.value.field == "config.rewards[0].judge_policy"
    assert not Run.objects.exists()


def test_the_new_run_form_offers_the_projects_policies_as_tournament_judges(client):
    user = make_user()
    mine = make_project(researcher=user)
    judge = make_policy(mine, name="judge-model")
    theirs = make_policy(make_project(owner=make_user()), name="their-model")
    assert client.login(username=user.username, password=PASSWORD)
    page = client.get(reverse("experiments:new", args=[mine.id])).content.decode()
    assert f'value="judge:{judge.id}"' in page and "Tournament judged by judge-model" in page
    assert f'value="judge:{theirs.id}"' not in page

    data = tiny_run_form_data(make_policy(mine), make_dataset(mine))
    data.update(reward_1_name=f"judge:{theirs.id}", reward_1_params="")
    response = client.post(reverse("experiments:new", args=[mine.id]), data)
    assert response.status_code == 400 and not Run.objects.filter(project=mine).exists()

    data.update(reward_1_name=f"judge:{judge.id}", reward_1_weight=0.5, reward_1_params='{"anchor": "none"}')
    response = client.post(reverse("experiments:new", args=[mine.id]), data)
    assert response.status_code == 302
    assert Run.objects.get(project=mine).config["rewards"][1] == {
        "name": "tournament", "weight": 0.5, "anchor": "none", "judge": {"source": "tiny"}}


def judged_by(tmp_path, project):
    folder = tmp_path / f"judge-{project.id}"
    folder.mkdir()
    return PolicyModel.objects.create(project=project, name="judge", source=PolicyModel.Source.PATH,
                                      reference=str(folder))


def test_a_judge_named_by_id_goes_through_the_held_out_checks_too(tmp_path):
    user = make_user()
    project = make_project(owner=user)
    judge = judged_by(tmp_path, project)
    with pytest.raises(RunError) as info:  # every_steps without held-out prompts
        run_launch(project=project, user=user, name="r", kind=RunKind.POLICY,
                   config={"eval": {"every_steps": 1},
                           "rewards": [{"name": "tournament", "judge_policy": judge.id}]},
                   dataset=make_dataset(project), policy=make_policy(project))
    assert info.value.field == "eval_dataset"
    assert not Run.objects.exists()


def test_an_evaluation_cannot_be_scored_by_a_tournament():
    user = make_user()
    project = make_project(owner=user)
    with pytest.raises(RunError) as info:
        run_launch(project=project, user=user, name="e", kind=RunKind.EVALUATION,
                   config={"rewards": [{"name": "tournament", "judge": {"source": "tiny"}}]},
                   dataset=make_dataset(project), policy=make_policy(project))
    assert info.value.field == "config.rewards[0].name" and "0.5 whatever the policy" in info.value.message
    assert not Run.objects.exists()


def test_the_new_evaluation_form_offers_no_tournament(client):
    user = make_user()
    project = make_project(researcher=user)
    judge = make_policy(project, name="judge-model")
    assert client.login(username=user.username, password=PASSWORD)
    page = client.get(reverse("experiments:new_evaluation", args=[project.id])).content.decode()
    assert f'value="judge:{judge.id}"' not in page and "Tournament judged by" not in page


def test_a_judges_policy_is_kept_while_an_active_run_judges_with_it(tmp_path):
    from webapp.experiments.errors import PolicyInUse
    from webapp.experiments.policies import policy_delete
    from webapp.experiments.services import run_cancel

    user = make_user()
    project = make_project(owner=user)
    judge = judged_by(tmp_path, project)
    run = run_launch(project=project, user=user, name="judged", kind=RunKind.POLICY,
                     config={"rewards": [{"name": "tournament", "judge_policy": judge.id}]},
                     dataset=make_dataset(project), policy=make_policy(project))
    with pytest.raises(PolicyInUse, match="1 active run judges with it: “judged” \\(queued\\)"):
        policy_delete(policy_id=judge.id)
    run_cancel(run_id=run.id)
    policy_delete(policy_id=judge.id)  # a finished run keeps its config; the judge can go
    assert not PolicyModel.objects.filter(pk=judge.id).exists()


# ------------------------------------------------------------------ a rubric judged by a policy

def rubric_of(project, name="helpful"):
    from tests.factories import make_rubric

    return make_rubric(project, name=name, criteria=[
        {"name": "Correct", "description": "The final answer is right.", "weight": 2.0, "scale": "binary"},
        {"name": "Clear", "scale": "likert5"}])


def test_an_api_run_names_a_rubric_and_its_judge_by_id_and_gets_their_criteria_and_model(tmp_path):
    user = api_user()
    mine = make_project(owner=user)
    rubric, judge = rubric_of(mine), judged_by(tmp_path, mine)
    r = token_client(user).post(f"/api/v1/projects/{mine.id}/runs/", policy_body(
        mine, [{"name": "rubric_judge", "rubric": rubric.id, "judge_policy": judge.id}]), format="json")
    assert r.status_code == 201, r.json()
    reward = Run.objects.get(pk=r.json()["id"]).config["rewards"][0]
    assert reward["criteria"] == [{"name": "Correct", "description": "The final answer is right.", "weight": 2.0},
                                  {"name": "Clear", "description": "", "weight": 1.0}]
    assert reward["rubric_version"] == rubric.latest_version().pk
    assert reward["judge"] == {"source": "path", "path": judge.reference}


def test_another_projects_rubric_cannot_be_judged():
    user = make_user()
    mine = make_project(owner=user)
    theirs = rubric_of(make_project(owner=make_user()))
    with pytest.raises(RunError) as info:
        run_launch(project=mine, user=user, name="r", kind=RunKind.POLICY,
                   config={"rewards": [{"name": "rubric_judge", "rubric": theirs.id, "judge": {"source": "tiny"}}]},
                   dataset=make_dataset(mine), policy=make_policy(mine))
    assert info.value.field == "config.rewards[0].rubric" and "no rubric" in info.value.message
    assert not Run.objects.exists()


def test_the_new_run_and_evaluation_forms_offer_each_rubric_judged_by_each_policy(client):
    user = make_user()
    project = make_project(researcher=user)
    rubric, judge = rubric_of(project), make_policy(project, name="judge-model")
    assert client.login(username=user.username, password=PASSWORD)
    choice = f"rubric:{rubric.id}:{judge.id}"
    for page in ("experiments:new", "experiments:new_evaluation"):
        body = client.get(reverse(page, args=[project.id])).content.decode()
        assert f'value="{choice}"' in body and "Rubric “helpful” judged by judge-model" in body

    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    data.update(reward_1_name=choice, reward_1_weight=0.5, reward_1_params='{"probes": false}')
    response = client.post(reverse("experiments:new", args=[project.id]), data)
    assert response.status_code == 302
    reward = Run.objects.get(project=project).config["rewards"][1]
    assert (reward["name"], reward["label"], reward["judge"], reward["probes"]) == (
        "rubric_judge", f"rubric{rubric.id}", {"source": "tiny"}, False)
    assert [c["name"] for c in reward["criteria"]] == ["Correct", "Clear"]
