"""A sweep of evaluation runs from the New-evaluation page: the policy evaluated at each
combination of the values of what an evaluation reads (its sampling, seed, rewards' weights), as
the New-run page's Sweep launches training runs: every point checked first, launched together,
tagged, listed and compared together; the page's submission key covers the whole sweep."""

import json
import re

import pytest
from django.urls import reverse

from tests.factories import make_dataset, make_policy, tiny_run_config, tiny_run_form_data
from tests.webapp.experiments.conftest import shown_runs
from tests.webapp.experiments.test_form_launch import page_key
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunKind, RunTag
from webapp.experiments.sweeps import SweepAxis, sweep_defaults, sweep_parse

pytestmark = pytest.mark.django_db

TEMPERATURE_SEED = {"rollout.temperature": [0.7, 1.3], "train.seed": [0, 1]}
TRAINING_ONLY = ("algorithm__", "optim__", "train__checkpoint", "train__total", "train__log")


def parse(grid, config=None):
    return sweep_parse(grid, defaults=sweep_defaults(RunKind.EVALUATION), config=config or {}, kind=RunKind.EVALUATION)


def test_an_evaluation_is_swept_over_what_it_reads():
    assert parse({"rollout.temperature": ["0.7", 1], "rollout.max_new_tokens": [16, 64.0]}) == [
        SweepAxis("rollout.temperature", (0.7, 1.0)), SweepAxis("rollout.max_new_tokens", (16, 64))]
    assert parse({"train.seed": "0, 1, 2"}) == [SweepAxis("train.seed", (0, 1, 2))]
    assert parse({"rollout.greedy": [True, False]}) == [SweepAxis("rollout.greedy", (True, False))]
    assert parse({"rewards[0].weight": [0.5, 1]}, {"rewards": [{"name": "exact_answer"}]}) == [
        SweepAxis("rewards[0].weight", (0.5, 1.0))]


@pytest.mark.parametrize("path", ["optim.lr", "algorithm.beta", "train.total_steps", "eval.temperature",
                                  "rollout.budget_allocation", "rollout.min_generations", "rollout.tempreature"])
def test_a_setting_an_evaluation_does_not_read_is_refused_naming_it(path):
    with pytest.raises(RunError) as refused:
        parse({path: ["1", "2"]})
    assert refused.value.field == "sweep"
    assert refused.value.message.startswith(f"{path!r} is no setting of an evaluation, which samples and scores "
                                            "and trains nothing: sweep how it samples (rollout.temperature")


# ---------------------------------------------------------------- the New-evaluation page

def evaluation_data(project, grid=TEMPERATURE_SEED, **changes):
    data = {k: v for k, v in tiny_run_form_data(make_policy(project), make_dataset(project, n=5), name="base").items()
            if not k.startswith(TRAINING_ONLY)}
    data.update(sweep=json.dumps(grid), **changes)
    return data


def new_url(project):
    return reverse("experiments:new_evaluation", args=[project.id])


def test_the_page_launches_one_tagged_evaluation_per_point_and_lists_them(
        client, project, sent, django_capture_on_commit_callbacks):
    url = new_url(project)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, evaluation_data(project, submission_key=page_key(client, url)))
    assert response.status_code == 302, response.context["form"].errors
    runs = list(Run.objects.filter(project=project).order_by("id"))
    assert [r.name for r in runs] == [
        "base · rollout.temperature=0.7, train.seed=0", "base · rollout.temperature=0.7, train.seed=1",
        "base · rollout.temperature=1.3, train.seed=0", "base · rollout.temperature=1.3, train.seed=1"]
    assert [(r.config["rollout"]["temperature"], r.config["train"]["seed"]) for r in runs] == [
        (0.7, 0), (0.7, 1), (1.3, 0), (1.3, 1)]
    assert all(r.kind == RunKind.EVALUATION and r.total_steps == 3 for r in runs)  # 5 prompts, 2 a step
    assert sorted(sent) == [("workers.tasks.run_evaluation", [r.id]) for r in runs]
    [tag] = {t.name for r in runs for t in r.tags.all()}
    assert tag.startswith("sweep-") and all(r.tags.count() == 1 for r in runs)
    assert response.url == f"{reverse('experiments:list', args=[project.id])}?tag={tag}"
    listed = client.get(response.url).content.decode()
    assert f"The sweep launched 4 runs, tagged “{tag}”" in listed
    assert sorted(shown_runs(listed)) == sorted(r.name for r in runs)
    # Ticked on the list and compared: the charts overlay them, and the settings that differ are the grid's.
    compared = client.get(reverse("experiments:compare", args=[project.id]), {"run": [r.id for r in runs]})
    assert compared.status_code == 302
    chart = client.get(reverse("experiments:chart_data", args=[project.id, runs[0].id]),
                       {"compare": [r.id for r in runs[1:]]}).json()
    assert [row["key"] for row in chart["differences"]["rows"]] == ["rollout.temperature", "train.seed"]


