"""A prompt of whitespace alone: the worker refuses it ("prompt #1 is empty") once the run has
started, so the import refuses it naming the line, and a launch refuses a dataset stored with one."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import make_policy, make_project, make_user, tiny_run_config
from webapp.datasets.errors import DatasetImportError
from webapp.datasets.models import Prompt, PromptDataset
from webapp.datasets.parsing import PromptRow, parse_csv, parse_jsonl
from webapp.datasets.services import dataset_create, dataset_import
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run
from webapp.experiments.services import run_launch

SPACES = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
blanks = st.text(alphabet=SPACES.replace("\n", "").replace("\r", ""), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None)
@given(blank=blanks)
def test_a_jsonl_prompt_of_whitespace_is_refused_naming_its_line(blank):
    import json

    content = '{"prompt": "1+1", "answer": "2"}\n' + json.dumps({"prompt": blank, "answer": "3"}) + "\n"
    with pytest.raises(DatasetImportError) as caught:
        parse_jsonl(content)
    [(line, message)] = caught.value.errors
    assert line == 2 and "'prompt' holds only whitespace" in message


def test_a_csv_prompt_of_whitespace_is_refused_naming_its_line():
    with pytest.raises(DatasetImportError) as caught:
        parse_csv('question,answer\n2+2,4\n" \t\u3000",5\n')
    assert [line for line, _ in caught.value.errors] == [3]


@pytest.mark.django_db
def test_an_import_with_a_blank_prompt_deep_in_the_file_stores_nothing():
    project = make_project()
    content = "".join(f'{{"prompt": "q{i}"}}\n' for i in range(300)) + '{"prompt": "\\u00a0"}\n'
    with pytest.raises(DatasetImportError):
        dataset_import(project=project, name="d", filename="d.jsonl", content=content)
    assert not PromptDataset.objects.exists() and not Prompt.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("held_out", [False, True])
def test_a_launch_on_a_stored_dataset_with_blank_prompts_is_refused_naming_them(sent, held_out):
    user = make_user()
    project = make_project(owner=user)
    good = dataset_create(project=project, name="good", rows=[PromptRow(text="1+1", reference="2")] * 2)
    stored = dataset_create(project=project, name="old", rows=[PromptRow(text="1+1", reference="2"),
                                                                PromptRow(text=" \n\u3000", reference="3")])
    config = tiny_run_config(eval={"every_steps": 1}) if held_out else tiny_run_config()
    with pytest.raises(RunError) as caught:
        run_launch(project=project, user=user, name="t", kind="policy", config=config,
                   dataset=good if held_out else stored, policy=make_policy(project),
                   eval_dataset=stored if held_out else None)
    assert caught.value.field == ("eval_dataset" if held_out else "dataset")
    assert "1 of its prompts hold only whitespace (#1)" in caught.value.message
    assert not Run.objects.exists() and not sent
