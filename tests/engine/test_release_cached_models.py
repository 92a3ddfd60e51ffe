"""A worker frees the reward models a run loaded when the run ends (workers.tasks calls
``release_cached_models``): within a run they are kept between steps, beyond it they are not."""

import gc
import weakref

from workers.engine import rewards
from workers.engine.reward_model import build_reward_model


def _saved_reward_model(folder):
    corpus = ["the answer is 4", "i do not know", "2 + 2"]
    build_reward_model(backbone="tiny", ensemble_size=2, seed=0, max_length=32, device="cpu",
                       corpus=corpus).save(folder)
    return folder


def test_a_reward_model_is_kept_between_calls_and_freed_once_released(tmp_path):
    rewards.release_cached_models()
    path = str(_saved_reward_model(tmp_path / "rm"))
    first, _ = rewards.reward_model_with_metrics(["2 + 2"], ["the answer is 4"], None, path=path, device="cpu")
    scorer = rewards._load_scorer(path, "cpu")
    again, _ = rewards.reward_model_with_metrics(["2 + 2"], ["the answer is 4"], None, path=path, device="cpu")
    assert again == first
    assert rewards._load_scorer(path, "cpu") is scorer  # kept: the next step does not reload it
    model = weakref.ref(scorer.model)
    del scorer

    assert rewards.release_cached_models() == 1
    gc.collect()
    assert model() is None  # nothing else holds the weights
    assert rewards._load_scorer.cache_info().currsize == 0
    assert rewards.release_cached_models() == 0  # nothing left to release


def test_a_scorer_loaded_after_a_release_scores_the_same(tmp_path):
    rewards.release_cached_models()
    path = str(_saved_reward_model(tmp_path / "rm"))
    before, _ = rewards.reward_model_with_metrics(["2 + 2"], ["i do not know"], None, path=path, device="cpu")
    rewards.release_cached_models()
    after, _ = rewards.reward_model_with_metrics(["2 + 2"], ["i do not know"], None, path=path, device="cpu")
    assert after == before
    rewards.release_cached_models()
