"""SQL over JSON columns that runs on PostgreSQL (deployments, CI) and SQLite (``make run``
with no DATABASE_URL) alike: the two name their JSON functions differently."""

from __future__ import annotations

from typing import BinaryIO

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


JSON_TEXT_CHUNK = 256 * 1024  # bytes


def json_column_set(table: str, column: str, pk: int, text: BinaryIO) -> None:
    """Set the JSON column of the row ``pk`` to the JSON text the file ``text`` holds, as
    ``json.dumps`` writes it (ASCII, no raw control characters), without reading it whole into
    Python values or one string: on PostgreSQL the file is copied a chunk at a time into a
    temporary table (COPY, not logged, dropped at the end of the caller's transaction), whose one
    value the server then casts to the column's jsonb. SQLite (``make run`` without a database)
    keeps a JSON column as text, given whole."""
    text.seek(0)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [text.read().decode("utf-8"), pk])
            return
        cursor.execute("DROP TABLE IF EXISTS steer_json_text")
        cursor.execute("CREATE TEMPORARY TABLE steer_json_text (t text NOT NULL) ON COMMIT DROP")
        cursor.execute("ALTER TABLE steer_json_text ALTER t SET STORAGE EXTERNAL")  # read once: not compressed
        with cursor.cursor.copy("COPY steer_json_text (t) FROM STDIN") as copy:
            while chunk := text.read(JSON_TEXT_CHUNK):
                copy.write(chunk.replace(b"\\", b"\\\\"))  # COPY's text format: a backslash escapes
            copy.write(b"\n")
        cursor.execute(f"UPDATE {table} SET {column} = (SELECT t::jsonb FROM steer_json_text) WHERE id = %s", [pk])
        cursor.execute("DROP TABLE steer_json_text")