def test_greedy_decoding_is_kept_at_every_point(client, project, sent):
    response = client.post(new_url(project), evaluation_data(
        project, {"rollout.max_new_tokens": [2, 4]}, rollout__greedy="on", rollout__num_generations=""))
    assert response.status_code == 302, response.context["form"].errors
    assert [(r.config["rollout"]["greedy"], r.config["rollout"]["num_generations"], r.config["rollout"]["max_new_tokens"])
            for r in Run.objects.order_by("id")] == [(True, 1, 2), (True, 1, 4)]


@pytest.mark.parametrize(("grid", "message"), [
    ({"optim.lr": [1e-6, 1e-5]}, "&#x27;optim.lr&#x27; is no setting of an evaluation"),
    ({"rollout.temperature": [0.7, 0]}, "nothing was launched: rollout.temperature = 0: must be &gt; 0"),
    ({"rollout.budget_allocation": ["uniform", "knapsack"]},
     "&#x27;rollout.budget_allocation&#x27; is no setting of an evaluation"),
])
def test_a_sweep_with_a_bad_setting_or_point_launches_nothing_and_names_it(client, project, sent, grid, message):
    response = client.post(new_url(project), evaluation_data(project, grid))
    assert response.status_code == 400
    assert response.context["form"].errors["sweep"] and message in response.content.decode()
    assert not Run.objects.exists() and not RunTag.objects.exists() and sent == []


def test_a_resent_page_launches_nothing_more_and_another_sweep_under_its_key_asks_again(
        client, project, sent, django_capture_on_commit_callbacks):
    url = new_url(project)
    data = evaluation_data(project, submission_key=page_key(client, url))
    with django_capture_on_commit_callbacks(execute=True):
        first, second = client.post(url, data), client.post(url, data)
    assert first.status_code == second.status_code == 302 and first.url == second.url
    assert Run.objects.count() == 4 and len(sent) == 4
    assert "This sweep was launched already: its 4 runs" in client.get(second.url).content.decode()
    other = client.post(url, {**data, "sweep": json.dumps({"train.seed": [0, 1]})})  # Back, edit, Evaluate
    assert other.status_code == 400 and Run.objects.count() == 4
    assert "This page already launched runs with other settings" in other.content.decode()
    [new_key] = re.findall(r'name="submission_key" value="([^"]+)"', other.content.decode())
    assert client.post(url, {**data, "sweep": json.dumps({"train.seed": [0, 1]}), "submission_key": new_key}
                       ).status_code == 302
    assert Run.objects.count() == 6


def test_a_single_evaluation_under_the_key_of_a_sweep_is_refused(client, project, sent):
    url = new_url(project)
    data = evaluation_data(project, submission_key=page_key(client, url))
    assert client.post(url, data).status_code == 302
    response = client.post(url, {**data, "sweep": ""})
    assert response.status_code == 400 and "This page already launched a sweep" in response.content.decode()
    assert Run.objects.count() == 4


