"""When the engine uses ``torch.compile``, and how a failed compilation falls back.

``train.compile_decoder`` is unset by default: then the rollout decoder's step is compiled
where that pays and works without asking (a CUDA device with Triton and the C compiler Triton
builds its launcher with, as vLLM compiles by default: on the H200 it cut the rollout of
bench/grpo_step.py by 70-90 ms in two runs) and not elsewhere (a CPU, where inductor needs a
C++ compiler and a short run spends more time compiling than it saves).
``train.compile_head`` stays off unless asked for: its gain was not the same in two runs
(bench/grpo_step.md). ``guarded_compile`` wraps ``torch.compile`` so that a compilation that
fails (no C compiler for Triton's launcher, an inductor bug) logs a warning and runs the same
function eagerly from then on (or a given fallback computing the same thing, as the decoder's
FlexAttention step falls back to its SDPA step), instead of failing the run: the compiled and
the eager function compute the same values within rounding.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)


@functools.cache
def triton_available() -> bool:
    """Whether Triton, which inductor generates GPU kernels with, imports here, and a C compiler
    for it to build its kernel launcher with is on the PATH: a slim image without one fails every
    compilation, and trying costs seconds each time."""
    try:
        import triton  # noqa: F401, PLC0415
    except Exception:  # noqa: BLE001 (a broken install is as good as none)
        return False
    return c_compiler() is not None


def c_compiler() -> str | None:
    """The C compiler Triton looks for when ``$CC`` is unset, gcc, else clang; None if neither is
    on the PATH. (The engine reads no environment variable outside its command line, so a
    compiler named only by ``$CC`` is not counted: the decoder then stays eager unless
    ``train.compile_decoder`` is true.)"""
    return shutil.which("gcc") or shutil.which("clang")


def compile_wanted(setting: bool | None, device: torch.device | str) -> bool:
    """The setting if it is given; unset: compile on a CUDA device with Triton and a C compiler,
    else not."""
    if setting is not None:
        return setting
    return torch.device(device).type == "cuda" and triton_available()


# What failed to compile in this process (``what``): later calls run it eagerly at once rather
# than spend another failed compilation on it (a worker runs many runs; each makes a decoder).
_FAILED: set[str] = set()


def guarded_compile(fn: Callable, *, what: str, eager: Callable | None = None,
                    instead: str = "it eagerly", **options: Any) -> Callable:
    """``torch.compile(fn, **options)`` that, when the compiled function raises and the
    fallback (``eager``, else ``fn`` itself) does not on the same arguments, logs a warning
    naming ``what`` and the error and calls the fallback from then on, as does every later
    ``guarded_compile`` of the same ``what`` in this process. An error the fallback raises too
    (bad input, out of memory) is not the compiler's: it propagates, and the compiled function
    is tried again on the next call. ``eager`` computes what ``fn`` does by other means (it may
    itself be a guarded compilation); ``instead`` names it in the warning."""
    failed = what in _FAILED
    compiled = None if failed else torch.compile(fn, **options)
    fallback = fn if eager is None else eager

    def call(*args, **kwargs):
        nonlocal failed
        if failed:
            return fallback(*args, **kwargs)
        try:
            return compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 (any compiler failure; the eager call tells)
            result = fallback(*args, **kwargs)  # raises if the error is not the compiler's
            failed = True
            _FAILED.add(what)
            first_line = (str(exc).strip().splitlines() or [""])[0][:300]
            log.warning("torch.compile of %s failed (%s: %s); running %s", what,
                        type(exc).__name__, first_line, instead)
            return result

    call.eager = fallback  # type: ignore[attr-defined]
    call.compile_failed = lambda: failed  # type: ignore[attr-defined]
    return call
