"""Prompt files (JSONL and CSV) parsed into rows, or refused naming each bad line."""

import json
import re

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


def refused(content: str) -> list[tuple[int, str]]:
    with pytest.raises(DatasetImportError) as info:
        parse_csv(content)
    return info.value.errors


def test_a_csv_row_split_by_an_unquoted_comma_is_refused_not_shifted():
    errors = refused("prompt,reference\nWhat is 1,000 + 2?,1002\n")
    assert errors == [(2, '3 fields where the header has 2; quote a field that holds a comma ("1,000")')]


def test_a_csv_row_short_of_fields_is_refused():
    assert [n for n, _ in refused("prompt,reference\nfine,1\nno reference\n\"two\nlines\",2\n")] == [3]


def test_a_quoted_comma_and_blank_lines_are_fine():
    rows = parse_csv('prompt,reference\n"What is 1,000 + 2?",1002\n\nnext,2\n')
    assert [(r.text, r.reference) for r in rows] == [("What is 1,000 + 2?", "1002"), ("next", "2")]


def test_a_csv_messages_cell_holds_chat_messages_as_json():
    rows = parse_csv('messages,reference,source\n"[{""role"":""user"",""content"":""hi""}]",1,x\n')
    assert [(r.text, r.messages, r.reference, r.metadata) for r in rows] == [
        ("", [{"role": "user", "content": "hi"}], "1", {"source": "x"})]


def test_an_empty_messages_cell_leaves_the_prompt_to_another_column():
    rows = parse_csv('prompt,messages\nhello,\n')
    assert [(r.text, r.messages, r.metadata) for r in rows] == [("hello", None, {})]


@pytest.mark.parametrize("cell, words", [
    ('"[{""role"":""user"""', "'messages' is not valid JSON ("),
    ('"[{""role"":""robot"",""content"":""hi""}]"', "message 0 has role 'robot'"),
    ('"[{""role"":{},""content"":""hi""}]"', "message 0 has role {}"),  # a TypeError (500): a dict is unhashable
    ('"[{""role"":[""user""],""content"":""hi""}]"', "message 0 has role ['user']"),
    ('"[]"', "messages must be a non-empty list"),
    ('"""hi"""', "messages must be a non-empty list"),
    ('"[{""role"":""user"",""content"":""a\\u0000b""}]"', "'messages[0].content' holds a NUL character"),
])
def test_a_bad_csv_messages_cell_is_a_line_error(cell, words):
    (number, message), = refused(f"messages,reference\n{cell},1\n")
    assert number == 2 and words in message


def test_a_verl_prompt_file_keeps_its_ground_truth_as_the_reference():
    """verl's prompt files (its gsm8k preprocessing, written as JSONL) hold the answer in
    reward_model.ground_truth; it used to land in the metadata only, leaving the prompt
    without the reference that exact_answer needs."""
    line = json.dumps({"data_source": "openai/gsm8k", "prompt": [{"role": "user", "content": "2+2?"}],
                       "ability": "math", "reward_model": {"style": "rule", "ground_truth": "4"},
                       "extra_info": {"split": "train", "index": 0}})
    [row] = parse_jsonl(line)
    assert (row.messages, row.reference) == ([{"role": "user", "content": "2+2?"}], "4")
    assert row.metadata["reward_model"] == {"style": "rule", "ground_truth": "4"}
    assert row.metadata["data_source"] == "openai/gsm8k"


def test_an_own_reference_field_wins_over_verls_ground_truth_and_a_bad_ground_truth_is_named():
    [row] = parse_jsonl(json.dumps({"prompt": "2+2?", "answer": "4", "reward_model": {"ground_truth": "5"}}))
    assert row.reference == "4"
    with pytest.raises(DatasetImportError) as info:
        parse_jsonl(json.dumps({"prompt": "2+2?", "reward_model": {"ground_truth": ["4", "four"]}}))
    assert info.value.errors == [(1, "'reward_model.ground_truth' must be a string or a number")]


