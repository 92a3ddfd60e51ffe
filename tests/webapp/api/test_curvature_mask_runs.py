"""CAPO's curvature mask over the REST API: algorithm.curvature_mask and its knobs flow through
the launch's config as the engine validates it."""

import pytest

from tests.factories import make_dataset, make_policy
from tests.webapp.api.test_runs import post, project  # noqa: F401 (project: a fixture, the owner's project)
from webapp.experiments.models import Run

pytestmark = pytest.mark.django_db


def _body(project, algorithm):
    return {"name": "capo", "kind": "policy", "dataset": make_dataset(project).id,
            "policy": make_policy(project).id,
            "config": {"algorithm": algorithm, "train": {"total_steps": 2}}}


def test_a_policy_run_takes_the_curvature_mask(api, project, sent):
    response = post(api, f"/api/v1/projects/{project.id}/runs/", _body(
        project, {"curvature_mask": "capo", "curvature_kl_threshold": 0.001}))
    assert response.status_code == 201, response.json()
    algorithm = response.json()["config"]["algorithm"]
    assert algorithm["curvature_mask"] == "capo" and algorithm["curvature_kl_threshold"] == 0.001
    assert "curvature_top_k" not in algorithm  # at its default, as in any config


@pytest.mark.parametrize("algorithm, field", [
    ({"curvature_mask": "capo", "curvature_kl_threshold": 0}, "config.algorithm.curvature_kl_threshold"),
    ({"curvature_mask": "capo", "curvature_objective_threshold": "big"},
     "config.algorithm.curvature_objective_threshold"),
    ({"curvature_mask": "CAPO"}, "config.algorithm.curvature_mask"),
    ({"curvature_top_k": 5000}, "config.algorithm.curvature_top_k"),
])
def test_a_bad_curvature_setting_answers_400_on_its_field_and_stores_nothing(api, project, algorithm, field):
    response = post(api, f"/api/v1/projects/{project.id}/runs/", _body(project, algorithm))
    assert response.status_code == 400, response.json()
    assert list(response.json()["error"]["fields"]) == [field]
    assert not Run.objects.exists()
