"""A Bradley-Terry margin above MAX_PAIR_MARGIN (the trainer's own, or a record's) is refused
before training, as the web app refuses it at import: with a huge margin the run diverges."""

import math

import pytest

from workers.engine.config import MAX_PAIR_MARGIN
from workers.engine.errors import ConfigError, DataError
from workers.engine.rm_trainer import (
    PreferenceRecord,
    RewardModelTrainConfig,
    load_preferences,
    validate_preferences,
)


def test_the_trainers_margin_above_the_bound_is_refused_naming_it():
    with pytest.raises(ConfigError) as caught:
        RewardModelTrainConfig.from_dict({"margin": 25})
    assert caught.value.field == "margin" and "at most 20" in caught.value.message
    assert RewardModelTrainConfig.from_dict({"margin": MAX_PAIR_MARGIN}).margin == 20.0


@pytest.mark.parametrize("margin", [20.5, 1e6, math.inf, math.nan])
def test_a_records_margin_above_the_bound_or_not_finite_is_refused(margin):
    records = [PreferenceRecord("p", ["a", "b"], [[0], [1]], margin=margin)]
    with pytest.raises(DataError, match="record 0: margin must be"):
        validate_preferences(records)
    validate_preferences([PreferenceRecord("p", ["a", "b"], [[0], [1]], margin=20)])


def test_a_preferences_files_huge_margin_is_refused_naming_its_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"chosen": "c", "rejected": "r", "margin": 1}\n{"chosen": "c", "rejected": "r", "margin": 1000}\n')
    with pytest.raises(DataError, match=r"pairs.jsonl:2: margin must be at most 20 .*got 1000"):
        load_preferences(path)
