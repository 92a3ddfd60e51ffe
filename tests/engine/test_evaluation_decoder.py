"""An evaluation run decodes as a training run's rollouts do: ``train.compile_decoder`` and
``train.decode_attention`` choose its decoder too (``trainer.rollout_sampler``)."""

import pytest
import torch

from tests.engine.test_trainer import PROMPTS, Recorder
from workers.engine import TrainConfig, evaluate_policy
from workers.engine.rollout import sample_completions
from workers.engine.static_decoder import StaticCacheSampler
from workers.engine.tiny import build_tiny_policy
from workers.engine.trainer import rollout_sampler


@pytest.fixture
def compiled_names(monkeypatch):
    """torch.compile replaced by one that records the name of what it compiles and returns it
    uncompiled: which steps a decoder compiles, with the eager step's values."""
    names = []

    def recording_compile(fn, **options):
        names.append(fn.__name__)
        return fn
    monkeypatch.setattr(torch, "compile", recording_compile)
    return names


def _texts(config: TrainConfig) -> list[str]:
    recorder = Recorder()
    evaluate_policy(config, PROMPTS, recorder)
    return [r["completion_text"] for s in sorted(recorder.rollouts) for r in recorder.rollouts[s]]


def test_an_evaluation_compiles_its_decoder_step_when_train_compile_decoder_asks(tiny_cfg,
                                                                                 compiled_names):
    rollout = {"temperature": 1.3, "max_new_tokens": 6}
    unset = _texts(TrainConfig.from_dict(tiny_cfg(rollout=rollout)))
    assert compiled_names == []  # unset on a CPU: nothing compiled
    asked = _texts(TrainConfig.from_dict(tiny_cfg(rollout=rollout, train={"compile_decoder": True})))
    # the bucketed SDPA step, compiled for each cache shape: steps of 8, 8 and 4 rows
    assert compiled_names == ["step", "step"]
    assert asked == unset


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_an_evaluation_attends_with_flex_when_train_decode_attention_asks(tiny_cfg,
                                                                          compiled_names):
    rollout = {"temperature": 1.3, "max_new_tokens": 6}
    sdpa = _texts(TrainConfig.from_dict(tiny_cfg(rollout=rollout, train={"compile_decoder": True})))
    del compiled_names[:]
    flex = _texts(TrainConfig.from_dict(tiny_cfg(
        rollout=rollout, train={"compile_decoder": True, "decode_attention": "flex"})))
    assert "whole_cache_flex_step" in compiled_names
    assert flex == sdpa  # the same draws: the two attentions agree within rounding


def test_the_rollout_sampler_follows_the_train_section(tiny_cfg):
    model, _ = build_tiny_policy(alphabet="ab", hidden_size=32, num_layers=1, num_heads=2,
                                 intermediate_size=64, seed=0)
    plain = rollout_sampler(TrainConfig.from_dict(tiny_cfg(train={"fast_path": False})), model, "cpu")
    assert plain is sample_completions
    default = rollout_sampler(TrainConfig.from_dict(tiny_cfg()), model, "cpu")
    assert isinstance(default, StaticCacheSampler)
    assert (default.compile, default.attention) == (False, "auto")
    asked = rollout_sampler(TrainConfig.from_dict(tiny_cfg(
        train={"compile_decoder": True, "decode_attention": "sdpa"})), model, "cpu")
    assert (asked.compile, asked.attention) == (True, "sdpa")
