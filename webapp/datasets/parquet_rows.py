"""Prompt files in Parquet, as verl's data files and the Hugging Face Hub's datasets come:
each row is read as a JSONL line would be (``row_from_object``), a row group at a time.

verl's ``data/gsm8k/train.parquet`` holds ``prompt`` (a list of ``{role, content}`` structs),
``reward_model`` (``{style, ground_truth}``), ``data_source``, ``ability`` and ``extra_info``;
a Hub dataset's Parquet shard holds its columns. Parquet types become JSON's: structs objects,
lists arrays, dates and times ISO 8601 strings. What JSON cannot hold (a NaN or infinite float,
raw bytes) is an error naming the row and column, as a bad JSONL line is named by its number.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Iterator
from typing import Any

from webapp.core.line_errors import LineErrors
from webapp.datasets.errors import DatasetImportError

PARQUET_MAGIC = b"PAR1"
BATCH_ROWS = 1024


def is_parquet(upload) -> bool:
    """The upload opens and ends with Parquet's magic bytes (whatever its name says)."""
    try:
        upload.seek(0)
        head = upload.read(4)
        if upload.size < 8:
            return False
        upload.seek(upload.size - 4)
        tail = upload.read(4)
    finally:
        upload.seek(0)
    return head == PARQUET_MAGIC and tail == PARQUET_MAGIC


def parquet_upload(upload) -> tuple[str, Any] | None:
    """``("<name>.parquet", upload)`` for a Parquet upload within the import's size limit, to
    hand to ``parse_file``; None for any other file (read as text). ValueError when too large."""
    from webapp.core.uploads import MAX_IMPORT_BYTES  # noqa: PLC0415

    if not is_parquet(upload):
        return None
    if upload.size > MAX_IMPORT_BYTES:
        raise ValueError(f"the file is {upload.size / 2**20:.0f} MB; an import takes at most "
                         f"{MAX_IMPORT_BYTES // 2**20} MB (split it into several)")
    name = upload.name if upload.name.lower().endswith(".parquet") else f"{upload.name}.parquet"
    return name, upload


def parse_parquet(upload) -> list:
    """All rows of a Parquet upload as PromptRows, or DatasetImportError naming each bad row
    (from 1) and, for a value JSON cannot hold, its column."""
    from webapp.datasets.parsing import _rows_list  # noqa: PLC0415 (a cycle)

    return _rows_list(iter_parquet(upload, errors := LineErrors()), errors, unit="row")


def iter_parquet(upload, errors: list[tuple[int, str]]) -> Iterator:
    """Each good row of a Parquet upload as a PromptRow in turn, read a row group's batch at a
    time; each bad row's (number from 1, message) is appended to ``errors`` instead. A file
    that cannot be opened or read on raises DatasetImportError."""
    import pyarrow as pa  # noqa: PLC0415 (only an import of Parquet needs it)
    import pyarrow.parquet as pq  # noqa: PLC0415

    from webapp.datasets.parsing import row_from_object  # noqa: PLC0415 (a cycle)

    upload.seek(0)
    try:
        table_file = pq.ParquetFile(upload)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetImportError([(0, f"the file is not a Parquet file that can be read ({exc})")], unit="row") from None
    number = 0
    batches = table_file.iter_batches(batch_size=BATCH_ROWS)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:  # a truncated or corrupt row group
            raise DatasetImportError([(number + 1, f"the Parquet file cannot be read past row {number} ({exc})")],
                                     unit="row") from None
        if batch is None:
            return
        for record in batch.to_pylist():
            number += 1
            try:
                row = row_from_object(json_value(record, ""))
            except ValueError as exc:  # the first 100 kept (the page shows them), the rest counted
                errors.append((number, str(exc)))
                continue
            yield row


def json_value(value: Any, column: str) -> Any:
    """``value`` as JSON holds it, or ValueError naming the column (``a.b`` inside structs)."""
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, str):
            _storable(value, column)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"column '{column}' holds {value}, which JSON cannot hold; use null or a number")
        return value
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            name = f"{column}.{key}" if column else str(key)
            _storable(str(key), name)
            out[str(key)] = json_value(inner, name)
        return out
    if isinstance(value, (list, tuple)):
        return [json_value(inner, column) for inner in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return json_value(float(value), column)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    raise ValueError(f"column '{column}' holds {type(value).__name__} values (raw bytes?), which a prompt "
                     "file cannot hold as JSON; convert or drop that column")


def _storable(text: str, column: str) -> None:
    from webapp.core.json_input import storable_text_check  # noqa: PLC0415

    try:
        storable_text_check(text)
    except ValueError as exc:
        raise ValueError(f"column '{column}': {exc}") from None
