"""Writes on prompt datasets: names unique in a project whatever their case."""

import pytest
from django.db import IntegrityError

from tests.factories import make_project
from webapp.datasets.errors import DatasetError
from webapp.datasets.models import PromptDataset
from webapp.datasets.parsing import PromptRow
from webapp.datasets.services import dataset_create, dataset_import

pytestmark = pytest.mark.django_db


def test_a_name_differing_only_in_case_is_refused_on_the_name_before_the_file_is_read():
    project = make_project()
    dataset_create(project=project, name="GSM8K", rows=[PromptRow(text="q")])
    with pytest.raises(DatasetError) as info:
        dataset_import(project=project, name="gsm8k", filename="p.jsonl", content="{not json")
    assert info.value.field == "name" and "'GSM8K' already exists" in info.value.message
    assert PromptDataset.objects.count() == 1


def test_another_project_may_use_the_name():
    dataset_create(project=make_project(), name="same", rows=[PromptRow(text="q")])
    dataset_create(project=make_project(), name="SAME", rows=[PromptRow(text="q")])
    assert PromptDataset.objects.count() == 2


def test_the_database_holds_names_distinct_in_any_case():
    project = make_project()
    PromptDataset.objects.create(project=project, name="abc")
    with pytest.raises(IntegrityError):
        PromptDataset.objects.create(project=project, name="ABC")


def test_an_import_racing_another_for_the_name_is_refused_on_the_name(monkeypatch):
    project = make_project()
    PromptDataset.objects.create(project=project, name="abc")
    monkeypatch.setattr("webapp.datasets.services.dataset_name_check", lambda **kwargs: None)  # both checked first
    with pytest.raises(DatasetError) as info:
        dataset_create(project=project, name="Abc", rows=[PromptRow(text="q")])
    assert info.value.field == "name"
    assert list(PromptDataset.objects.values_list("name", flat=True)) == ["abc"]
