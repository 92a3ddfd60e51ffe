import sys
import time

import pytest
import torch

from tests.engine.test_trainer import PROMPTS, Recorder
from workers.engine import TrainConfig, evaluate_policy, train
from workers.engine.system_metrics import (
    GPU_MEMORY_KEYS,
    GPU_UTILIZATION_KEY,
    MB,
    PSUTIL_KEYS,
    start_cpu_window,
    system_metrics,
)

try:
    import psutil
except ImportError:  # a GPU box given the engine alone: only the GPU test runs
    psutil = None
needs_psutil = pytest.mark.skipif(psutil is None, reason="needs psutil (requirements.txt)")


class SystemRecorder(Recorder):
    """Records each step's system metrics, and that they come before the step's own."""

    def __init__(self, stop_after=None):
        super().__init__(stop_after)
        self.system = {}

    def on_system_metrics(self, step, metrics):
        assert step not in self.metrics  # before on_metrics of the same step
        self.system[step] = metrics


@needs_psutil
def test_on_a_cpu_the_psutil_readings_in_mlflow_units_and_no_gpu_keys():
    start_cpu_window()
    sum(i * i for i in range(200_000))  # some work for the CPU window
    metrics = system_metrics("cpu")
    assert set(metrics) == set(PSUTIL_KEYS)
    assert all(type(v) is float for v in metrics.values())
    assert 0 <= metrics["system/cpu_utilization_percentage"] <= 100
    memory = psutil.virtual_memory()
    assert 0 < metrics["system/system_memory_usage_megabytes"] <= memory.total / MB
    assert 0 < metrics["system/system_memory_usage_percentage"] < 100
    rss = psutil.Process().memory_info().rss / MB  # this process holds torch: tens of MB at least
    assert 10 < metrics["system/process_rss_megabytes"] <= memory.total / MB
    assert metrics["system/process_rss_megabytes"] == pytest.approx(rss, rel=0.2)


def test_a_reading_costs_no_interval_and_no_subprocess():
    system_metrics("cpu")
    started = time.perf_counter()
    for _ in range(100):
        system_metrics("cpu")
    assert (time.perf_counter() - started) / 100 < 0.01  # ~0.1 ms on a busy 2-core box


