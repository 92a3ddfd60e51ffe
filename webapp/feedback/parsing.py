"""Parsing of comparison-task files (JSONL) into validated rows; pure, no database.

One object a line::

    {"prompt": "text" | [{"role": ..., "content": ...}, ...],
     "completions": ["first", "second", ...],          # 2..MAX_CANDIDATES strings (or assistant messages)
     "gold_ranking": [[1], [0]],                       # optional: makes it a gold task
     "metadata": {...}}                                # optional
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from json import JSONDecodeError

from webapp.core.json_input import (
    json_array_instead_of_lines,
    json_line_error,
    jsonl_lines,
    storable_json,
)
from webapp.core.line_errors import LineErrors, line_errors_message
from webapp.core.uploads import UploadText
from webapp.datasets.parsing import parse_messages
from webapp.feedback.ranking import ranking_normalise

MAX_CANDIDATES = 10
MAX_TASKS = 50_000
KNOWN_KEYS = {"prompt", "completions", "gold_ranking", "metadata"}


class TaskImportError(Exception):
    """An import refused as a whole; ``errors`` lists (line number, message), the first 100 of
    them (``errors.total`` counts them all)."""

    def __init__(self, errors: list[tuple[int, str]]):
        self.errors = LineErrors.of(errors)
        super().__init__(line_errors_message(
            self.errors, [f"line {n}: {msg}" if n else msg for n, msg in self.errors[:10]]))


@dataclass(frozen=True)
class TaskRow:
    prompt_text: str
    prompt_messages: list[dict] | None
    completions: list[str]
    gold_ranking: list[list[int]] | None = None
    metadata: dict = field(default_factory=dict)


def prompt_display_text(messages: list[dict]) -> str:
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def _completion_text(value, i: int) -> str:
    """A completion: a string, or, in TRL's conversational format, the assistant message(s) of
    the answer (joined by newlines, as the pair import reads chosen and rejected)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        messages = parse_messages(value)
        if any(m["role"] != "assistant" for m in messages):
            raise ValueError(f"completion {i} as messages holds the answer only: assistant messages "
                             "(the prompt's own messages belong in 'prompt')")
        return "\n".join(m["content"] for m in messages)
    raise ValueError("'completions' must be a list of strings (or of assistant messages)")


def _other_shape(obj: dict) -> str | None:
    """What to say of a line of another kind of file (an export of Steer's or TRL's) that users
    bring to the task import, else None: an unknown-fields error named none of it."""
    if "completion" in obj and "completions" not in obj:
        return ("one completion a line (a run's trajectories.jsonl, TRL's prompt-completion format); a task "
                "is one line holding a prompt and its 2 to 10 answers in 'completions': group each prompt's "
                "completions into one line, or make tasks from a run of this project (Tasks, From a run's trajectories)")
    if "chosen" in obj and "rejected" in obj and "completions" not in obj:
        return ("a preference pair (TRL's format, preferences.jsonl), which the pair import reads (Reward "
                "models, Import preference pairs); as a task write {\"prompt\", \"completions\": [a, b]}, in an order "
                "that does not tell which was chosen")
    return None


def task_row_from_object(obj) -> TaskRow:
    """One task from a decoded JSON object; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    unknown = set(obj) - KNOWN_KEYS
    if unknown and (shape := _other_shape(obj)):
        raise ValueError(shape)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(KNOWN_KEYS))}")
    prompt = obj.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        prompt_text, messages = prompt, None
    elif isinstance(prompt, list):
        messages = parse_messages(prompt)
        prompt_text = prompt_display_text(messages)
    else:
        raise ValueError("'prompt' must be a non-empty string or a list of {role, content} messages")
    completions = obj.get("completions")
    if not isinstance(completions, list):
        raise ValueError("'completions' must be a list of strings (or of assistant messages)")
    completions = [_completion_text(c, i) for i, c in enumerate(completions)]
    if not 2 <= len(completions) <= MAX_CANDIDATES:
        raise ValueError(f"'completions' must hold 2 to {MAX_CANDIDATES} completions, got {len(completions)}")
    if len(set(completions)) == 1:
        raise ValueError("the completions are all the same text; there is nothing to choose between")
    gold = obj.get("gold_ranking")
    if gold is not None:
        try:
            gold = ranking_normalise(gold, k=len(completions))
        except ValueError as exc:
            raise ValueError(f"'gold_ranking': {exc}") from None
        if len(gold) == 1:
            raise ValueError("'gold_ranking' ties every completion, so it cannot check anyone; order at least two")
    metadata = obj.get("metadata")
    if metadata is None:  # none, or null as datasets' to_json writes a missing one
        metadata = {}
    if not isinstance(metadata, dict):
        raise ValueError("'metadata' must be an object")
    return TaskRow(prompt_text=prompt_text, prompt_messages=messages, completions=completions,
                   gold_ranking=gold, metadata=metadata)


def parse_tasks_jsonl(content: str | UploadText) -> list[TaskRow]:
    """All rows, or TaskImportError listing every bad line by its number (from 1)."""
    rows, count = [], 0
    for row in iter_tasks_jsonl(content, errors := LineErrors()):
        count += 1
        if count <= MAX_TASKS:  # one more says there are too many; the rest need not be kept
            rows.append(row)
    check_task_count(count, errors)
    return rows


def iter_tasks_jsonl(content: str | UploadText, errors: list[tuple[int, str]]) -> Iterator[TaskRow]:
    """Each good row of a JSONL text or upload in turn, read a line at a time; each bad line's
    (number from 1, message) is appended to ``errors`` instead (when the file turns out to be one
    JSON array, that alone replaces them at the end)."""
    for number, line in jsonl_lines(content):
        if not line.strip():
            continue
        try:
            row = task_row_from_object(storable_json(line))
        except JSONDecodeError as exc:
            errors.append((number, json_line_error(exc)))
            continue
        except ValueError as exc:
            errors.append((number, str(exc)))
            continue
        yield row
    if errors and (array := json_array_instead_of_lines(content)):
        errors[:] = [(1, array)]


def check_task_count(count: int, errors: list[tuple[int, str]]) -> None:
    """TaskImportError for a file with bad lines (``errors``), no tasks or too many."""
    if errors:
        raise TaskImportError(errors)
    if not count:
        raise TaskImportError([(0, "the file holds no tasks")])
    if count > MAX_TASKS:
        raise TaskImportError([(MAX_TASKS + 1, f"at most {MAX_TASKS} tasks per import")])
