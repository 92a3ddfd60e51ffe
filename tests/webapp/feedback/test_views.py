"""The dashboard pages: the workspace as plain POST and over htmx, roles and project isolation."""

import json
import uuid

import pytest
from django.urls import reverse

from tests.factories import make_project, make_rubric, make_run, make_task, make_user
from tests.webapp.feedback.conftest import login
from webapp.feedback.models import ComparisonTask, PreferenceLabel, Rubric

pytestmark = pytest.mark.django_db


def post_label(client, project, task, **data):
    data.setdefault("submission_key", uuid.uuid4().hex)
    return client.post(reverse("feedback:submit", args=[project.id, task.id]), data, **data.pop("headers", {}))


def test_annotate_page_shows_the_prompt_and_both_completions(client, project, annotator):
    make_task(project, prompt="What is 2+2?", completions=["**four**", "five"])
    response = login(client, annotator).get(reverse("feedback:annotate", args=[project.id]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "What is 2+2?" in body and "<strong>four</strong>" in body and 'name="choice"' in body


def test_plain_post_stores_the_label_and_redirects_to_the_next_task(client, project, annotator):
    task = make_task(project)
    response = post_label(login(client, annotator), project, task, choice="b", critique="B answers", time_spent_ms="1500")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("feedback:annotate", args=[project.id]))
    label = PreferenceLabel.objects.get(task=task)
    assert (label.ranking, label.critique, label.time_spent_ms) == ([[1], [0]], "B answers", 1500)


def test_htmx_post_swaps_in_the_next_task_with_an_undo_offer(client, project, annotator):
    first, second = make_task(project, prompt="first prompt"), make_task(project, prompt="second prompt")
    login(client, annotator).get(reverse("feedback:annotate", args=[project.id]))
    response = post_label(client, project, first, choice="tie", headers={"HTTP_HX_REQUEST": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="workspace"') and "<html" not in body
    assert "second prompt" in body and reverse("feedback:undo", args=[project.id, PreferenceLabel.objects.get().pk]) in body
    assert f'data-task="{second.id}"' in body


def test_a_double_posted_form_stores_one_label(client, project, annotator):
    task = make_task(project, required_labels=2)
    login(client, annotator)
    key = uuid.uuid4().hex
    post_label(client, project, task, choice="a", submission_key=key)
    post_label(client, project, task, choice="a", submission_key=key)
    assert PreferenceLabel.objects.filter(task=task).count() == 1
    assert ComparisonTask.objects.get(pk=task.pk).label_count == 1


def test_ranking_form_with_rank_numbers_and_scores(client, project, annotator):
    rubric = make_rubric(project)
    task = make_task(project, completions=["a", "b", "c"], rubric=rubric)
    correct, clear = rubric.latest_version().criteria.all()
    response = post_label(login(client, annotator), project, task, rank_0="2", rank_1="1", rank_2="2", ranked="on",
                          **{f"score_1_{correct.pk}": "1", f"score_1_{clear.pk}": "5", f"score_0_{clear.pk}": ""})
    assert response.status_code == 302
    label = PreferenceLabel.objects.get()
    assert label.ranking == [[1], [0, 2]]
    assert sorted(label.scores.values_list("candidate__position", "criterion__name", "value")) == [
        (1, "Clear", 5.0), (1, "Correct", 1.0)]


def test_an_untouched_ranking_form_saves_nothing_and_asks_for_an_order(client, project, annotator):
    """The rank numbers start as the shuffled display order: submitting them as they are is no judgement."""
    task = make_task(project, completions=["a", "b", "c", "d"])
    body = login(client, annotator).get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert '<input type="checkbox" name="ranked" id="ranked" required >' in body
    response = post_label(client, project, task, rank_0="1", rank_1="2", rank_2="3", rank_3="4")
    body = response.content.decode()
    assert response.status_code == 200 and "Nothing was saved" in body and "This order is my ranking" in body
    assert "Ranking: put the completions in order" in body
    assert not PreferenceLabel.objects.exists()
    confirmed = post_label(client, project, task, rank_0="1", rank_1="2", rank_2="3", rank_3="4", ranked="on")
    assert confirmed.status_code == 302 and PreferenceLabel.objects.get().ranking == [[0], [1], [2], [3]]


def test_the_ranking_hint_says_random_only_for_tasks_whose_order_was_shuffled(client, project, annotator):
    """Tasks made from runs are shuffled when made; an imported task keeps its file's order, and
    the hint said 'random' for it too."""
    make_task(project, completions=["a", "b", "c"])
    body = login(client, annotator).get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert "the order shown at first is the order the task was imported with" in body
    assert "is random" not in body
    ComparisonTask.objects.update(source_run_name="grpo-1")
    body = client.get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert "the order shown at first is random" in body


def test_a_second_judgement_of_a_labelled_task_is_refused_and_said(client, project, annotator):
    task = make_task(project, required_labels=2)
    login(client, annotator)
    post_label(client, project, task, choice="a")
    first = PreferenceLabel.objects.get()
    page = client.get(reverse("feedback:annotate_task", args=[project.id, task.id])).content.decode()
    assert "a new submission is refused and your first label stands" in page
    response = post_label(client, project, task, choice="b", critique="changed my mind",
                          headers={"HTTP_HX_REQUEST": "true"})
    body = response.content.decode()
    assert response.status_code == 200 and "Nothing was saved: you have labelled this task already" in body
    assert "submission key" not in body  # the API's words; an annotator never sees a key
    stored = PreferenceLabel.objects.get()
    assert (stored.pk, stored.ranking, stored.critique) == (first.pk, [[0], [1]], "")


def test_the_same_form_posted_again_with_another_choice_says_the_first_was_saved(client, project, annotator):
    task = make_task(project, required_labels=2)
    login(client, annotator)
    key = uuid.uuid4().hex
    post_label(client, project, task, choice="a", submission_key=key)
    response = post_label(client, project, task, choice="b", submission_key=key, headers={"HTTP_HX_REQUEST": "true"})
    body = response.content.decode()
    assert "Nothing was saved: this task was saved already" in body and "with another choice, which stands" in body
    assert PreferenceLabel.objects.get().ranking == [[0], [1]]


def test_a_labelled_task_offers_its_undo_only_while_the_window_lasts(client, project, annotator):
    """The notice said 'undo it to change it' long after the 30 s in which an undo is possible."""
    from datetime import timedelta

    task = make_task(project, required_labels=2)
    login(client, annotator)
    post_label(client, project, task, choice="a")
    label = PreferenceLabel.objects.get()
    url = reverse("feedback:annotate_task", args=[project.id, task.id])
    page = client.get(url).content.decode()
    assert "(undo it above to change it)" in page
    assert reverse("feedback:undo", args=[project.id, label.id]) in page
    PreferenceLabel.objects.update(created_at=label.created_at - timedelta(seconds=31))
    page = client.get(url).content.decode()
    assert "the 30 s in which it could be undone have passed" in page
    assert "undo it above" not in page and reverse("feedback:undo", args=[project.id, label.id]) not in page


def test_an_invalid_form_saves_nothing_and_says_why(client, project, annotator):
    task = make_task(project)
    response = post_label(login(client, annotator), project, task)
    assert response.status_code == 200
    assert "Nothing was saved" in response.content.decode()
    assert not PreferenceLabel.objects.exists()


def test_an_invalid_rank_or_score_names_the_candidate_not_the_field(client, project, annotator):
    rubric = make_rubric(project)
    task = make_task(project, completions=["a", "b", "c"], rubric=rubric)
    clear = rubric.latest_version().criteria.get(name="Clear")
    response = post_label(login(client, annotator), project, task, rank_0="1", rank_1="2", rank_2="9",
                          **{f"score_1_{clear.pk}": "7"})
    body = response.content.decode()
    assert "Candidate C: Ensure this value is less than or equal to 3." in body
    assert "Candidate B, Clear: Ensure this value is less than or equal to 5." in body
    assert "rank_2" not in body.split('role="alert"')[1].split("</div>")[0] and f"score_1_{clear.pk}:" not in body
    assert not PreferenceLabel.objects.exists()


def test_skip_moves_on(client, project, annotator):
    task = make_task(project)
    login(client, annotator).get(reverse("feedback:annotate", args=[project.id]))
    response = client.post(reverse("feedback:skip", args=[project.id, task.id]))
    assert response.status_code == 302
    body = client.get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert "Nothing left to label" in body and "except the 1 you skipped" in body
    assert "Show my 1 skipped task again" in body
    response = client.post(reverse("feedback:unskip", args=[project.id]))  # the skipped task comes back
    assert response.status_code == 302
    assert f'action="{reverse("feedback:skip", args=[project.id, task.id])}"' in client.get(
        reverse("feedback:annotate", args=[project.id])).content.decode()


def test_undo_brings_the_task_back(client, project, annotator):
    task = make_task(project)
    post_label(login(client, annotator), project, task, choice="a")
    label = PreferenceLabel.objects.get()
    response = client.post(reverse("feedback:undo", args=[project.id, label.pk]))
    assert response.status_code == 302
    assert not PreferenceLabel.objects.exists()
    assert f'data-task="{task.id}"' in client.get(reverse("feedback:annotate", args=[project.id])).content.decode()


def test_undo_over_htmx_says_the_label_was_withdrawn(client, project, annotator):
    task, _next = make_task(project), make_task(project)
    login(client, annotator).get(reverse("feedback:annotate", args=[project.id]))
    post_label(client, project, task, choice="a", headers={"HTTP_HX_REQUEST": "true"})
    label = PreferenceLabel.objects.get()
    body = client.post(reverse("feedback:undo", args=[project.id, label.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert f'data-task="{task.id}"' in body and not PreferenceLabel.objects.exists()
    assert f'data-announce="Your label on task {task.id} was withdrawn. Task {task.id}: compare two completions."' in body
    assert f"Your label on task {task.id} was withdrawn: label it again." in body


def test_a_refused_undo_over_htmx_is_said_once_not_again_on_the_next_page(client, project, annotator):
    """The workspace swapped in says why; the same error was also queued as a flash message,
    which the annotator met again on whatever page they opened next."""
    from datetime import timedelta

    from django.utils import timezone

    task, _next = make_task(project), make_task(project)
    login(client, annotator).get(reverse("feedback:annotate", args=[project.id]))
    post_label(client, project, task, choice="a", headers={"HTTP_HX_REQUEST": "true"})
    label = PreferenceLabel.objects.get()
    PreferenceLabel.objects.filter(pk=label.pk).update(created_at=timezone.now() - timedelta(seconds=60))
    body = client.post(reverse("feedback:undo", args=[project.id, label.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "can be undone for 30 seconds only" in body and PreferenceLabel.objects.filter(pk=label.pk).exists()
    later = client.get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert "undone for 30 seconds" not in later and 'class="messages"' not in later


def test_another_projects_task_is_404_on_every_annotation_url(client, annotator):
    mine = make_project(annotator=annotator)
    theirs = make_project(annotator=make_user())
    task = make_task(theirs)
    login(client, annotator)
    assert client.get(reverse("feedback:annotate_task", args=[mine.id, task.id])).status_code == 404
    assert client.get(reverse("feedback:annotate_task", args=[theirs.id, task.id])).status_code == 404
    assert post_label(client, mine, task, choice="a").status_code == 404
    assert client.post(reverse("feedback:skip", args=[mine.id, task.id])).status_code == 404
    assert not PreferenceLabel.objects.exists()


@pytest.mark.parametrize("name", ["rubrics", "rubric_create", "tasks", "task_import", "task_from_run", "quality",
                                  "export_preferences", "export_labels"])
def test_researcher_pages_are_403_for_annotators(client, project, annotator, name):
    assert login(client, annotator).get(reverse(f"feedback:{name}", args=[project.id])).status_code == 403


def test_annotators_and_researchers_see_the_annotate_tab(client, project, annotator, researcher):
    url = reverse("projects:overview", args=[project.id])
    body = login(client, annotator).get(url).content.decode()
    assert reverse("feedback:annotate", args=[project.id]) in body and "Start annotating" in body
    assert reverse("feedback:quality", args=[project.id]) not in body
    client.logout()
    body = login(client, researcher).get(url).content.decode()
    assert reverse("feedback:quality", args=[project.id]) in body
    assert login(client, researcher).get(reverse("feedback:annotate", args=[project.id])).status_code == 200


def test_rubric_create_and_edit_through_the_dashboard(client, project, researcher):
    login(client, researcher)
    form = {"name": "Helpfulness", "description": "", "criteria-TOTAL_FORMS": "2", "criteria-INITIAL_FORMS": "0",
            "criteria-0-name": "Correct", "criteria-0-weight": "2", "criteria-0-scale": "binary",
            "criteria-1-name": "", "criteria-1-weight": "1", "criteria-1-scale": "likert5"}
    response = client.post(reverse("feedback:rubric_create", args=[project.id]), form)
    rubric = Rubric.objects.get(project=project)
    assert response.status_code == 302
    form.update({"criteria-1-name": "Concise", "criteria-1-scale": "ten"})
    client.post(reverse("feedback:rubric_edit", args=[project.id, rubric.id]), form)
    assert [(v.number, v.criteria.count()) for v in rubric.versions.order_by("number")] == [(1, 1), (2, 2)]
    page = client.get(reverse("feedback:rubric_detail", args=[project.id, rubric.id])).content.decode()
    assert "Version 2" in page and "Version 1" in page


def test_a_criterion_with_a_description_but_no_name_is_an_error_not_an_empty_row(client, project, researcher):
    login(client, researcher)
    form = {"name": "Helpfulness", "description": "", "criteria-TOTAL_FORMS": "3", "criteria-INITIAL_FORMS": "0",
            "criteria-0-name": "Correct", "criteria-0-weight": "1", "criteria-0-scale": "binary",
            "criteria-1-name": "  ", "criteria-1-description": "Is it polite?", "criteria-1-weight": "1",
            "criteria-1-scale": "likert5",
            "criteria-2-name": "", "criteria-2-description": "", "criteria-2-weight": "1",
            "criteria-2-scale": "likert5"}
    response = client.post(reverse("feedback:rubric_create", args=[project.id]), form)
    assert response.status_code == 200
    assert response.context["formset"].errors[1] == {"name": ["A criterion needs a name."]}
    assert response.context["formset"].errors[2] == {}  # an empty row is still just ignored
    assert "A criterion needs a name." in response.content.decode()
    assert not Rubric.objects.exists()

    # Editing: the same row is refused and the rubric keeps its version; removing it is fine.
    rubric = make_rubric(project, name="Helpfulness")
    url = reverse("feedback:rubric_edit", args=[project.id, rubric.id])
    response = client.post(url, form)
    assert response.context["formset"].errors[1] == {"name": ["A criterion needs a name."]}
    assert rubric.versions.count() == 1
    assert client.post(url, {**form, "criteria-1-DELETE": "on"}).status_code == 302
    assert list(rubric.latest_version().criteria.values_list("name", flat=True)) == ["Correct"]


def test_task_import_page_lists_bad_lines(client, project, researcher):
    from django.core.files.uploadedfile import SimpleUploadedFile

    content = b'{"prompt": "p", "completions": ["a", "b"]}\n{"prompt": "p", "completions": ["a"]}\n'
    response = login(client, researcher).post(reverse("feedback:task_import", args=[project.id]), {
        "file": SimpleUploadedFile("tasks.jsonl", content), "required_labels": "2"})
    body = response.content.decode()
    assert response.status_code == 400
    assert "Nothing was imported" in body and "Line 2:" in body
    assert not ComparisonTask.objects.exists()


@pytest.mark.parametrize("content, words", [
    (b'{"prompt": "p", "completions": ["a\\u0000", "b"]}\n', "Line 1: &#x27;completions[0]&#x27; holds a NUL character"),
    (b'{"prompt": "p", "completions": ["a", "b"]}\n{"prompt": "p", "completions": ["a", "b"], '
     b'"metadata": {"x": NaN}}\n', "Line 2: NaN is not a number"),
    (b"[" * 50_000 + b"]" * 50_000, "Line 1: JSON nested too deeply"),
])
def test_task_import_names_the_line_of_a_value_the_database_cannot_store(client, project, researcher, content,
                                                                           words):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = login(client, researcher).post(reverse("feedback:task_import", args=[project.id]), {
        "file": SimpleUploadedFile("tasks.jsonl", content), "required_labels": "1"})
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not ComparisonTask.objects.exists()


def test_the_annotate_page_ignores_a_last_label_that_is_no_id(client, project, annotator):
    make_task(project)
    response = login(client, annotator).get(reverse("feedback:annotate", args=[project.id]), {"last": "²"})
    assert response.status_code == 200


def test_quality_page_shows_agreement(client, project, annotator, researcher):
    task = make_task(project, required_labels=2)
    post_label(login(client, annotator), project, task, choice="a", time_spent_ms="2000")
    client.logout()
    post_label(login(client, researcher), project, task, choice="a", time_spent_ms="2000")
    body = client.get(reverse("feedback:quality", args=[project.id])).content.decode()
    assert "100%" in body and annotator.username in body


def test_quality_page_sets_each_reward_against_the_labels(client, settings, tmp_path, project, annotator, researcher):
    from webapp.experiments.models import RunStatus, Trajectory
    from webapp.feedback.services import comparison_tasks_from_run

    settings.STEER_CHECKPOINT_DIR = tmp_path
    run = make_run(project, status=RunStatus.SUCCEEDED)
    for sample, (judged, length) in enumerate([(1.0, 0.0), (0.0, 1.0)]):
        Trajectory.objects.create(run=run, step=0, group_index=0, sample_index=sample, prompt_text="2+2?",
                                  completion=f"answer {sample}", rewards={"<b>judge</b>": judged, "length": length},
                                  reward=judged + length / 2, length=2)
    [task] = comparison_tasks_from_run(project=project, run=run, step_min=0, step_max=0, k=2)
    better = task.candidates.get(trajectory__sample_index=0).position  # the one the judge scored 1
    post_label(login(client, annotator), project, task, choice="a" if better == 0 else "b")
    client.logout()
    body = login(client, researcher).get(reverse("feedback:quality", args=[project.id])).content.decode()
    table = body[body.index('id="reward-agreement"'):]
    table = table[:table.index("</table>")]
    rows = table.split("<tr>")[2:]
    assert "total (weighted sum)" in rows[0] and ">1.000<" in rows[0]
    assert "&lt;b&gt;judge&lt;/b&gt;" in rows[1] and ">1.000<" in rows[1]  # model text stays text
    assert ">length<" in rows[2] and ">0.000<" in rows[2]


def test_exports_stream_jsonl(client, project, annotator, researcher):
    task = make_task(project, prompt="p", completions=["good", "bad"])
    post_label(login(client, annotator), project, task, choice="a")
    client.logout()
    response = login(client, researcher).get(reverse("feedback:export_preferences", args=[project.id]))
    assert response.streaming and response["Content-Type"].startswith("application/jsonl")
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in lines] == [("p", "good", "bad")]
    raw = b"".join(client.get(reverse("feedback:export_labels", args=[project.id])).streaming_content).decode()
    assert json.loads(raw)["ranking"] == [[0], [1]]



def test_the_pages_preference_export_of_a_mixed_project_loads_as_one_format(client, project, annotator, researcher,
                                                                               tmp_path):
    """Plain and chat prompts in one project: the page's download (not only the API's) is conversational
    throughout, so ``datasets`` reads message lists of strings rather than a JSON column that turns "4" into 4."""
    datasets = pytest.importorskip("datasets")
    plain = make_task(project, prompt="4", completions=["4", "5"])
    chat = make_task(project, prompt_messages=[{"role": "user", "content": "2+2?"}], completions=["4", "22"])
    for task in (plain, chat):
        post_label(login(client, annotator), project, task, choice="a")
    client.logout()
    response = login(client, researcher).get(reverse("feedback:export_preferences", args=[project.id]))
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(b"".join(response.streaming_content))
    rows = datasets.load_dataset("json", data_files=str(path), split="train")
    message = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
    assert [rows.features[c] for c in ("prompt", "chosen", "rejected")] == [message] * 3
    assert rows[0]["prompt"] == [{"role": "user", "content": "4"}]
    assert (rows[0]["chosen"], rows[0]["rejected"]) == ([{"role": "assistant", "content": "4"}],
                                                        [{"role": "assistant", "content": "5"}])

def test_the_next_task_is_scored_on_its_rubrics_current_criteria(client, project, annotator):
    """The criteria read to check a submission serve the next task when it shares the rubric version."""
    from webapp.feedback.services import rubric_update

    rubric, other = make_rubric(project, name="quality"), make_rubric(project, name="style",
                                                                      criteria=[{"name": "Tone", "scale": "ten"}])
    first, second = make_task(project, rubric=rubric), make_task(project, rubric=rubric)
    third = make_task(project, rubric=other)
    rubric_update(rubric=rubric, name="quality", description="", criteria=[{"name": "Helpful", "scale": "binary"}])
    helpful = rubric.latest_version().criteria.get()
    login(client, annotator).get(reverse("feedback:annotate", args=[project.id]))
    body = post_label(client, project, first, choice="a", headers={"HTTP_HX_REQUEST": "true"},
                      **{f"score_0_{helpful.pk}": "1"}).content.decode()
    assert f'data-task="{second.id}"' in body and "score each on “quality”" in body
    assert f'name="score_1_{helpful.pk}"' in body and "Correct" not in body
    assert PreferenceLabel.objects.get(task=first).scores.get().criterion == helpful
    body = post_label(client, project, second, choice="b", headers={"HTTP_HX_REQUEST": "true"}).content.decode()
    tone = other.latest_version().criteria.get()
    assert f'data-task="{third.id}"' in body and "score each on “style”" in body
    assert f'name="score_0_{tone.pk}"' in body and "Helpful" not in body


def test_submit_and_next_task_stay_within_their_query_budget(client, project, annotator, django_assert_max_num_queries):
    """The hot path of the annotation workspace (bench/annotation_load.md): one POST stores the label
    with its scores and answers with the next task. 16 statements, and 2 transactions that count
    2 each here (savepoints inside the test's transaction); it was 25 + 4."""
    rubric = make_rubric(project)
    tasks = [make_task(project, rubric=rubric, required_labels=2) for _ in range(8)]
    correct, clear = rubric.latest_version().criteria.order_by("position")
    login(client, annotator).get(reverse("feedback:annotate", args=[project.id]))
    for i, task in enumerate(tasks[:5]):  # past the point where a gold task would be due
        scores = {f"score_{p}_{c.pk}": "1" for p in (0, 1) for c in (correct, clear)}
        with django_assert_max_num_queries(20):
            response = post_label(client, project, task, choice="b", headers={"HTTP_HX_REQUEST": "true"}, **scores)
        assert f'data-task="{tasks[i + 1].id}"' in response.content.decode()
    assert PreferenceLabel.objects.filter(annotator=annotator).count() == 5


@pytest.mark.parametrize("metadata", [{"run": "gpt-4", "prompt_id": "q1"}, {"run": {"name": "x"}, "prompt_id": 1},
                                      {"run": 3, "prompt_id": 1}])
def test_an_imported_tasks_own_metadata_is_not_taken_for_compared_runs(client, project, researcher, metadata):
    from webapp.feedback.services import comparison_tasks_import_jsonl

    line = json.dumps({"prompt": "p", "completions": ["a", "b"], "metadata": metadata})
    comparison_tasks_import_jsonl(project=project, content=line)
    response = login(client, researcher).get(reverse("feedback:tasks", args=[project.id]))
    assert response.status_code == 200 and "(blind)" not in response.content.decode()


def test_scores_on_criteria_the_rubric_dropped_while_the_form_was_open_are_refused_not_lost(
        client, project, annotator):
    """The workspace showed the rubric's criteria; a researcher edits the rubric before the
    annotator submits. The scores posted name criteria of the old version: the form must not
    drop them silently and store the label without them."""
    from webapp.feedback.services import rubric_update

    rubric = make_rubric(project, name="quality")
    task = make_task(project, rubric=rubric)
    correct, clear = rubric.latest_version().criteria.order_by("position")
    rubric_update(rubric=rubric, name="quality", description="", criteria=[{"name": "Helpful", "scale": "binary"}])
    login(client, annotator)
    body = post_label(client, project, task, choice="a", headers={"HTTP_HX_REQUEST": "true"},
                      **{f"score_0_{correct.pk}": "1", f"score_1_{clear.pk}": "4"}).content.decode()
    assert not PreferenceLabel.objects.filter(task=task).exists()
    assert "Nothing was saved" in body and "rubric" in body


def test_the_critique_box_takes_as_many_characters_as_a_label_keeps_and_a_longer_one_is_refused(client, project,
                                                                                              annotator):
    """The textarea had no maxlength: a critique over the server's limit (MAX_CRITIQUE_CHARS) was
    typed in full and only refused when submitted."""
    from webapp.feedback.labelling import MAX_CRITIQUE_CHARS

    task = make_task(project)
    body = login(client, annotator).get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert f'<textarea name="critique" rows="2" maxlength="{MAX_CRITIQUE_CHARS}" dir="auto">' in body
    response = post_label(client, project, task, choice="a", critique="x" * (MAX_CRITIQUE_CHARS + 1))
    body = response.content.decode()
    assert response.status_code == 200 and "Nothing was saved: Critique: " in body
    assert f"at most {MAX_CRITIQUE_CHARS} characters" in body
    assert not PreferenceLabel.objects.exists()
    kept = post_label(client, project, task, choice="a", critique="x" * MAX_CRITIQUE_CHARS)
    assert kept.status_code == 302 and len(PreferenceLabel.objects.get().critique) == MAX_CRITIQUE_CHARS
