"""A file that is one JSON array (what Label Studio's JSON export, Argilla's
``records.to_json`` and pandas' ``to_json(orient="records")`` write) given to an import that
reads JSON Lines: one error that says so, rather than one per line of the array, none of them
the cause."""

import json

import pytest

from webapp.datasets.errors import DatasetImportError
from webapp.datasets.parsing import parse_file
from webapp.feedback.parsing import TaskImportError, parse_tasks_jsonl
from webapp.rewards.errors import PairImportError
from webapp.rewards.parsing import parse_pairs

# Label Studio's JSON export of a pairwise-comparison project (indented, as it writes it)
LABEL_STUDIO = json.dumps([{
    "id": 1, "data": {"prompt": "2+2?", "answer1": "4", "answer2": "5"},
    "annotations": [{"id": 1, "completed_by": 1, "result": [{
        "id": "a1", "type": "pairwise", "from_name": "comparison", "to_name": "answer1",
        "value": {"selected": "left"}, "origin": "manual"}]}],
    "predictions": []}], indent=2)
# Argilla 2's records.to_json: one line, a list of records
ARGILLA = json.dumps([{"id": "r1", "fields": {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
                       "metadata": {}, "responses": {}, "suggestions": {}, "vectors": {}, "status": "pending"}])
# pandas' DataFrame.to_json(orient="records") of pairs in TRL's columns
PANDAS = json.dumps([{"prompt": "2+2?", "chosen": "4", "rejected": "5"}, {"prompt": "3+3?", "chosen": "6", "rejected": "7"}])

PARSERS = [(parse_tasks_jsonl, TaskImportError), (parse_pairs, PairImportError),
           (lambda content: parse_file("prompts.json", content), DatasetImportError)]


@pytest.mark.parametrize("content, items", [(LABEL_STUDIO, 1), (ARGILLA, 1), (PANDAS, 2)])
@pytest.mark.parametrize("parse, error", PARSERS)
def test_a_json_array_file_gets_one_error_that_says_it_is_not_json_lines(parse, error, content, items):
    with pytest.raises(error) as info:
        parse(content)
    [(line, message)] = info.value.errors
    assert line == 1
    assert message.startswith(f"the file is one JSON array (of {items} items)")
    assert "one JSON object a line" in message


@pytest.mark.parametrize("parse, error", PARSERS)
def test_a_bad_json_lines_file_that_opens_with_a_bracket_still_names_each_line(parse, error):
    """A first line that is an array, then more lines: not one array, so each bad line is named."""
    with pytest.raises(error) as info:
        parse('["not", "an", "object"]\n{"prompt": "p"\n')
    assert [line for line, _ in info.value.errors] == [1, 2]
