"""Preference-pair files (JSONL) parsed into pairs, or refused naming each bad line."""

import json

import pytest

from webapp.rewards.errors import PairImportError
from webapp.rewards.parsing import parse_pairs


def test_a_line_separator_inside_a_json_string_stays_in_the_pair():
    lines = [{"prompt": "line one\u2028line two", "chosen": "a\u2029b", "rejected": "c"},
             {"prompt": "q", "chosen": "x", "rejected": "y"}]
    pairs = parse_pairs("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n")
    assert pairs == lines


def test_a_json_syntax_error_names_its_true_line():
    content = '{"prompt": "a\u2028b", "chosen": "x", "rejected": "y"}\n{"prompt": "unterminated\n'
    with pytest.raises(PairImportError) as info:
        parse_pairs(content)
    assert info.value.errors == [(2, "not valid JSON (Unterminated string starting at column 12)")]
