"""Per-project roles on every page: non-members get 404, annotators only see annotation."""

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_dataset, make_project, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    owner_a, annotator_a, owner_b = make_user(), make_user(), make_user()
    a = make_project("A", owner=owner_a, annotator=annotator_a)
    b = make_project("B", owner=owner_b)
    return {"a": a, "b": b, "owner_a": owner_a, "annotator_a": annotator_a, "owner_b": owner_b,
            "dataset_b": make_dataset(b), "dataset_a": make_dataset(a)}


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)


def test_anonymous_user_is_sent_to_login(client, world):
    response = client.get(reverse("projects:overview", args=[world["a"].id]))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


@pytest.mark.parametrize("name", ["projects:overview", "datasets:list", "datasets:import"])
def test_annotator_of_a_gets_404_on_project_b_pages(client, world, name):
    login(client, world["annotator_a"])
    assert client.get(reverse(name, args=[world["b"].id])).status_code == 404


def test_owner_of_a_gets_404_on_a_dataset_of_b_even_through_a(client, world):
    login(client, world["owner_a"])
    url = reverse("datasets:detail", args=[world["a"].id, world["dataset_b"].id])
    assert client.get(url).status_code == 404
    url = reverse("datasets:detail", args=[world["b"].id, world["dataset_b"].id])
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("name", ["datasets:list", "datasets:import"])
def test_annotator_cannot_open_research_pages_of_their_own_project(client, world, name):
    login(client, world["annotator_a"])
    assert client.get(reverse(name, args=[world["a"].id])).status_code == 403


def test_project_list_shows_only_own_projects(client, world):
    login(client, world["annotator_a"])
    body = client.get(reverse("projects:list")).content.decode()
    assert ">A<" in body and ">B<" not in body


def test_owner_sees_research_pages(client, world):
    login(client, world["owner_a"])
    assert client.get(reverse("datasets:list", args=[world["a"].id])).status_code == 200
    assert client.get(reverse("datasets:detail", args=[world["a"].id, world["dataset_a"].id])).status_code == 200
