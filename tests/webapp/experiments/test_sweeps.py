"""A grid sweep: one run per combination of one or two settings' values, all checked before any
is launched, created together, named for their values, tagged, and listed together; the page's
submission key covers the whole sweep."""

import json
import re

import pytest
from django.urls import reverse

from tests.factories import (
    PASSWORD,
    make_dataset,
    make_policy,
    make_project,
    make_user,
    tiny_run_form_data,
)
from tests.webapp.experiments.test_form_launch import page_key
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunKind, RunTag
from webapp.experiments.services import IDEMPOTENCY_KEY, run_delete
from webapp.experiments.sweeps import (
    SweepAxis,
    default_tag,
    point_config,
    point_name,
    sweep_keys,
    sweep_parse,
    sweep_points,
)
from workers.engine.config import default_config_dict

pytestmark = pytest.mark.django_db

DEFAULTS = default_config_dict()
BASE = {"rewards": [{"name": "exact_answer", "weight": 1.0}, {"name": "length", "weight": 0.5}]}
LR_BETA = {"optim.lr": [1e-6, 1e-5], "algorithm.beta": [0, 0.04]}


def parse(grid, config=BASE):
    return sweep_parse(grid, defaults=DEFAULTS, config=config)


# ---------------------------------------------------------------- reading and expanding the grid

def test_the_grid_expands_to_every_combination_the_first_setting_varying_slowest():
    axes = parse({"optim.lr": [1e-6, 3e-6, 1e-5], "algorithm.beta": [0, 0.04]})
    assert sweep_points(axes) == [
        (("optim.lr", 1e-6), ("algorithm.beta", 0.0)), (("optim.lr", 1e-6), ("algorithm.beta", 0.04)),
        (("optim.lr", 3e-6), ("algorithm.beta", 0.0)), (("optim.lr", 3e-6), ("algorithm.beta", 0.04)),
        (("optim.lr", 1e-5), ("algorithm.beta", 0.0)), (("optim.lr", 1e-5), ("algorithm.beta", 0.04)),
    ]
    assert len(sweep_points(parse({"rollout.num_generations": [2, 4, 8, 16]}))) == 4


def test_no_grid_is_no_sweep():
    assert parse({}) == [] and parse(None) == []


def test_values_take_the_type_of_the_engines_default():
    axes = parse({"algorithm.beta": [0, "0.04"], "rollout.num_generations": [4, 8.0]})
    assert axes == [SweepAxis("algorithm.beta", (0.0, 0.04)), SweepAxis("rollout.num_generations", (4, 8))]
    assert all(type(v) is float for v in axes[0].values) and all(type(v) is int for v in axes[1].values)
    [greedy] = parse({"rollout.use_chat_template": [True, "false"]})
    assert greedy.values == (True, False)
    [estimator] = parse({"algorithm.estimator": ["grpo", "dr_grpo"]})
    assert estimator.values == ("grpo", "dr_grpo")
    [lr] = parse({"optim.lr": "1e-6, 3e-6, 1e-5"})  # a text of values separated by commas
    assert lr.values == (1e-6, 3e-6, 1e-5)
    [weight] = parse({"rewards[1].weight": [0.25, 1]})
    assert weight.values == (0.25, 1.0)


