"""Exports of a project's labels as JSONL lines (each line ends with a newline).

``preference_pairs_jsonl``: TRL's preference format, one line per (label, ordered pair):
``{"prompt", "chosen", "rejected"}``; a chat prompt is exported conversationally
(prompt = list of messages, chosen/rejected = [{"role": "assistant", "content": ...}]), and
so is every prompt of a project that mixes chat and plain prompts (a plain one as one user
message): ``datasets`` cannot give one column both strings and message lists (it falls back to
a JSON feature that decodes "4" as the number 4), and TRL reads either format, not a mix.
Each annotator's label contributes its own pairs (raw votes, not a majority); a pair of two
candidates with the same text is left out (chosen == rejected teaches nothing).

``raw_labels_parquet``: the same rows and values as a typed Parquet file (see its docstring).

Labels a researcher rejected in review (``review.py``) are left out of every export.

``raw_labels_jsonl``: one line per label with the whole ranking (tiers), the per-criterion
scores and the rubric version; ``prompt`` + ``completions`` + ``ranking`` is also the
ranked-record format the engine's reward-model trainer reads. Its prompts follow the same
rule (message lists throughout for a mixed project); completions stay strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.db.models import Prefetch

from webapp.core.parquet_stream import parquet_chunks
from webapp.feedback.models import (
    Candidate,
    ComparisonTask,
    CriterionScore,
    PreferenceLabel,
)
from webapp.feedback.ranking import ranking_pairs

CHUNK = 500
LABEL_COLUMNS = ["label_id", "task_id", "is_gold", "gold_ranking", "annotator", "prompt", "completions", "ranking",
                 "both_bad", "strength", "critique", "rubric", "scores", "time_spent_ms", "created_at"]


def _labels(project):
    return (PreferenceLabel.objects.filter(task__project=project, rejected_at__isnull=True)  # rejected: left out
            .select_related("task", "annotator", "rubric_version__rubric")
            .prefetch_related(Prefetch("task__candidates", queryset=Candidate.objects.order_by("position")))
            .order_by("task_id", "id"))


def _line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


def _prompt(task, *, conversational: bool = False):
    if task.prompt_messages:
        return task.prompt_messages
    return [{"role": "user", "content": task.prompt_text}] if conversational else task.prompt_text


def _completion(task, text: str, *, conversational: bool = False):
    return [{"role": "assistant", "content": text}] if task.prompt_messages or conversational else text


def mixes_prompt_formats(project) -> bool:
    """True when the project holds both plain-text and chat tasks."""
    tasks = ComparisonTask.objects.filter(project=project)
    return tasks.filter(prompt_messages__isnull=True).exists() and tasks.filter(prompt_messages__isnull=False).exists()


def has_chat_prompts(project) -> bool:
    """True when any of the project's tasks has a chat prompt."""
    return ComparisonTask.objects.filter(project=project, prompt_messages__isnull=False).exists()


def preference_pairs_jsonl(*, project, include_ties: bool = False,
                           strength_margins: list[float] | None = None) -> Iterator[str]:
    """Every (better, worse) pair implied by every label; ties left out unless ``include_ties``.

    With ``include_ties`` every line carries ``"tie"`` (true for a tied pair, whose chosen /
    rejected order is by position and means nothing) and ``"both_bad"``. With
    ``strength_margins`` (three margins, for strength 1, 2, 3) every line carries ``"margin"``:
    its label's strength's margin, 0.0 for a label that gives none (TRL's RewardTrainer cannot
    collate a null). A project that mixes chat and plain prompts is exported conversationally
    throughout.
    """
    conversational = mixes_prompt_formats(project)
    for label in _labels(project).iterator(chunk_size=CHUNK):
        task = label.task
        texts = {c.position: c.text for c in task.candidates.all()}
        for better, worse, tied in ranking_pairs(label.ranking):
            if (tied and not include_ties) or texts[better] == texts[worse]:
                continue  # a pair of one text twice teaches nothing
            line = {"prompt": _prompt(task, conversational=conversational),
                    "chosen": _completion(task, texts[better], conversational=conversational),
                    "rejected": _completion(task, texts[worse], conversational=conversational)}
            if include_ties:
                line["tie"] = tied
                line["both_bad"] = label.both_bad
            if strength_margins is not None:
                line["margin"] = strength_margins[label.strength - 1] if label.strength else 0.0
            line.update({"task_id": task.pk, "label_id": label.pk, "annotator": label.annotator.username})
            yield _line(line)


