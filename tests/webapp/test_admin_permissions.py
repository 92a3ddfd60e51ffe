"""The admin leaves launches and deletions with rules to the services (pages and API)."""

import pytest
from django.contrib.admin.sites import site

from webapp.datasets.models import PromptDataset
from webapp.experiments.models import PolicyModel, Run
from webapp.rewards.models import RewardModel


@pytest.mark.parametrize("model, permission", [
    (Run, "has_add_permission"), (Run, "has_delete_permission"),
    (PromptDataset, "has_delete_permission"), (RewardModel, "has_delete_permission"),
    (PolicyModel, "has_add_permission"), (PolicyModel, "has_delete_permission"),
])
def test_the_admin_cannot(rf, model, permission):
    admin = site._registry[model]
    request = rf.get("/")
    args = (request,) if permission == "has_add_permission" else (request, None)
    assert getattr(admin, permission)(*args) is False
