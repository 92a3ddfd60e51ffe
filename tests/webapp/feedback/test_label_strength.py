"""Preference strength (HelpSteer2-Preference's magnitudes: 1 slightly better, 2 better, 3 much
better) on a pairwise label that prefers one answer: given in the workspace or over the API,
kept raw in the exports, and, with ``strength_margins``, a reward-model run's Bradley-Terry margin
(Llama 2's margin loss)."""

import io
import json
import re
import uuid

import pyarrow.parquet as pq
import pytest
from django.urls import reverse

from tests.factories import make_project, make_task, make_user
from tests.webapp.api.conftest import token_client
from tests.webapp.feedback.conftest import login
from tests.webapp.rewards.test_reward_model_runs import TINY_RM
from webapp.experiments.errors import RunError
from webapp.experiments.services import run_launch
from webapp.feedback import exports
from webapp.feedback.errors import FeedbackError, SubmissionChanged
from webapp.feedback.labelling import label_submit
from webapp.feedback.models import PreferenceLabel
from webapp.rewards.selectors import preference_records

pytestmark = pytest.mark.django_db


def submit(task, user, ranking, **kwargs):
    return label_submit(task=task, annotator=user, ranking=ranking, submission_key=uuid.uuid4().hex, **kwargs)


def test_a_pairwise_label_that_prefers_one_keeps_its_strength(project, annotator):
    label = submit(make_task(project), annotator, [[1], [0]], strength=3)
    assert PreferenceLabel.objects.get(pk=label.pk).strength == 3
    assert submit(make_task(project), annotator, [[0], [1]]).strength is None  # not said


@pytest.mark.parametrize("completions, ranking, both_bad, strength, words", [
    (["a", "b"], [[0, 1]], False, 2, "not a tie"),
    (["a", "b"], [[0, 1]], True, 1, "not a tie"),
    (["a", "b", "c"], [[0], [1], [2]], False, 2, "a ranking of more"),
    (["a", "b"], [[0], [1]], False, 4, "must be 1 (slightly better), 2 (better) or 3 (much better), got 4"),
    (["a", "b"], [[0], [1]], False, True, "got True"),
    (["a", "b"], [[0], [1]], False, 0, "got 0"),
])
def test_a_strength_without_a_pairwise_preference_or_out_of_range_is_refused(project, annotator, completions,
                                                                            ranking, both_bad, strength, words):
    with pytest.raises(FeedbackError, match=re.escape(words)) as refused:
        submit(make_task(project, completions=completions), annotator, ranking, both_bad=both_bad, strength=strength)
    assert refused.value.field == "strength"
    assert not PreferenceLabel.objects.exists()


def test_a_retry_with_another_strength_is_a_changed_submission(project, annotator):
    task = make_task(project)
    label = label_submit(task=task, annotator=annotator, ranking=[[0], [1]], strength=1, submission_key="key-strength")
    assert label_submit(task=task, annotator=annotator, ranking=[[0], [1]], strength=1,
                        submission_key="key-strength").pk == label.pk
    with pytest.raises(SubmissionChanged):
        label_submit(task=task, annotator=annotator, ranking=[[0], [1]], strength=3, submission_key="key-strength")


def post_label(client, project, task, **data):
    data.setdefault("submission_key", uuid.uuid4().hex)
    return client.post(reverse("feedback:submit", args=[project.id, task.id]), data)


def test_the_workspace_asks_how_much_better_for_two_completions_and_stores_it(client, project, annotator):
    task = make_task(project)
    login(client, annotator)
    html = client.get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert "How much better?" in html and 'name="strength" value="3"' in html
    assert post_label(client, project, task, choice="b", strength="3").status_code == 302
    assert PreferenceLabel.objects.get(task=task).strength == 3
    other = make_task(project)
    post_label(client, project, other, choice="a", strength="")
    assert PreferenceLabel.objects.get(task=other).strength is None


def test_the_workspace_refuses_a_strength_with_a_tie_and_saves_nothing(client, project, annotator):
    task = make_task(project)
    login(client, annotator)
    response = post_label(client, project, task, choice="tie", strength="2")
    body = response.content.decode()
    assert "Nothing was saved: How much better: leave it unset for a tie or &#x27;both bad&#x27;" in body
    assert 'name="strength" value="2" checked' in body  # the annotator's input is put back
    assert not PreferenceLabel.objects.exists()


def test_a_ranking_of_three_shows_no_strength(client, project, annotator):
    make_task(project, completions=["a", "b", "c"])
    html = login(client, annotator).get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert 'name="strength"' not in html


