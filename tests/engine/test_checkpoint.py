"""Checkpoint files read back safely: the RNG state restores draws, and nothing in it can run code."""

import pickle
import random

import numpy as np
import pytest
import torch

from workers.engine.checkpoint import load_rng_state, restore_rng_state, rng_state


def test_the_rng_state_read_back_weights_only_restores_every_generator(tmp_path):
    torch.save(rng_state(), tmp_path / "rng_state.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.random(), np.random.rand(), torch.rand(1)  # move every generator on
    restore_rng_state(load_rng_state(tmp_path / "rng_state.pt"))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class _Planted:
    """A pickle that creates a file when it is loaded, as a tampered checkpoint could run a command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_tampered_rng_state_is_refused_without_running_anything(tmp_path):
    marker = tmp_path / "ran"
    torch.save({**rng_state(), "python": _Planted(marker)}, tmp_path / "rng_state.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_rng_state(tmp_path / "rng_state.pt")
    assert not marker.exists()
