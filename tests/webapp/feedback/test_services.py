"""Rubrics and comparison tasks: creation, versioning, import and building from runs."""

import json

import pytest

from tests.factories import make_project, make_rubric, make_run
from webapp.experiments.models import Trajectory
from webapp.feedback.errors import FeedbackError
from webapp.feedback.models import Candidate, ComparisonTask, Rubric
from webapp.feedback.parsing import TaskImportError
from webapp.feedback.services import (
    comparison_task_set_gold, comparison_tasks_from_run, comparison_tasks_import_jsonl, rubric_create, rubric_update,
)

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- rubrics

def test_rubric_create_stores_version_one_with_its_criteria():
    project = make_project()
    rubric = rubric_create(project=project, name="Quality", criteria=[
        {"name": "Correct", "scale": "binary", "weight": 2}, {"name": "Clear", "description": "**short**", "scale": "ten"}])
    version = rubric.latest_version()
    assert version.number == 1
    assert [(c.name, c.scale, c.weight) for c in version.criteria.all()] == [("Correct", "binary", 2.0), ("Clear", "ten", 1.0)]


@pytest.mark.parametrize("criteria, message", [
    ([], "at least one criterion"),
    ([{"name": ""}], "has no name"),
    ([{"name": "A"}, {"name": "A"}], "used twice"),
    ([{"name": "A", "weight": 0}], "positive weight"),
    ([{"name": "A", "weight": "heavy"}], "not a number"),
    ([{"name": "A", "weight": 1e308}, {"name": "B", "weight": 1e308}], "the most is 1e\\+06"),  # the sum overflowed
    ([{"name": "A", "weight": float("inf")}], "the most is"),
    ([{"name": "A", "scale": "1-7"}], "unknown scale"),
])
def test_rubric_create_refuses_bad_criteria_and_stores_nothing(criteria, message):
    project = make_project()
    with pytest.raises(FeedbackError, match=message):
        rubric_create(project=project, name="R", criteria=criteria)
    assert not Rubric.objects.filter(project=project).exists()


def test_rubric_update_with_new_criteria_creates_a_new_version():
    project = make_project()
    rubric = make_rubric(project)
    version = rubric_update(rubric=rubric, name=rubric.name, description="", criteria=[{"name": "Helpful", "scale": "ten"}])
    assert version.number == 2
    assert [c.name for c in rubric.latest_version().criteria.all()] == ["Helpful"]
    assert [c.name for c in rubric.versions.get(number=1).criteria.all()] == ["Correct", "Clear"]


def test_rubric_update_with_same_criteria_keeps_the_version():
    project = make_project()
    rubric = make_rubric(project)
    criteria = [{"name": c.name, "description": c.description, "weight": c.weight, "scale": c.scale}
                for c in rubric.latest_version().criteria.all()]
    version = rubric_update(rubric=rubric, name="Renamed", description="d", criteria=criteria)
    assert version.number == 1
    rubric.refresh_from_db()
    assert rubric.name == "Renamed"


# ---------------------------------------------------------------- JSONL import

def _jsonl(*rows) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows)


def test_import_creates_tasks_with_candidates_in_order():
    project = make_project()
    rubric = make_rubric(project)
    tasks = comparison_tasks_import_jsonl(project=project, required_labels=3, rubric=rubric, content=_jsonl(
        {"prompt": "2+2?", "completions": ["4", "5"]},
        {"prompt": [{"role": "user", "content": "Hi"}], "completions": ["a", "b", "c"], "gold_ranking": [[2], [0, 1]]},
    ))
    assert len(tasks) == 2
    first, second = ComparisonTask.objects.filter(project=project).order_by("id")
    assert [c.text for c in first.candidates.all()] == ["4", "5"]
    assert first.required_labels == 3 and first.rubric_version == rubric.latest_version()
    assert second.prompt_messages == [{"role": "user", "content": "Hi"}]
    assert second.is_gold and second.gold_ranking == [[2], [0, 1]]


