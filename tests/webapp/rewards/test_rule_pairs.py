"""Preference pairs from a run's own rewards: levels by a rule, pairs across levels."""

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_dataset, make_project, make_run, make_user
from webapp.experiments.models import RunStatus, Trajectory
from webapp.rewards.errors import RewardModelError
from webapp.rewards.models import PreferencePairSet
from webapp.rewards.rule_pairs import Completion, rule_pairs
from webapp.rewards.services import pair_set_from_run


def completion(sample, text, reward, group=(1, 0), **rewards):
    return Completion(group=group, sample=sample, prompt="2+2?", text=text, reward=reward, rewards=rewards)


def test_pairs_go_across_levels_widest_gap_first_and_never_between_ties():
    group = [completion(0, "4", 1.0), completion(1, "5", 0.0), completion(2, "four", 0.5), completion(3, "IV", 1.0)]
    pairs = rule_pairs(group, max_pairs_per_group=10)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        ("4", "5"), ("IV", "5"),                 # gap 1
        ("4", "four"), ("four", "5"), ("IV", "four"),  # gap 0.5, by sample order
    ]
    assert all(p["prompt"] == "2+2?" for p in pairs)
    assert len(rule_pairs(group, max_pairs_per_group=2)) == 2
    assert [(p["chosen"], p["rejected"]) for p in rule_pairs(group, min_gap=0.5)] == [("4", "5"), ("IV", "5")]


def test_a_component_rule_levels_by_that_component_and_groups_stay_apart():
    done = [completion(0, "x", 0.2, exact_answer=1.0), completion(1, "y", 0.9, exact_answer=0.0),
            completion(0, "z", 0.1, group=(2, 0), exact_answer=0.0), completion(1, "w", 0.1, group=(2, 1))]
    pairs = rule_pairs(done, rule="exact_answer")
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("x", "y")]  # the total would say y > x
    assert [(p["chosen"], p["rejected"]) for p in rule_pairs(done)] == [("y", "x")]


def test_identical_texts_and_empty_completions_make_no_pairs():
    group = [completion(0, "4", 1.0), completion(1, "4", 0.0), completion(2, "  ", 0.0)]
    assert rule_pairs(group) == []


# ---------------------------------------------------------------- the service and the page


def recorded_run(project, name="grpo"):
    run = make_run(project, status=RunStatus.SUCCEEDED, name=name, dataset=make_dataset(project))
    prompt = run.dataset.prompts.order_by("index").first()
    for step in (1, 2):
        for sample, (text, correct) in enumerate([("4", 1.0), ("5", 0.0), ("four", 1.0), ("22", 0.0)]):
            Trajectory.objects.create(run=run, step=step, group_index=0, sample_index=sample, prompt=prompt,
                                      prompt_text="<chat>2+2?</chat>", completion=f"{text} (step {step})",
                                      reward=correct + sample / 10, rewards={"exact_answer": correct}, length=2)
    return run


@pytest.mark.django_db
def test_a_pair_set_is_built_from_a_runs_steps_with_the_datasets_prompt():
    project = make_project()
    run = recorded_run(project)
    pair_set = pair_set_from_run(project=project, run=run, name="rule pairs", step_min=2, step_max=2,
                                 rule="exact_answer", max_pairs_per_group=10)
    assert pair_set.pair_count == 4 and len(pair_set.pairs) == 4
    assert {p["chosen"] for p in pair_set.pairs} == {"4 (step 2)", "four (step 2)"}
    assert all(p["prompt"] == run.dataset.prompts.order_by("index").first().engine_prompt() for p in pair_set.pairs)


