"""Parsing of preference-pair JSONL ({prompt, chosen, rejected} a line); pure, no database.

TRL's implicit prompt is read too: chosen and rejected whole conversations (message lists)
that open with the same messages, which are then the prompt, with no ``prompt`` or, as TRL
reads it, a string one beside them. So is Steer's labels.jsonl, each line as the pairs its
ranking implies. A pair may carry TRL's optional ``margin``, which a reward-model run's
Bradley-Terry loss uses."""

from __future__ import annotations

import math
from collections.abc import Iterator
from json import JSONDecodeError

from webapp.core.json_input import (
    json_array_instead_of_lines,
    json_line_error,
    jsonl_lines,
    storable_json,
)
from webapp.core.line_errors import LineErrors
from webapp.core.uploads import UploadText
from webapp.datasets.parsing import parse_messages
from webapp.feedback.exports import LABEL_COLUMNS
from webapp.feedback.ranking import ranking_normalise, ranking_pairs
from webapp.rewards.errors import PairImportError
from workers.engine.config import MARGIN_TOO_LARGE, MAX_PAIR_MARGIN

MAX_PAIRS = 100_000


# What Steer's own preferences export adds to a pair (where it came from, and with ties on,
# whether it was a tie): read back without complaint, so an export imports as it is.
EXPORT_FIELDS = frozenset({"task_id", "label_id", "annotator", "tie", "both_bad"})
# What the preference datasets TRL's documentation trains on add, read past likewise:
# trl-lib/ultrafeedback_binarized the two answers' scores; HuggingFaceH4/ultrafeedback_binarized
# those, the prompt's id and the chosen conversation again as ``messages``.
DATASET_FIELDS = frozenset({"score_chosen", "score_rejected", "prompt_id", "messages"})
# What a pair is, and stores: TRL's preference columns, ``margin`` the optional one its
# RewardTrainer reads (-log σ(r_chosen - r_rejected - margin)).
PAIR_FIELDS = frozenset({"prompt", "chosen", "rejected", "margin"})


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _margin(value) -> float | None:
    """TRL's optional margin: a number from 0 to ``MAX_PAIR_MARGIN`` (the engine refuses others), as a float, or
    None when it is null (datasets' to_json writes a column's missing values as null)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):  # parsers catch ValueError
        raise ValueError(f"margin must be a number ≥ 0 (or null for none), not {_json_kind(value)}")  # noqa: TRY004
    try:
        margin = float(value) + 0.0  # -0.0 as 0.0
    except OverflowError:  # an integer of hundreds of digits
        margin = math.inf
    if not math.isfinite(margin):
        raise ValueError("margin is too large a number")
    if margin < 0:
        raise ValueError(f"margin must be ≥ 0, got {margin:g}")
    if margin > MAX_PAIR_MARGIN:  # the run would diverge rather than learn
        raise ValueError(f"margin {MARGIN_TOO_LARGE}, got {margin:g}")
    return margin


def _answer(value, key: str) -> str:
    """A chosen or rejected answer: a string, or, in TRL's conversational format, the
    assistant message(s) that follow the prompt."""
    if isinstance(value, list):
        messages = parse_messages(value)
        if any(m["role"] != "assistant" for m in messages):
            raise ValueError(f"{key} as messages holds the answer only: assistant messages, "
                             "the prompt's own messages belong in prompt")
        value = "\n".join(m["content"] for m in messages)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty string or a list of assistant messages")
    return value


def _implicit_prompt(chosen: list, rejected: list) -> tuple[list, list, list]:
    """TRL's implicit prompt (its ``extract_prompt``): two whole conversations without a
    ``prompt``, whose shared opening messages are the prompt and the rest each answer."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    return chosen[:shared], chosen[shared:], rejected[shared:]


def _prompt(value) -> str | list[dict]:
    if isinstance(value, list):
        return parse_messages(value)
    if not isinstance(value, str):
        raise ValueError("prompt must be a string or a list of {role, content} messages")  # noqa: TRY004 (parsers catch ValueError)
    return value


def _holds_prompt(messages: list) -> bool:
    """Whether answers given as messages hold more than the assistant's: a whole conversation."""
    return any(isinstance(m, dict) and m.get("role") != "assistant" for m in messages)


