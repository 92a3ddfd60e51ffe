import json
import subprocess
import sys
from pathlib import Path

import pytest

from workers.engine.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, data) -> Path:
    if isinstance(data, list):
        path.write_text("".join(json.dumps(row) + "\n" for row in data))
    else:
        path.write_text(json.dumps(data))
    return path


def test_train_runs_from_a_config_with_a_data_path(tiny_cfg, tmp_path, capsys):
    write(tmp_path / "prompts.jsonl", [{"prompt": "a"}, {"prompt": [{"role": "user",
                                                                     "content": "b"}]}])
    config = write(tmp_path / "cfg.json", tiny_cfg(data={"path": "prompts.jsonl"},
                                                   train={"total_steps": 2}))
    code = main(["train", "--config", str(config), "--output-dir", str(tmp_path / "run")])
    assert code == 0
    assert (tmp_path / "run" / "checkpoints" / "step-2").is_dir()
    assert "done: step 2/2" in capsys.readouterr().out


@pytest.mark.parametrize("config, prompts, message", [
    ({"rollout": {"num_generations": 1}}, [{"prompt": "a"}], "rollout.num_generations"),
    ({"rewards": [{"name": "nope"}]}, [{"prompt": "a"}], "known rewards"),
    ({}, [], "empty"),
    ({}, [{"question": "a"}], "expected keys"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_cfg, tmp_path, capsys, config, prompts, message):
    cfg = write(tmp_path / "cfg.json", tiny_cfg(**config))
    data = write(tmp_path / "p.jsonl", prompts)
    code = main(["train", "--config", str(cfg), "--prompts", str(data), "--output-dir",
                 str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_invalid_json_config_exits_2(tmp_path, capsys):
    (tmp_path / "cfg.json").write_text("{nope")
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--prompts", "x"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_eval_prints_json(tiny_cfg, tmp_path, capsys):
    write(tmp_path / "p.jsonl", [{"prompt": "a", "reference": "a"}])
    cfg = write(tmp_path / "cfg.json", tiny_cfg(eval={"num_samples": 2, "k": 2}))
    assert main(["eval", "--config", str(cfg), "--prompts", str(tmp_path / "p.jsonl")]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"greedy_pass@1", "pass@2"}


def test_train_rm_delegates_to_the_reward_model_cli(monkeypatch):
    import workers.engine.rm_trainer as rm_trainer

    seen = []
    monkeypatch.setattr(rm_trainer, "cli_main", lambda argv: seen.append(argv) or 0)
    assert main(["train-rm", "--config", "rm.json"]) == 0
    assert seen == [["--config", "rm.json"]]


def test_module_entry_point_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "workers.engine", "default-config"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rollout"]["num_generations"] == 8


def test_default_config_explain_lists_every_setting_with_its_default_and_meaning(capsys):
    from workers.engine.config import config_field_help

    assert main(["default-config", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "algorithm.clip_eps_low_incorrect = null\n    DISPO:" in out
    assert "rollout.num_generations = 8\n    Completions per prompt" in out
    assert "\nrollout\n    Sampling." in out  # a section: no value of its own
    assert all(f"\n{name}" in "\n" + out for name in config_field_help())
