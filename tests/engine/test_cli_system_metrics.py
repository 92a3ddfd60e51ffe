"""``python -m workers.engine`` shows each step's main system figures (CPU %, resident memory,
and on a GPU the allocator's peak) on its progress line when the run logs system metrics."""

import json
import re

import pytest

from tests.engine.test_rm_trainer import keyword_records, tiny_config
from workers.engine.__main__ import main

try:
    import psutil
except ImportError:  # pragma: no cover
    psutil = None
needs_psutil = pytest.mark.skipif(psutil is None, reason="needs psutil (requirements.txt)")

TINY = {"source": "tiny", "tiny": {"alphabet": "abxy", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                   "intermediate_size": 64, "seed": 0}}
FIGURES = re.compile(r"cpu=\d+%, rss=\d+(\.\d)?[MG]B")


def _write(folder, config: dict, name: str, lines: list[dict]):
    (folder / name).write_text("".join(json.dumps(line) + "\n" for line in lines))
    path = folder / "cfg.json"
    path.write_text(json.dumps({**config, "data": {"path": name}}))
    return path


def _policy(tmp_path, tiny_cfg, on):
    return ["train", "--config", str(_write(tmp_path, tiny_cfg(train={"total_steps": 2, "log_system_metrics": on}),
                                             "prompts.jsonl", [{"prompt": "a"}, {"prompt": "b"}])),
            "--output-dir", str(tmp_path / "run")]


def _sft(tmp_path, tiny_cfg, on):
    config = {"policy": TINY, "optim": {"lr": 1e-2},
              "sft": {"batch_size": 2, "epochs": 1, "device": "cpu", "log_system_metrics": on}}
    lines = [{"prompt": p, "completion": "a" * len(p)} for p in ["x", "y", "xy", "yx"]]
    return ["train-sft", "--config", str(_write(tmp_path, config, "sft.jsonl", lines)),
            "--output-dir", str(tmp_path / "out")]


def _dpo(tmp_path, tiny_cfg, on):
    config = {"policy": TINY, "optim": {"lr": 1e-2},
              "dpo": {"batch_size": 2, "epochs": 1, "device": "cpu", "log_system_metrics": on}}
    lines = [{"prompt": p, "chosen": "a" * n, "rejected": "b" * n} for n, p in enumerate(["x", "y", "xy", "yx"], 1)]
    return ["train-dpo", "--config", str(_write(tmp_path, config, "prefs.jsonl", lines)),
            "--output-dir", str(tmp_path / "out")]


def _rm(tmp_path, tiny_cfg, on):
    lines = [{"prompt": r.prompt, "completions": r.completions, "ranking": r.ranking} for r in keyword_records(16)]
    config = tiny_config(epochs=1, log_system_metrics=on).to_dict()
    return ["train-rm", "--config", str(_write(tmp_path, config, "prefs.jsonl", lines)),
            "--output-dir", str(tmp_path / "out")]


COMMANDS = {"train": _policy, "train-sft": _sft, "train-dpo": _dpo, "train-rm": _rm}


@needs_psutil
@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_the_progress_line_shows_the_step_s_system_figures(command, tiny_cfg, tmp_path, capsys):
    assert main(command(tmp_path, tiny_cfg, True)) == 0
    err = capsys.readouterr().err
    assert FIGURES.search(err), err[-500:]


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_with_the_switch_off_the_progress_line_shows_none(command, tiny_cfg, tmp_path, capsys):
    assert main(command(tmp_path, tiny_cfg, False)) == 0
    err = capsys.readouterr().err
    assert "cpu=" not in err and "rss=" not in err
    assert "step" in err  # the progress line itself is there
