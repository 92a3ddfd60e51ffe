"""Review: a copy's launch page posts back to its own address (?from=<run id>). The original run
deleted after the page was shown (launch a copy, then delete the failed original) must not turn
Launch into a 404 that throws away the form: the form holds every setting and launches."""

import pytest
from django.urls import reverse

from tests.webapp.experiments.test_run_copy import owner, unchanged
from tests.webapp.rewards.test_reward_model_runs import TINY_RM
from tests.webapp.rewards.test_reward_model_runs import pairs_jsonl as rm_pairs
from webapp.experiments.models import Run, RunKind
from webapp.experiments.services import run_launch
from webapp.rewards.services import pair_set_import

pytestmark = pytest.mark.django_db


def test_the_copy_launches_after_its_original_was_deleted(client, project, sent):
    pair_set = pair_set_import(project=project, name="seed", content=rm_pairs())
    original = run_launch(project=project, user=owner(project), name="rm", kind=RunKind.REWARD_MODEL,
                          config={**TINY_RM, "margin": 0.5, "data": {"source": "pairs", "pair_set": pair_set.id}})
    url = reverse("rewards:train", args=[project.id]) + f"?from={original.id}"
    page = client.get(url)
    assert page.status_code == 200
    config = original.config
    Run.objects.filter(pk=original.pk).delete()

    response = client.post(url, unchanged(page.context["form"]))
    assert response.status_code == 302, response.status_code
    copy = Run.objects.get(project=project)
    assert copy.name == "rm (copy)" and copy.config == config


def test_a_from_of_another_kind_still_answers_404_on_post(client, project):
    pair_set = pair_set_import(project=project, name="seed", content=rm_pairs())
    original = run_launch(project=project, user=owner(project), name="rm", kind=RunKind.REWARD_MODEL,
                          config={**TINY_RM, "data": {"source": "pairs", "pair_set": pair_set.id}})
    url = reverse("experiments:new_dpo", args=[project.id]) + f"?from={original.id}"
    assert client.post(url, {"name": "x"}).status_code == 404
    assert Run.objects.count() == 1
