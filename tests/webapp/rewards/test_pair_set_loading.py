"""A reward-model, DPO or SFT run reads its pair set a chunk of pairs at a time (the set is one
JSON array in one row): the records it trains on are those it built from the whole column
before, in the same order, and the column is never read whole."""

import json

import pytest
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext

from tests.factories import make_project
from webapp.rewards import selectors
from webapp.rewards.models import PreferencePairSet
from webapp.rewards.selectors import dpo_pairs, preference_records, sft_examples
from webapp.rewards.services import pair_set_import
from workers.engine.dpo import PreferencePair
from workers.engine.rm_trainer import PreferenceRecord
from workers.engine.sft import SFTExample

pytestmark = pytest.mark.django_db

LINES = [
    {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ☃ \"q\""}],
     "chosen": "Hello!", "rejected": "Go away\n\tnow", "margin": 0.1},
    {"prompt": "", "chosen": [{"role": "assistant", "content": "é𝄞"}], "rejected": "x", "margin": 2},
    {"prompt": "unicode \\u escapes", "chosen": "a\u2028b", "rejected": "c\\d", "margin": 1e-3},
    {"prompt": "p", "chosen": "long " * 200, "rejected": "short", "margin": 0},
]


@pytest.fixture
def pair_set():
    project = make_project()
    return pair_set_import(project=project, name="pairs",
                           content="\n".join(json.dumps(line, ensure_ascii=i % 2 == 0) for i, line in enumerate(LINES)))


@pytest.mark.parametrize("chunk", [2, 2000])
def test_a_run_s_records_are_those_built_from_the_whole_column(monkeypatch, pair_set, chunk):
    monkeypatch.setattr(selectors, "PAIRS_CHUNK", chunk)
    whole = PreferencePairSet.objects.get(pk=pair_set.pk).pairs  # what the loaders read before
    data = {"source": "pairs", "pair_set": pair_set.pk}
    project = pair_set.project
    records = preference_records(project=project, data=data)
    assert records == [PreferenceRecord(p["prompt"], [p["chosen"], p["rejected"]], [[0], [1]], p.get("margin"))
                       for p in whole]
    assert [type(r.margin) for r in records] == [type(p.get("margin")) for p in whole]
    assert dpo_pairs(project=project, data=data) == [PreferencePair(p["prompt"], p["chosen"], p["rejected"])
                                                     for p in whole]
    assert sft_examples(project=project, data=data) == [SFTExample(p["prompt"], p["chosen"]) for p in whole]
    assert len(records) == len(LINES)


def test_the_pairs_column_is_never_read_whole(pair_set):
    data = {"source": "pairs", "pair_set": pair_set.pk}
    with CaptureQueriesContext(connection) as queries:
        preference_records(project=pair_set.project, data=data)
        dpo_pairs(project=pair_set.project, data=data)
        sft_examples(project=pair_set.project, data=data)
    column = f'"{PreferencePairSet._meta.db_table}"."pairs"'
    assert queries.captured_queries
    assert not [q["sql"] for q in queries.captured_queries if column in q["sql"]]


def test_another_project_s_set_is_not_found(pair_set):
    with pytest.raises(Http404):
        dpo_pairs(project=make_project(), data={"source": "pairs", "pair_set": pair_set.pk})
