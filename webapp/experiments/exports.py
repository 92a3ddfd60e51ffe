"""A run's trajectories as JSONL or Parquet and its metrics as CSV, streamed from the database.

``run_trajectories_jsonl``: one line per sampled completion, in (step, group_index,
sample_index) order, with the REST API's names for what is stored::

    {"step", "group_index", "sample_index", "prompt", "prompt_text", "prompt_messages",
     "completion", "reward", "rewards", "advantage", "length", "finish_reason"}

``prompt`` is the dataset prompt's id (null for a prompt an external trainer sent),
``prompt_text`` the prompt as text, ``prompt_messages`` the chat messages
([{"role", "content"}, ...]) when the prompt is a chat prompt (the run's dataset's, or one an
external trainer sent as messages), else null. An
export that holds both chat and plain prompts gives every plain one as one user message: a
``datasets`` column that is null throughout its first block (10 MB) and a list later fails to
load ("Couldn't cast array of type list<...> to null"). So each column holds one type and
``datasets.load_dataset("json", ...)`` loads the file as is; the same limit of ``datasets``
holds for ``advantage`` (a run whose first steps have none and later steps have one), for
``prompt`` (null for the prompts an external trainer sent first, an id later) and for
``rewards`` (a component first reported after the first block), which the file cannot avoid;
``run_trajectories_parquet`` writes the same rows with a schema fixed up front, which it avoids.
Text is UTF-8, with U+2028 and U+2029 escaped (``str.splitlines()`` ends a line
at them). ``finish_reason`` is "stop", "length" or "" (unknown); ``advantage`` may be null. A reward or
advantage that is not finite (a worker's NaN; the API refuses them) is written as null: JSON
has no NaN. The rows are read a chunk at a time through a server-side cursor, so a run of
several hundred thousand trajectories is never held in memory whole.

``run_metrics_csv``: the run's raw metric points in long format, ``step,key,value``, in (key,
step) order, read page by page through ``metric_points_page``. Values are written with
``repr``, which round-trips every float. Steer refuses NaN and infinities at ingest, so no
point holds one; were one stored it would be written as ``nan`` / ``inf`` / ``-inf``, which
pandas and ``csv`` + ``float()`` read back (MLflow's CSV download writes them the same way).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator

import orjson
from django.db.models import JSONField
from django.db.models.functions import Coalesce
from django.http import StreamingHttpResponse
from django.utils.text import slugify

from webapp.core.downloads import attachment_response
from webapp.core.parquet_stream import CONTENT_TYPE, ROW_GROUP, parquet_chunks
from webapp.experiments.models import Run, Trajectory
from webapp.experiments.selectors import metric_points_page

PARQUET_CONTENT_TYPE = CONTENT_TYPE
CHUNK = 500  # trajectories per fetch from the server-side cursor (a few kB each)
METRIC_PAGE = 5_000  # metric points per read of the chunks
PARQUET_ROW_GROUP = ROW_GROUP  # trajectories per row group: a few MB of text

TRAJECTORY_COLUMNS = ["step", "group_index", "sample_index", "prompt", "prompt_text", "prompt_messages",
                      "completion", "reward", "rewards", "advantage", "length", "finish_reason"]
METRIC_COLUMNS = ["step", "key", "value"]
# U+2028 and U+2029, escaped: ``str.splitlines()`` and some JSONL readers end a line at them
LS, PS = "\u2028".encode(), "\u2029".encode()


def export_filename(run: Run, what: str) -> str:
    """``<run name slug>-<run id>-<what>``: ASCII only, safe in a Content-Disposition header."""
    return f"{slugify(run.name) or 'run'}-{run.pk}-{what}"


def _trajectories(run: Run, step_min: int | None, step_max: int | None):
    """The run's trajectories within the step range, unordered."""
    rows = Trajectory.objects.filter(run=run)
    if step_min is not None:
        rows = rows.filter(step__gte=step_min)
    if step_max is not None:
        rows = rows.filter(step__lte=step_max)
    return rows


