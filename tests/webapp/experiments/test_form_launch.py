"""A launch page launches once per page shown: a double click on Launch (or a resent POST)
answers the run the first submission made, whatever the kind."""

import json
import re

import pytest
from django.urls import reverse

from tests.factories import (
    make_dataset,
    make_policy,
    tiny_run_form_data,
)
from tests.webapp.experiments.test_sft_runs import form_data as sft_form_data
from tests.webapp.experiments.test_sft_runs import toy_dataset
from webapp.experiments.models import Run, RunKind
from webapp.rewards.services import pair_set_import

pytestmark = pytest.mark.django_db


def page_key(client, url) -> str:
    """The submission key the launch page was shown with."""
    html = client.get(url).content.decode()
    [key] = re.findall(r'<input type="hidden" name="submission_key" value="([^"]+)"', html)
    return key


def test_a_double_click_on_launch_makes_one_run_and_both_answers_lead_to_it(
        client, project, sent, django_capture_on_commit_callbacks):
    url = reverse("experiments:new", args=[project.id])
    data = {**tiny_run_form_data(make_policy(project), make_dataset(project)), "submission_key": page_key(client, url)}
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(url, data)
        second = client.post(url, data)
    run = Run.objects.get(project=project)
    assert first.status_code == second.status_code == 302
    assert first.url == second.url == reverse("experiments:detail", args=[project.id, run.id])
    assert len(sent) == 1  # one task for the workers


def test_each_page_shown_launches_its_own_run(client, project, sent):
    url = reverse("experiments:new", args=[project.id])
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    assert page_key(client, url) != page_key(client, url)
    for _ in range(2):
        assert client.post(url, {**data, "submission_key": page_key(client, url)}).status_code == 302
    assert Run.objects.filter(project=project).count() == 2


def test_a_page_resent_with_other_settings_launches_nothing_and_asks_again(client, project, sent):
    url = reverse("experiments:new", args=[project.id])
    key = page_key(client, url)
    data = {**tiny_run_form_data(make_policy(project), make_dataset(project)), "submission_key": key}
    assert client.post(url, data).status_code == 302
    response = client.post(url, {**data, "name": "tiny run, longer", "train__total_steps": 5})  # Back, edit, Launch
    assert response.status_code == 400
    html = response.content.decode()
    assert "This page already launched run “tiny run”, with other settings" in html
    assert Run.objects.filter(project=project).count() == 1
    assert response.context["form"]["name"].value() == "tiny run, longer"  # the values are kept
    [new_key] = re.findall(r'name="submission_key" value="([^"]+)"', html)
    assert new_key != key
    assert client.post(url, {**data, "name": "tiny run, longer", "submission_key": new_key}).status_code == 302
    assert Run.objects.filter(project=project).count() == 2


def test_a_refused_launch_keeps_the_pages_key_so_the_corrected_one_launches_once(client, project, sent):
    url = reverse("experiments:new", args=[project.id])
    key = page_key(client, url)
    data = {**tiny_run_form_data(make_policy(project), make_dataset(project)), "submission_key": key}
    response = client.post(url, {**data, "name": ""})
    assert response.status_code == 400 and f'value="{key}"' in response.content.decode()
    assert client.post(url, data).status_code == 302
    assert client.post(url, data).status_code == 302
    assert Run.objects.filter(project=project).count() == 1


def test_an_evaluation_launches_once(client, project, sent):
    url = reverse("experiments:new_evaluation", args=[project.id])
    data = {**tiny_run_form_data(make_policy(project), make_dataset(project)), "rollout__greedy": "on",
            "submission_key": page_key(client, url)}
    assert client.post(url, data).status_code == 302
    assert client.post(url, data).status_code == 302
    assert Run.objects.filter(project=project, kind=RunKind.EVALUATION).count() == 1


def test_an_sft_run_launches_once(client, project, sent):
    url = reverse("experiments:new_sft", args=[project.id])
    data = {**sft_form_data(make_policy(project), f"dataset:{toy_dataset(project).id}"),
            "submission_key": page_key(client, url)}
    assert client.post(url, data).status_code == 302
    assert client.post(url, data).status_code == 302
    assert Run.objects.filter(project=project, kind=RunKind.SFT).count() == 1


def test_a_reward_model_run_launches_once(client, project, sent):
    from tests.webapp.rewards.test_reward_model_runs import TINY_RM, pairs_jsonl

    url = reverse("rewards:train", args=[project.id])
    pair_set = pair_set_import(project=project, name="seed", content=pairs_jsonl())
    data = {"name": "rm-1", "data": f"pairs:{pair_set.id}", "settings": json.dumps(TINY_RM),
            "submission_key": page_key(client, url)}
    assert client.post(url, data).status_code == 302
    assert client.post(url, data).status_code == 302
    assert Run.objects.filter(project=project, kind=RunKind.REWARD_MODEL).count() == 1


def test_a_hand_made_key_is_ignored_and_the_run_launches(client, project, sent):
    url = reverse("experiments:new", args=[project.id])
    data = {**tiny_run_form_data(make_policy(project), make_dataset(project)), "submission_key": "no good!" * 20}
    assert client.post(url, data).status_code == 302
    assert Run.objects.get(project=project).creation_key == ""
