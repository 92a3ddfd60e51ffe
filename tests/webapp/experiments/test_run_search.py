"""Runs found by their settings and metrics' latest values, as MLflow's search filter
(``config.optim.lr < 1e-5 and metrics.reward >= 0.8``): on the runs list, over the API and in
steer_client."""

import pytest
from django.urls import reverse

from tests.factories import make_project, make_run
from tests.webapp.api.conftest import api_user, token_client
from tests.webapp.experiments.conftest import shown_runs as shown
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import RunStatus
from webapp.experiments.run_search import Condition, RunSearchError, conditions_parse, config_matches
from webapp.experiments.selectors import run_list

pytestmark = pytest.mark.django_db


def test_conditions_read_as_mlflow_writes_them():
    assert conditions_parse("config.optim.lr < 1e-5 AND metrics.rewards/accuracy>=0.8 and params.trainer = 'trl'") == [
        Condition("config", "optim.lr", "<", 1e-5), Condition("metrics", "rewards/accuracy", ">=", 0.8),
        Condition("config", "trainer", "=", "trl")]
    assert conditions_parse("config.rewards[0].weight != 1 and config.train.fast_path = true") == [
        Condition("config", "rewards[0].weight", "!=", 1.0), Condition("config", "train.fast_path", "=", True)]
    assert conditions_parse("config.note = \"1e-5\"") == [Condition("config", "note", "=", "1e-5")]  # quoted: text
    assert conditions_parse("   ") == []


@pytest.mark.parametrize(("text", "said"), [
    ("lr < 1e-5", "“lr < 1e-5”: say whether lr is a setting or a metric: config.lr or metrics.lr."),
    ("metrics.reward >", "“metrics.reward >” is not a condition: write a setting or a metric, an operator"),
    ("metrics.reward > high", "“metrics.reward > high”: a metric compares with a number, not “high”."),
    ("config.trainer < trl", "“config.trainer < trl”: < compares numbers; a text or true/false compares with = or !=."),
    (" and ".join(["config.a = 1"] * 11), "11 conditions; at most 10."),
])
def test_a_condition_that_cannot_be_read_is_named(text, said):
    with pytest.raises(RunSearchError) as refused:
        conditions_parse(text)
    assert str(refused.value).startswith(said)


def test_settings_compare_as_numbers_text_and_true_or_false_and_a_missing_one_matches_nothing():
    config = {"optim": {"lr": 1e-05}, "algorithm": {"beta": 0.0}, "trainer": "trl",
              "rewards": [{"name": "exact_answer", "weight": 2}], "train": {"fast_path": True}}

    def matches(text):
        return config_matches(config, conditions_parse(text))

    assert matches("config.optim.lr = 0.00001") and matches("config.optim.lr <= 1e-5")
    assert not matches("config.optim.lr < 1e-5")
    assert matches("config.algorithm.beta = 0") and matches("config.rewards[0].weight > 1.5")
    assert matches("config.trainer = trl") and matches("config.trainer != verl") and not matches("config.trainer = TRL")
    assert matches("config.train.fast_path = true") and not matches("config.train.fast_path = false")
    assert not matches("config.train.fast_path = 1")  # true is no number
    assert not matches("config.optim.weight_decay != 0")  # not stored: no condition on it holds
    assert not matches("config.trainer = trl and config.optim.lr > 1")  # every condition must hold


def test_run_list_keeps_the_runs_whose_settings_and_latest_metrics_meet_every_condition():
    project = make_project()
    slow = make_run(project, name="slow", config={"optim": {"lr": 1e-6}})
    fast = make_run(project, name="fast", config={"optim": {"lr": 1e-5}})
    blank = make_run(project, name="blank", config={})
    metric_points_upsert(run_id=slow.id, points=[["reward", 1, 0.9], ["reward", 2, 0.4]])  # latest, not best
    metric_points_upsert(run_id=fast.id, points=[["reward", 1, 0.2], ["reward", 2, 0.7]])
    metric_points_upsert(run_id=make_run(make_project(), name="elsewhere", config={"optim": {"lr": 1e-6}}).id,
                         points=[["reward", 1, 0.9]])

    def found(text):
        return [r.name for r in run_list(project=project, where=conditions_parse(text))]

    assert found("config.optim.lr < 3e-6") == ["slow"]
    assert found("metrics.reward > 0.5") == ["fast"]
    assert found("metrics.reward != 0.7") == ["slow"]  # a run without the metric matches no condition on it
    assert found("config.optim.lr >= 1e-6 and metrics.reward <= 0.4") == ["slow"]
    assert found("metrics.loss < 1") == []
    assert blank.id not in [r.id for r in run_list(project=project, where=conditions_parse("config.optim.lr != 1"))]


def list_page(client, project, **query) -> str:
    response = client.get(reverse("experiments:list", args=[project.id]), query)
    assert response.status_code == 200
    return response.content.decode()


def test_the_runs_list_is_filtered_by_where_and_a_bad_condition_is_said_and_left_out(client, researcher):
    make_run(researcher, name="lr1e-6", config={"optim": {"lr": 1e-6}}, status=RunStatus.SUCCEEDED)
    make_run(researcher, name="lr1e-5", config={"optim": {"lr": 1e-5}}, status=RunStatus.SUCCEEDED)
    html = list_page(client, researcher, where="config.optim.lr > 5e-6")
    assert shown(html) == ["lr1e-5"]
    html = list_page(client, researcher, where="config.optim.lr > 1")
    assert shown(html) == [] and "No runs match these filters." in html
    html = list_page(client, researcher, where="<b>lr</b> > 1")
    assert shown(html) == ["lr1e-5", "lr1e-6"]
    assert "Where: “&lt;b&gt;lr&lt;/b&gt; &gt; 1” is not a condition: write a setting or a metric" in html
    assert "<b>lr" not in html


def test_the_api_filters_runs_by_where_and_answers_400_naming_it():
    owner = api_user()
    api = token_client(owner)
    project = make_project(owner=owner)
    kept = make_run(project, config={"algorithm": {"beta": 0.0}})
    make_run(project, config={"algorithm": {"beta": 0.04}})
    listed = api.get(f"/api/v1/projects/{project.id}/runs/", {"where": "config.algorithm.beta = 0"}).json()["results"]
    assert [r["id"] for r in listed] == [kept.id]
    response = api.get(f"/api/v1/projects/{project.id}/runs/", {"where": "beta = 0"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "where": ["“beta = 0”: say whether beta is a setting or a metric: config.beta or metrics.beta."]}
