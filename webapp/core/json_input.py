"""JSON from users (imported lines, form fields, configs), parsed into values the database can
store. ``json.loads`` accepts three things PostgreSQL refuses later, with an error of the
server instead of one naming the line: NaN and ±Infinity (also as numbers too large for a
float, such as 1e999), the NUL character (``\\u0000``), and unpaired surrogates
(``\\ud800``). Nesting deep enough to exhaust Python's stack raises RecursionError, which is
not a ValueError. Here each of them is a ValueError saying what is wrong; syntax errors stay
``json.JSONDecodeError`` (also a ValueError) with line and column.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webapp.core.uploads import UploadText


def storable_json(text: str | bytes) -> Any:
    """The value of ``text``, or ValueError naming what the database could not store."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:  # Python's guard against slow int parsing, naming sys.set_int_max_str_digits()
        if isinstance(exc, json.JSONDecodeError) or "integer string conversion" not in str(exc):
            raise
        raise ValueError(f"holds a whole number of more than {sys.get_int_max_str_digits()} digits; "
                         "write it as a string") from None
    if (b"\\u" if isinstance(text, bytes) else "\\u") in text:  # NUL and surrogates come escaped
        storable_text_check(value)
    opening = (b"[", b"{") if isinstance(text, bytes) else ("[", "{")
    if text.count(opening[0]) + text.count(opening[1]) > MAX_DEPTH:  # only then can it nest that deep
        nesting_check(value)
    return value


# Values nested deeper than this are refused: json.loads reads about 990 levels when the
# import parses a line, but far fewer where the stored value is read back, under the frames of
# a request (psycopg decoding a jsonb column inside a DRF view or a template), so a value of
# 900 levels was stored and then failed every page and API answer that read it (RecursionError).
MAX_DEPTH = 100


def nesting_check(value: Any) -> None:
    """ValueError if arrays and objects in ``value`` nest more than MAX_DEPTH deep."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > MAX_DEPTH:
            raise ValueError(f"JSON nested more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


class UnstorableText(ValueError):
    """A string the database cannot store, and where it is in the value: ``path`` is its place
    ("" for the value itself, ``metadata.source``, ``messages[0].content``), ``key`` the dict
    key at that place that holds it, when a key does, ``problem`` what is wrong with it."""

    def __init__(self, path: str, problem: str, key: str | None = None):
        self.path, self.problem, self.key = path, problem, key
        super().__init__(self.within(""))

    def within(self, field: str) -> str:
        """The message with the place given from ``field`` (a form's or API body's field)."""
        path = field + ("" if not field or not self.path or self.path.startswith("[") else ".") + self.path
        if self.key is not None:
            of = f" of '{path}'" if path else ""
            return f"the key {self.key!r}{of} {self.problem}"
        return f"'{path}' {self.problem}" if path else self.problem


def storable_text_check(value: Any) -> None:
    """UnstorableText (a ValueError) naming the first string anywhere in ``value`` (keys
    included) that holds NUL or an unpaired surrogate, and its path in ``value``."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if problem := _string_problem(item):
                raise UnstorableText(path, problem)
        elif isinstance(item, dict):
            for key in item:
                if isinstance(key, str) and (problem := _string_problem(key)):
                    raise UnstorableText(path, problem, key=key)
            # pushed last to first, so that the first bad string is the one named
            stack.extend((inner, f"{path}.{key}" if path else str(key)) for key, inner in reversed(item.items()))
        elif isinstance(item, list | tuple):
            stack.extend((inner, f"{path}[{i}]") for i, inner in reversed(list(enumerate(item))))


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "holds a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds an unpaired surrogate (\\ud800 to \\udfff), which is not text"
    return None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: a valid JSON number that float() makes infinite
        raise ValueError(f"{text} is too large for a number the database can store")
    return value


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON can store; use null or a string")


def json_error(exc: ValueError) -> str:
    """What ``storable_json`` found wrong, a syntax error with its line and column."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
    return str(exc)


def jsonl_lines(content: str | UploadText) -> Iterator[tuple[int, str]]:
    """(number from 1, line) of a JSONL text or uploaded file (read a line at a time), split on
    "\\n" alone (a "\\r" before it is dropped). ``str.splitlines`` also splits on U+2028, U+2029,
    U+0085 and other separators that JSON allows raw inside a string, which cut a line in pieces
    and shifted the numbers."""
    lines = content.split("\n") if isinstance(content, str) else (
        line.removesuffix("\n") for line in content.lines())
    for number, line in enumerate(lines, start=1):
        yield number, line.removesuffix("\r")


def json_array_instead_of_lines(content: str | UploadText) -> str | None:
    """What to say of a file that is one JSON array where JSON Lines were expected (Label
    Studio's and Argilla's JSON exports, pandas' ``to_json(orient="records")``), else None.
    Read line by line, such a file gave an error for each of its lines, none of them the cause."""
    if not isinstance(content, str):
        items = content.json_array_items()
    elif not content.lstrip().startswith("["):
        return None
    else:
        try:
            value = json.loads(content)
        except (ValueError, RecursionError):
            return None
        items = len(value) if isinstance(value, list) else None
    if items is None:
        return None
    counted = f" (of {items} items)" if items >= 0 else ""
    return (f"the file is one JSON array{counted}, as Label Studio's and Argilla's JSON exports "
            "are, not JSON Lines: write one JSON object a line (pandas: to_json(orient=\"records\", lines=True); "
            "datasets: Dataset.to_json)")


def json_line_error(exc: json.JSONDecodeError) -> str:
    """A syntax error of one JSONL line, with its column ("Unterminated string starting at"
    ends in "at" already)."""
    return f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"