def test_a_copy_of_one_of_its_evaluations_is_named_without_its_point_and_joins_no_sweep(client, project, sent):
    from tests.webapp.experiments.test_run_copy import copy_page, launch_copy_of_sweep_run

    assert client.post(new_url(project), evaluation_data(project)).status_code == 302
    original = Run.objects.get(name="base · rollout.temperature=1.3, train.seed=0")
    form = copy_page(client, original).context["form"]
    assert form["name"].value() == "base (copy)" and not form["sweep"].value() and not form["sweep_tag"].value()
    copy = launch_copy_of_sweep_run(client, original)
    assert copy.kind == RunKind.EVALUATION and copy.name == "base (copy)" and not copy.tags.exists()
    assert (copy.config["rollout"]["temperature"], copy.config["train"]["seed"]) == (1.3, 0)


def test_each_evaluation_of_the_sweep_shows_the_others_side_by_side_once_finished(client, project, sent):
    from webapp.experiments.metrics import metric_points_upsert
    from webapp.experiments.models import RunStatus

    assert client.post(new_url(project), evaluation_data(project)).status_code == 302
    runs = list(Run.objects.order_by("id"))
    for i, run in enumerate(runs):
        Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
        metric_points_upsert(run_id=run.id, points=[("eval/accuracy", 3, i / 10), ("eval/reward", 3, i / 10)])
    body = client.get(reverse("experiments:detail", args=[project.id, runs[0].id])).content.decode()
    results = body[body.index('class="evaluation-results"'):body.index("</table>", body.index('class="evaluation-results"'))]
    assert all(run.name in results for run in runs)
    assert results.count("G=2 · T=0.7 · ≤4 tokens") == 2 and results.count("G=2 · T=1.3 · ≤4 tokens") == 2
    assert all(f"<td>{value}</td>" in results for value in ("0.100", "0.200", "0.300"))


# ---------------------------------------------------------------- greedy as a swept setting

def rollouts():
    return [(r.name, r.config["rollout"]["greedy"], r.config["rollout"]["num_generations"])
            for r in Run.objects.order_by("id")]


def test_a_sweep_of_greedy_gives_its_greedy_point_one_completion_as_the_api_does(client, project, sent):
    """The G field is for sampling: the page's sweep over rollout.greedy launches its greedy point
    with num_generations 1 (stored so in its config) and its sampled one with the field's G, as
    the API does when its config leaves num_generations out (the engine's default for greedy)."""
    data = evaluation_data(project, {"rollout.greedy": [False, True]}, rollout__num_generations=3)
    response = client.post(new_url(project), data)
    assert response.status_code == 302, response.context["form"].errors
    assert rollouts() == [("base · rollout.greedy=false, rollout.num_generations=3", False, 3),
                          ("base · rollout.greedy=true, rollout.num_generations=1", True, 1)]
    # Greedy ticked, the sweep going back to sampling: the sampled point takes the G field's value.
    ticked = client.post(new_url(project), {**data, "name": "ticked", "rollout__greedy": "on",
                                            "sweep": json.dumps({"rollout.greedy": [True, False]})})
    assert ticked.status_code == 302, ticked.context["form"].errors
    assert rollouts()[2:] == [("ticked · rollout.greedy=true, rollout.num_generations=1", True, 1),
                              ("ticked · rollout.greedy=false, rollout.num_generations=3", False, 3)]
    # With a second axis, every greedy point takes one.
    both = client.post(new_url(project), {**data, "name": "both", "sweep": json.dumps(
        {"rollout.greedy": [False, True], "rollout.max_new_tokens": [2, 4]})})
    assert both.status_code == 302, both.context["form"].errors
    assert [g for _, greedy, g in rollouts()[4:] if greedy] == [1, 1]
    assert [g for _, greedy, g in rollouts()[4:] if not greedy] == [3, 3]


