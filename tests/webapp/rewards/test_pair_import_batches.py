"""A pair-set import reads its file a line at a time and writes each good pair's JSON text to a
temporary file, then gives the set's row the whole array from there: it never holds the parsed
set, and stores what parsing the file whole gives, or nothing."""

import json
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import make_project
from webapp.core.uploads import upload_text
from webapp.rewards.errors import PairImportError
from webapp.rewards.models import PreferencePairSet
from webapp.rewards.parsing import parse_pairs
from webapp.rewards.services import pair_set_import

pytestmark = pytest.mark.django_db

LINES = [
    {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": [{"role": "user", "content": "Hi ☃ \"q\" \u2028"}], "chosen": "Hello!", "rejected": "Go\n\taway",
     "margin": 0.25},
    {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "é𝄞"}],
     "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x"}]},
    {"prompt": "ranked", "completions": ["a", "b", "c"], "ranking": [[2], [0, 1]], "label_id": 7},
    {"prompt": "p", "chosen": "c\\d", "rejected": "e", "margin": 3, "task_id": 1},
]


def test_the_stored_set_is_what_parsing_the_file_whole_gives():
    content = "\n".join(json.dumps(line, ensure_ascii=i % 2 == 0) for i, line in enumerate(LINES)) + "\n"
    expected = parse_pairs(content)
    pair_set = pair_set_import(project=make_project(), name="pairs", content=content)
    stored = PreferencePairSet.objects.get(pk=pair_set.pk)
    assert stored.pairs == expected and pair_set.pairs == expected
    assert len(expected) == 6  # the ranked line gives two pairs
    assert (stored.pair_count, stored.has_chat_prompt, stored.has_margin) == (6, True, True)
    plain = pair_set_import(project=pair_set.project, name="plain", content=json.dumps(LINES[0]))
    assert (plain.pairs, plain.pair_count, plain.has_chat_prompt, plain.has_margin) == ([expected[0]], 1, False, False)


def test_a_bad_line_after_good_ones_stores_nothing_and_names_every_bad_line():
    good = "".join(json.dumps({"prompt": f"q{i}", "chosen": "a", "rejected": "b"}) + "\n" for i in range(5))
    project = make_project()
    with pytest.raises(PairImportError) as caught:
        pair_set_import(project=project, name="p", content=good + '{"chosen": "a"}\n' + good + "{bad\n")
    assert [n for n, _ in caught.value.errors] == [6, 12]
    assert not PreferencePairSet.objects.exists()


def test_an_import_holds_a_line_of_pairs_not_the_set():
    """Traced memory while importing a 8 MB file of 2,000 pairs: a fraction of the file, where
    the parsed pairs alone were more than the file."""
    lines = "".join(json.dumps({"prompt": f"q{i}", "chosen": "a" * 2000 + str(i), "rejected": "b" * 2000})
                    + "\n" for i in range(2000))
    content = upload_text(SimpleUploadedFile("pairs.jsonl", lines.encode()))
    project = make_project()
    PreferencePairSet.objects.exists()  # the connection opened before tracing
    tracemalloc.start()
    try:
        pair_set = pair_set_import(project=project, name="big", content=content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pair_set.pair_count == 2000
    assert PreferencePairSet.objects.get(pk=pair_set.pk).pairs[1999]["chosen"] == "a" * 2000 + "1999"
    assert peak < 3 * 2**20, f"peak {peak / 2**20:.1f} MiB"
