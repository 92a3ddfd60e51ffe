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


@pytest.mark.parametrize("line, error", [
    ({"prompt": "q", "chosen": "a", "rejected": "b", "tie": True, "both_bad": False},
     "a tied pair (\"tie\": true) prefers neither answer"),
    ({"prompt": "q", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"},
     "chosen as messages holds the answer only"),
    ({"prompt": "q", "chosen": "a", "rejected": []}, "messages must be a non-empty list"),
    ({"prompt": "q", "chosen": "a", "rejected": 3}, "rejected must be a non-empty string or a list"),
    ({"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}], "rejected": "a"},
     "chosen and rejected are the same text"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "score": 1}, "unknown field 'score'"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "1"}, "margin must be a number ≥ 0"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": -2}, "margin must be ≥ 0, got -2"),
])
def test_bad_pairs_are_named(line, error):
    with pytest.raises(PairImportError) as info:
        parse_pairs(json.dumps(line))
    assert error in info.value.errors[0][1]


def test_the_exports_bookkeeping_and_trl_conversational_answers_are_read():
    line = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": "b", "task_id": 3, "label_id": 9, "annotator": "ann", "tie": False, "both_bad": False}
    assert parse_pairs(json.dumps(line)) == [{"prompt": [{"role": "user", "content": "q"}], "chosen": "a",
                                              "rejected": "b"}]


def test_trls_implicit_prompt_is_split_off_conversational_pairs():
    """TRL's implicit-prompt preference format (e.g. trl-lib/ultrafeedback_binarized without its
    score columns): no prompt, and chosen and rejected whole conversations that share their
    opening messages; those are the prompt, as TRL's extract_prompt reads it."""
    system, user = {"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}
    line = {"chosen": [system, user, {"role": "assistant", "content": "4"}],
            "rejected": [system, user, {"role": "assistant", "content": "5"}]}
    assert parse_pairs(json.dumps(line)) == [{"prompt": [system, user], "chosen": "4", "rejected": "5"}]


def test_implicit_prompt_conversations_that_part_before_the_answer_are_named():
    line = {"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
            "rejected": [{"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}]}
    with pytest.raises(PairImportError) as info:
        parse_pairs(json.dumps(line))
    assert "chosen as messages holds the answer only" in info.value.errors[0][1]


def test_null_message_fields_of_a_datasets_export_are_read_past_in_pairs():
    """A conversational preference dataset saved with datasets' to_json carries "name": null (or
    any other optional field of the column's message type) in every message."""
    line = {"prompt": [{"role": "user", "content": "q", "name": None}],
            "chosen": [{"role": "assistant", "content": "a", "name": None}],
            "rejected": [{"role": "assistant", "content": "b", "name": None}]}
    assert parse_pairs(json.dumps(line)) == [{"prompt": [{"role": "user", "content": "q"}], "chosen": "a",
                                              "rejected": "b"}]


def test_trl_and_h4_ultrafeedback_binarized_lines_import():
    """The preference datasets of TRL's DPO and reward-model examples: trl-lib's has the answers'
    scores beside chosen and rejected, HuggingFaceH4's also a string prompt (the user's message
    again, which TRL's maybe_extract_prompt replaces by the conversations' opening), its id and
    the chosen conversation as messages. Every line was refused ("unknown field 'score_chosen'",
    "chosen as messages holds the answer only")."""
    user = {"role": "user", "content": "2+2?"}
    chosen, rejected = [user, {"role": "assistant", "content": "4"}], [user, {"role": "assistant", "content": "5"}]
    trl = {"chosen": chosen, "rejected": rejected, "score_chosen": 8.0, "score_rejected": 2.5}
    h4 = {"prompt": "2+2?", "prompt_id": "ab12", "chosen": chosen, "rejected": rejected, "messages": chosen,
          "score_chosen": 8.0, "score_rejected": 2.5}
    pairs = parse_pairs("\n".join(json.dumps(line) for line in (trl, h4)) + "\n")
    assert pairs == [{"prompt": [user], "chosen": "4", "rejected": "5"}] * 2


def test_a_string_prompt_with_assistant_answers_as_messages_stays_the_prompt():
    line = {"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}
    assert parse_pairs(json.dumps(line)) == [{"prompt": "q", "chosen": "a", "rejected": "b"}]
    both = {**line, "rejected": [{"role": "assistant", "content": "b"}]}
    assert parse_pairs(json.dumps(both)) == [{"prompt": "q", "chosen": "a", "rejected": "b"}]


@pytest.mark.parametrize("change, words", [
    ({"ranking": [[0], [0]]}, "ranking: the ranking must place each of the 2 candidates"),
    ({"completions": ["only one"], "ranking": [[0]]}, "completions must be a list of two or more"),
    ({"agreement": 1}, "unknown field 'agreement'"),
])
def test_a_bad_ranked_line_is_named_in_the_pair_import(change, words):
    line = {"prompt": "q", "completions": ["x", "y"], "ranking": [[1], [0]], **change}
    with pytest.raises(PairImportError) as info:
        parse_pairs(json.dumps(line) + "\n")
    [(number, message)] = info.value.errors
    assert number == 1 and words in message
