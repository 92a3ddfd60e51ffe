"""The annotation workspace says what each rubric criterion means: its description (Markdown,
sanitised) in a Rubric section, and each score select described by it. Before, a description
was only a hover title on the criterion's name: keyboard and screen-reader annotators scored
without it."""

import re

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_rubric, make_task, make_user

pytestmark = pytest.mark.django_db


def test_each_score_is_described_by_its_criterion(client):
    annotator = make_user()
    project = make_project(annotator=annotator)
    rubric = make_rubric(project, name="Quality", criteria=[
        {"name": "Correct", "scale": "binary", "description": "The **final** answer is right.<script>x()</script>"},
        {"name": "Clear", "scale": "likert5"},
    ])
    make_task(project, rubric=rubric)
    client.login(username=annotator.username, password=PASSWORD)
    page = client.get(reverse("feedback:annotate", args=[project.id])).content.decode()

    assert "What the criteria of “Quality” mean" in page
    helps = dict(re.findall(r'<dd id="(criterion-\d+-help)">(.*?)</dd>', page, re.S))
    assert len(helps) == 2
    correct, clear = helps.values()
    assert "<strong>final</strong>" in correct and "<script" not in correct  # sanitised Markdown
    assert "No description." in clear
    described = re.findall(r'<select name="[^"]+" data-criterion="\d+" aria-describedby="([^"]+)"', page)
    assert len(described) == 4 and set(described) == set(helps)  # two completions × two criteria