@pytest.mark.django_db
def test_a_pair_set_from_a_run_carries_no_margin_whatever_the_reward_gap():
    """A gap of a million in reward is no margin (bounded by MAX_PAIR_MARGIN, a gap in reward-model
    logits): the pairs have none, the set says so, and a reward-model run reads None (its own margin)."""
    from webapp.rewards.selectors import preference_records

    project = make_project()
    run = make_run(project, status=RunStatus.SUCCEEDED, dataset=make_dataset(project))
    prompt = run.dataset.prompts.order_by("index").first()
    for sample, (text, reward) in enumerate([("4", 1e6), ("5", -1e6)]):
        Trajectory.objects.create(run=run, step=1, group_index=0, sample_index=sample, prompt=prompt,
                                  prompt_text="2+2?", completion=text, reward=reward, rewards={}, length=1)
    pair_set = pair_set_from_run(project=project, run=run, name="wide", step_min=1, step_max=1)
    assert [(p["chosen"], p["rejected"]) for p in pair_set.pairs] == [("4", "5")]
    assert "margin" not in pair_set.pairs[0] and not pair_set.has_margin
    records = preference_records(project=project, data={"source": "pairs", "pair_set": pair_set.id})
    assert [r.margin for r in records] == [None]


@pytest.mark.django_db
@pytest.mark.parametrize("change, field, words", [
    ({"rule": "helpfulness"}, "rule", "choose one of reward, exact_answer"),
    ({"step_min": 5, "step_max": 9}, "step_min", "no completions in steps 5–9"),
    ({"step_min": 2, "step_max": 1}, "step_max", "step range"),
    ({"min_gap": 5.0}, "rule", "by more than 5"),
    ({"max_pairs_per_group": 0}, "max_pairs_per_group", "between 1 and 28"),
    ({"name": "taken"}, "name", "already exists"),
])
def test_bad_input_is_named_and_stores_nothing(change, field, words):
    project = make_project()
    run = recorded_run(project)
    PreferencePairSet.objects.create(project=project, name="taken", pairs=[], pair_count=0)
    arguments = {"project": project, "run": run, "name": "new", "step_min": 1, "step_max": 2, **change}
    with pytest.raises(RewardModelError) as info:
        pair_set_from_run(**arguments)
    assert info.value.field == field and words in info.value.message
    assert PreferencePairSet.objects.count() == 1


@pytest.mark.django_db
def test_another_projects_run_is_refused():
    with pytest.raises(RewardModelError) as info:
        pair_set_from_run(project=make_project(), run=recorded_run(make_project()), name="x", step_min=1, step_max=2)
    assert info.value.field == "run"


@pytest.mark.django_db
def test_the_page_builds_the_pairs_and_offers_only_this_projects_runs(client):
    user = make_user()
    project = make_project(owner=user)
    run, theirs = recorded_run(project), recorded_run(make_project(), name="not ours")
    client.login(username=user.username, password=PASSWORD)
    url = reverse("rewards:pairs_from_run", args=[project.id])
    assert url in client.get(reverse("rewards:list", args=[project.id])).content.decode()
    page = client.get(url).content.decode()
    assert "grpo" in page and "not ours" not in page
    refused = client.post(url, {"name": "p", "run": theirs.id, "step_min": 1, "step_max": 2, "rule": "reward",
                                "min_gap": 0, "max_pairs_per_group": 4})
    assert refused.status_code == 400 and not PreferencePairSet.objects.exists()
    bad_rule = client.post(url, {"name": "p", "run": run.id, "step_min": 1, "step_max": 2, "rule": "nope",
                                 "min_gap": 0, "max_pairs_per_group": 4})
    assert bad_rule.status_code == 400 and "choose one of reward, exact_answer" in bad_rule.content.decode()
    response = client.post(url, {"name": "p", "run": run.id, "step_min": 1, "step_max": 2, "rule": "reward",
                                 "min_gap": 0, "max_pairs_per_group": 4})
    assert response.status_code == 302 and response.url == reverse("rewards:train", args=[project.id])
    assert PreferencePairSet.objects.get(project=project, name="p").pair_count == 8
    assert "Built 8 pairs “p” from run “grpo”." in client.get(response.url).content.decode()