def raw_labels_jsonl(*, project) -> Iterator[str]:
    """One line per label: who, the ranking as tiers, both_bad, strength (1-3 or null), critique,
    scores, time and rubric version.

    As in the preference export, a project that mixes chat and plain prompts gives every
    ``prompt`` as a message list (a plain one as one user message).

    Every line has the ``LABEL_COLUMNS`` keys, each with one JSON type on every line or null;
    floats (a score's ``value``, a criterion's ``weight``) are floats on every line. Null (or
    empty) where there is nothing: ``gold_ranking`` on a task that is not gold, ``strength`` on a
    label that gives none, ``rubric`` (and ``scores`` is []) on a label without a rubric,
    ``time_spent_ms`` on a label whose time is not known. So
    ``datasets.load_dataset("json", ...)``, which types each column from the file's first 10 MB,
    fails on a file whose first 10 MB hold none of them and whose later lines do ("Couldn't cast
    array of type ... to null"); [] in place of null would fail the same way (a block of empty
    lists is list<null>). ``raw_labels_parquet`` writes the same rows typed up front; the JSONL
    loads when given ``features=``."""
    for record in _label_records(project, conversational=mixes_prompt_formats(project)):
        yield _line({**record, "created_at": record["created_at"].isoformat()})


def raw_labels_parquet(*, project) -> Iterator[bytes]:
    """The rows and values of ``raw_labels_jsonl`` as one Parquet file whose schema is fixed before
    the first row (``created_at`` a UTC timestamp), streamed a row group at a time.

    ``datasets.load_dataset("json", ...)`` can fail on a large labels.jsonl: ``gold_ranking`` and
    ``rubric`` are null on every line of a first 10 MB block without gold tasks or rubrics, and
    filled later. Here ``prompt`` is a string column in a project without chat prompts, else
    a list of ``{role, content}`` messages for every label (a plain prompt as one user message),
    as in the JSONL."""
    import pyarrow as pa

    conversational = has_chat_prompts(project)
    schema = pa.schema(_label_fields(pa, conversational=conversational))
    # a string column takes each task's text: a chat task made while the file is written gives its text
    records = _label_records(project, conversational=conversational, text_prompts=not conversational)
    yield from parquet_chunks(records, schema, row_group=PARQUET_ROW_GROUP)


PARQUET_ROW_GROUP = 2_000  # labels per row group


def _label_fields(pa, *, conversational: bool) -> list:
    tiers = pa.list_(pa.list_(pa.int64()))
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    score = pa.struct([("candidate", pa.int64()), ("criterion", pa.string()), ("criterion_id", pa.int64()),
                       ("scale", pa.string()), ("weight", pa.float64()), ("value", pa.float64())])
    return [("label_id", pa.int64()), ("task_id", pa.int64()), ("is_gold", pa.bool_()), ("gold_ranking", tiers),
            ("annotator", pa.string()), ("prompt", pa.list_(message) if conversational else pa.string()),
            ("completions", pa.list_(pa.string())), ("ranking", tiers), ("both_bad", pa.bool_()), ("strength", pa.int64()),
            ("critique", pa.string()), ("rubric", pa.struct([("name", pa.string()), ("version", pa.int64())])),
            ("scores", pa.list_(score)), ("time_spent_ms", pa.int64()), ("created_at", pa.timestamp("us", tz="UTC"))]


def _label_records(project, *, conversational: bool, text_prompts: bool = False) -> Iterator[dict]:
    labels = _labels(project).prefetch_related(
        Prefetch("scores", queryset=CriterionScore.objects.select_related("criterion", "candidate")))
    for label in labels.iterator(chunk_size=CHUNK):
        task = label.task
        version = label.rubric_version
        yield {
            "label_id": label.pk,
            "task_id": task.pk,
            "is_gold": task.is_gold,
            "gold_ranking": task.gold_ranking,
            "annotator": label.annotator.username,
            "prompt": task.prompt_text if text_prompts else _prompt(task, conversational=conversational),
            "completions": [c.text for c in task.candidates.all()],
            "ranking": label.ranking,
            "both_bad": label.both_bad,
            "strength": label.strength,
            "critique": label.critique,
            "rubric": {"name": version.rubric.name, "version": version.number} if version else None,
            "scores": [{"candidate": s.candidate.position, "criterion": s.criterion.name, "criterion_id": s.criterion_id,
                        "scale": s.criterion.scale, "weight": s.criterion.weight, "value": s.value}
                       for s in sorted(label.scores.all(), key=lambda s: (s.candidate.position, s.criterion.position))],
            "time_spent_ms": label.time_spent_ms,
            "created_at": label.created_at,
        }
