"""A worker's log holds what happened to runs, not the progress bars of model loads and saves.

Celery logs whatever a task writes to stderr as a WARNING, so each checkpoint's "Writing model
shards" bar used to read as two warnings in the worker's log.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_celery_app_turns_off_the_progress_bars_of_model_loads_and_saves():
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    code = ("import workers.celery_app\n"
            "from transformers.utils import logging\n"
            "print(logging.is_progress_bar_enabled())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
