"""A run's trajectories as JSONL and its metrics as CSV, streamed from the database.

``run_trajectories_jsonl``: one line per sampled completion, in (step, group_index,
sample_index) order, with the REST API's names for what is stored::

    {"step", "group_index", "sample_index", "prompt", "prompt_text", "prompt_messages",
     "completion", "reward", "rewards", "advantage", "length", "finish_reason"}

``prompt`` is the dataset prompt's id (null for a prompt an external trainer sent as text),
``prompt_text`` the prompt as text, ``prompt_messages`` the chat messages
([{"role", "content"}, ...]) when the run's dataset prompt is a chat prompt, else null. An
export that holds both chat and plain prompts gives every plain one as one user message: a
``datasets`` column that is null throughout its first block (10 MB) and a list later fails to
load ("Couldn't cast array of type list<...> to null"). So each column holds one type and
``datasets.load_dataset("json", ...)`` loads the file as is; the same limit of ``datasets``
holds for ``advantage`` (a run whose first steps have none and later steps have one) and for
``rewards`` (a component first reported after the first block), which the file cannot avoid.
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
from collections.abc import Iterable, Iterator

import orjson
from django.http import StreamingHttpResponse
from django.utils.text import slugify

from webapp.core.downloads import attachment_response
from webapp.experiments.models import Run, Trajectory
from webapp.experiments.selectors import metric_points_page

CHUNK = 500  # trajectories per fetch from the server-side cursor (a few kB each)
METRIC_PAGE = 5_000  # metric points per read of the chunks

TRAJECTORY_COLUMNS = ["step", "group_index", "sample_index", "prompt", "prompt_text", "prompt_messages",
                      "completion", "reward", "rewards", "advantage", "length", "finish_reason"]
METRIC_COLUMNS = ["step", "key", "value"]
# U+2028 and U+2029, escaped: ``str.splitlines()`` and some JSONL readers end a line at them
LS, PS = "\u2028".encode(), "\u2029".encode()


def export_filename(run: Run, what: str) -> str:
    """``<run name slug>-<run id>-<what>``: ASCII only, safe in a Content-Disposition header."""
    return f"{slugify(run.name) or 'run'}-{run.pk}-{what}"


def run_trajectories_jsonl(*, run: Run, step_min: int | None = None, step_max: int | None = None) -> Iterator[bytes]:
    """Every trajectory of the run (within ``step_min``..``step_max`` when given) as one JSONL line."""
    rows = Trajectory.objects.filter(run=run)
    if step_min is not None:
        rows = rows.filter(step__gte=step_min)
    if step_max is not None:
        rows = rows.filter(step__lte=step_max)
    conversational = (rows.filter(prompt__messages__isnull=False).exists()
                      and rows.filter(prompt__messages__isnull=True).exists())  # null too without a prompt
    rows = rows.order_by("step", "group_index", "sample_index").values_list(
        "step", "group_index", "sample_index", "prompt", "prompt_text", "prompt__messages", "completion",
        "reward", "rewards", "advantage", "length", "finish_reason")
    for row in rows.iterator(chunk_size=CHUNK):
        line = dict(zip(TRAJECTORY_COLUMNS, row))
        if conversational and line["prompt_messages"] is None:
            line["prompt_messages"] = [{"role": "user", "content": line["prompt_text"]}]
        line = orjson.dumps(line)  # a float that is not finite as null
        yield line.replace(LS, b"\\u2028").replace(PS, b"\\u2029") + b"\n"


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
