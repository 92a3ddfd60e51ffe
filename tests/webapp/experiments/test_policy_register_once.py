"""Register sent twice (a double click) registers the policy once and answers as the first did;
the name taken by another model, or by someone else, is still refused."""

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_user
from webapp.experiments.models import PolicyModel
from webapp.experiments.policies import policy_create

pytestmark = pytest.mark.django_db

SMOL = {"name": "smol", "source": "builtin", "builtin": "smollm2-135m-instruct"}


@pytest.fixture
def researcher(client):
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    client.user = user
    return project


def test_the_same_registration_twice_registers_once_and_both_answers_lead_to_the_list(client, researcher):
    url = reverse("policies:new", args=[researcher.id])
    first, second = client.post(url, SMOL), client.post(url, {**SMOL, "name": " SMOL "})
    assert first.status_code == second.status_code == 302
    assert second.url == reverse("policies:list", args=[researcher.id])
    assert PolicyModel.objects.filter(project=researcher).count() == 1
    assert "Registered policy “smol”." in client.get(second.url).content.decode()


def test_the_same_tiny_registration_twice_registers_once(client, researcher):
    url = reverse("policies:new", args=[researcher.id])
    for _ in range(2):
        assert client.post(url, {"name": "tiny", "source": "tiny"}).status_code == 302
    assert PolicyModel.objects.filter(project=researcher).count() == 1


def test_the_name_of_another_model_or_of_someone_elses_policy_is_still_refused(client, researcher):
    url = reverse("policies:new", args=[researcher.id])
    assert client.post(url, SMOL).status_code == 302
    response = client.post(url, {"name": "smol", "source": "tiny"})
    assert response.status_code == 400
    assert response.context["form"].errors["name"] == ["a policy named 'smol' already exists in this project"]
    policy_create(project=researcher, user=make_user(), name="theirs", source="builtin",
                  reference="smollm2-135m-instruct")
    response = client.post(url, {**SMOL, "name": "theirs"})
    assert response.status_code == 400 and "already exists" in str(response.context["form"].errors["name"])
    assert PolicyModel.objects.filter(project=researcher).count() == 2
