"""Rows as one Parquet file, streamed a row group at a time: the typed exports (a run's
trajectories, a project's labels) share it.

The schema is fixed before the first row, so every column has one type however its first
rows look: ``pandas.read_parquet`` and ``datasets.load_dataset("parquet", ...)`` need no guess,
where a JSONL column that is null throughout its first block (10 MB) and filled later fails to
load in ``datasets``. pyarrow is imported when a file is written, not when Django starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

CONTENT_TYPE = "application/vnd.apache.parquet"  # IANA, 2024
ROW_GROUP = 2_000  # rows per row group: a few MB of text


def parquet_chunks(records: Iterable[dict], schema, *, row_group: int = ROW_GROUP) -> Iterator[bytes]:
    """``records`` (dicts keyed by the schema's field names) as a zstd Parquet file, in pieces:
    each row group's bytes are yielded as soon as it is written, so memory holds one group,
    not the export. An export of no rows is a valid empty file (the footer alone)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = _ByteSink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    batch: list[dict] = []
    try:
        for record in records:
            batch.append(record)
            if len(batch) == row_group:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
                yield sink.drain()
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    finally:
        writer.close()  # the footer
    yield sink.drain()


class _ByteSink:
    """A write-only file for ``ParquetWriter`` whose bytes are taken out as they are written."""

    closed = False

    def __init__(self):
        self._parts: list[bytes] = []
        self._position = 0

    def write(self, data) -> int:
        data = bytes(data)
        self._parts.append(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data