@pytest.mark.parametrize(("grid", "message"), [
    ({"optim.lrr": [1e-6, 1e-5]}, "unknown setting 'optim.lrr'"),
    ({"nonsense": [1, 2]}, "unknown setting 'nonsense'"),
    ({"optim": [1, 2]}, "'optim' is a section, not a setting"),
    ({"policy.name": ["a", "b"]}, "'policy.name' is set by the chosen policy"),
    ({"algorithm.clip_eps_low_incorrect": [0.1, 0.2]}, "has no single-valued default"),
    ({"optim.betas": [0.9, 0.99]}, "has no single-valued default"),
    ({"optim.lr": ["fast", 1e-5]}, "optim.lr = fast: expected a finite number"),
    ({"optim.lr": [1e-6, "nan"]}, "optim.lr = nan: expected a finite number"),
    ({"optim.lr": [True, 1e-5]}, "optim.lr = true: expected a finite number"),
    ({"rollout.num_generations": [4, 2.5]}, "rollout.num_generations = 2.5: expected a whole number"),
    ({"rollout.greedy": [True, 1]}, "rollout.greedy = 1: expected true or false"),
    ({"optim.lr": [1e-6]}, "optim.lr: 1 value; a swept setting takes 2 to 8"),
    ({"optim.lr": [i * 1e-6 for i in range(1, 10)]}, "optim.lr: 9 values; a swept setting takes 2 to 8"),
    ({"optim.lr": [1e-6, 1e-6]}, "optim.lr: the value 1e-06 is listed twice"),
    ({"optim.lr": 1e-6}, "optim.lr: give a list of values"),
    ({"optim.lr": [1, 2], "algorithm.beta": [0, 1], "train.seed": [0, 1]}, "at most 2 settings; this one names 3"),
    ({"optim.lr": [i * 1e-6 for i in range(1, 9)], "algorithm.beta": [0, 0.01, 0.1]},
     "the grid makes 24 runs (8 × 3); a sweep launches at most 16"),
    ({"rewards[2].weight": [0.5, 1]}, "'rewards[2].weight': the run has 2 rewards"),
    ({"rewards[0].name": ["a", "b"]}, "only its weight can be swept"),
    (["optim.lr", 1e-6], "must be a JSON object"),
])
def test_a_bad_grid_is_refused_naming_what_is_wrong(grid, message):
    with pytest.raises(RunError, match=re.escape(message)) as refused:
        parse(grid)
    assert refused.value.field == "sweep"


def test_a_point_is_named_for_its_values_within_the_names_length():
    point = (("optim.lr", 1e-5), ("algorithm.beta", 0.0))
    assert point_name("grpo", point) == "grpo · optim.lr=1e-05, algorithm.beta=0"
    assert point_name("g", (("rollout.greedy", False), ("rollout.num_generations", 8)), 200) == (
        "g · rollout.greedy=false, rollout.num_generations=8")
    long = point_name("x" * 300, point)
    assert len(long) == 200 and long.endswith(" · optim.lr=1e-05, algorithm.beta=0")


def test_a_point_is_set_over_the_config_which_is_left_as_it_was():
    base = {**BASE, "optim": {"weight_decay": 0.1}}
    config = point_config(base, (("optim.lr", 1e-5), ("rewards[1].weight", 2.0), ("filters.difficulty.p_low", 0.2)))
    assert config["optim"] == {"weight_decay": 0.1, "lr": 1e-5}
    assert config["rewards"][1] == {"name": "length", "weight": 2.0}
    assert config["filters"] == {"difficulty": {"p_low": 0.2}}
    assert base["rewards"][1]["weight"] == 0.5 and "lr" not in base["optim"]


def test_the_points_keys_fit_a_creation_key_and_come_from_the_pages_key():
    key = "k" * 64
    keys = sweep_keys(key, 16)
    assert len(set(keys)) == 16 and all(IDEMPOTENCY_KEY.match(k) for k in keys) and key not in keys
    assert keys == sweep_keys(key, 16) and keys[0] != sweep_keys("other-key-123", 1)[0]
    assert default_tag(key) == default_tag(key) != default_tag("other-key-123")
    assert len(default_tag(None)) <= 40


# ---------------------------------------------------------------- the New-run page

def sweep_data(project, grid=LR_BETA, **changes):
    data = {**tiny_run_form_data(make_policy(project), make_dataset(project)), "sweep": json.dumps(grid)}
    data.update(changes)
    return data


def new_url(project):
    return reverse("experiments:new", args=[project.id])