def test_a_greedy_points_name_lists_the_one_completion_it_takes_as_every_run_of_its_sweep_does(client, project, sent):
    """The greedy run was named "base · rollout.greedy=true" though it took one completion where
    its sweep's other runs took three: its name left out what its config really set."""
    data = evaluation_data(project, {"rollout.greedy": [False, True], "rollout.max_new_tokens": [2, 4]},
                           rollout__num_generations=3)
    response = client.post(new_url(project), data)
    assert response.status_code == 302, response.context["form"].errors
    assert [name for name, _, _ in rollouts()] == [
        "base · rollout.greedy=false, rollout.max_new_tokens=2, rollout.num_generations=3",
        "base · rollout.greedy=false, rollout.max_new_tokens=4, rollout.num_generations=3",
        "base · rollout.greedy=true, rollout.max_new_tokens=2, rollout.num_generations=1",
        "base · rollout.greedy=true, rollout.max_new_tokens=4, rollout.num_generations=1"]
    # Copied, a run is named for its sweep's name, as any sweep's run (its values are in its config).
    from webapp.experiments.sweeps import point_name_base

    assert {point_name_base(r.name, r.config) for r in Run.objects.all()} == {"base"}
    # A sweep whose runs all take the same group size names none.
    same = client.post(new_url(project), {**data, "name": "same", "sweep": json.dumps({"rollout.temperature": [0.7, 1.3]})})
    assert same.status_code == 302, same.context["form"].errors
    assert [name for name, _, _ in rollouts()[4:]] == ["same · rollout.temperature=0.7", "same · rollout.temperature=1.3"]


def test_named_points_add_the_group_size_only_where_the_runs_differ_in_it_unswept():
    from webapp.experiments.sweeps import named_points

    greedy, sampled = (("rollout.greedy", True),), (("rollout.greedy", False),)
    one, eight = {"rollout": {"num_generations": 1}}, {"rollout": {"num_generations": 8}}
    assert named_points([sampled, greedy], [eight, one]) == [
        (("rollout.greedy", False), ("rollout.num_generations", 8)),
        (("rollout.greedy", True), ("rollout.num_generations", 1))]
    assert named_points([sampled, greedy], [one, one]) == [sampled, greedy]
    swept = [(("rollout.num_generations", 8),), (("rollout.num_generations", 1),)]
    assert named_points(swept, [eight, one]) == swept
    assert named_points([(("optim.lr", 1e-6),), (("optim.lr", 3e-6),)], [{}, {}]) == [
        (("optim.lr", 1e-6),), (("optim.lr", 3e-6),)]  # a kind without a rollout (DPO, SFT)


def test_a_point_takes_the_group_size_of_its_decoding_unless_it_sets_one():
    from webapp.experiments.sweeps import point_config

    config = {"rollout": {"greedy": False, "num_generations": 3, "temperature": 0.7}}
    greedy, sampled = (("rollout.greedy", True),), (("rollout.greedy", False),)
    assert point_config(config, greedy)["rollout"]["num_generations"] == 3  # the API's: the config's G everywhere
    assert point_config(config, greedy, sampled_generations=3)["rollout"] == {
        "greedy": True, "num_generations": 1, "temperature": 0.7}
    ticked = {"rollout": {"greedy": True, "num_generations": 1}}
    assert point_config(ticked, sampled, sampled_generations=3)["rollout"]["num_generations"] == 3
    assert point_config(ticked, (*sampled, ("rollout.num_generations", 5)), sampled_generations=3)["rollout"][
        "num_generations"] == 5  # swept: the user's own
    assert config["rollout"]["num_generations"] == 3  # the sweep's config is left as it was


def test_a_greedy_sweep_over_the_api_keeps_a_group_size_its_config_names(sent):
    """What the page now matches: over the API a config without num_generations takes 1 at the
    greedy point; one that names it keeps it, and the greedy point is refused."""
    from tests.factories import make_project
    from tests.webapp.api.conftest import api_user, token_client

    user = api_user()
    project = make_project(owner=user)
    config = tiny_run_config()
    body = {"name": "api", "kind": "evaluation", "config": config, "sweep": {"rollout.greedy": [False, True]},
            "policy": make_policy(project).id, "dataset": make_dataset(project, n=5).id}
    api = token_client(user)
    config["rollout"] = {k: v for k, v in config["rollout"].items() if k != "num_generations"}
    created = api.post(f"/api/v1/projects/{project.id}/runs/sweep/", body, format="json")
    assert created.status_code == 201, created.json()
    assert [(r["config"]["rollout"]["greedy"], r["config"]["rollout"]["num_generations"]) for r in created.json()] == [
        (False, 8), (True, 1)]
    assert [r["name"] for r in created.json()] == ["api · rollout.greedy=false, rollout.num_generations=8",
                                                   "api · rollout.greedy=true, rollout.num_generations=1"]
    config["rollout"]["num_generations"] = 3
    refused = api.post(f"/api/v1/projects/{project.id}/runs/sweep/", body, format="json")
    assert refused.status_code == 400 and "must be 1 with greedy" in json.dumps(refused.json())


