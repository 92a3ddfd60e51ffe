"""An engine command whose reader closes the output early (``default-config --explain | head``)
ends quietly: it printed a BrokenPipeError traceback, as if the command had failed."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv", [["default-config"], ["default-config", "--explain"]])
def test_a_reader_that_leaves_early_gets_no_traceback(argv):
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.engine", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader is gone before the first line: every write meets a closed pipe
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, stderr
    assert stderr == ""
