"""Review: a swept real-number setting (optim.lr) given as a JSON whole number past a float's
range (1 followed by 400 zeros) is refused on the sweep field, launching nothing, where float()
raised OverflowError and the sweep API and the launch page answered 500."""

import json

import pytest

from tests.factories import make_dataset, make_policy, make_project
from tests.webapp.experiments.test_sweeps import new_url, parse, sweep_data
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run

pytestmark = pytest.mark.django_db

HUGE = 10 ** 400  # JSON reads it as a whole number; no float holds it
HUGE_JSON = '{"optim.lr": [1' + "0" * 400 + ", 1e-6]}"


def test_a_whole_number_past_a_floats_range_is_refused_naming_the_setting():
    with pytest.raises(RunError) as refused:
        parse({"optim.lr": [HUGE, 1e-6]})
    assert refused.value.field == "sweep"
    assert "optim.lr" in refused.value.message and "a finite number" in refused.value.message


def test_the_page_says_so_and_launches_nothing(client, project, sent):
    response = client.post(new_url(project), {**sweep_data(project), "sweep": HUGE_JSON})
    assert response.status_code == 400
    assert "a finite number" in " ".join(response.context["form"].errors["sweep"])
    assert not Run.objects.exists() and sent == []


def test_the_api_answers_400_on_sweep_and_launches_nothing(sent):
    from tests.webapp.api.conftest import api_user, token_client

    owner = api_user()
    project = make_project(owner=owner)
    body = json.dumps({"name": "g", "kind": "policy", "policy": make_policy(project).id,
                       "dataset": make_dataset(project).id, "sweep": {}}).replace('"sweep": {}', f'"sweep": {HUGE_JSON}')
    response = token_client(owner).post(f"/api/v1/projects/{project.id}/runs/sweep/", data=body,
                                        content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "sweep" in response.json()["error"]["fields"]
    assert not Run.objects.exists() and sent == []
