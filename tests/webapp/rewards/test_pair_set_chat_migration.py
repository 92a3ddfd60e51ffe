"""Migration 0003 records, for each set stored before it, whether some pair's prompt is chat
messages: the download reads it there instead of reading every pair twice."""

import pytest

from tests.migrations import leaf_nodes, migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("rewards", "0002_preference_pair_set")]
AFTER = [("rewards", "0003_pair_set_has_chat_prompt")]


def test_sets_with_a_chat_prompt_are_marked_and_the_others_not():
    old = migrate(BEFORE)
    project = old.get_model("projects", "Project").objects.create(name="a", slug="a")
    PairSet = old.get_model("rewards", "PreferencePairSet")
    plain = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
    chat = {"prompt": [{"role": "user", "content": "hi"}], "chosen": "hello", "rejected": "go"}
    made = {name: PairSet.objects.create(project=project, name=name, pairs=pairs, pair_count=len(pairs)).pk
            for name, pairs in [("plain", [plain, plain]), ("mixed", [plain, chat]), ("empty", [])]}
    new = migrate(AFTER)
    marked = dict(new.get_model("rewards", "PreferencePairSet").objects.values_list("pk", "has_chat_prompt"))
    assert marked == {made["plain"]: False, made["mixed"]: True, made["empty"]: False}
    migrate(leaf_nodes())