@pytest.mark.parametrize("content, column", [
    ("prompt,answer,answer\nq,1,2\n", "answer"),
    ("prompt,prompt\na,b\n", "prompt"),
    ("prompt,answer ,answer\nq,1,2\n", "answer"),
])
def test_a_csv_header_naming_a_column_twice_is_refused(content, column):
    """dict(zip(header, fields)) kept the last of the two, dropping the other's values unsaid."""
    with pytest.raises(DatasetImportError) as caught:
        parse_csv(content)
    assert caught.value.errors == [(1, f"the header names the column {column!r} twice; each column needs its own name")]


def test_spaces_around_csv_header_names_are_dropped():
    """'prompt, answer' put the reference in a metadata column named ' answer'."""
    [row] = parse_csv("prompt, answer\nq,1\n")
    assert (row.text, row.reference, row.metadata) == ("q", "1", {})


def test_a_capitalised_csv_header_is_refused_saying_names_are_lowercase():
    with pytest.raises(DatasetImportError, match="names are lowercase: 'Prompt' is not 'prompt'"):
        parse_csv("Prompt,Answer\nq,1\n")


@pytest.mark.parametrize("cell", ["x" * 200_000, '"' + "a, b\n" * 40_000 + '"'])
def test_a_csv_prompt_longer_than_128_kib_is_read_as_jsonl_would(cell):
    """The csv module's default field limit refused it as 'not valid CSV ... a quoted field must close'."""
    [long, short] = parse_csv(f"prompt,answer\n{cell},1\nq,2\n")
    assert len(long.text) == 200_000 and long.reference == "1" and short.text == "q"


def test_a_quote_left_open_is_still_refused_with_the_field_limit_raised():
    with pytest.raises(DatasetImportError, match="a quoted field must close with a quote"):
        parse_csv('prompt,answer\n"' + "x" * 200_000 + ",1\nq,2\n")


@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_csv_separated_by_semicolons_or_tabs_is_refused_saying_so(separator):
    with pytest.raises(DatasetImportError, match=re.escape(f"the header is one column holding {separator!r}: separate")):
        parse_csv(f"prompt{separator}answer\nq{separator}1\n")


def test_null_message_fields_written_by_datasets_to_json_are_read_past():
    """datasets' to_json writes every field of a messages column's type in every message: one
    message with a "name" gives every other message "name": null, and each line was refused
    ("message 0 must be an object with exactly 'role' and 'content')."""
    lines = [{"prompt": [{"role": "system", "content": "Be brief.", "name": None},
                         {"role": "user", "content": "2+2?", "name": None}], "answer": "4"},
             {"messages": [{"role": "user", "content": "3+3?", "name": None, "tool_calls": None}], "answer": "6"}]
    rows = parse_jsonl("\n".join(json.dumps(line) for line in lines) + "\n")
    assert [(r.messages, r.reference) for r in rows] == [
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}], "4"),
        ([{"role": "user", "content": "3+3?"}], "6")]


def test_a_message_field_that_holds_something_is_named():
    with pytest.raises(DatasetImportError) as info:
        parse_jsonl(json.dumps({"prompt": [{"role": "user", "content": "hi", "name": "bob"}]}))
    assert info.value.errors == [(1, "message 0 has the field 'name'; a message holds only 'role' and 'content'")]


def test_a_line_without_a_prompt_field_names_the_fields_it_has():
    """Alpaca's and Dolly's files name the prompt 'instruction': every line was refused with the
    fields Steer reads, not those the line has, so nothing said which to rename."""
    with pytest.raises(DatasetImportError) as info:
        parse_jsonl(json.dumps({"instruction": "Say hi.", "input": "", "output": "Hi"}) + "\n")
    assert info.value.errors == [(1, ("no prompt: give one of the fields prompt, messages, text, question, problem "
                                      "(the line has 'instruction', 'input', 'output'; rename the prompt's field)"))]


@pytest.mark.parametrize("content, error", [
    ('{"prompt": "", "answer": "4"}\n', "'prompt' is empty; a prompt needs text"),
    ('{"question": null, "answer": "4"}\n', "'question' is null; a prompt needs text"),
])
def test_an_empty_prompt_is_named_as_empty(content, error):
    with pytest.raises(DatasetImportError) as info:
        parse_jsonl(content)
    assert info.value.errors == [(1, error)]


