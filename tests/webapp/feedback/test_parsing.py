"""Comparison-task files (JSONL) parsed into rows, or refused naming each bad line."""

import json

import pytest

from webapp.feedback.parsing import TaskImportError, parse_tasks_jsonl


def test_a_line_separator_inside_a_json_string_stays_in_the_task():
    lines = [{"prompt": "line one\u2028line two", "completions": ["a\u2029b", "c\x85d"]},
             {"prompt": "q", "completions": ["x", "y"]}]
    rows = parse_tasks_jsonl("\r\n".join(json.dumps(line, ensure_ascii=False) for line in lines))
    assert [(row.prompt_text, row.completions) for row in rows] == [
        ("line one\u2028line two", ["a\u2029b", "c\x85d"]), ("q", ["x", "y"])]


def test_a_json_syntax_error_names_its_true_line_without_a_doubled_word():
    content = '{"prompt": "a\u2028b", "completions": ["x", "y"]}\n{"prompt": "unterminated\n'
    with pytest.raises(TaskImportError) as info:
        parse_tasks_jsonl(content)
    assert info.value.errors == [(2, "not valid JSON (Unterminated string starting at column 12)")]
