"""Parsing of prompt files (JSONL and CSV; Parquet in parquet_rows) into validated rows; pure, no database."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from json import JSONDecodeError

from webapp.core.json_input import (
    UnstorableText,
    json_array_instead_of_lines,
    json_line_error,
    jsonl_lines,
    storable_json,
    storable_text_check,
)
from webapp.core.line_errors import LineErrors
from webapp.core.uploads import MAX_IMPORT_BYTES, UploadText
from webapp.datasets.errors import DatasetImportError

# "problem": the math sets RL trains on (MATH-500, NuminaMath, DeepScaleR: problem, answer, solution)
PROMPT_KEYS = ("prompt", "messages", "text", "question", "problem")
REFERENCE_KEYS = ("reference", "answer", "solution")
ROLES = {"system", "user", "assistant", "tool"}
MAX_ROWS = 200_000
MAX_NAMED_FIELDS = 8  # of a line without a prompt, the fields its error names


@dataclass(frozen=True)
class PromptRow:
    text: str = ""
    messages: list[dict] | None = None
    reference: str = ""
    metadata: dict = field(default_factory=dict)


def parse_messages(value) -> list[dict]:
    """Validated chat messages [{"role", "content"}, ...]; ValueError says what is wrong. Another
    field of a message is refused unless it is null, which is read as absent."""
    if not isinstance(value, list) or not value:
        raise ValueError("messages must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"message {i} must be an object with exactly 'role' and 'content'")
        # datasets' to_json writes every field of the column's message type in every message, null
        # where a message has none ("name": null when any message of the dataset has a name)
        other = sorted(key for key, inner in m.items() if key not in {"role", "content"} and inner is not None)
        if other:
            raise ValueError(f"message {i} has the field {other[0]!r}; a message holds only 'role' and 'content'")
        if not isinstance(m["role"], str) or m["role"] not in ROLES:
            raise ValueError(f"message {i} has role {m['role']!r}; use one of {', '.join(sorted(ROLES))}")
        if not isinstance(m["content"], str):
            raise ValueError(f"message {i} content must be a string")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def row_from_object(obj) -> PromptRow:
    """One prompt from a decoded JSON object or CSV row; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    key = next((k for k in PROMPT_KEYS if obj.get(k) not in (None, "")), None)
    if key is None:
        given = next((k for k in PROMPT_KEYS if k in obj), None)
        if given is not None:  # a CSV's empty cell, a JSON null or ""
            raise ValueError(f"'{given}' is {'null' if obj[given] is None else 'empty'}; a prompt needs text")
        fields = ", ".join(repr(k[:40]) for k in list(obj)[:MAX_NAMED_FIELDS]) + (", ..." if len(obj) > MAX_NAMED_FIELDS else "")
        raise ValueError(f"no prompt: give one of the fields {', '.join(PROMPT_KEYS)} "
                         f"(the line has {fields or 'no fields'}; rename the prompt's field)")
    value = obj[key]
    text, messages = "", None
    if isinstance(value, list):
        messages = parse_messages(value)
        if messages[-1]["role"] == "assistant":  # a run generates the assistant's next turn, after this answer
            raise ValueError(f"'{key}' ends with an assistant message, which the policy would read as part of its "
                             "prompt (a whole conversation, as TRL's messages format for SFT holds): end a prompt "
                             "with the user's message, and give the answer as the reference")
    elif isinstance(value, str):
        if not value.strip():  # a run's worker refuses an empty prompt, so the import does
            raise ValueError(f"'{key}' holds only whitespace; a prompt needs text")
        text = value
    else:
        raise ValueError(f"'{key}' must be a string or a list of messages")
    ref_key = next((k for k in REFERENCE_KEYS if k in obj), None)
    reference = obj.get(ref_key, "") if ref_key else ""
    ref_name = ref_key
    if ref_key is None and isinstance(obj.get("reward_model"), dict) and "ground_truth" in obj["reward_model"]:
        # verl's prompt files: {"prompt": [...], "reward_model": {"style": "rule", "ground_truth": "72"}, ...}
        reference, ref_name = obj["reward_model"]["ground_truth"], "reward_model.ground_truth"
    if reference is None:
        reference = ""
    if not isinstance(reference, (str, int, float)):
        raise ValueError(f"'{ref_name}' must be a string or a number")
    metadata = obj.get("metadata")
    if metadata is None:  # none, or null as datasets' to_json writes a missing one
        metadata = {}
    if not isinstance(metadata, dict):
        raise ValueError("'metadata' must be an object")
    extra = {k: v for k, v in obj.items() if k not in {key, ref_key, "metadata"}}
    return PromptRow(text=text, messages=messages, reference=str(reference), metadata={**extra, **metadata})


