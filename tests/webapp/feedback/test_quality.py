"""The Quality page's figures: right on a case worked by hand, and computed once per distinct
ranking (and two rankings compared once), not once per label and per two labels."""

import math
import uuid
from itertools import cycle

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import make_project, make_user
from webapp.feedback import agreement
from webapp.feedback.models import Candidate, ComparisonTask, PreferenceLabel
from webapp.feedback.selectors import TOTAL_REWARD, quality_report

pytestmark = pytest.mark.django_db


def task(project, k: int, *, gold=None, rewards=None):
    task = ComparisonTask.objects.create(project=project, prompt_text="p", required_labels=3, is_gold=gold is not None,
                                         gold_ranking=gold, source_run_name="run" if rewards else "")
    Candidate.objects.bulk_create([
        Candidate(task=task, position=p, text=f"c{p}",
                  metadata={"run": 7, "reward": rewards[p][0], "rewards": {"r": rewards[p][1]}} if rewards else {})
        for p in range(k)])
    return task


def label(task, user, ranking):
    PreferenceLabel.objects.create(task=task, annotator=user, ranking=ranking, time_spent_ms=60_000,
                                   submission_key=uuid.uuid4().hex)


def test_the_figures_match_a_case_worked_by_hand():
    u1, u2, u3 = make_user("ann1"), make_user("ann2"), make_user("ann3")
    project = make_project(annotator=[u1, u2, u3])
    three = task(project, 3, gold=[[0], [1], [2]])
    label(three, u1, [[0], [1], [2]])  # signs over (0,1), (0,2), (1,2): + + +
    label(three, u2, [[0], [2], [1]])  # + + -
    label(three, u3, [[0, 1], [2]])  # 0 + +
    two = task(project, 2, rewards=[(1.0, 0), (0.0, 0)])
    label(two, u1, [[0], [1]])  # +
    label(two, u2, [[1], [0]])  # -

    report = quality_report(project=project)
    # agreement: u1-u2 2/3, u1-u3 2/3, u2-u3 1/3 on the three; u1-u2 0/1 on the two
    assert (report["agreement"].hits, report["agreement"].total) == (5, 10)
    # tau-b: u1-u2 (2 - 1)/3, u1-u3 2/sqrt(3 * 2), u2-u3 (1 - 1)/sqrt(6), and -1 on the two
    taus = {"u1u2": 1 / 3, "u1u3": 2 / math.sqrt(6), "u2u3": 0.0, "two": -1.0}
    assert report["tau_b"].total == 4 and report["tau_b"].value == pytest.approx(sum(taus.values()) / 4)
    # gold: u1 3 of 3, u2 2 of 3, u3 2 of 3 (its tie of 0 and 1 misses)
    assert (report["gold_accuracy"].hits, report["gold_accuracy"].total) == (7, 9)
    assert report["labels_per_hour"] == pytest.approx(60.0)
    people = {p.username: p for p in report["annotators"]}
    assert [(people[n].agreement, people[n].agreement_n) for n in ("ann1", "ann2", "ann3")] == [
        (pytest.approx(4 / 7), 7), (pytest.approx(3 / 7), 7), (pytest.approx(3 / 6), 6)]
    assert [people[n].tau_b for n in ("ann1", "ann2", "ann3")] == [
        pytest.approx((taus["u1u2"] + taus["u1u3"] + taus["two"]) / 3),
        pytest.approx((taus["u1u2"] + taus["u2u3"] + taus["two"]) / 3),
        pytest.approx((taus["u1u3"] + taus["u2u3"]) / 2)]
    assert [(people[n].gold_accuracy, people[n].gold_n) for n in ("ann1", "ann2", "ann3")] == [
        (1.0, 3), (pytest.approx(2 / 3), 3), (pytest.approx(2 / 3), 3)]
    # rewards on the two: the total orders it for u1 and against u2; "r" ties both candidates
    rows = {r.key: (r.pairs, r.decided, r.hits) for r in report["reward_agreement"]}
    assert rows == {TOTAL_REWARD: (2, 2, 1), "r": (2, 0, 0)}


RANKINGS = [[[0], [1], [2]], [[2], [0], [1]], [[0, 1], [2]], [[1], [0, 2]], [[0, 1, 2]]]


def _labelled(tasks: int):
    users = [make_user() for _ in range(3)]
    project = make_project(annotator=users)
    rankings = cycle(RANKINGS)
    for n in range(tasks):
        made = task(project, 3, gold=[[0], [1], [2]] if n % 2 else None,
                    rewards=[(0.5 * p, p % 2) for p in range(3)] if n % 3 else None)
        for user in users:
            label(made, user, next(rankings))
    return project


def test_the_work_grows_with_distinct_rankings_not_with_labels(monkeypatch):
    """At 15,000 labels the page took about a second, most of it in Python: every label's
    ranking decoded by json.loads and turned into tiers for each figure, and every two labels
    of a task compared candidate pair by candidate pair (1.7 million function calls). The
    figures depend only on the rankings, of which a project holds few."""
    calls = []
    tier_of = agreement.tier_of
    monkeypatch.setattr(agreement, "tier_of", lambda ranking: calls.append(1) or tier_of(ranking))
    counts = []
    for tasks in (10, 40):
        project = _labelled(tasks)
        calls.clear()
        with CaptureQueriesContext(connection) as queries:
            quality_report(project=project)
        counts.append((len(calls), len(queries.captured_queries)))
    assert counts[0] == counts[1]
