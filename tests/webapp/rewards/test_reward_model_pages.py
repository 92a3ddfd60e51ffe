"""What the reward-model pages print: metrics looked up by key, and the run header."""

import re

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_user
from webapp.rewards.models import RewardModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher(client):
    user = make_user()
    project = make_project(owner=user)
    assert client.login(username=user.username, password=PASSWORD)
    project.user = user
    return project


def cells(body: str, name: str) -> list[str]:
    """The text of each cell in the reward model's row."""
    row = re.search(rf"<tr>\s*<td>{re.escape(name)}</td>(.*?)</tr>", body, re.DOTALL).group(1)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]


def test_the_list_looks_metrics_up_by_key_not_by_their_order(client, researcher):
    """jsonb stores keys shortest first, so eval/records came before train/records: '/ 1 held out5 train'."""
    RewardModel.objects.create(project=researcher, name="full", backbone="tiny", path="/m/1", metrics={
        "train/records": 5, "eval/records": 1, "eval/accuracy": 0.75, "eval/loss": 0.5, "train/loss": 0.25})
    RewardModel.objects.create(project=researcher, name="train-only", backbone="tiny", metrics={"train/records": 8})
    RewardModel.objects.create(project=researcher, name="none", backbone="tiny")
    body = client.get(reverse("rewards:list", args=[researcher.id])).content.decode()
    # Backbone, members, held-out accuracy, held-out loss, records, ...
    assert cells(body, "full")[2:5] == ["0.750", "0.5000", "5 train · 1 held out"]
    assert cells(body, "train-only")[2:5] == ["", "", "8 train"]
    assert cells(body, "none")[2:5] == ["", "", ""]