def parse_jsonl(content: str | UploadText) -> list[PromptRow]:
    """All rows, or DatasetImportError listing every bad line by its number (from 1)."""
    return _rows_list(iter_jsonl(content, errors := LineErrors()), errors)


def iter_jsonl(content: str | UploadText, errors: list[tuple[int, str]]) -> Iterator[PromptRow]:
    """Each good row of a JSONL text or upload in turn, read a line at a time; each bad line's
    (number from 1, message) is appended to ``errors`` instead (when the file turns out to be one
    JSON array, that alone replaces them at the end)."""
    for number, line in jsonl_lines(content):
        if not line.strip():
            continue
        try:
            row = row_from_object(storable_json(line))
        except JSONDecodeError as exc:
            errors.append((number, json_line_error(exc)))
            continue
        except ValueError as exc:
            errors.append((number, str(exc)))
            continue
        yield row
    if errors and (array := json_array_instead_of_lines(content)):
        errors[:] = [(1, array)]


def parse_csv(content: str | UploadText) -> list[PromptRow]:
    """All rows, or DatasetImportError listing every bad row by the line it ends on (see ``iter_csv``)."""
    return _rows_list(iter_csv(content, errors := LineErrors()), errors)


def iter_csv(content: str | UploadText, errors: list[tuple[int, str]]) -> Iterator[PromptRow]:
    """Each good row of a CSV text or upload in turn, read a line at a time; each bad row's (the
    line it ends on, message) is appended to ``errors`` instead, and a bad header raises
    DatasetImportError before the first row. Quoting is
    strict: a quoted field left open swallowed the rest of the file into one prompt. A row
    needs as many fields as the header (an unquoted comma splits a field in two), whose names
    are distinct (spaces around them are dropped). A ``messages`` cell holds chat messages as
    JSON: ``[{"role": "user", "content": "hi"}]``."""
    # The csv module refuses a field over 128 KiB ("field larger than field limit"), which a
    # long-context prompt is; JSONL takes it, and an import is bounded by its file's size anyway.
    # The limit is the process's; raising it harms no other reader.
    if csv.field_size_limit() < MAX_IMPORT_BYTES:
        csv.field_size_limit(MAX_IMPORT_BYTES)
    reader = csv.reader(io.StringIO(content) if isinstance(content, str) else content.lines(), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DatasetImportError([(1, f"not valid CSV ({exc})")]) from None
    header = [name.strip() for name in header or []]  # "prompt, answer": the space is no part of the name
    if not set(header) & set(PROMPT_KEYS):
        cased = [name for name in header if name.lower() in PROMPT_KEYS + REFERENCE_KEYS and name not in PROMPT_KEYS]
        hint = f" (names are lowercase: {cased[0]!r} is not {cased[0].lower()!r})" if cased else ""
        separator = next((sep for sep in (";", "\t", "|") if len(header) == 1 and sep in header[0]), None)
        if separator:  # Excel in many locales saves CSV with semicolons
            hint = f" (the header is one column holding {separator!r}: separate the columns with commas)"
        raise DatasetImportError([(1, f"the header needs a column named one of {', '.join(PROMPT_KEYS)}{hint}")])
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:  # dict(zip()) kept the last column of a name, silently dropping the others
        raise DatasetImportError([(1, f"the header names the column {twice[0]!r} twice; each column needs its own name")])
    try:
        for fields in reader:
            if not fields:  # a blank line
                continue
            try:
                row = _row_from_csv(header, fields)
            except ValueError as exc:
                errors.append((reader.line_num, str(exc)))
                continue
            yield row
    except csv.Error as exc:
        errors.append((reader.line_num, f"not valid CSV ({exc}); a quoted field must close with a "
                                        'quote, and a quote inside one is written twice ("")'))


# A cell that opens as a list of {"role"/"content": ...} objects, in JSON or as Python writes it
MESSAGES_TEXT = re.compile(r"""\s*\[\s*\{\s*['"](role|content)['"]\s*:""")
PYTHON_LIST = re.compile(r"\s*\[\s*\{\s*'")


def _row_from_csv(header: list[str], fields: list[str]) -> PromptRow:
    if len(fields) != len(header):
        raise ValueError(f"{len(fields)} field{'s' if len(fields) != 1 else ''} where the header has "
                         f"{len(header)}; quote a field that holds a comma (\"1,000\")")
    record = dict(zip(header, fields))
    storable_text_check(record)
    for name in PROMPT_KEYS:  # messages, or a prompt column holding messages as text (verl's files saved as CSV)
        cell = record.get(name)
        if cell and (name == "messages" or MESSAGES_TEXT.match(cell)):
            record[name] = _messages_cell(name, cell)
    if not record.get("messages"):
        record.pop("messages", None)  # an empty cell: the prompt is in another column
    if "metadata" in record:
        record["metadata"] = _metadata_cell(record["metadata"])
    return row_from_object(record)


def _metadata_cell(cell: str) -> dict:
    """A metadata cell: a JSON object, or empty for none; ValueError says what is wrong."""
    if not cell.strip():
        return {}
    try:
        value = storable_json(cell)
    except JSONDecodeError as exc:
        raise ValueError(f"'metadata' is {json_line_error(exc)}; write a JSON object "
                         '({"source": "x"}), or rename the column to keep its text') from None
    except UnstorableText as exc:
        raise ValueError(exc.within("metadata")) from None
    except ValueError as exc:
        raise ValueError(f"'metadata' {exc}") from None
    if not isinstance(value, dict):
        raise ValueError('\'metadata\' must be a JSON object ({"source": "x"}); rename the column to keep its text')  # noqa: TRY004
    return value


def _messages_cell(name: str, cell: str) -> list[dict]:
    """The chat messages a CSV cell holds as JSON; ValueError says what is wrong."""
    try:
        value = storable_json(cell)
    except JSONDecodeError as exc:
        if PYTHON_LIST.match(cell):
            raise ValueError(f"'{name}' holds a Python list ([{{'role': ...}}]), as pandas' and datasets' to_csv "
                             "write a column of messages, not JSON: save a chat dataset as JSONL (datasets: "
                             "Dataset.to_json; pandas: to_json(orient=\"records\", lines=True)), or write the cell "
                             "with json.dumps") from None
        raise ValueError(f"'{name}' is {json_line_error(exc)}; write a JSON list of "
                         '{"role", "content"} objects') from None
    except UnstorableText as exc:
        raise ValueError(exc.within(name)) from None
    except ValueError as exc:
        raise ValueError(f"'{name}' {exc}") from None
    return parse_messages(value)


def _rows_list(rows: Iterator[PromptRow], errors: list[tuple[int, str]], unit: str = "line") -> list[PromptRow]:
    """The rows of an ``iter_*`` parser as a list, checked by ``check_count``; past MAX_ROWS only
    counted (one more than that says there are too many)."""
    kept, count = [], 0
    for row in rows:
        count += 1
        if count <= MAX_ROWS:
            kept.append(row)
    check_count(count, errors, unit)
    return kept


def check_rows(rows: list[PromptRow], errors: list[tuple[int, str]], unit: str = "line") -> None:
    check_count(len(rows), errors, unit)


def check_count(count: int, errors: list[tuple[int, str]], unit: str = "line") -> None:
    """DatasetImportError for a file with bad lines (``errors``), no prompts or too many."""
    if errors:
        raise DatasetImportError(errors, unit)
    if not count:
        raise DatasetImportError([(1, "the file holds no prompts")], unit)
    if count > MAX_ROWS:
        raise DatasetImportError([(MAX_ROWS + 1, f"at most {MAX_ROWS} prompts per import")], unit)


def parse_file(name: str, content) -> list[PromptRow]:
    """A JSONL or CSV file's rows (``content`` its text), or a Parquet file's (``content`` the
    upload itself, which ``is_parquet`` recognised)."""
    rows, unit = file_rows(name, content, errors := LineErrors())
    return _rows_list(rows, errors, unit)


def file_rows(name: str, content, errors: list[tuple[int, str]]) -> tuple[Iterator[PromptRow], str]:
    """The good rows of a file one at a time, as ``parse_file`` reads it (bad ones appended to
    ``errors``), and what its errors count in: "line", or "row" for Parquet. Nothing is read
    until the first row is asked for; ``check_count`` afterwards says whether the file is whole."""
    if name.lower().endswith(".parquet"):
        from webapp.datasets.parquet_rows import iter_parquet

        return iter_parquet(content, errors), "row"
    return (iter_csv(content, errors) if name.lower().endswith(".csv") else iter_jsonl(content, errors)), "line"