def test_import_reports_every_bad_line_by_number_and_imports_nothing():
    project = make_project()
    content = _jsonl(
        {"prompt": "ok", "completions": ["a", "b"]},
        "{not json",
        {"prompt": "one", "completions": ["only one"]},
        "",
        {"prompt": "x", "completions": ["a", "b"], "gold_ranking": [[0], [0]]},
        {"prompt": "x", "completions": ["a", "b"], "extra": 1},
    )
    with pytest.raises(TaskImportError) as caught:
        comparison_tasks_import_jsonl(project=project, content=content)
    assert [n for n, _ in caught.value.errors] == [2, 3, 5, 6]
    assert "2 to 10 completions" in dict(caught.value.errors)[3]
    assert not ComparisonTask.objects.filter(project=project).exists()


def test_import_refuses_a_task_whose_completions_are_all_the_same_text():
    project = make_project()
    content = _jsonl({"prompt": "q", "completions": ["a", "b", "a"]}, {"prompt": "q", "completions": ["a", "a"]},
                     {"prompt": "q", "completions": ["x", "x", "x"]})
    with pytest.raises(TaskImportError) as caught:
        comparison_tasks_import_jsonl(project=project, content=content)
    assert [n for n, _ in caught.value.errors] == [2, 3]
    assert "all the same text; there is nothing to choose between" in dict(caught.value.errors)[2]
    assert not ComparisonTask.objects.filter(project=project).exists()


def test_import_refuses_another_projects_rubric():
    project, other = make_project(), make_project()
    with pytest.raises(FeedbackError, match="another project"):
        comparison_tasks_import_jsonl(project=project, rubric=make_rubric(other),
                                      content=_jsonl({"prompt": "p", "completions": ["a", "b"]}))


def test_set_gold_validates_the_ranking():
    project = make_project()
    [task] = comparison_tasks_import_jsonl(project=project, content=_jsonl({"prompt": "p", "completions": ["a", "b"]}))
    with pytest.raises(FeedbackError):
        comparison_task_set_gold(task=task, gold_ranking=[[0, 1]])
    comparison_task_set_gold(task=task, gold_ranking=[1, 0])
    task.refresh_from_db()
    assert task.is_gold and task.gold_ranking == [[1], [0]]


# ---------------------------------------------------------------- from a run's trajectories

def _trajectories(run, groups: dict[tuple[int, int], list[float]]):
    for (step, group), rewards in groups.items():
        for i, reward in enumerate(rewards):
            Trajectory.objects.create(run=run, step=step, group_index=group, sample_index=i, prompt_text=f"prompt {step}.{group}",
                                      completion=f"completion {step}.{group}.{i}", reward=reward, length=3)


def test_from_run_random_takes_k_completions_of_one_group_per_task():
    project = make_project()
    run = make_run(project)
    _trajectories(run, {(0, 0): [0, 1, 0.5, 0.2], (0, 1): [1, 1, 1, 1], (1, 0): [0, 0, 1, 1], (5, 0): [0, 1, 2, 3]})
    tasks = comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=1, k=3, selection="random", seed=1)
    assert len(tasks) == 3
    for task in tasks:
        trajectories = [c.trajectory for c in task.candidates.all()]
        assert len(trajectories) == 3
        assert len({(t.step, t.group_index) for t in trajectories}) == 1
        assert task.prompt_text == trajectories[0].prompt_text and task.source_run == run


@pytest.mark.parametrize("row, text, messages", [
    ({"text": "What is 9+1?"}, "What is 9+1?", None),
    ({"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is 9+1?"}]},
     "system: Be terse.\n\nuser: What is 9+1?",
     [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is 9+1?"}]),
])
def test_from_run_the_prompt_is_the_datasets_not_the_templated_text_the_model_was_fed(row, text, messages):
    from webapp.datasets.parsing import PromptRow
    from webapp.datasets.services import dataset_create

    project = make_project()
    dataset = dataset_create(project=project, name="d", rows=[PromptRow(**row)])
    run = make_run(project, dataset=dataset)
    for i in range(2):
        Trajectory.objects.create(run=run, step=0, group_index=0, sample_index=i, prompt=dataset.prompts.get(),
                                  prompt_text="<|user|>What is 9+1?<|im_end|><|assistant|>", completion=f"{i}",
                                  reward=i, length=1)
    [task] = comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=0, k=2)
    assert (task.prompt_text, task.prompt_messages) == (text, messages)


