"""Migration 0002 numbers dataset names that differ only in case, then holds them distinct."""

import pytest
from django.db import connection

from tests.migrations import leaf_nodes, migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("datasets", "0001_initial")]
AFTER = [("datasets", "0002_dataset_names_any_case")]


def test_names_differing_only_in_case_are_numbered_and_others_kept():
    old = migrate(BEFORE)
    Project = old.get_model("projects", "Project")
    Dataset = old.get_model("datasets", "PromptDataset")
    first, second = Project.objects.create(name="a", slug="a"), Project.objects.create(name="b", slug="b")
    for project, name in [(first, "GSM8K"), (first, "gsm8k"), (first, "gsm8k (2)"), (first, "Gsm8k"),
                          (second, "gsm8k"), (first, "x" * 120), (first, "X" * 120),
                          (second, "İstanbul"), (second, "istanbul")]:
        Dataset.objects.create(project=project, name=name)

    # The database's lower(), the constraint's, decides; under C.UTF-8 it joins these two, which
    # Python's str.lower keeps apart (the migration numbered by str.lower and then failed here).
    with connection.cursor() as cursor:
        cursor.execute("SELECT lower('İstanbul') = lower('istanbul')")
        same = cursor.fetchone()[0]
    new = migrate(AFTER)
    names = new.get_model("datasets", "PromptDataset").objects.order_by("pk").values_list("project_id", "name")
    assert list(names) == [(first.id, "GSM8K"), (first.id, "gsm8k (3)"), (first.id, "gsm8k (2)"),
                           (first.id, "Gsm8k (4)"), (second.id, "gsm8k"), (first.id, "x" * 120),
                           (first.id, "X" * 110 + " (2)"), (second.id, "İstanbul"),
                           (second.id, "istanbul (2)" if same else "istanbul")]
    leaves = leaf_nodes()
    migrate(leaves)
