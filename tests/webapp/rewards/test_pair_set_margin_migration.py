"""Migration 0004 records, for each set stored before it, whether some pair has a margin: the
download reads it there, to give every line a margin (0.0 where a pair has none) or none."""

import pytest

from tests.migrations import leaf_nodes, migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("rewards", "0003_pair_set_has_chat_prompt")]
AFTER = [("rewards", "0004_pair_set_has_margin")]


def test_sets_with_a_margin_are_marked_and_the_others_not():
    old = migrate(BEFORE)
    project = old.get_model("projects", "Project").objects.create(name="a", slug="a")
    PairSet = old.get_model("rewards", "PreferencePairSet")
    plain = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
    margin = {"prompt": "3+3?", "chosen": "6", "rejected": "7", "margin": 0.0}
    made = {name: PairSet.objects.create(project=project, name=name, pairs=pairs, pair_count=len(pairs)).pk
            for name, pairs in [("plain", [plain, plain]), ("mixed", [plain, margin]), ("empty", [])]}
    new = migrate(AFTER)
    marked = dict(new.get_model("rewards", "PreferencePairSet").objects.values_list("pk", "has_margin"))
    assert marked == {made["plain"]: False, made["mixed"]: True, made["empty"]: False}
    migrate(leaf_nodes())
