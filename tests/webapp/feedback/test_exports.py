import json
import uuid

import pytest

from tests.factories import make_project, make_rubric, make_task, make_user
from webapp.feedback.exports import preference_pairs_jsonl, raw_labels_jsonl
from webapp.feedback.services import label_submit

pytestmark = pytest.mark.django_db


def lines(iterator):
    out = list(iterator)
    assert all(line.endswith("\n") for line in out)
    return [json.loads(line) for line in out]


def submit(task, user, ranking, **kwargs):
    return label_submit(task=task, annotator=user, ranking=ranking, submission_key=uuid.uuid4().hex, **kwargs)


def test_pairs_follow_the_ranking_and_leave_ties_out():
    a = make_user()
    project = make_project(annotator=a)
    task = make_task(project, prompt="q", completions=["x", "y", "z"])
    submit(task, a, [[2], [0, 1]])  # z > x = y
    pairs = lines(preference_pairs_jsonl(project=project))
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("z", "x"), ("z", "y")]
    assert all(p["prompt"] == "q" and "tie" not in p for p in pairs)


def test_a_pair_of_one_text_twice_is_left_out():
    """A ranking task may hold two copies of one completion; chosen == rejected teaches nothing."""
    a = make_user()
    project = make_project(annotator=a)
    task = make_task(project, prompt="q", completions=["x", "y", "x"])
    submit(task, a, [[0], [1], [2]])
    pairs = lines(preference_pairs_jsonl(project=project, include_ties=True))
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("x", "y"), ("y", "x")]


def test_ties_are_kept_with_a_flag_when_asked():
    a = make_user()
    project = make_project(annotator=a)
    submit(make_task(project), a, [[0, 1]], both_bad=True)
    [pair] = lines(preference_pairs_jsonl(project=project, include_ties=True))
    assert pair["tie"] is True and pair["both_bad"] is True
    assert lines(preference_pairs_jsonl(project=project)) == []


def test_chat_prompts_export_conversationally():
    a = make_user()
    project = make_project(annotator=a)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    submit(make_task(project, prompt_messages=messages, completions=["Hello", "Hi!!!"]), a, [[1], [0]])
    [pair] = lines(preference_pairs_jsonl(project=project))
    assert pair["prompt"] == messages
    assert pair["chosen"] == [{"role": "assistant", "content": "Hi!!!"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "Hello"}]


def test_each_annotators_label_contributes_its_own_pairs():
    a, b = make_user(), make_user()
    project = make_project(annotator=[a, b])
    task = make_task(project, required_labels=2, completions=["x", "y"])
    submit(task, a, [[0], [1]])
    submit(task, b, [[1], [0]])
    pairs = lines(preference_pairs_jsonl(project=project))
    assert sorted((p["annotator"], p["chosen"]) for p in pairs) == sorted([(a.username, "x"), (b.username, "y")])


def test_raw_labels_keep_every_annotators_ranking_scores_and_version():
    a = make_user()
    project = make_project(annotator=a)
    rubric = make_rubric(project)
    task = make_task(project, rubric=rubric, completions=["x", "y"])
    correct = rubric.latest_version().criteria.get(name="Correct")
    submit(task, a, [[1], [0]], critique="y is right", scores={1: {correct.pk: 1}}, time_spent_ms=900)
    [row] = lines(raw_labels_jsonl(project=project))
    assert row["completions"] == ["x", "y"] and row["ranking"] == [[1], [0]]
    assert row["rubric"] == {"name": rubric.name, "version": 1}
    assert row["scores"] == [{"candidate": 1, "criterion": "Correct", "criterion_id": correct.pk, "scale": "binary",
                              "weight": 2.0, "value": 1.0}]
    assert (row["critique"], row["time_spent_ms"], row["annotator"]) == ("y is right", 900, a.username)


def test_exports_hold_only_the_projects_own_labels():
    a = make_user()
    mine, theirs = make_project(annotator=a), make_project(annotator=a)
    submit(make_task(theirs), a, [[0], [1]])
    assert lines(preference_pairs_jsonl(project=mine)) == []
    assert lines(raw_labels_jsonl(project=mine)) == []


def test_labels_jsonl_imports_as_pairs_as_preferences_jsonl_does():
    """Steer's labels.jsonl (each label's whole ranking) was refused by the pair import on every
    line ("missing chosen and rejected"); it now gives the pairs the preference export gives."""
    from webapp.rewards.parsing import parse_pairs

    a, b = make_user(), make_user()
    project = make_project(annotator=[a, b])
    task = make_task(project, prompt="4", completions=["4", "5", "six", "4"], required_labels=2)
    submit(task, a, [[2], [0, 1], [3]], critique="six is spelt out")
    submit(task, b, [[0, 1, 2, 3]])  # all tied: no pairs
    chat = make_task(project, prompt_messages=[{"role": "user", "content": "Hi"}], completions=["Hello", "Yo"])
    submit(chat, a, [[1], [0]])
    labels = "".join(raw_labels_jsonl(project=project))
    preferences = "".join(preference_pairs_jsonl(project=project))
    assert parse_pairs(labels) == parse_pairs(preferences)
    assert len(parse_pairs(labels)) == 5  # six > 4, six > 5, six > 4 (the copy), 5 > 4 (copy); Yo > Hello

