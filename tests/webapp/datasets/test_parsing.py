"""Prompt files (JSONL and CSV) parsed into rows, or refused naming each bad line."""

import json

import pytest

from webapp.datasets.errors import DatasetImportError
from webapp.datasets.parsing import parse_csv, parse_jsonl

SEPARATORS = ["\u2028", "\u2029", "\u0085"]  # json.dumps escapes the control characters (\x1c...)


@pytest.mark.parametrize("separator", SEPARATORS)
def test_a_line_separator_inside_a_json_string_stays_in_the_prompt(separator):
    content = json.dumps({"prompt": f"line one{separator}line two"}, ensure_ascii=False) + "\n"
    content += json.dumps({"prompt": "second"}, ensure_ascii=False) + "\r\n"
    rows = parse_jsonl(content)
    assert [row.text for row in rows] == [f"line one{separator}line two", "second"]


def test_line_numbers_count_newlines_only():
    content = '{"prompt": "a\u2028b"}\n{"prompt": "c\u2029d"}\r\n{nope\n'
    with pytest.raises(DatasetImportError) as info:
        parse_jsonl(content)
    assert [n for n, _ in info.value.errors] == [3]


def test_a_json_syntax_error_reads_without_a_doubled_word():
    with pytest.raises(DatasetImportError) as info:
        parse_jsonl('{"prompt": "unterminated\n')
    (_, message), = info.value.errors
    assert message == "not valid JSON (Unterminated string starting at column 12)"