def test_an_empty_csv_prompt_cell_is_named_as_empty():
    assert refused("prompt,answer\nq,1\n,2\n") == [(3, "'prompt' is empty; a prompt needs text")]


def test_the_math_sets_problem_field_is_the_prompt():
    """MATH-500, NuminaMath and DeepScaleR hold the prompt in 'problem' (with answer and
    solution); each line was refused ('no prompt')."""
    line = {"problem": "What is $2+2$?", "solution": "It is $\\boxed{4}$.", "answer": "4", "level": 1}
    [row] = parse_jsonl(json.dumps(line) + "\n")
    assert (row.text, row.reference, row.metadata) == ("What is $2+2$?", "4", {"solution": "It is $\\boxed{4}$.",
                                                                                "level": 1})
    [row] = parse_csv("problem,answer\nWhat is 3+3?,6\n")
    assert (row.text, row.reference) == ("What is 3+3?", "6")


def test_a_messages_column_saved_by_to_csv_is_refused_saying_how_to_save_it():
    """pandas' and datasets' to_csv write a column of messages as Python's repr, which was refused
    as 'not valid JSON (Expecting property name enclosed in double quotes ...)'."""
    (number, message), = refused('''messages,answer\n"[{'role': 'user', 'content': ""it's 2+2?""}]",4\n''')
    assert number == 2 and message.startswith("'messages' holds a Python list ([{'role': ...}]), as pandas'")
    assert "Dataset.to_json" in message


def test_a_prompt_column_holding_messages_is_read_as_messages_not_as_text():
    """verl's prompt files saved as CSV hold the prompt's messages as text in the prompt column; as
    JSON they were imported as the text '[{"role": "user", ...}]', as Python's repr likewise."""
    [row] = parse_csv('prompt,answer\n"[{""role"": ""user"", ""content"": ""2+2?""}]",4\n')
    assert (row.text, row.messages, row.reference) == ("", [{"role": "user", "content": "2+2?"}], "4")
    (number, message), = refused('''prompt,answer\n"[{'content': '2+2?', 'role': 'user'}]",4\n''')
    assert number == 2 and message.startswith("'prompt' holds a Python list")
    [row] = parse_csv('prompt\n"[{a}] is a set of one set, in Python terms?"\n')
    assert row.text == "[{a}] is a set of one set, in Python terms?"


@pytest.mark.parametrize("cell, metadata", [('"{""origin"": ""gsm8k"", ""level"": 2}"', {"origin": "gsm8k", "level": 2}),
                                            ("", {})])
def test_a_csv_metadata_column_holds_a_json_object_or_nothing(cell, metadata):
    """A CSV's metadata column was refused whatever it held ("'metadata' must be an object"),
    an empty cell too: a cell is text, never an object."""
    [row] = parse_csv(f"prompt,metadata,source\nq,{cell},x\n")
    assert row.metadata == {**metadata, "source": "x"}


@pytest.mark.parametrize("cell, words", [
    ("gsm8k", "'metadata' is not valid JSON (Expecting value at column 1); write a JSON object"),
    ('"[1, 2]"', "'metadata' must be a JSON object"),
])
def test_a_csv_metadata_cell_that_is_no_json_object_is_named(cell, words):
    (number, message), = refused(f"prompt,metadata\nq,{cell}\n")
    assert number == 2 and message.startswith(words)


def test_null_metadata_is_no_metadata():
    """datasets' to_json writes a row's missing metadata as null, which was refused."""
    [row] = parse_jsonl('{"prompt": "q", "metadata": null, "answer": "4"}\n')
    assert (row.metadata, row.reference) == ({}, "4")


def test_messages_that_end_with_the_assistants_answer_are_refused():
    """A conversational SFT dataset (TRL's {"messages": [..., assistant]}) imported as prompts put
    each answer in its prompt: the run's policy generated a next turn after reading it."""
    line = {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}
    with pytest.raises(DatasetImportError) as info:
        parse_jsonl(json.dumps(line) + "\n")
    [(number, message)] = info.value.errors
    assert number == 1 and message.startswith("'messages' ends with an assistant message, which the policy would read")
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"}]
    [row] = parse_jsonl(json.dumps({"prompt": turns, "answer": "4"}) + "\n")
    assert row.messages == turns
