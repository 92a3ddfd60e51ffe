"""The New-run form's Curvature mask (algorithm.curvature_mask: none or capo, CAPO) and its
thresholds and top-k."""

import re

import pytest
from django.urls import reverse

from tests.factories import make_dataset, make_policy, tiny_run_form_data
from tests.webapp.experiments.test_knapsack_form import _errors_of, _input, _select
from tests.webapp.experiments.test_mask_truncated_form import project  # noqa: F401 (a fixture: an owner logged in)
from webapp.experiments.models import Run

pytestmark = pytest.mark.django_db

KEYS = {"curvature_mask", "curvature_kl_threshold", "curvature_objective_threshold", "curvature_top_k"}


def _value(field: str) -> float:
    return float(re.search(r'value="([^"]*)"', field).group(1))


def test_the_new_run_form_offers_the_mask_off_with_the_papers_defaults(client, project):
    page = client.get(reverse("experiments:new", args=[project.id])).content.decode()
    select = _select(page, "algorithm__curvature_mask")
    assert re.search(r'<option value="none"[^>]*selected', select)
    assert '<option value="capo"' in select
    assert _value(_input(page, "algorithm__curvature_kl_threshold")) == 1e-4
    assert _value(_input(page, "algorithm__curvature_objective_threshold")) == 0.01
    assert _value(_input(page, "algorithm__curvature_top_k")) == 50
    assert "2510.00819" in page  # the knob's help names the paper


def test_the_form_launches_a_capo_run(client, project):
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    data.update({"algorithm__curvature_mask": "capo", "algorithm__curvature_kl_threshold": "0.001",
                 "algorithm__curvature_objective_threshold": "0.05", "algorithm__curvature_top_k": 0})
    response = client.post(reverse("experiments:new", args=[project.id]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    algorithm = Run.objects.get(project=project).config["algorithm"]
    assert (algorithm["curvature_mask"], algorithm["curvature_kl_threshold"],
            algorithm["curvature_objective_threshold"], algorithm["curvature_top_k"]) == ("capo", 0.001, 0.05, 0)


def test_a_launch_with_the_mask_off_stores_the_config_as_before(client, project):
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    response = client.post(reverse("experiments:new", args=[project.id]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not KEYS & set(Run.objects.get(project=project).config["algorithm"])


@pytest.mark.parametrize("change, field, fragment", [
    ({"algorithm__curvature_kl_threshold": "0"}, "algorithm__curvature_kl_threshold", "must be a number &gt; 0"),
    ({"algorithm__curvature_objective_threshold": "-0.01"}, "algorithm__curvature_objective_threshold",
     "must be a number &gt; 0"),
    ({"algorithm__curvature_top_k": "-1"}, "algorithm__curvature_top_k", "greater than or equal to 0"),
    ({"algorithm__curvature_mask": "kfac"}, "algorithm__curvature_mask", "kfac"),
])
def test_a_bad_value_is_refused_on_its_field_and_launches_nothing(client, project, change, field, fragment):
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    data.update({"algorithm__curvature_mask": "capo", **change})
    response = client.post(reverse("experiments:new", args=[project.id]), data)
    assert response.status_code == 400  # the form shown again with its errors
    assert fragment in _errors_of(response.content.decode(), field)
    assert not Run.objects.filter(project=project).exists()


def test_a_copy_shows_the_mask_of_the_run(client, project):
    data = tiny_run_form_data(make_policy(project), make_dataset(project))
    data.update({"algorithm__curvature_mask": "capo", "algorithm__curvature_kl_threshold": "0.002",
                 "algorithm__curvature_top_k": 20})
    assert client.post(reverse("experiments:new", args=[project.id]), data).status_code == 302
    run = Run.objects.get(project=project)
    page = client.get(reverse("experiments:new", args=[project.id]) + f"?from={run.id}").content.decode()
    assert re.search(r'<option value="capo"[^>]*selected', _select(page, "algorithm__curvature_mask"))
    assert _value(_input(page, "algorithm__curvature_kl_threshold")) == 0.002
    assert _value(_input(page, "algorithm__curvature_top_k")) == 20
