"""Share locks: hold rows against deletion without making other readers wait.

A launch must keep the dataset, policy, reward models and preference pairs it uses from being
deleted until its run is committed, so that the deletion (which takes the row FOR UPDATE and
then looks for runs that use it) sees the run. FOR SHARE is enough for that and, unlike FOR
UPDATE or FOR NO KEY UPDATE, lets concurrent launches of the same project hold the same rows
at once. Django has no FOR SHARE, hence this.
"""

from __future__ import annotations

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet


def rows_for_share(queryset: QuerySet) -> list[tuple]:
    """The rows of a ``values_list`` queryset (not flat) of one model, its own rows locked FOR
    SHARE until the current transaction ends. SQLite has no row locks and needs none: it runs
    one writer at a time."""
    connection = connections[queryset.db]
    if not connection.in_atomic_block:
        raise RuntimeError("rows_for_share outside a transaction would release its locks at once")
    if queryset.query.distinct or queryset.query.combinator:
        raise ValueError("rows_for_share takes a plain queryset (PostgreSQL locks no DISTINCT or UNION rows)")
    queryset = queryset.order_by()  # an ordering by a related field would join, and lock, its table too
    if connection.vendor != "postgresql":
        return [tuple(row) for row in queryset]
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:  # e.g. pk__in=[]: no rows, nothing to lock
        return []
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR SHARE OF {table}", params)
        return cursor.fetchall()