def test_without_psutil_the_psutil_keys_are_left_out_and_nothing_fails(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    start_cpu_window()
    assert system_metrics("cpu") == {}


def test_a_run_without_psutil_trains_and_reports_no_system_metrics(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)
    recorder = SystemRecorder()
    result = train(TrainConfig.from_dict(tiny_cfg()), PROMPTS, recorder, output_dir=tmp_path)
    assert result.steps_completed == 3 and recorder.system == {}


@needs_psutil
def test_every_training_step_reports_its_system_metrics(tiny_cfg, tmp_path):
    recorder = SystemRecorder()
    result = train(TrainConfig.from_dict(tiny_cfg()), PROMPTS, recorder, output_dir=tmp_path)
    assert result.steps_completed == 3 and sorted(recorder.system) == [1, 2, 3]
    for step, metrics in recorder.system.items():
        assert set(metrics) == set(PSUTIL_KEYS), step
        assert all(type(v) is float for v in metrics.values())
        # the step's own metrics stay what a resumed run repeats bit for bit
        assert not any(k.startswith("system/") for k in recorder.metrics[step])


@needs_psutil
def test_the_switch_off_reports_none(tiny_cfg, tmp_path):
    config = TrainConfig.from_dict(tiny_cfg(train={"log_system_metrics": False}))
    assert TrainConfig.from_dict(tiny_cfg()).train.log_system_metrics  # on by default
    recorder = SystemRecorder()
    train(config, PROMPTS, recorder, output_dir=tmp_path / "train")
    assert sorted(recorder.metrics) == [1, 2, 3] and recorder.system == {}
    recorder = SystemRecorder()
    evaluate_policy(config, PROMPTS, recorder)
    assert sorted(recorder.metrics) == [1, 2, 3] and recorder.system == {}


@needs_psutil
def test_every_evaluation_step_reports_its_system_metrics(tiny_cfg):
    recorder = SystemRecorder()
    evaluate_policy(TrainConfig.from_dict(tiny_cfg()), PROMPTS, recorder)
    assert sorted(recorder.system) == sorted(recorder.metrics) == [1, 2, 3]
    assert all(set(m) == set(PSUTIL_KEYS) for m in recorder.system.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_memory_of_torch_s_allocator_and_its_peak():
    device = "cuda"
    held = torch.empty(64 * 2**20, dtype=torch.uint8, device=device)  # 67 MB
    torch.empty(128 * 2**20, dtype=torch.uint8, device=device)  # freed at once: only the peak keeps it
    metrics = system_metrics(device)
    assert set(GPU_MEMORY_KEYS) <= set(metrics)
    assert set(PSUTIL_KEYS) <= set(metrics) or psutil is None
    allocated = metrics["system/gpu_memory_allocated_megabytes"]
    assert allocated >= held.numel() / MB
    assert metrics["system/gpu_max_memory_allocated_megabytes"] >= allocated + 128 * 2**20 / MB
    assert metrics["system/gpu_memory_reserved_megabytes"] >= allocated
    try:
        utilization = torch.cuda.utilization(device)
    except Exception:  # noqa: BLE001 (no pynvml: the key is left out)
        assert GPU_UTILIZATION_KEY not in metrics
    else:
        assert 0 <= metrics[GPU_UTILIZATION_KEY] <= 100 and 0 <= utilization <= 100


@needs_psutil
@pytest.mark.parametrize("kind", ["dpo", "sft"])
@pytest.mark.parametrize("on", [True, False])
def test_each_dpo_and_sft_step_reports_its_system_metrics_unless_switched_off(kind, on, tmp_path):
    from tests.engine import test_dpo, test_sft
    from workers.engine.dpo import train_dpo
    from workers.engine.sft import train_sft

    config = (test_dpo.tiny_dpo if kind == "dpo" else test_sft.tiny_sft)(epochs=1, log_system_metrics=on)
    data = test_dpo.TOY if kind == "dpo" else test_sft.TOY
    run = train_dpo if kind == "dpo" else train_sft
    steps, system = [], {}

    def on_system_metrics(step, metrics):
        assert step not in steps  # before on_metrics of the same step
        system[step] = metrics

    result = run(config, data, output_dir=tmp_path, on_metrics=lambda step, m: steps.append(step),
                 on_system_metrics=on_system_metrics)
    assert steps == list(range(1, result.steps_completed + 1)) and steps
    if on:
        assert sorted(system) == steps and all(set(m) == set(PSUTIL_KEYS) for m in system.values())
    else:
        assert system == {}


@needs_psutil
@pytest.mark.parametrize("on", [True, False])
def test_each_reward_model_step_reports_its_system_metrics_unless_switched_off(on, tmp_path):
    from tests.engine.test_rm_trainer import keyword_records, tiny_config
    from workers.engine.rm_trainer import train_reward_model

    steps, system = [], {}

    def on_system_metrics(step, metrics):
        assert step not in steps  # before on_metrics of the same step
        system[step] = metrics

    result = train_reward_model(tiny_config(epochs=1, log_system_metrics=on), keyword_records(24),
                                output_dir=tmp_path / "rm", on_metrics=lambda step, m: steps.append(step),
                                on_system_metrics=on_system_metrics)
    assert steps == list(range(1, result.steps + 1)) and steps
    assert not any(k.startswith("system/") for k in result.metrics)  # the saved model's summary keeps none
    if on:
        assert sorted(system) == steps and all(set(m) == set(PSUTIL_KEYS) for m in system.values())
    else:
        assert system == {}