def test_a_sweep_launches_one_tagged_run_per_point_and_shows_them_listed(
        client, project, sent, django_capture_on_commit_callbacks):
    url = new_url(project)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, sweep_data(project, submission_key=page_key(client, url)))
    assert response.status_code == 302, response.context["form"].errors
    runs = list(Run.objects.filter(project=project).order_by("id"))
    assert [r.name for r in runs] == [
        "tiny run · optim.lr=1e-06, algorithm.beta=0", "tiny run · optim.lr=1e-06, algorithm.beta=0.04",
        "tiny run · optim.lr=1e-05, algorithm.beta=0", "tiny run · optim.lr=1e-05, algorithm.beta=0.04"]
    assert [(r.config["optim"]["lr"], r.config["algorithm"]["beta"]) for r in runs] == [
        (1e-6, 0.0), (1e-6, 0.04), (1e-5, 0.0), (1e-5, 0.04)]
    assert all(r.kind == RunKind.POLICY and r.config["train"]["total_steps"] == 3 for r in runs)
    [tag] = {t.name for r in runs for t in r.tags.all()}
    assert tag.startswith("sweep-") and all(r.tags.count() == 1 for r in runs)
    assert response.url == f"{reverse('experiments:list', args=[project.id])}?tag={tag}"
    assert sorted(args[0] for _, args in sent) == [r.id for r in runs]
    listed = client.get(response.url).content.decode()
    assert f"The sweep launched 4 runs, tagged “{tag}”" in listed
    assert all(f">{r.name}</a>" in listed for r in runs)


def test_a_given_sweep_tag_is_used_and_escaped_where_shown(client, project, sent):
    response = client.post(new_url(project), sweep_data(project, sweep_tag="<b>lr</b>"))
    assert response.status_code == 302
    assert set(RunTag.objects.values_list("name", flat=True)) == {"<b>lr</b>"}
    assert response.url.endswith("?tag=%3Cb%3Elr%3C%2Fb%3E")
    listed = client.get(response.url).content.decode()
    assert "&lt;b&gt;lr&lt;/b&gt;" in listed and "<b>lr</b>" not in listed


def test_a_weight_of_a_chosen_reward_can_be_swept(client, project, sent):
    response = client.post(new_url(project), sweep_data(project, {"rewards[1].weight": [0.1, 0.9]}))
    assert response.status_code == 302
    weights = [r.config["rewards"][1]["weight"] for r in Run.objects.order_by("id")]
    assert weights == [0.1, 0.9]


@pytest.mark.parametrize(("grid", "message"), [
    ({"optim.lr": [1e-6, -1]}, "optim.lr = -1: "),
    ({"rollout.num_generations": [4, 1]}, "rollout.num_generations = 1: "),
    ({"optim.lrr": [1e-6, 1e-5]}, "unknown setting &#x27;optim.lrr&#x27;"),
])
def test_a_sweep_with_one_bad_point_launches_nothing_and_names_it(client, project, sent, grid, message):
    response = client.post(new_url(project), sweep_data(project, grid))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert response.context["form"].errors["sweep"]
    assert not Run.objects.exists() and not RunTag.objects.exists() and sent == []


def test_the_engines_message_is_given_for_the_bad_value(client, project, sent):
    from workers.engine.config import TrainConfig
    from workers.engine.errors import ConfigError

    with pytest.raises(ConfigError) as engine:
        TrainConfig.from_dict({"optim": {"lr": -1.0}})
    response = client.post(new_url(project), sweep_data(project, {"optim.lr": [1e-6, -1], "algorithm.beta": [0, 1]}))
    [error] = response.context["form"].errors["sweep"]
    assert error == f"nothing was launched: optim.lr = -1: {engine.value.message}"


def test_the_sweep_is_created_all_or_nothing(client, project, sent, monkeypatch):
    from webapp.experiments import services

    launched = []
    real = services.run_launch

    def third_fails(**kwargs):
        if len(launched) == 2:
            raise RunError("the dataset was deleted while this run was being created", field="dataset")
        launched.append(real(**kwargs))
        return launched[-1]

    monkeypatch.setattr(services, "run_launch", third_fails)
    response = client.post(new_url(project), sweep_data(project))
    assert response.status_code == 400 and len(launched) == 2
    error = response.context["form"].errors["dataset"][0]
    assert error.startswith("at optim.lr=1e-05, algorithm.beta=0: the dataset was deleted")
    assert not Run.objects.exists() and not RunTag.objects.exists() and sent == []


def test_a_resent_sweep_launches_nothing_more_and_leads_to_the_same_list(
        client, project, sent, django_capture_on_commit_callbacks):
    url = new_url(project)
    data = sweep_data(project, submission_key=page_key(client, url))
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(url, data)
        second = client.post(url, data)
    assert first.status_code == second.status_code == 302 and first.url == second.url
    assert Run.objects.count() == 4 and RunTag.objects.count() == 4 and len(sent) == 4
    assert "This sweep was launched already: its 4 runs" in client.get(second.url).content.decode()


