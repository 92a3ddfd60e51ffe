"""Names people give things must be something a reader can see, on one line, in stored order."""

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from tests.factories import make_project, make_user
from webapp.accounts.errors import AccountError
from webapp.accounts.models import ApiToken
from webapp.accounts.services import api_token_create
from webapp.core.names import name_problem, name_strip
from webapp.datasets.errors import DatasetError
from webapp.datasets.models import PromptDataset
from webapp.datasets.parsing import PromptRow
from webapp.datasets.services import dataset_create
from webapp.experiments.errors import PolicyError, RunError
from webapp.experiments.models import PolicyModel, Run, RunKind
from webapp.experiments.policies import policy_create
from webapp.experiments.services import run_create
from webapp.feedback.errors import FeedbackError
from webapp.feedback.models import Rubric
from webapp.feedback.services import rubric_create
from webapp.projects.errors import ProjectError
from webapp.projects.models import Project
from webapp.projects.services import project_create
from webapp.rewards.errors import RewardModelError
from webapp.rewards.models import PreferencePairSet
from webapp.rewards.services import pair_set_import

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"  # zero-width space, non-joiner, joiner, word joiner, BOM
INVISIBLE = [ZERO_WIDTH, "\u200b", "\u0301\u0308", " \u3000\u200b ", "\u3164\u3164", "\u2800", "\uffa0\u115f\u1160"]
BIDI_SPOOF = "invoice\u202egpj.exe"  # shows as "invoiceexe.jpg"


@pytest.mark.parametrize("name", INVISIBLE)
def test_a_name_of_invisible_characters_has_no_visible_character(name):
    assert "no visible character" in name_problem(name_strip(name) or name)


@pytest.mark.parametrize("name", [BIDI_SPOOF, "a\u2066b\u2069", "\u202bx"])
def test_a_name_with_a_text_direction_control_is_refused_naming_it(name):
    assert "text-direction control (U+20" in name_problem(name)


@pytest.mark.parametrize("name", ["two\nlines", "tab\there", "nul\x00"])
def test_a_name_with_a_control_character_is_refused(name):
    assert "control character (U+00" in name_problem(name)


@pytest.mark.parametrize("name", ["GRPO run 3", "Ölçüm", "数学", "👩\u200d💻 team", "-", "α=0.1", "عربي"])
def test_ordinary_names_pass(name):
    assert name_problem(name) is None


def test_strip_trims_whitespace_and_zero_width_characters_at_the_ends_only():
    assert name_strip("\ufeff\u200b  run 1\u200b \u2060") == "run 1"
    assert name_strip("a\u200bb") == "a\u200bb"
    assert name_strip(None) == ""


@pytest.fixture
def world(db):
    user = make_user()
    return {"user": user, "project": make_project(owner=user)}


def _run(world, name):
    return run_create(project=world["project"], user=world["user"], name=name, kind=RunKind.EXTERNAL,
                      config={"trainer": "trl"})


def _dataset(world, name):
    return dataset_create(project=world["project"], name=name, rows=[PromptRow(text="2+2?")])


def _rubric(world, name):
    return rubric_create(project=world["project"], name=name, criteria=[{"name": "Correct", "scale": "binary"}])


def _pairs(world, name):
    return pair_set_import(project=world["project"], name=name,
                           content='{"prompt": "p", "chosen": "a", "rejected": "b"}')


def _policy(world, name):
    return policy_create(project=world["project"], user=world["user"], name=name, source="tiny")


def _project(world, name):
    return project_create(name=name, owner=world["user"])


def _token(world, name):
    return api_token_create(user=world["user"], name=name)[0]


CREATORS = [
    (_run, RunError, Run), (_dataset, DatasetError, PromptDataset), (_rubric, FeedbackError, Rubric),
    (_pairs, RewardModelError, PreferencePairSet), (_policy, PolicyError, PolicyModel),
    (_project, ProjectError, Project), (_token, AccountError, ApiToken),
]
IDS = [c[0].__name__.strip("_") for c in CREATORS]


@pytest.mark.parametrize(("create", "error", "model"), CREATORS, ids=IDS)
@pytest.mark.parametrize("name", ["\u0301\u0308", BIDI_SPOOF, "line\nbreak"])
def test_every_service_refuses_an_unreadable_name_and_stores_nothing(world, create, error, model, name):
    before = model.objects.count()
    with pytest.raises(error, match="the name (has no visible|holds a)"):
        create(world, name)
    assert model.objects.count() == before


@pytest.mark.parametrize(("create", "error", "model"), [c for c in CREATORS if c[0] is not _token],
                         ids=[i for i in IDS if i != "token"])
def test_a_name_of_zero_width_characters_is_an_empty_name(world, create, error, model):
    """Stripped at both ends like spaces, nothing is left: refused as a missing name."""
    before = model.objects.count()
    with pytest.raises((error, ValidationError), match="(needs a name|cannot be blank)"):  # a rubric's full_clean
        create(world, ZERO_WIDTH)
    assert model.objects.count() == before


def test_a_token_named_with_zero_width_characters_only_gets_the_default_name(world):
    assert _token(world, ZERO_WIDTH).name == "token"


@pytest.mark.parametrize(("create", "error", "model"), CREATORS, ids=IDS)
def test_every_service_stores_the_name_without_invisible_ends(world, create, error, model):
    made = create(world, "\u200b eval set 2\ufeff ")
    made.refresh_from_db()
    assert made.name == "eval set 2"


def test_the_api_answers_400_naming_the_name_field(world):
    _, raw = api_token_create(user=world["user"], name="tests")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api.post(f"/api/v1/projects/{world['project'].id}/runs/",
                        {"name": "\u200b\u0301", "kind": "external", "config": {"trainer": "trl"}}, format="json")
    assert response.status_code == 400
    assert "no visible character" in response.json()["error"]["fields"]["name"][0]
    assert not Run.objects.exists()