def test_a_group_size_set_in_the_json_or_swept_is_the_users_own_at_every_point(client, project, sent):
    data = evaluation_data(project, {"rollout.greedy": [False, True]}, rollout__num_generations=3)
    overrides = json.loads(data["overrides"])
    overrides["rollout"] = {"num_generations": 4}
    refused = client.post(new_url(project), {**data, "overrides": json.dumps(overrides)})
    assert refused.status_code == 400 and not Run.objects.exists()
    assert "rollout.greedy = true: must be 1 with greedy decoding (got 4)" not in refused.content.decode()
    assert "at rollout.greedy=true: rollout.num_generations: must be 1 with greedy decoding (got 4)" in (
        refused.context["form"].errors["sweep"][0])
    swept = client.post(new_url(project), {**data, "sweep": json.dumps(
        {"rollout.greedy": [False, True], "rollout.num_generations": [1, 4]})})
    assert swept.status_code == 400 and not Run.objects.exists()
    assert "must be 1 with greedy decoding (got 4)" in swept.context["form"].errors["sweep"][0]


def test_a_sweep_back_to_sampling_with_greedy_ticked_and_no_group_size_asks_for_one(client, project, sent):
    data = evaluation_data(project, {"rollout.greedy": [True, False]}, rollout__greedy="on", rollout__num_generations="")
    response = client.post(new_url(project), data)
    assert response.status_code == 400 and not Run.objects.exists()
    assert response.context["form"].errors["rollout__num_generations"] == [
        "Required when a point of the sweep samples (rollout.greedy false): at least 2."]


# ---------------------------------------------------------------- comparing a sweep's evaluations

def finish(runs):
    from webapp.experiments.metrics import metric_points_upsert
    from webapp.experiments.models import RunStatus

    for i, run in enumerate(runs):
        Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
        metric_points_upsert(run_id=run.id, points=[("eval/accuracy", 3, i / 10)])


def result_rows(client, project, run) -> dict[str, str]:
    body = client.get(reverse("experiments:detail", args=[project.id, run.id])).content.decode()
    table = body[body.index('class="evaluation-results"'):body.index("</table>", body.index('class="evaluation-results"'))]
    return {name: table[table.index(f">{name}<"):].split("</tr>")[0]
            for name in Run.objects.values_list("name", flat=True) if f">{name}<" in table}


def test_the_runs_of_an_evaluation_sweep_compare_with_each_other_naming_what_they_swept(client, project, sent):
    data = evaluation_data(project)
    assert client.post(new_url(project), data).status_code == 302
    alone = client.post(new_url(project), {**data, "name": "alone at 1.3", "sweep": "", "rollout__temperature": 1.3})
    assert alone.status_code == 302
    finish(Run.objects.order_by("id"))
    rows = result_rows(client, project, Run.objects.get(name="base · rollout.temperature=0.7, train.seed=0"))
    assert len(rows) == 5
    assert "swept:" not in rows["base · rollout.temperature=0.7, train.seed=0"]
    assert "swept: train.seed = 1<" in rows["base · rollout.temperature=0.7, train.seed=1"]
    assert "swept: rollout.temperature = 1.3<" in rows["base · rollout.temperature=1.3, train.seed=0"]
    assert "swept: rollout.temperature = 1.3, train.seed = 1<" in rows["base · rollout.temperature=1.3, train.seed=1"]
    assert [name for name, row in rows.items() if "not comparable" in row] == ["alone at 1.3"]
    assert "swept:" not in rows["alone at 1.3"]  # the same policy and sampling, but launched alone
    # From the run launched alone, the sweep's runs at 0.7 sampled otherwise.
    rows = result_rows(client, project, Run.objects.get(name="alone at 1.3"))
    assert sorted(name for name, row in rows.items() if "not comparable" in row) == [
        "base · rollout.temperature=0.7, train.seed=0", "base · rollout.temperature=0.7, train.seed=1"]
    assert not any("swept:" in row for row in rows.values())