def _trajectory_records(rows) -> Iterator[dict]:
    """One dict per trajectory, ``TRAJECTORY_COLUMNS`` as keys, in (step, group, sample) order,
    read a chunk at a time; plain prompts as one user message where chat prompts are mixed in."""
    rows = rows.annotate(chat=Coalesce("prompt_messages", "prompt__messages", output_field=JSONField()))
    conversational = rows.filter(chat__isnull=False).exists() and rows.filter(chat__isnull=True).exists()
    rows = rows.order_by("step", "group_index", "sample_index").values_list(
        "step", "group_index", "sample_index", "prompt", "prompt_text", "chat", "completion",
        "reward", "rewards", "advantage", "length", "finish_reason")
    for row in rows.iterator(chunk_size=CHUNK):
        record = dict(zip(TRAJECTORY_COLUMNS, row))
        if conversational and record["prompt_messages"] is None:
            record["prompt_messages"] = [{"role": "user", "content": record["prompt_text"]}]
        yield record


def run_trajectories_jsonl(*, run: Run, step_min: int | None = None, step_max: int | None = None) -> Iterator[bytes]:
    """Every trajectory of the run (within ``step_min``..``step_max`` when given) as one JSONL line."""
    for record in _trajectory_records(_trajectories(run, step_min, step_max)):
        line = orjson.dumps(record)  # a float that is not finite as null
        yield line.replace(LS, b"\\u2028").replace(PS, b"\\u2029") + b"\n"


def run_trajectories_parquet(*, run: Run, step_min: int | None = None,
                             step_max: int | None = None) -> Iterator[bytes]:
    """The same rows and values as ``run_trajectories_jsonl``, as a Parquet file whose schema is
    fixed before the first row, so every column has one type however its first rows look: a
    ``datasets`` or pandas reader needs no guess (the JSONL's null-first-block limit is gone).

    ``rewards`` is a struct with one float field per reward component any row of the export
    reports (null where a row lacks it); a run that reports no components has a null column.
    Rows are written in row groups of ``PARQUET_ROW_GROUP`` and each group is sent as soon as it
    is written, so memory holds one group, not the run.
    """
    import pyarrow as pa

    rows = _trajectories(run, step_min, step_max)
    components = _reward_components(rows)
    records = (_parquet_record(record, components) for record in _trajectory_records(rows))
    yield from parquet_chunks(records, pa.schema(_parquet_fields(pa, components)), row_group=PARQUET_ROW_GROUP)


def _reward_components(rows) -> list[str]:
    """Every reward component name the rows report, sorted (one pass over the rewards alone)."""
    names: set[str] = set()
    for rewards in rows.values_list("rewards", flat=True).iterator(chunk_size=CHUNK * 4):
        if isinstance(rewards, dict):
            names.update(rewards)
    return sorted(names)


def _parquet_fields(pa, components: list[str]) -> list:
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    rewards = pa.struct([(name, pa.float64()) for name in components]) if components else pa.null()
    return [("step", pa.int64()), ("group_index", pa.int64()), ("sample_index", pa.int64()),
            ("prompt", pa.int64()), ("prompt_text", pa.string()), ("prompt_messages", pa.list_(message)),
            ("completion", pa.string()), ("reward", pa.float64()), ("rewards", rewards),
            ("advantage", pa.float64()), ("length", pa.int64()), ("finish_reason", pa.string())]


def _finite(value) -> float | None:
    """A float for Parquet, null for a value that is missing or not finite (as the JSONL writes it)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _parquet_record(record: dict, components: list[str]) -> dict:
    rewards = record["rewards"] if isinstance(record["rewards"], dict) else {}
    return {**record, "reward": _finite(record["reward"]), "advantage": _finite(record["advantage"]),
            "rewards": {name: _finite(rewards.get(name)) for name in components} if components else None}


def _csv_lines(rows: Iterable) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def run_metrics_csv(*, run: Run, keys: list[str] | None = None) -> Iterator[bytes]:
    """The run's metric points as CSV (a header line first): every key, or only ``keys``; a page at a time."""
    yield _csv_lines([METRIC_COLUMNS])
    for key in sorted(set(keys)) if keys else [None]:
        after = None
        while True:
            page = metric_points_page(run_id=run.pk, limit=METRIC_PAGE, key=key, after=after)
            if page:
                yield _csv_lines([p["step"], p["key"], repr(float(p["value"]))] for p in page)
            if len(page) < METRIC_PAGE:
                break
            after = (page[-1]["key"], page[-1]["step"])


def export_response(lines: Iterator[bytes], *, run: Run, what: str, content_type: str) -> StreamingHttpResponse:
    """``lines`` as a streamed attachment named after the run, for the run page and the API alike."""
    return attachment_response(lines, filename=export_filename(run, what), content_type=content_type)