def test_from_run_spread_prefers_the_widest_groups_and_their_extremes():
    project = make_project()
    run = make_run(project)
    _trajectories(run, {(0, 0): [0.4, 0.5, 0.6], (0, 1): [0.0, 0.9, 0.3, 1.0], (0, 2): [0.5, 0.5]})
    [task] = comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=0, k=2, selection="spread",
                                       max_tasks=1)
    rewards = sorted(c.metadata["reward"] for c in task.candidates.all())
    assert rewards == [0.0, 1.0]


def test_from_run_skips_groups_already_used():
    project = make_project()
    run = make_run(project)
    _trajectories(run, {(0, 0): [0, 1], (0, 1): [0, 1]})
    comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=0, k=2, max_tasks=1)
    comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=0, k=2, max_tasks=5)
    assert ComparisonTask.objects.filter(project=project).count() == 2
    with pytest.raises(FeedbackError, match="no unused prompt group in steps 0–0: every one is in a task already"):
        comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=0, k=2)
    with pytest.raises(FeedbackError, match="the run stored no completions in steps 5–9"):
        comparison_tasks_from_run(project=project, run=run, step_min=5, step_max=9, k=2)


def test_a_k_larger_than_the_runs_groups_is_named_on_k():
    project = make_project()
    run = make_run(project)
    _trajectories(run, {(0, 0): [0, 1, 0.5], (1, 0): [0, 1]})
    with pytest.raises(FeedbackError) as info:
        comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=2**31 - 1, k=5)
    assert info.value.field == "k"
    assert info.value.message == ("k is 5, but the run's unused prompt groups have at most 3 different completions "
                                  "each: choose k ≤ 3")
    with pytest.raises(FeedbackError, match="groups in steps 1–1 have at most 2"):
        comparison_tasks_from_run(project=project, run=run, step_min=1, step_max=1, k=3)
    assert not ComparisonTask.objects.exists()


def test_from_run_puts_identical_completions_side_by_side_never():
    project = make_project()
    run = make_run(project)
    for i, text in enumerate(["same", "same", "other", "same"]):  # a low temperature's group
        Trajectory.objects.create(run=run, step=0, group_index=0, sample_index=i, prompt_text="p", completion=text,
                                  reward=i, length=1)
    for i in range(2):
        Trajectory.objects.create(run=run, step=0, group_index=1, sample_index=i, prompt_text="q", completion="dup",
                                  reward=0, length=1)
    for seed in range(5):
        ComparisonTask.objects.all().delete()
        [task] = comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=0, k=2, seed=seed,
                                           max_tasks=5)
        assert sorted(c.text for c in task.candidates.all()) == ["other", "same"]
    with pytest.raises(FeedbackError, match="every completion is the same text: there is nothing to compare"):
        comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=0, k=2)  # group 1 is left
    ComparisonTask.objects.all().delete()
    with pytest.raises(FeedbackError, match="at most 2 different completions"):
        comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=0, k=3)


def test_from_run_refuses_another_projects_run():
    project, other = make_project(), make_project()
    with pytest.raises(FeedbackError, match="another project"):
        comparison_tasks_from_run(project=project, run=make_run(other), step_min=0, step_max=1)
    assert not Candidate.objects.exists()


def test_from_run_refuses_a_backwards_step_range():
    project = make_project()
    with pytest.raises(FeedbackError, match="step range"):
        comparison_tasks_from_run(project=project, run=make_run(project), step_min=5, step_max=1)
