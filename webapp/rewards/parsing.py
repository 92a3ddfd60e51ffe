"""Parsing of preference-pair JSONL ({prompt, chosen, rejected} a line); pure, no database."""

from __future__ import annotations

from json import JSONDecodeError

from webapp.core.json_input import json_line_error, jsonl_lines, storable_json
from webapp.datasets.parsing import parse_messages
from webapp.rewards.errors import PairImportError

MAX_PAIRS = 100_000
MAX_ERRORS = 50


def pair_from_object(obj) -> dict:
    """One pair from a decoded JSON object; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    missing = [k for k in ("chosen", "rejected") if k not in obj]
    if missing:
        raise ValueError(f"missing {' and '.join(missing)}: each line needs prompt, chosen and rejected")
    unknown = sorted(set(obj) - {"prompt", "chosen", "rejected"})
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; a line holds prompt, chosen and rejected")
    prompt = obj.get("prompt", "")
    if isinstance(prompt, list):
        prompt = parse_messages(prompt)
    elif not isinstance(prompt, str):
        raise ValueError("prompt must be a string or a list of {role, content} messages")
    for key in ("chosen", "rejected"):
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise ValueError(f"{key} must be a non-empty string")
    if obj["chosen"] == obj["rejected"]:
        raise ValueError("chosen and rejected are the same text; nothing to learn from")
    return {"prompt": prompt, "chosen": obj["chosen"], "rejected": obj["rejected"]}


def parse_pairs(content: str) -> list[dict]:
    """Every pair of a JSONL text, or PairImportError listing each bad line with its number."""
    pairs, errors = [], []
    for number, line in jsonl_lines(content):
        if not line.strip():
            continue
        try:
            pairs.append(pair_from_object(storable_json(line)))
        except JSONDecodeError as exc:
            errors.append((number, json_line_error(exc)))
        except ValueError as exc:
            errors.append((number, str(exc)))
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise PairImportError(errors)
    if not pairs:
        raise PairImportError([(0, "the file holds no pairs")])
    if len(pairs) > MAX_PAIRS:
        raise PairImportError([(0, f"{len(pairs)} pairs; at most {MAX_PAIRS} per file")])
    return pairs
