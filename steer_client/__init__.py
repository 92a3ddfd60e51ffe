"""Steer's Python client: report any trainer's run to Steer, or query results from scripts.

``SteerCallback`` (a ``transformers.TrainerCallback``, so TRL trainers too) is imported
lazily, so the plain client works without transformers installed.
"""

from steer_client.client import SteerClient, SteerError

__all__ = ["SteerCallback", "SteerClient", "SteerError", "watch"]


def __getattr__(name):
    if name in ("SteerCallback", "watch"):
        from steer_client import callback

        return getattr(callback, name)
    raise AttributeError(name)