def test_a_page_resent_with_another_sweep_launches_nothing_and_asks_again(client, project, sent):
    url = new_url(project)
    key = page_key(client, url)
    data = sweep_data(project, submission_key=key)
    assert client.post(url, data).status_code == 302
    smaller = {**data, "sweep": json.dumps({"optim.lr": [1e-6, 1e-5]})}  # Back, edit, Launch
    response = client.post(url, smaller)
    assert response.status_code == 400
    assert "This page already launched runs with other settings" in response.content.decode()
    assert Run.objects.count() == 4
    [new_key] = re.findall(r'name="submission_key" value="([^"]+)"', response.content.decode())
    assert new_key != key
    assert client.post(url, {**smaller, "submission_key": new_key}).status_code == 302
    assert Run.objects.count() == 6


def test_a_page_resent_after_one_of_its_runs_was_deleted_says_so_and_launches_anew_when_asked(client, project, sent):
    url = new_url(project)
    data = sweep_data(project, submission_key=page_key(client, url))
    assert client.post(url, data).status_code == 302
    gone = Run.objects.get(project=project, name="tiny run · optim.lr=1e-05, algorithm.beta=0")
    Run.objects.filter(pk=gone.pk).update(status="cancelled")
    run_delete(run_id=gone.pk)
    response = client.post(url, data)  # Back to the page, Launch again
    assert response.status_code == 400
    assert ("This page launched this sweep already, but its run 3 of 4 (“tiny run · optim.lr=1e-05, "
            "algorithm.beta=0”) was deleted since. Nothing was launched: press Launch again to launch the sweep anew."
            ) in response.content.decode()
    assert Run.objects.count() == 3
    [new_key] = re.findall(r'name="submission_key" value="([^"]+)"', response.content.decode())
    assert client.post(url, {**data, "submission_key": new_key}).status_code == 302
    assert Run.objects.count() == 7


def test_a_page_that_launched_one_run_does_not_then_launch_a_sweep(client, project, sent):
    url = new_url(project)
    data = sweep_data(project, submission_key=page_key(client, url))
    assert client.post(url, {**data, "sweep": ""}).status_code == 302
    response = client.post(url, data)
    assert response.status_code == 400 and Run.objects.count() == 1


def test_a_page_that_launched_a_sweep_does_not_then_launch_one_run(client, project, sent):
    url = new_url(project)
    data = sweep_data(project, submission_key=page_key(client, url))
    assert client.post(url, data).status_code == 302
    response = client.post(url, {**data, "sweep": ""})  # Back, sweep cleared, Launch
    assert response.status_code == 400
    assert "This page already launched a sweep" in response.content.decode()
    assert Run.objects.count() == 4
    [new_key] = re.findall(r'name="submission_key" value="([^"]+)"', response.content.decode())
    assert client.post(url, {**data, "sweep": "", "submission_key": new_key}).status_code == 302
    assert Run.objects.count() == 5


def test_a_bad_sweep_tag_launches_nothing(client, project, sent):
    response = client.post(new_url(project), sweep_data(project, sweep_tag="lr, beta"))
    assert response.status_code == 400
    assert "holds a comma" in response.context["form"].errors["sweep_tag"][0]
    assert not Run.objects.exists()


def test_a_sweep_tag_without_a_sweep_is_refused(client, project, sent):
    response = client.post(new_url(project), sweep_data(project, sweep="", sweep_tag="lr"))
    assert response.status_code == 400 and "sweep_tag" in response.context["form"].errors
    assert not Run.objects.exists()


def test_a_sweep_that_is_not_json_is_refused_on_its_field(client, project, sent):
    response = client.post(new_url(project), sweep_data(project, sweep="{optim.lr: [1, 2]}"))
    assert response.status_code == 400 and response.context["form"].errors["sweep"]
    assert not Run.objects.exists()


