"""The trainers' results keep each step's system metrics (``system_history``) with
``log_system_metrics`` on, apart from the step metrics a resumed run repeats bit for bit."""

import sys

import pytest

from tests.engine import test_dpo, test_sft
from tests.engine.test_rm_trainer import keyword_records, tiny_config
from tests.engine.test_system_metrics import SystemRecorder
from tests.engine.test_trainer import PROMPTS
from workers.engine import TrainConfig, evaluate_policy, train
from workers.engine.dpo import train_dpo
from workers.engine.rm_trainer import train_reward_model
from workers.engine.sft import train_sft
from workers.engine.system_metrics import PSUTIL_KEYS, progress_figures

try:
    import psutil
except ImportError:  # pragma: no cover
    psutil = None
needs_psutil = pytest.mark.skipif(psutil is None, reason="needs psutil (requirements.txt)")


def _well_formed(system_history, steps):
    assert [step for step, _ in system_history] == steps
    for step, metrics in system_history:
        assert set(metrics) == set(PSUTIL_KEYS), step
        assert all(type(v) is float for v in metrics.values())


# --- the policy trainer ----------------------------------------------------------------------

@needs_psutil
def test_a_policy_run_keeps_what_its_callback_heard_apart_from_its_history(tiny_cfg, tmp_path):
    recorder = SystemRecorder()
    result = train(TrainConfig.from_dict(tiny_cfg()), PROMPTS, recorder, output_dir=tmp_path)
    _well_formed(result.system_history, [1, 2, 3])
    assert dict(result.system_history) == recorder.system
    assert [step for step, _ in result.history] == [1, 2, 3]
    assert not any(k.startswith("system/") for _, m in result.history for k in m)


@needs_psutil
def test_a_policy_run_without_callbacks_still_keeps_them(tiny_cfg, tmp_path):
    result = train(TrainConfig.from_dict(tiny_cfg()), PROMPTS, output_dir=tmp_path)
    _well_formed(result.system_history, [1, 2, 3])


@needs_psutil
def test_a_resumed_policy_run_keeps_only_the_steps_it_took(tiny_cfg, tmp_path):
    first = train(TrainConfig.from_dict(tiny_cfg(train={"total_steps": 2, "checkpoint_every": 1})),
                  PROMPTS, output_dir=tmp_path)
    _well_formed(first.system_history, [1, 2])
    resumed = train(TrainConfig.from_dict(tiny_cfg(train={"total_steps": 3, "checkpoint_every": 1})),
                    PROMPTS, output_dir=tmp_path)
    assert resumed.resumed_from == 2
    _well_formed(resumed.system_history, [3])


def test_a_policy_run_with_the_switch_off_or_without_psutil_keeps_none(tiny_cfg, tmp_path, monkeypatch):
    off = train(TrainConfig.from_dict(tiny_cfg(train={"log_system_metrics": False})), PROMPTS,
                output_dir=tmp_path / "off")
    assert off.steps_completed == 3 and off.system_history == []
    monkeypatch.setitem(sys.modules, "psutil", None)
    bare = train(TrainConfig.from_dict(tiny_cfg()), PROMPTS, output_dir=tmp_path / "bare")
    assert bare.steps_completed == 3 and bare.system_history == []


def test_a_default_result_has_an_empty_system_history(tmp_path):
    from workers.engine.trainer import TrainResult

    a, b = TrainResult(tmp_path, 0, False, 0, None), TrainResult(tmp_path, 0, False, 0, None)
    a.system_history.append((1, {}))
    assert b.system_history == []  # not one list shared by every result


@needs_psutil
def test_an_evaluation_keeps_them_too_unless_switched_off(tiny_cfg):
    recorder = SystemRecorder()
    result = evaluate_policy(TrainConfig.from_dict(tiny_cfg()), PROMPTS, recorder)
    _well_formed(result.system_history, [1, 2, 3])
    assert dict(result.system_history) == recorder.system
    off = evaluate_policy(TrainConfig.from_dict(tiny_cfg(train={"log_system_metrics": False})), PROMPTS)
    assert off.steps_completed == 3 and off.system_history == []


