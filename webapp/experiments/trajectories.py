"""Trajectories reported by a trainer outside Steer (REST, ``steer_client``), all or nothing.

Steer's own workers record rollouts through ``execution.PolicyRunRecorder``; an external
trainer (TRL, a custom loop) posts sampled completions over the API, and they land here.
A slot (run, step, group_index, sample_index) written again by a later request keeps the
last report, so a retried request is harmless; two records of one batch in the same slot are
refused (with group_index and sample_index left out, every completion of a step fell into slot
(0, 0), and all but the last were dropped without a word).

A prompt is text, or chat messages ``[{"role", "content"}, ...]`` as TRL's conversational
datasets hold them: those are kept (``prompt_messages``) so that tasks, pairs and exports made
from the run stay conversational, and ``prompt_text`` shows them as "role: content".
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from django.db import transaction

from webapp.datasets.parsing import parse_messages
from webapp.experiments.models import Trajectory

MAX_TEXT_CHARS = 200_000
FINISH_REASONS = set(Trajectory.FinishReason.values)
# What a record may hold; any other key (a misspelt "advantages") is refused, not dropped unread.
RECORD_FIELDS = ("step", "group_index", "sample_index", "prompt", "completion", "reward", "rewards", "advantage",
                 "length", "finish_reason")
UPDATE_FIELDS = ["prompt_text", "prompt_messages", "completion", "rewards", "reward", "advantage", "length", "finish_reason"]


class TrajectoryRecordError(ValueError):
    """A record that cannot be stored; ``index`` is its position in the batch, ``field`` the bad input."""

    def __init__(self, index: int, field: str, message: str):
        self.index, self.field, self.message = index, field, message
        super().__init__(f"records[{index}].{field}: {message}")


# A trajectory's step, group, sample and length are stored as 32-bit integers.
MAX_COUNT = 2**31 - 1


def _count(i: int, record: dict, name: str, default=None) -> int:
    value = record.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise TrajectoryRecordError(i, name, f"must be a non-negative integer of at most {MAX_COUNT} (2**31 - 1)")
    return value


def _number(i: int, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TrajectoryRecordError(i, name, "must be a finite number")
    try:
        number = float(value)  # an integer such as 10**400 is valid JSON and too large for a float
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise TrajectoryRecordError(i, name, "must be a finite number")
    return number


def _text(i: int, record: dict, name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise TrajectoryRecordError(i, name, "must be a string")
    return _storable(i, name, value)


def _prompt(i: int, record: dict) -> tuple[str, list[dict] | None]:
    """(prompt text, chat messages or None) of a record whose prompt is text or messages."""
    value = record.get("prompt")
    if not isinstance(value, list):
        if not isinstance(value, str):
            raise TrajectoryRecordError(i, "prompt", "must be a string or a list of {role, content} messages")
        return _text(i, record, "prompt"), None
    try:
        messages = parse_messages(value)
    except ValueError as exc:
        raise TrajectoryRecordError(i, "prompt", str(exc)) from None
    messages = [{"role": m["role"], "content": _storable(i, f"prompt[{j}].content", m["content"])}
                for j, m in enumerate(messages)]
    text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)  # as Prompt.display_text
    if len(text) > MAX_TEXT_CHARS:
        raise TrajectoryRecordError(i, "prompt", f"is longer than {MAX_TEXT_CHARS} characters")
    return text, messages


def _storable(i: int, name: str, value: str) -> str:
    if len(value) > MAX_TEXT_CHARS:
        raise TrajectoryRecordError(i, name, f"is longer than {MAX_TEXT_CHARS} characters")
    return model_text_storable(value)


def model_text_storable(value: str) -> str:
    """Model text as the database can store it: NUL (which PostgreSQL refuses) dropped, and an
    unpaired half of a UTF-16 pair (no UTF-8 for it) made U+FFFD. Text a model sampled is kept,
    not refused, whoever stores it: an external trainer's records (above), and Steer's own
    workers' completions (a byte-level tokenizer can decode a NUL byte)."""
    value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # half of a UTF-16 pair ("\\ud800" in the JSON): no database stores it
        value = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    return value


def trajectory_from_record(i: int, record, *, run_id: int) -> Trajectory:
    """One unsaved Trajectory from a decoded JSON record; TrajectoryRecordError names the bad field."""
    if not isinstance(record, dict):
        raise TrajectoryRecordError(i, "record", "must be an object")
    unknown = [key for key in record if key not in RECORD_FIELDS]
    if unknown:
        raise TrajectoryRecordError(i, unknown[0][:100], f"unknown field; a record takes {', '.join(RECORD_FIELDS)}")
    rewards = record.get("rewards", {})
    if not isinstance(rewards, dict) or not all(isinstance(name, str) for name in rewards):
        raise TrajectoryRecordError(i, "rewards", "must be an object of reward name to number")
    if "" in rewards:  # the schema (OpenAPI 3.0) cannot say it: a component is read back, exported, by its name
        raise TrajectoryRecordError(i, "rewards", "a reward name is empty; name each component, e.g. \"accuracy\"")
    if any("\x00" in name for name in rewards):
        raise TrajectoryRecordError(i, "rewards", "a reward name holds the NUL character, which cannot be stored")
    rewards = {name: _number(i, f"rewards.{name}", value) for name, value in rewards.items()}
    advantage = record.get("advantage")
    finish_reason = record.get("finish_reason")
    finish_reason = "" if finish_reason is None else finish_reason  # {} or 0 is no reason, and is refused
    if not isinstance(finish_reason, str) or (finish_reason and finish_reason not in FINISH_REASONS):
        raise TrajectoryRecordError(i, "finish_reason", f"must be one of {', '.join(sorted(FINISH_REASONS))}")
    prompt_text, prompt_messages = _prompt(i, record)
    return Trajectory(
        run_id=run_id,
        step=_count(i, record, "step"),
        group_index=_count(i, record, "group_index", 0),
        sample_index=_count(i, record, "sample_index", 0),
        prompt_text=prompt_text,
        prompt_messages=prompt_messages,
        completion=_text(i, record, "completion"),
        rewards=rewards,
        reward=_number(i, "reward", record.get("reward")),
        advantage=None if advantage is None else _number(i, "advantage", advantage),
        length=None if record.get("length") is None else _count(i, record, "length"),  # left out or null: unknown
        finish_reason=finish_reason,
    )


def trajectories_record(*, run_id: int, records: Iterable) -> int:
    """Validate every record, then store them in one transaction; returns how many were written.

    TrajectoryRecordError names the first bad record, or the first that repeats an earlier
    record's slot.
    """
    rows: dict[tuple[int, int, int], Trajectory] = {}
    first: dict[tuple[int, int, int], int] = {}
    for i, record in enumerate(records):
        row = trajectory_from_record(i, record, run_id=run_id)
        slot = (row.step, row.group_index, row.sample_index)
        if slot in first:
            raise TrajectoryRecordError(
                i, "sample_index", f"repeats the slot of records[{first[slot]}] (step {slot[0]}, "
                f"group_index {slot[1]}, sample_index {slot[2]}); number each completion of a step "
                "by group_index (its prompt) and sample_index")
        first[slot] = i
        rows[slot] = row
    if not rows:
        return 0
    with transaction.atomic():
        Trajectory.objects.bulk_create(
            list(rows.values()), batch_size=500, update_conflicts=True,
            unique_fields=["run", "step", "group_index", "sample_index"], update_fields=UPDATE_FIELDS,
        )
    return len(rows)
