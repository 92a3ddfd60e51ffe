"""A stop asked in the middle of a long step: the engine's loops ask ``should_stop`` between
steps, and the work inside a step that can last minutes on a CPU (a rollout's token loop,
scoring by a reward model or a judge, a whole held-out evaluation, an SFT/DPO step's
micro-batches, DPO's reference pass) polls it too, through ``check_stop``.

A loop that can abandon its step wraps the step's work in ``stoppable(stop)``; code inside
calls ``check_stop()``, which asks ``stop`` (so the caller's ``should_stop``, a database read
in the webapp) at most once every ``interval_s`` seconds and raises ``StopRequested`` when the
answer is yes. Outside a ``stoppable`` block ``check_stop`` does nothing, so the decoders and
scorers behave as before for any other caller. A check reads the clock and nothing else: it
draws no random numbers and touches no tensor, so a run that is not stopped is bit for bit
the run without checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

POLL_INTERVAL_S = 1.0


class StopRequested(Exception):
    """``should_stop`` said yes inside a step: the step is abandoned, and nothing of it may be
    recorded as done."""


class StopCheck:
    """``should_stop`` with a memory of when it was last asked. Calling it asks now (between
    steps, where every call counts); ``poll`` asks only when ``interval_s`` (default
    ``POLL_INTERVAL_S``) has passed since."""

    def __init__(
        self, should_stop: Callable[[], bool] | None, *, interval_s: float | None = None
    ):
        self._should_stop = should_stop
        self.interval_s = POLL_INTERVAL_S if interval_s is None else interval_s
        self._asked_at = time.monotonic()

    def __call__(self) -> bool:
        self._asked_at = time.monotonic()
        return self._should_stop is not None and bool(self._should_stop())

    def poll(self) -> None:
        """Raise StopRequested when due to ask and ``should_stop`` says yes."""
        if time.monotonic() - self._asked_at >= self.interval_s and self():
            raise StopRequested


_active: ContextVar[StopCheck | None] = ContextVar(
    "steer_engine_stop_check", default=None
)


@contextmanager
def stoppable(stop: StopCheck) -> Iterator[None]:
    """Within the block, ``check_stop()`` polls ``stop``."""
    token = _active.set(stop)
    try:
        yield
    finally:
        _active.reset(token)


def check_stop() -> None:
    """Raise StopRequested when the enclosing ``stoppable`` block's run was asked to stop (asked
    at most once per its interval); nothing outside such a block."""
    stop = _active.get()
    if stop is not None:
        stop.poll()