# --- DPO, SFT and reward-model runs -----------------------------------------------------------

@needs_psutil
@pytest.mark.parametrize("kind", ["dpo", "sft"])
@pytest.mark.parametrize("with_callback", [True, False], ids=["callback", "no-callback"])
def test_dpo_and_sft_results_keep_each_step_s_system_metrics(kind, with_callback, tmp_path):
    config = (test_dpo.tiny_dpo if kind == "dpo" else test_sft.tiny_sft)(epochs=1)
    data = test_dpo.TOY if kind == "dpo" else test_sft.TOY
    run = train_dpo if kind == "dpo" else train_sft
    heard, steps = {}, []
    kwargs = {"on_system_metrics": lambda step, m: heard.update({step: m})} if with_callback else {}
    result = run(config, data, output_dir=tmp_path, on_metrics=lambda step, m: steps.append(step), **kwargs)
    assert steps == list(range(1, result.steps_completed + 1)) and steps
    _well_formed(result.system_history, steps)
    if with_callback:
        assert dict(result.system_history) == heard
    assert not any(k.startswith("system/") for k in result.metrics)


@pytest.mark.parametrize("kind", ["dpo", "sft"])
def test_dpo_and_sft_results_keep_none_with_the_switch_off(kind, tmp_path):
    config = (test_dpo.tiny_dpo if kind == "dpo" else test_sft.tiny_sft)(epochs=1, log_system_metrics=False)
    data = test_dpo.TOY if kind == "dpo" else test_sft.TOY
    result = (train_dpo if kind == "dpo" else train_sft)(config, data, output_dir=tmp_path)
    assert result.steps_completed and result.system_history == []


@needs_psutil
def test_a_resumed_sft_run_keeps_only_the_steps_it_took(tmp_path):
    first = train_sft(test_sft.tiny_sft(epochs=1, checkpoint_every=1), test_sft.TOY, output_dir=tmp_path)
    resumed = train_sft(test_sft.tiny_sft(epochs=2, checkpoint_every=1), test_sft.TOY, output_dir=tmp_path)
    assert resumed.resumed_from == first.steps_completed
    _well_formed(resumed.system_history, list(range(first.steps_completed + 1, resumed.steps_completed + 1)))


@needs_psutil
@pytest.mark.parametrize("on", [True, False])
def test_a_reward_model_result_keeps_each_step_s_system_metrics_unless_switched_off(on, tmp_path):
    steps = []
    result = train_reward_model(tiny_config(epochs=1, log_system_metrics=on), keyword_records(24),
                                output_dir=tmp_path / "rm", on_metrics=lambda step, m: steps.append(step))
    assert steps == list(range(1, result.steps + 1)) and steps
    if on:
        _well_formed(result.system_history, steps)
    else:
        assert result.system_history == []
    assert not any(k.startswith("system/") for k in result.metrics)  # the saved summary keeps none


# --- the progress line's figures ---------------------------------------------------------------

def test_progress_figures_pick_the_main_readings_short():
    cpu_only = {"system/cpu_utilization_percentage": 37.4, "system/system_memory_usage_megabytes": 9000.0,
                "system/system_memory_usage_percentage": 50.0, "system/process_rss_megabytes": 812.3}
    assert progress_figures(cpu_only) == {"cpu": "37%", "rss": "812MB"}
    gpu = {**cpu_only, "system/process_rss_megabytes": 2345.0,
           "system/gpu_memory_allocated_megabytes": 100.0,
           "system/gpu_max_memory_allocated_megabytes": 61_234.0,
           "system/gpu_memory_reserved_megabytes": 70_000.0, "system/gpu_utilization_percentage": 98.0}
    assert progress_figures(gpu) == {"cpu": "37%", "rss": "2.3GB", "gpu_peak": "61.2GB", "gpu": "98%"}
    assert progress_figures({}) == {}