def test_a_greedy_point_compares_with_the_sampled_one_of_its_sweep_and_says_it_took_one_completion(
        client, project, sent):
    data = evaluation_data(project, {"rollout.greedy": [False, True]}, rollout__num_generations=3)
    assert client.post(new_url(project), data).status_code == 302
    other_sweep = client.post(new_url(project), {**data, "name": "again", "sweep": json.dumps(
        {"rollout.greedy": [False, True], "train.seed": [5, 6]})})
    assert other_sweep.status_code == 302
    finish(Run.objects.order_by("id"))
    rows = result_rows(client, project, Run.objects.get(name="base · rollout.greedy=false, rollout.num_generations=3"))
    greedy = rows["base · rollout.greedy=true, rollout.num_generations=1"]
    assert "not comparable" not in greedy and "swept: rollout.greedy = true, rollout.num_generations = 1<" in greedy
    # Another sweep's greedy runs sampled otherwise than this run; its sampled ones compare (as any run would).
    assert sorted(name for name, row in rows.items() if "not comparable" in row) == [
        "again · rollout.greedy=true, train.seed=5, rollout.num_generations=1",
        "again · rollout.greedy=true, train.seed=6, rollout.num_generations=1"]
    assert not any("swept:" in row for name, row in rows.items() if name.startswith("again"))


def test_a_sweep_launched_over_the_api_without_a_key_is_known_as_one_sweep(sent):
    from tests.factories import make_project
    from tests.webapp.api.conftest import api_user, token_client
    from webapp.experiments.selectors import evaluation_results

    user = api_user()
    project = make_project(owner=user)
    body = {"name": "api", "kind": "evaluation", "config": tiny_run_config(), "sweep": {"rollout.temperature": [0.7, 1.3]},
            "policy": make_policy(project).id, "dataset": make_dataset(project, n=5).id}
    api = token_client(user)
    assert api.post(f"/api/v1/projects/{project.id}/runs/sweep/", body, format="json").status_code == 201
    assert api.post(f"/api/v1/projects/{project.id}/runs/sweep/", body, format="json").status_code == 201  # anew
    runs = list(Run.objects.order_by("id"))
    assert len(runs) == 4 and len({r.creation_key for r in runs}) == 4
    finish(runs)
    results = {r["run"].id: r for r in evaluation_results(project=project, dataset_id=runs[0].dataset_id,
                                                           include=runs[0].id)}
    assert results[runs[1].id]["alike"] and results[runs[1].id]["swept"] == ["rollout.temperature = 1.3"]
    assert not results[runs[3].id]["alike"] and results[runs[3].id]["swept"] == []  # the second sweep's
    assert results[runs[2].id]["alike"] and results[runs[2].id]["swept"] == []  # sampled alike


def test_the_pages_sweep_help_names_what_an_evaluation_can_sweep_and_where_it_is_compared(client, project):
    """The help was the New-run page's: 'a setting is section.key', though an evaluation refuses
    optim.lr and the like, and 'the runs list shows them to compare', though an evaluation's sweep
    is compared in each run's Results table."""
    from html import unescape

    from webapp.experiments.forms import NewEvaluationForm

    page = unescape(client.get(new_url(project)).content.decode())
    help_text = NewEvaluationForm(project=project).fields["sweep"].help_text
    assert help_text in page
    assert "section.key" not in help_text and "runs list" not in help_text and "Results table" in help_text
    named = re.findall(r"\b(?:rollout|train|policy)\.[a-z_]+", help_text)
    assert {"rollout.temperature", "rollout.greedy", "train.seed", "policy.dtype"} <= set(named)
    for path in set(named):  # every setting the help names is one an evaluation may sweep
        [axis] = parse({path: ["0", "1"] if "seed" in path or "num" in path or "max" in path else
                              ["float32", "bfloat16"] if path == "policy.dtype" else
                              [True, False] if path == "rollout.greedy" else ["0.5", "0.9"]})
        assert axis.path == path