def test_the_api_takes_and_gives_the_strength(project, annotator):
    task, tie = make_task(project), make_task(project)
    api = token_client(annotator)
    response = api.post(f"/api/v1/tasks/{task.id}/labels/",
                        {"ranking": [[1], [0]], "strength": 2, "submission_key": uuid.uuid4().hex}, format="json")
    assert response.status_code == 201 and response.json()["strength"] == 2
    response = api.post(f"/api/v1/tasks/{tie.id}/labels/",
                        {"ranking": [[0, 1]], "strength": 2, "submission_key": uuid.uuid4().hex}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["strength"]
    response = api.post(f"/api/v1/tasks/{tie.id}/labels/",
                        {"ranking": [[0], [1]], "strength": 5, "submission_key": uuid.uuid4().hex}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["strength"]
    assert PreferenceLabel.objects.count() == 1


def test_the_label_exports_keep_the_strength(project, annotator):
    submit(make_task(project), annotator, [[0], [1]])
    submit(make_task(project), annotator, [[1], [0]], strength=3)
    rows = [json.loads(line) for line in exports.raw_labels_jsonl(project=project)]
    assert [row["strength"] for row in rows] == [None, 3]
    table = pq.read_table(io.BytesIO(b"".join(exports.raw_labels_parquet(project=project))))
    assert str(table.schema.field("strength").type) == "int64"
    assert table.column("strength").to_pylist() == [None, 3]


def labelled(annotator):
    owner = make_user()
    project = make_project(owner=owner, annotator=annotator)
    for i, strength in enumerate([None, 1, 3]):
        submit(make_task(project, prompt=f"p{i}"), annotator, [[0], [1]], strength=strength)
    return project, owner


def test_strength_margins_give_each_labels_margin_to_the_reward_model(annotator, sent):
    project, owner = labelled(annotator)
    run = run_launch(project=project, user=owner, name="rm", kind="reward_model",
                     config={**TINY_RM, "eval_fraction": 0.0,
                             "data": {"source": "labels", "strength_margins": [0.25, 0.5, 1]}})
    assert run.config["data"]["strength_margins"] == [0.25, 0.5, 1.0]
    assert "through_label" in run.config["data"]
    assert [r.margin for r in preference_records(project=project, data=run.config["data"])] == [None, 0.25, 1.0]
    assert [r.margin for r in preference_records(project=project, data={"source": "labels"})] == [None] * 3


def test_a_reward_model_run_with_strength_margins_trains_with_them(annotator, sent, monkeypatch):
    """The worker's training gets each label's margin (the engine's Bradley-Terry loss reads it)."""
    from webapp.experiments.models import RunStatus
    from webapp.experiments.services import run_execute
    from workers.engine import rm_trainer

    project, owner = labelled(annotator)
    run = run_launch(project=project, user=owner, name="rm", kind="reward_model",
                     config={**TINY_RM, "eval_fraction": 0.0,
                             "data": {"source": "labels", "strength_margins": [0.25, 0.5, 2.0]}})
    seen = []
    collate = rm_trainer._collate
    monkeypatch.setattr(rm_trainer, "_collate",
                        lambda records, default: seen.append(sorted(collate(records, default).margin.tolist()))
                        or collate(records, default))
    assert run_execute(run_id=run.id, worker="w") == RunStatus.SUCCEEDED
    assert [0.0, 0.25, 2.0] in seen  # one batch of the three labels: no strength (the margin 0), slightly, much


@pytest.mark.parametrize("margins", [[1, 2], "1,2,3", [0.1, -1, 2], [0.1, float("nan"), 1], [True, 1, 2]])
def test_bad_strength_margins_are_refused_naming_them(annotator, sent, margins):
    project, owner = labelled(annotator)
    with pytest.raises(RunError, match="strength_margins must be three numbers of at least 0") as refused:
        run_launch(project=project, user=owner, name="rm", kind="reward_model",
                   config={**TINY_RM, "data": {"source": "labels", "strength_margins": margins}})
    assert refused.value.field == "config.data.strength_margins"


def test_strength_margins_above_the_pairs_bound_are_refused_naming_it(annotator, sent):
    """The same bound as an imported pair's margin: a margin of 25 would make the run diverge."""
    project, owner = labelled(annotator)
    with pytest.raises(RunError) as refused:
        run_launch(project=project, user=owner, name="rm", kind="reward_model",
                   config={**TINY_RM, "data": {"source": "labels", "strength_margins": [1, 2, 25]}})
    assert refused.value.field == "config.data.strength_margins"
    assert "at most 20" in refused.value.message and "got 25" in refused.value.message
    run = run_launch(project=project, user=owner, name="rm", kind="reward_model",
                     config={**TINY_RM, "data": {"source": "labels", "strength_margins": [1, 2, 20]}})
    assert run.config["data"]["strength_margins"] == [1.0, 2.0, 20.0]


def test_the_reward_model_page_takes_the_margins_for_labels_only(client, annotator, sent):
    from tests.factories import PASSWORD
    from webapp.experiments.models import Run

    project, owner = labelled(annotator)
    client.login(username=owner.username, password=PASSWORD)
    url = reverse("rewards:train", args=[project.id])
    assert "Margins by preference strength" in client.get(url).content.decode()
    settings = json.dumps({**TINY_RM, "eval_fraction": 0.0})
    response = client.post(url, {"name": "rm", "data": "labels", "strength_margins": "0.33, 0.67 1",
                                 "settings": settings})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Run.objects.get().config["data"]["strength_margins"] == [0.33, 0.67, 1.0]
    response = client.post(url, {"name": "rm2", "data": "labels", "strength_margins": "1, 2", "settings": settings})
    assert response.status_code == 400
    assert "three numbers" in response.context["form"].errors["strength_margins"][0]
    response = client.post(url, {"name": "rm3", "data": "labels", "strength_margins": "a, b, c", "settings": settings})
    assert "Write three numbers" in response.context["form"].errors["strength_margins"][0]
    assert Run.objects.count() == 1


def test_strength_margins_with_the_plackett_luce_loss_are_refused(annotator, sent):
    project, owner = labelled(annotator)
    with pytest.raises(RunError, match="the plackett_luce loss has none") as refused:
        run_launch(project=project, user=owner, name="rm", kind="reward_model",
                   config={**TINY_RM, "loss": "plackett_luce", "data": {"source": "labels", "strength_margins": [0, 1, 2]}})
    assert refused.value.field == "config.data.strength_margins"


def test_the_task_page_shows_a_labels_strength(client, project, annotator, researcher):
    task = make_task(project)
    submit(task, annotator, [[1], [0]], strength=1)
    html = login(client, researcher).get(reverse("feedback:task_detail", args=[project.id, task.id])).content.decode()
    assert '<span class="badge">slightly better</span>' in html
