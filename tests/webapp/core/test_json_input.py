import json

import pytest

from webapp.core.json_input import (
    UnstorableText,
    json_error,
    jsonl_lines,
    storable_json,
    storable_text_check,
)


def test_plain_json_parses_as_json_loads_does():
    text = '{"a": [1, 2.5, "x\\u00e9", null, true], "big": 123456789012345678901234567890}'
    assert storable_json(text) == json.loads(text)
    assert storable_json(text.encode()) == json.loads(text)


@pytest.mark.parametrize("text, words", [
    ('{"x": NaN}', "NaN is not a number JSON can store"),
    ('[1, -Infinity]', "-Infinity is not a number"),
    ('{"x": 1e999}', "1e999 is too large"),  # float() makes it infinite
    ('[-2.5e400]', "-2.5e400 is too large"),
    ('{"prompt": "a\\u0000b"}', "NUL character"),
    ('{"a\\u0000": 1}', "NUL character"),  # keys too
    ('[[["\\ud800"]]]', "unpaired surrogate"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"reference": 1' + "0" * 5000 + "}", "a whole number of more than 4300 digits; write it as a string"),
])
def test_what_the_database_cannot_store_is_a_value_error_saying_what(text, words):
    with pytest.raises(ValueError) as info:
        storable_json(text)
    assert not isinstance(info.value, json.JSONDecodeError)
    assert words in json_error(info.value)


def test_a_syntax_error_keeps_its_line_and_column():
    with pytest.raises(json.JSONDecodeError) as info:
        storable_json('{\n  "a": 1,\n}')
    assert json_error(info.value).startswith("not valid JSON (line 3, column 1:")


def test_a_backslash_before_u0000_is_text_not_nul():
    assert storable_json('"\\\\u0000"') == "\\u0000"


def test_jsonl_lines_split_on_newlines_alone():
    content = 'a\u2028b\r\nc\u2029d\x0be\x1cf\u0085g\n\nlast'
    assert list(jsonl_lines(content)) == [(1, "a\u2028b"), (2, "c\u2029d\x0be\x1cf\u0085g"), (3, ""), (4, "last")]


@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a": ', "}")])
def test_json_nested_past_what_a_request_can_read_back_is_refused(opening, closing):
    """900 levels parsed at import, then every page reading the stored value hit RecursionError."""
    from webapp.core.json_input import MAX_DEPTH

    assert storable_json(opening * MAX_DEPTH + "1" + closing * MAX_DEPTH) is not None
    for depth in (MAX_DEPTH + 1, 900):
        with pytest.raises(ValueError, match=f"JSON nested more than {MAX_DEPTH} levels deep"):
            storable_json(opening * depth + "1" + closing * depth)


@pytest.mark.parametrize("value, message", [
    ("a\x00b", "holds a NUL character (\\u0000), which cannot be stored"),
    ({"metadata": {"source": ["fine", "a\x00b"]}}, "'metadata.source[1]' holds a NUL character"),
    ([{"role": "user", "content": "\x00"}], "'[0].content' holds a NUL character"),
    ({"metadata": {"k\x00": 1}}, "the key 'k\\x00' of 'metadata' holds a NUL character"),
    ({"k\x00": 1}, "the key 'k\\x00' holds a NUL character"),
    ({"a": "\x00", "b": "\ud800"}, "'a' holds a NUL character"),  # the first one is named
    ({"a": "fine", "b": "\ud800"}, "'b' holds an unpaired surrogate"),
])
def test_storable_text_check_names_the_place_of_the_first_string_it_refuses(value, message):
    """It said only "holds a NUL character": in a line of nested metadata, not where."""
    with pytest.raises(UnstorableText) as info:
        storable_text_check(value)
    assert str(info.value).startswith(message)


def test_an_unstorable_string_is_named_from_the_field_that_holds_it():
    with pytest.raises(UnstorableText) as info:
        storable_text_check({"note": ["a", "\x00"]})
    assert info.value.within("config") == "'config.note[1]' holds a NUL character (\\u0000), which cannot be stored"


def test_storable_json_names_the_place_too():
    with pytest.raises(ValueError, match=r"^'metadata\.a' holds a NUL character"):
        storable_json('{"prompt": "p", "metadata": {"a": "x\\u0000"}}')
