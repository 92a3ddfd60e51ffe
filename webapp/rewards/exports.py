"""A set of preference pairs as a JSONL file, streamed from the database.

Each line is TRL's preference format (``prompt``/``chosen``/``rejected``, and, when any pair of
the set has a margin, ``margin`` on every line: 0.0 where a pair has none), loadable with ``datasets.load_dataset("json", ...)`` and usable by
DPOTrainer and RewardTrainer as is. A set whose prompts are all strings comes out as plain
text; a set with any chat prompt comes out conversational throughout (``datasets`` cannot give
one column both strings and message lists).
The pairs are read a chunk at a time through a server-side cursor, so a set of 100,000 long
pairs is never held in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
from django.db import connection
from django.http import StreamingHttpResponse
from django.utils.text import slugify

from webapp.core.downloads import attachment_response
from webapp.rewards.models import PreferencePairSet
from webapp.rewards.selectors import pair_rows_sql

CHUNK = 500
# The margin written for a pair without one in a set where others have one: what TRL's
# RewardTrainer gives a pair without a margin, and a reward-model run with its default
# config.margin (a pair without one gets the run's config.margin, 0.0 unless set otherwise).
NO_MARGIN = 0.0


def _pairs_text(pair_set_id: int) -> Iterator[str]:
    """The set's pairs in their stored order, each as its JSON text."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(pair_rows_sql("ORDER BY e.n"), [pair_set_id])
        while rows := cursor.fetchmany(CHUNK):
            for _, text in rows:
                yield text


def _as_conversational(pair: dict) -> dict:
    if isinstance(pair["prompt"], str):
        pair["prompt"] = [{"role": "user", "content": pair["prompt"]}]
    pair["chosen"] = [{"role": "assistant", "content": pair["chosen"]}]
    pair["rejected"] = [{"role": "assistant", "content": pair["rejected"]}]
    return pair


def pair_set_jsonl(*, pair_set: PreferencePairSet) -> Iterator[bytes]:
    """Every pair of the set as one JSONL line (bytes), in the order they were stored. Whether it
    is conversational was stored with the set: finding out from the pairs read them all once
    more (PostgreSQL decompressing tens of MB) before the first line."""
    conversational = pair_set.has_chat_prompt
    for text in _pairs_text(pair_set.pk):
        pair = orjson.loads(text)
        row = {"prompt": pair.get("prompt", ""), "chosen": pair["chosen"], "rejected": pair["rejected"]}
        if conversational:
            row = _as_conversational(row)
        if "margin" in pair:  # so that the line imports back as the same pair
            row["margin"] = pair["margin"]
        elif pair_set.has_margin:  # TRL collates no null into its margin tensor
            row["margin"] = NO_MARGIN
        yield orjson.dumps(row) + b"\n"


def pair_set_download_response(project, pair_set) -> StreamingHttpResponse:
    """The set's pairs as a streamed JSONL attachment, for the page and the API alike."""
    filename = f"{project.slug}-{slugify(pair_set.name) or pair_set.pk}-pairs.jsonl"
    return attachment_response(pair_set_jsonl(pair_set=pair_set), filename=filename,
                               content_type="application/jsonl")
