"""rows_for_share: the rows, share-locked, for the querysets it is given."""

import pytest
from django.db import connection, transaction

from tests.factories import make_dataset, make_project
from webapp.core.locks import rows_for_share
from webapp.datasets.models import Prompt, PromptDataset

pytestmark = pytest.mark.django_db


def test_it_returns_the_rows_and_locks_only_the_models_own_table():
    dataset = make_dataset(make_project(), n=2)
    with transaction.atomic():
        # Prompt's Meta.ordering is by dataset: without order_by() the dataset's table would join
        rows = rows_for_share(Prompt.objects.filter(dataset=dataset).values_list("index"))
        assert sorted(rows) == [(0,), (1,)]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                               "WHERE l.pid = pg_backend_pid() AND l.mode = 'RowShareLock' AND c.relkind = 'r'")
                assert {name for (name,) in cursor.fetchall()} == {"datasets_prompt"}


def test_an_empty_filter_gives_no_rows_and_a_joined_nullable_column_is_allowed():
    dataset = make_dataset(make_project())
    with transaction.atomic():
        assert rows_for_share(PromptDataset.objects.filter(pk__in=[]).values_list("pk")) == []
        assert rows_for_share(PromptDataset.objects.filter(pk=dataset.pk).values_list("pk", "created_by__username")) \
            == [(dataset.pk, None)]


@pytest.mark.django_db(transaction=True)
def test_it_refuses_outside_a_transaction_and_distinct_querysets():
    with pytest.raises(RuntimeError, match="outside a transaction"):
        rows_for_share(PromptDataset.objects.values_list("pk"))
    with transaction.atomic(), pytest.raises(ValueError, match="plain queryset"):
        rows_for_share(PromptDataset.objects.values_list("pk").distinct())
