"""Checkpoints: ``output_dir/checkpoints/step-<N>/``, written atomically.

A checkpoint holds the policy and tokenizer in save_pretrained form (plain transformers loads
it), ``optimizer.pt``, ``rng_state.pt`` (python, numpy, torch, cuda), ``train_config.json`` and
``trainer_state.json``. It is assembled in a hidden temporary folder and renamed into place,
so a folder named ``step-<N>`` is always complete.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINTS_DIRNAME = "checkpoints"
_STEP_DIR = re.compile(r"^step-(\d+)$")
_LEFTOVER_DIR = re.compile(r"^\.(tmp|old)-step-\d+-")
STATE_FILE = "trainer_state.json"


def checkpoints_root(output_dir: Path) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIRNAME


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints as (step, path), oldest first."""
    root = checkpoints_root(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def remove_partial_checkpoints(output_dir: Path) -> None:
    """Remove the hidden folders of saves that never finished (a worker killed inside
    ``save_checkpoint``): a resumed run would otherwise keep their bytes until it is deleted."""
    root = checkpoints_root(output_dir)
    if root.is_dir():
        for child in root.iterdir():
            if _LEFTOVER_DIR.match(child.name) and child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_rng_globals() -> list:
    """What unpickling numpy's RNG state (a uint32 array) needs beyond torch's weights-only
    allow-list, under the module names numpy 1 and 2 pickle it with."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed = [np.ndarray, np.dtype, (multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
               (multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]
    if hasattr(np, "dtypes"):
        allowed.append(np.dtypes.UInt32DType)
    return allowed


def load_rng_state(path: Path) -> dict[str, Any]:
    """``rng_state.pt`` read weights-only: tensors, numbers, strings and numpy's state array,
    and nothing that could run code, whoever wrote the file."""
    with torch.serialization.safe_globals(_numpy_rng_globals()):
        return torch.load(path, weights_only=True)


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(output_dir: Path, step: int, *, model, tokenizer, optimizer,
                    config_dict: dict[str, Any], trainer_state: dict[str, Any]) -> Path:
    """Write checkpoint ``step`` atomically and return its folder."""
    root = checkpoints_root(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"step-{step}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-step-{step}-", dir=root))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(rng_state(), tmp / "rng_state.pt")
        (tmp / "train_config.json").write_text(json.dumps(config_dict, indent=2))
        (tmp / STATE_FILE).write_text(json.dumps({**trainer_state, "step": step}, indent=2))
        _as_umask_allows(tmp)
        if target.exists():  # re-saving a step after a resume: replace the old copy
            old = root / f".old-step-{step}-{os.getpid()}"
            os.rename(target, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _as_umask_allows(folder: Path) -> None:
    """Give the folder and its files the modes a plain mkdir/open would have had.

    mkdtemp makes the folder 0700 (and safetensors writes 0600), which would hide a checkpoint
    from the web server that serves downloads when it runs as another user of the same group.
    """
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def load_training_state(path: Path, optimizer) -> dict[str, Any]:
    """Restore optimizer and RNG states from checkpoint ``path``; returns trainer_state."""
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    restore_rng_state(load_rng_state(path / "rng_state.pt"))
    return json.loads((path / STATE_FILE).read_text())


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recent checkpoints (keep == 0 keeps all)."""
    if keep <= 0:
        return
    for _, path in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