def pair_from_object(obj) -> dict:
    """One pair from a decoded JSON object; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    missing = [k for k in ("chosen", "rejected") if k not in obj]
    if missing:
        raise ValueError(f"missing {' and '.join(missing)}: each line needs prompt, chosen and rejected")
    unknown = sorted(set(obj) - PAIR_FIELDS - EXPORT_FIELDS - DATASET_FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; a line holds prompt, chosen and rejected, and optionally "
                         "margin (drop other columns first, e.g. with datasets' "
                         "select_columns([\"prompt\", \"chosen\", \"rejected\"]))")
    if obj.get("tie") is True:
        raise ValueError("a tied pair (\"tie\": true) prefers neither answer; export without ties, "
                         "or leave such lines out")
    prompt, chosen, rejected = obj.get("prompt", ""), obj["chosen"], obj["rejected"]
    conversations = isinstance(chosen, list) and isinstance(rejected, list)
    if conversations and ("prompt" not in obj or isinstance(prompt, str) and _holds_prompt(chosen + rejected)):
        # TRL's maybe_extract_prompt takes the prompt from the conversations also when a string
        # prompt comes with them (HuggingFaceH4/ultrafeedback_binarized: the user's message again)
        prompt, chosen, rejected = _implicit_prompt(chosen, rejected)
        prompt = prompt or ""
    prompt = _prompt(prompt)
    chosen, rejected = _answer(chosen, "chosen"), _answer(rejected, "rejected")
    if chosen == rejected:
        raise ValueError("chosen and rejected are the same text; nothing to learn from")
    pair = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if (margin := _margin(obj.get("margin"))) is not None:  # stored only when given
        pair["margin"] = margin
    return pair


# Steer's labels.jsonl export: a label's whole ranking of a task's completions, read as the
# pairs it implies, those that preferences.jsonl gives for it.
LABEL_FIELDS = frozenset(LABEL_COLUMNS)


def label_pairs(obj: dict) -> list[dict]:
    """The pairs of a labels.jsonl line (prompt, completions, ranking as tiers): each two answers
    the ranking orders, better first, as the preferences export gives them; ties and two copies
    of one text give none. ValueError says what is wrong."""
    unknown = sorted(set(obj) - LABEL_FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; a ranked line (as labels.jsonl) holds prompt, "
                         "completions and ranking")
    prompt = _prompt(obj.get("prompt", ""))
    completions = obj["completions"]
    if not isinstance(completions, list) or len(completions) < 2 or not all(
            isinstance(c, str) and c.strip() for c in completions):
        raise ValueError("completions must be a list of two or more non-empty strings")
    try:
        ranking = ranking_normalise(obj["ranking"], k=len(completions))
    except ValueError as exc:
        raise ValueError(f"ranking: {exc}") from None
    return [{"prompt": prompt, "chosen": completions[better], "rejected": completions[worse]}
            for better, worse, tied in ranking_pairs(ranking)
            if not tied and completions[better] != completions[worse]]


def pairs_from_object(obj) -> list[dict]:
    """The pairs of one decoded line: a pair, or a labels.jsonl line's; ValueError says what is wrong."""
    if isinstance(obj, dict) and "completions" in obj and "ranking" in obj and not {"chosen", "rejected"} & set(obj):
        return label_pairs(obj)
    return [pair_from_object(obj)]


def parse_pairs(content: str | UploadText) -> list[dict]:
    """Every pair of a JSONL text or uploaded file, or PairImportError listing each bad line with
    its number."""
    pairs, count = [], 0
    for pair in iter_pairs(content, errors := LineErrors()):
        count += 1
        if count <= MAX_PAIRS:  # past the limit only the count is kept, for the message
            pairs.append(pair)
    check_pair_count(count, errors)
    return pairs


def iter_pairs(content: str | UploadText, errors: list[tuple[int, str]]) -> Iterator[dict]:
    """Each pair of a JSONL text or upload in turn (a labels.jsonl line gives its pairs), read a
    line at a time; each bad line's (number from 1, message) is appended to ``errors`` instead
    (when the file turns out to be one JSON array, that alone replaces them at the end)."""
    for number, line in jsonl_lines(content):
        if not line.strip():
            continue
        try:
            found = pairs_from_object(storable_json(line))
        except JSONDecodeError as exc:
            errors.append((number, json_line_error(exc)))
            continue
        except ValueError as exc:
            errors.append((number, str(exc)))
            continue
        yield from found
    if errors and (array := json_array_instead_of_lines(content)):
        errors[:] = [(1, array)]


def check_pair_count(count: int, errors: list[tuple[int, str]]) -> None:
    """PairImportError for a file with bad lines (``errors``), no pairs or too many."""
    if errors:
        raise PairImportError(errors)
    if not count:
        raise PairImportError([(0, "the file holds no pairs (a ranking that ties every answer gives none)")])
    if count > MAX_PAIRS:
        raise PairImportError([(0, f"{count} pairs; at most {MAX_PAIRS} per file")])
