"""train-dpo and train-sft cache the built-in policy they convert from GGUF, as train and eval do:
they converted it again on every run (tens of seconds for SmolLM2) and had no --model-cache-dir."""

import json
from pathlib import Path

import pytest

from workers.engine import policy
from workers.engine.__main__ import main
from workers.engine.tiny import build_tiny_policy

BUILTIN = {"source": "builtin", "name": "smollm2-135m-instruct", "dtype": "float32"}
COMMANDS = {
    "train-dpo": (
        {"dpo": {"batch_size": 2, "epochs": 1, "device": "cpu"}},
        [
            {"prompt": "x", "chosen": "ab", "rejected": "ba"},
            {"prompt": "y", "chosen": "a", "rejected": "b"},
        ],
    ),
    "train-sft": (
        {"sft": {"batch_size": 2, "epochs": 1, "device": "cpu"}},
        [{"prompt": "x", "completion": "ab"}, {"prompt": "y", "completion": "ba"}],
    ),
}


@pytest.fixture
def conversions(monkeypatch):
    """The built-in models converted from GGUF, by name; each conversion gives a tiny policy."""
    converted = []

    def convert(name):
        converted.append(name)
        return build_tiny_policy(
            hidden_size=32,
            num_layers=1,
            num_heads=2,
            intermediate_size=64,
            alphabet="abxy",
            seed=0,
        )

    monkeypatch.setattr(policy, "convert_builtin", convert)
    monkeypatch.setattr(
        policy, "builtin_gguf_path", lambda name: Path(f"/not/read/{name}.gguf")
    )
    monkeypatch.delenv("STEER_MODEL_CACHE", raising=False)
    monkeypatch.delenv("STEER_MODEL_CACHE_DIR", raising=False)
    return converted


def run(command: str, tmp_path: Path, output: str, *options: str) -> int:
    sections, lines = COMMANDS[command]
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines)
    )
    (tmp_path / "cfg.json").write_text(
        json.dumps({"policy": BUILTIN, **sections, "data": {"path": "data.jsonl"}})
    )
    return main(
        [
            command,
            "--config",
            str(tmp_path / "cfg.json"),
            "--output-dir",
            str(tmp_path / output),
            *options,
        ]
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_second_run_reads_the_cache_instead_of_converting_again(
    command, tmp_path, conversions, capsys
):
    cache = tmp_path / "models"
    assert run(command, tmp_path, "first", "--model-cache-dir", str(cache)) == 0, (
        capsys.readouterr().err
    )
    assert (cache / "smollm2-135m-instruct" / "config.json").is_file()
    assert run(command, tmp_path, "second", "--model-cache-dir", str(cache)) == 0, (
        capsys.readouterr().err
    )
    assert conversions == ["smollm2-135m-instruct"]


@pytest.mark.parametrize("command", COMMANDS)
def test_without_the_option_the_cache_is_the_workers_steer_model_cache_dir(
    command, tmp_path, conversions, monkeypatch, capsys
):
    monkeypatch.setenv("STEER_MODEL_CACHE_DIR", str(tmp_path / "worker-models"))
    for output in ("first", "second"):
        assert run(command, tmp_path, output) == 0, capsys.readouterr().err
    assert conversions == ["smollm2-135m-instruct"]
    assert (
        tmp_path / "worker-models" / "smollm2-135m-instruct" / "config.json"
    ).is_file()


@pytest.mark.parametrize("command", COMMANDS)
def test_the_help_says_where_converted_models_are_cached(command, capsys):
    assert main([command, "--help"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "--model-cache-dir" in said and "$STEER_MODEL_CACHE_DIR" in said