def test_the_evaluation_page_has_the_sweep_of_the_new_run_page(client, project):
    page = client.get(reverse("experiments:new_evaluation", args=[project.id])).content.decode()
    assert 'name="sweep"' in page and 'name="sweep_tag"' in page and 'id="sweep"' in page
    assert "{&quot;rollout.temperature&quot;: [0.6, 1.0], &quot;train.seed&quot;: [0, 1, 2]} launches 6 runs" in page
    training = client.get(new_url(project)).content.decode()
    assert 'name="sweep"' in training and "&quot;algorithm.beta&quot;: [0, 0.04]} launches 6 runs" in training


def test_an_annotator_cannot_launch_a_sweep(client):
    annotator = make_user()
    project = make_project(owner=make_user(), annotator=annotator)
    client.login(username=annotator.username, password=PASSWORD)
    assert client.post(new_url(project), sweep_data(project)).status_code == 403
    assert not Run.objects.exists()


def test_another_projects_page_answers_404_and_launches_nothing(client, researcher):
    other = make_project(owner=make_user())
    for name in ("new", "new_dpo", "new_sft"):
        assert client.post(reverse(f"experiments:{name}", args=[other.id]), sweep_data(other)).status_code == 404
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_sweep_the_broker_refuses_leaves_no_run(client, researcher, monkeypatch):
    from kombu.exceptions import OperationalError

    from workers.celery_app import app

    def refuse(name, args):
        raise OperationalError("Connection refused.")

    monkeypatch.setattr(app, "send_task", refuse)
    response = client.post(new_url(researcher), sweep_data(researcher))
    assert response.status_code == 400 and "task queue" in response.content.decode()
    assert not Run.objects.exists() and not RunTag.objects.exists()


# ---------------------------------------------------------------- the DPO and SFT pages

def test_the_dpo_page_launches_a_sweep(client, sent):
    from tests.webapp.experiments.test_dpo_runs import form_data, pairs_jsonl
    from webapp.rewards.services import pair_set_import

    user = make_user()
    project = make_project(owner=user)
    client.login(username=user.username, password=PASSWORD)
    pair_set = pair_set_import(project=project, name="toy", content=pairs_jsonl())
    data = {**form_data(make_policy(project), pair_set), "sweep": json.dumps({"dpo.beta": [0.1, 0.5]})}
    response = client.post(reverse("experiments:new_dpo", args=[project.id]), data)
    assert response.status_code == 302, response.context["form"].errors
    runs = list(Run.objects.order_by("id"))
    assert [r.name for r in runs] == ["dpo page run · dpo.beta=0.1", "dpo page run · dpo.beta=0.5"]
    assert [r.config["dpo"]["beta"] for r in runs] == [0.1, 0.5] and all(r.kind == RunKind.DPO for r in runs)
    bad = client.post(reverse("experiments:new_dpo", args=[project.id]),
                      {**data, "sweep": json.dumps({"dpo.beta": [0.1, -1]})})
    assert bad.status_code == 400 and "dpo.beta = -1: " in bad.context["form"].errors["sweep"][0]
    assert Run.objects.count() == 2


def test_the_sft_page_launches_a_sweep(client, sent):
    from tests.webapp.experiments.test_sft_runs import form_data, toy_dataset

    user = make_user()
    project = make_project(owner=user)
    client.login(username=user.username, password=PASSWORD)
    data = {**form_data(make_policy(project), f"dataset:{toy_dataset(project).id}"),
            "sweep": json.dumps({"optim.lr": [1e-5, 2e-5], "sft.epochs": [1, 2]})}
    response = client.post(reverse("experiments:new_sft", args=[project.id]), data)
    assert response.status_code == 302, response.context["form"].errors
    runs = list(Run.objects.order_by("id"))
    assert [(r.config["optim"]["lr"], r.config["sft"]["epochs"]) for r in runs] == [
        (1e-5, 1), (1e-5, 2), (2e-5, 1), (2e-5, 2)]
    assert all(r.kind == RunKind.SFT and r.dataset_id is not None for r in runs)
    unknown = client.post(reverse("experiments:new_sft", args=[project.id]),
                          {**data, "sweep": json.dumps({"dpo.beta": [0.1, 0.2]})})
    assert unknown.status_code == 400 and "unknown setting &#x27;dpo.beta&#x27;" in unknown.content.decode()
