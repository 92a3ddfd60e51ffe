"""The "Tasks from a run" and "Compare two runs blind" forms answer a failed submission with 400,
the form again and what is wrong, nothing made; they answered 200, which a script, a monitor or
a test client read as done (as the import forms did, a13f013). A success still redirects."""

import pytest
from django.urls import reverse

from tests.factories import make_dataset, make_project, make_run, make_user
from tests.webapp.feedback.conftest import login
from tests.webapp.feedback.test_head_to_head import evaluated
from webapp.experiments.models import Trajectory
from webapp.feedback.models import ComparisonTask

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher_project():
    user = make_user()
    return user, make_project(researcher=user)


def run_with_groups(project, name="grpo", groups=2, size=3):
    """A run whose step 0 holds ``groups`` prompt groups of ``size`` different completions."""
    run = make_run(project, name=name)
    for group in range(groups):
        for i in range(size):
            Trajectory.objects.create(run=run, step=0, group_index=group, sample_index=i, prompt_text=f"prompt {group}",
                                      completion=f"completion {group}.{i}", reward=float(i), length=3)
    return run


def from_run_form(run, **changes):
    return {"run": run.pk, "step_min": 0, "step_max": 10, "k": 2, "selection": "random", "max_tasks": 10,
            "required_labels": 1, "seed": 0, "rubric": "", **changes}


def assert_refused_page(response, *words):
    assert response.status_code == 400
    body = response.content.decode()
    for word in words:
        assert word in body, word
    assert '<form method="post"' in body and "csrfmiddlewaretoken" in body  # the form, to try again
    assert not ComparisonTask.objects.exists()


# ---------------------------------------------------------------- tasks from a run

@pytest.mark.parametrize("changes, words", [
    ({"step_min": 5, "step_max": 1}, ["Nothing was created: the step range must go from a step"]),
    ({"k": 4}, ["Nothing was created: k is 4, but the run&#x27;s unused prompt groups", "choose k ≤ 3"]),
    ({"step_min": 1}, ["Nothing was created: the run stored no completions in steps 1–10"]),
])
def test_tasks_from_a_run_refused_by_the_service_answer_400_with_the_reason(client, researcher_project, changes,
                                                                             words):
    user, project = researcher_project
    run = run_with_groups(project)
    response = login(client, user).post(reverse("feedback:task_from_run", args=[project.id]),
                                        from_run_form(run, **changes))
    assert_refused_page(response, *words)


def test_tasks_from_a_run_with_a_bad_field_answer_400_naming_it(client, researcher_project):
    user, project = researcher_project
    run = run_with_groups(project)
    response = login(client, user).post(reverse("feedback:task_from_run", args=[project.id]),
                                        from_run_form(run, k=1))
    assert_refused_page(response, "Ensure this value is greater than or equal to 2.")
    assert response.context["form"].errors == {"k": ["Ensure this value is greater than or equal to 2."]}


def test_tasks_from_another_project_s_run_answer_400_and_make_nothing(client, researcher_project):
    user, project = researcher_project
    theirs = run_with_groups(make_project(researcher=make_user()), name="theirs")
    run_with_groups(project)
    response = login(client, user).post(reverse("feedback:task_from_run", args=[project.id]), from_run_form(theirs))
    assert_refused_page(response)
    assert list(response.context["form"].errors) == ["run"]


def test_an_empty_post_to_tasks_from_a_run_names_the_fields_it_lacks(client, researcher_project):
    user, project = researcher_project
    run_with_groups(project)
    response = login(client, user).post(reverse("feedback:task_from_run", args=[project.id]), {})
    assert_refused_page(response, "This field is required.")
    assert {"run", "step_min", "k"} <= set(response.context["form"].errors)


def test_tasks_from_a_run_that_succeed_still_redirect(client, researcher_project):
    user, project = researcher_project
    run = run_with_groups(project)
    url = reverse("feedback:task_from_run", args=[project.id])
    assert login(client, user).get(url).status_code == 200
    response = client.post(url, from_run_form(run))
    assert response.status_code == 302 and response["Location"] == reverse("feedback:tasks", args=[project.id])
    assert ComparisonTask.objects.filter(project=project).count() == 2
    again = client.post(url, from_run_form(run))  # every group is in a task now
    assert again.status_code == 400 and "every one is in a task already" in again.content.decode()
    assert ComparisonTask.objects.filter(project=project).count() == 2


# ---------------------------------------------------------------- two runs, blind

@pytest.fixture
def two_runs(researcher_project):
    user, project = researcher_project
    dataset = make_dataset(project, n=2)
    return user, project, evaluated(project, dataset, "base"), evaluated(project, dataset, "tuned")


def head_to_head_form(run_a, run_b, **changes):
    return {"run_a": run_a.pk, "run_b": run_b.pk, "max_tasks": 10, "required_labels": 1, "seed": 0, "rubric": "",
            **changes}


def test_a_head_to_head_of_a_run_with_itself_answers_400_with_the_reason(client, two_runs):
    user, project, base, _ = two_runs
    response = login(client, user).post(reverse("feedback:task_head_to_head", args=[project.id]),
                                        head_to_head_form(base, base))
    assert_refused_page(response, "Nothing was created: choose two different runs")


def test_a_head_to_head_with_a_bad_field_answers_400_naming_it(client, two_runs):
    user, project, base, tuned = two_runs
    response = login(client, user).post(reverse("feedback:task_head_to_head", args=[project.id]),
                                        head_to_head_form(base, tuned, required_labels=0))
    assert_refused_page(response, "Ensure this value is greater than or equal to 1.")
    assert list(response.context["form"].errors) == ["required_labels"]


def test_an_empty_post_to_the_head_to_head_names_the_fields_it_lacks(client, two_runs):
    user, project, _, _ = two_runs
    response = login(client, user).post(reverse("feedback:task_head_to_head", args=[project.id]), {})
    assert_refused_page(response, "This field is required.")
    assert {"run_a", "run_b", "max_tasks"} <= set(response.context["form"].errors)


def test_a_head_to_head_that_succeeds_still_redirects_and_a_repeat_answers_400(client, two_runs):
    user, project, base, tuned = two_runs
    url = reverse("feedback:task_head_to_head", args=[project.id])
    response = login(client, user).post(url, head_to_head_form(base, tuned))
    assert response.status_code == 302 and ComparisonTask.objects.filter(project=project).count() == 2
    again = client.post(url, head_to_head_form(base, tuned))
    assert again.status_code == 400
    assert "Nothing was created: “base” and “tuned” answered no prompt in common" in again.content.decode()
    assert ComparisonTask.objects.filter(project=project).count() == 2
