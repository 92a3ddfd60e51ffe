import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from webapp.core.demo import DEMO_PROJECT, arithmetic_problems, seed_demo
from webapp.datasets.models import Prompt
from webapp.experiments.models import PolicyModel
from webapp.feedback.models import Rubric

pytestmark = pytest.mark.django_db


def test_arithmetic_problems_have_correct_integer_references():
    rows = arithmetic_problems(n=12)
    first = rows[0].messages[-1]["content"]
    # "{name} has {a} apples and buys {b} more": the reference is a + b
    numbers = [int(w) for w in first.replace("?", " ").split() if w.isdigit()]
    assert int(rows[0].reference) == numbers[0] + numbers[1]
    assert all(r.reference.lstrip("-").isdigit() for r in rows)


def test_seed_creates_user_project_dataset_rubric_and_policies_once():
    project, password = seed_demo()
    assert password and len(password) >= 12
    user = get_user_model().objects.get(username="demo")
    assert user.check_password(password)
    assert project.name == DEMO_PROJECT
    assert Prompt.objects.filter(dataset__project=project).count() == 64
    assert Rubric.objects.get(project=project).latest_version().criteria.count() == 3
    assert PolicyModel.objects.filter(project=project, source="builtin", reference="smollm2-135m-instruct").exists()
    again, second_password = seed_demo()
    assert again == project and second_password is None
    assert get_user_model().objects.get(username="demo").check_password(password), "password is not changed"


def test_seed_command_prints_the_generated_login_once(capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    call_command("seed_demo")
    second = capsys.readouterr().out
    assert "Login: demo / " in first
    assert "Login: demo (password shown when it was created" in second
