"""The machine's state at the end of a step, under MLflow's system-metric names and units.

Charted beside a run's training metrics, they show how close a run is to the GPU's memory
(to size ``train.micro_batch_size`` and ``rollout.prompts_per_step``) and whether a worker is
swapping. Megabytes are 10^6 bytes and percentages 0 to 100, as MLflow logs them.

Every reading is cheap (microseconds: counters psutil and torch already keep; no interval, no
subprocess) and optional: without psutil the CPU and memory keys are left out, without CUDA
the GPU keys, and without pynvml ``system/gpu_utilization_percentage``. A missing metric never
stops a run.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType

import torch

MB = 1e6  # MLflow's megabyte

PSUTIL_KEYS = (
    "system/cpu_utilization_percentage",  # all CPUs, since the previous reading
    "system/system_memory_usage_megabytes",
    "system/system_memory_usage_percentage",
    "system/process_rss_megabytes",  # resident memory of the training process
)
GPU_MEMORY_KEYS = (
    "system/gpu_memory_allocated_megabytes",  # held by tensors now
    "system/gpu_max_memory_allocated_megabytes",  # the peak since the process started (or since
    # whoever last called torch.cuda.reset_peak_memory_stats; the engine never does)
    "system/gpu_memory_reserved_megabytes",  # held by torch's caching allocator
)
GPU_UTILIZATION_KEY = "system/gpu_utilization_percentage"  # needs pynvml


def _psutil() -> ModuleType | None:
    try:
        return importlib.import_module("psutil")
    except ImportError:  # also when sys.modules["psutil"] is None
        return None


def start_cpu_window() -> None:
    """Start the window the next ``system/cpu_utilization_percentage`` covers (psutil counts
    from its previous reading): called as a run starts, so that step 1's figure covers step 1."""
    psutil = _psutil()
    if psutil is not None:
        psutil.cpu_percent(interval=None)


def system_metrics(device: str) -> dict[str, float]:
    """The ``system/*`` metrics of this process on ``device`` ('cpu', 'cuda' or 'cuda:N')."""
    metrics: dict[str, float] = {}
    psutil = _psutil()
    if psutil is not None:
        metrics["system/cpu_utilization_percentage"] = float(psutil.cpu_percent(interval=None))
        memory = psutil.virtual_memory()
        metrics["system/system_memory_usage_megabytes"] = memory.used / MB
        metrics["system/system_memory_usage_percentage"] = memory.used / memory.total * 100
        metrics["system/process_rss_megabytes"] = psutil.Process().memory_info().rss / MB
    if device.startswith("cuda") and torch.cuda.is_available():
        metrics["system/gpu_memory_allocated_megabytes"] = torch.cuda.memory_allocated(device) / MB
        metrics["system/gpu_max_memory_allocated_megabytes"] = torch.cuda.max_memory_allocated(device) / MB
        metrics["system/gpu_memory_reserved_megabytes"] = torch.cuda.memory_reserved(device) / MB
        with contextlib.suppress(Exception):  # no pynvml, or NVML cannot read the device: left out
            metrics[GPU_UTILIZATION_KEY] = float(torch.cuda.utilization(device))
    return metrics


def progress_figures(metrics: dict[str, float]) -> dict[str, str]:
    """The main figures of a step's ``system/*`` metrics, short, for a command line's progress
    line: ``cpu`` (all CPUs, %), ``rss`` (the process's resident memory) and on a GPU
    ``gpu_peak`` (the peak of torch's allocator) and ``gpu`` (utilization, %). Figures the
    reading lacks are left out."""
    figures: dict[str, str] = {}
    if (cpu := metrics.get("system/cpu_utilization_percentage")) is not None:
        figures["cpu"] = f"{cpu:.0f}%"
    if (rss := metrics.get("system/process_rss_megabytes")) is not None:
        figures["rss"] = _size(rss)
    if (peak := metrics.get("system/gpu_max_memory_allocated_megabytes")) is not None:
        figures["gpu_peak"] = _size(peak)
    if (gpu := metrics.get(GPU_UTILIZATION_KEY)) is not None:
        figures["gpu"] = f"{gpu:.0f}%"
    return figures


def _size(megabytes: float) -> str:
    return f"{megabytes / 1000:.1f}GB" if megabytes >= 1000 else f"{megabytes:.0f}MB"
