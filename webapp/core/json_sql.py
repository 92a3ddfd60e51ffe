"""SQL over JSON columns that runs on PostgreSQL (deployments, CI) and SQLite (``make run``
with no DATABASE_URL) alike: the two name their JSON functions differently."""

from __future__ import annotations

from django.db import connection
from django.db.models import Func, IntegerField


class JSONArrayLength(Func):
    """The length of a JSON array column: ``jsonb_array_length`` on PostgreSQL, ``json_array_length`` on SQLite."""

    function = "jsonb_array_length"
    output_field = IntegerField()

    def as_sqlite(self, compiler, conn, **extra):
        return super().as_sql(compiler, conn, function="json_array_length", **extra)


def array_elements_sql(table: str, column: str, rest: str) -> str:
    """A query of ``(n, element as JSON text)`` for each element of the JSON array ``column`` of
    the row of ``table`` whose id is the first parameter, ``n`` counted from 1 in stored order,
    the rows named ``e``; ``rest`` goes after the WHERE clause (``AND e.n > %s ORDER BY e.n``)."""
    if connection.vendor == "postgresql":
        return (f"SELECT e.n, e.element::text FROM {table} s, jsonb_array_elements(s.{column}) "
                f"WITH ORDINALITY AS e(element, n) WHERE s.id = %s {rest}")
    # SQLite's json_each gives an object or array element as its JSON text
    return (f"SELECT e.n, e.element FROM (SELECT j.key + 1 AS n, j.value AS element FROM {table} s, "
            f"json_each(s.{column}) AS j WHERE s.id = %s) AS e WHERE 1 = 1 {rest}")
