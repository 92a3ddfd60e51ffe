"""The New DPO run page and TRL's other DPO losses: the Loss select offers them, a weighted list
of losses comes through More config (JSON), and "Launch a copy" keeps such a list."""

import json

import pytest
from django.urls import reverse

from tests.factories import make_policy
from tests.webapp.experiments.test_dpo_runs import TINY, form_data, pairs_jsonl
from tests.webapp.experiments.test_run_copy import launch_copy_unchanged, owner
from webapp.experiments.models import Run, RunKind
from webapp.experiments.services import run_launch
from webapp.rewards.services import pair_set_import

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]  # no task reaches a broker

NEW_TYPES = ["slic", "exo_pair", "nca_pair", "robust", "sppo_hard", "aot", "aot_unpaired", "apo_zero",
             "apo_down", "discopop", "sft", "sigmoid_norm"]
MPO = {"loss_type": ["sigmoid", "nca_pair", "sft"], "loss_weights": [0.8, 0.2, 1.0]}


@pytest.fixture
def pair_set(project):
    return pair_set_import(project=project, name="toy", content=pairs_jsonl())


def new_dpo(project):
    return reverse("experiments:new_dpo", args=[project.id])


def overrides(**dpo) -> str:
    return json.dumps({"policy": {"tiny": TINY["tiny"]}, "dpo": {"device": "cpu", **dpo}})


def test_the_loss_select_offers_trls_losses(client, project, pair_set):
    page = client.get(new_dpo(project))
    choices = [value for value, _ in page.context["form"].fields["dpo__loss_type"].choices]
    assert choices[:2] == ["sigmoid", "ipo"] and set(NEW_TYPES) <= set(choices)
    assert "bco_pair" not in choices
    html = page.content.decode()
    assert all(f'<option value="{name}"' in html for name in NEW_TYPES)
    assert "loss_weights" in html  # More config's help shows the list form


@pytest.mark.parametrize(("loss_type", "smoothing"), [("slic", 0.0), ("robust", 0.2), ("exo_pair", 0.001)])
def test_a_new_loss_chosen_on_the_page_launches(client, project, pair_set, loss_type, smoothing):
    data = form_data(make_policy(project), pair_set, dpo__loss_type=loss_type, dpo__label_smoothing=smoothing)
    response = client.post(new_dpo(project), data)
    assert response.status_code == 302, response.context["form"].errors
    dpo = Run.objects.get(project=project).config["dpo"]
    assert dpo["loss_type"] == loss_type and dpo["label_smoothing"] == smoothing and dpo["discopop_tau"] == 0.05


def test_label_smoothing_on_a_loss_without_it_is_refused_on_its_field(client, project, pair_set):
    data = form_data(make_policy(project), pair_set, dpo__loss_type="slic", dpo__label_smoothing=0.1)
    response = client.post(new_dpo(project), data)
    assert response.status_code == 400 and not Run.objects.exists()
    assert "set it to 0 for 'slic'" in response.context["form"].errors["dpo__label_smoothing"][0]


def test_a_weighted_list_of_losses_comes_through_more_config(client, project, pair_set):
    data = form_data(make_policy(project), pair_set, overrides=overrides(**MPO))
    response = client.post(new_dpo(project), data)
    assert response.status_code == 302, response.context["form"].errors
    dpo = Run.objects.get(project=project).config["dpo"]
    assert dpo["loss_type"] == MPO["loss_type"] and dpo["loss_weights"] == MPO["loss_weights"]


def test_a_bad_loss_in_the_list_is_named_on_more_config(client, project, pair_set):
    data = form_data(make_policy(project), pair_set,
                     overrides=overrides(loss_type=["sigmoid", "bco_pair"], loss_weights=[1, 1]))
    response = client.post(new_dpo(project), data)
    assert response.status_code == 400 and not Run.objects.exists()
    assert "running mean" in response.context["form"].errors["overrides"][0]


def test_a_copy_of_a_run_with_a_list_of_losses_keeps_the_list(client, project, pair_set):
    original = run_launch(project=project, user=owner(project), name="mpo", kind=RunKind.DPO,
                          policy=make_policy(project),
                          config={"policy": TINY, "dpo": {"beta": 0.2, "device": "cpu", **MPO},
                                  "data": {"source": "pairs", "pair_set": pair_set.id}})
    page = client.get(new_dpo(project) + f"?from={original.id}")
    form = page.context["form"]
    assert json.loads(form["overrides"].value())["dpo"]["loss_type"] == MPO["loss_type"]
    assert form["dpo__loss_type"].value() == "sigmoid"  # the select shows what it can; the JSON decides
    assert "More config (JSON), which decides over that field" in page.content.decode()
    copy = launch_copy_unchanged(client, original)
    assert copy.config == original.config


def test_a_copy_of_a_run_with_a_new_single_loss_shows_it_in_the_select(client, project, pair_set):
    original = run_launch(project=project, user=owner(project), name="disco", kind=RunKind.DPO,
                          policy=make_policy(project),
                          config={"policy": TINY, "dpo": {"loss_type": "discopop", "discopop_tau": 0.1,
                                                          "device": "cpu"},
                                  "data": {"source": "pairs", "pair_set": pair_set.id}})
    page = client.get(new_dpo(project) + f"?from={original.id}")
    assert page.context["form"]["dpo__loss_type"].value() == "discopop"
    assert json.loads(page.context["form"]["overrides"].value())["dpo"]["discopop_tau"] == 0.1
    assert launch_copy_unchanged(client, original).config == original.config
