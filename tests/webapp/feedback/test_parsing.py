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


@pytest.mark.parametrize("line, words", [
    ({"step": 0, "group_index": 0, "sample_index": 0, "prompt": None, "prompt_text": "q", "prompt_messages": None,
      "completion": "a", "reward": 1.0, "rewards": {}, "advantage": None, "length": 1, "finish_reason": "stop"},
     "one completion a line (a run's trajectories.jsonl"),
    ({"prompt": "q", "completion": "a"}, "group each prompt's completions into one line"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "task_id": 1, "label_id": 2, "annotator": "ann"},
     "a preference pair (TRL's format, preferences.jsonl), which the pair import reads"),
])
def test_a_line_of_a_trajectory_or_pair_file_says_what_it_is(line, words):
    """Such lines were refused as 'unknown field(s) advantage, completion, finish_reason, ...',
    which said nothing of what a task line is."""
    with pytest.raises(TaskImportError) as info:
        parse_tasks_jsonl(json.dumps(line) + "\n")
    [(number, message)] = info.value.errors
    assert number == 1 and words in message


def test_null_metadata_is_no_metadata():
    [row] = parse_tasks_jsonl('{"prompt": "q", "completions": ["a", "b"], "metadata": null}\n')
    assert row.metadata == {}


def test_completions_given_as_assistant_messages_are_read_as_their_text():
    """TRL's conversational answers ([{"role": "assistant", "content": ...}]) were refused with
    "'completions' must be a list of strings", though the pair import reads them."""
    line = {"prompt": [{"role": "user", "content": "Say hi"}],
            "completions": [[{"role": "assistant", "content": "Hi!"}], "Hello there.",
                            [{"role": "assistant", "content": "Hey"}, {"role": "assistant", "content": "you"}]]}
    [row] = parse_tasks_jsonl(json.dumps(line) + "\n")
    assert row.completions == ["Hi!", "Hello there.", "Hey\nyou"]


@pytest.mark.parametrize("completion, words", [
    ([{"role": "user", "content": "x"}], "completion 0 as messages holds the answer only"),
    (3, "'completions' must be a list of strings (or of assistant messages)"),
])
def test_completions_that_are_neither_text_nor_assistant_messages_are_refused(completion, words):
    line = {"prompt": "q", "completions": [completion, "b"]}
    with pytest.raises(TaskImportError) as caught:
        parse_tasks_jsonl(json.dumps(line) + "\n")
    assert words in str(caught.value)
