"""Config, prompt and preference files that are not UTF-8, nest past the parser or hold numbers
of thousands of digits end the CLI with one 'error:' line and exit 2, not a traceback."""

import json

import pytest

from workers.engine.__main__ import main
from workers.engine.rm_trainer import cli_main

BAD = {
    "utf16": '{"prompt": "hi"}\n'.encode("utf-16"),
    "latin1": '{"prompt": "café"}\n'.encode("latin-1"),
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "digits": b'{"prompt": "x", "reference": 1' + b"0" * 5000 + b"}",
}
WORDS = {"utf16": "is not UTF-8 text (byte 0: 0xFF)", "latin1": "is not UTF-8 text (byte 15: 0xE9)",
         "deep": "JSON nested too deeply", "digits": "integer string conversion"}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_train_config_file_that_cannot_be_read_is_one_error_line(tmp_path, capsys, kind):
    config = tmp_path / "cfg.json"
    config.write_bytes(BAD[kind])
    assert main(["train", "--config", str(config), "--prompts", "p.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --config: ") and WORDS[kind] in err and "Traceback" not in err


@pytest.mark.parametrize("kind", list(BAD))
def test_a_prompt_file_that_cannot_be_read_is_one_error_line(tmp_path, capsys, kind):
    config, prompts = tmp_path / "cfg.json", tmp_path / "p.jsonl"
    config.write_text('{"policy": {"source": "tiny"}, "train": {"device": "cpu"}}')
    prompts.write_bytes(BAD[kind])
    assert main(["train", "--config", str(config), "--prompts", str(prompts), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and WORDS[kind] in err and str(prompts) in err


@pytest.mark.parametrize("kind", list(BAD))
def test_a_preference_file_that_cannot_be_read_is_one_error_line(tmp_path, capsys, kind):
    config, prefs = tmp_path / "rm.json", tmp_path / "prefs.jsonl"
    prefs.write_bytes(BAD[kind])
    config.write_text(json.dumps({"backbone": "tiny", "data": {"path": str(prefs)}}))
    assert cli_main(["--config", str(config), "--output-dir", str(tmp_path / "rm")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and WORDS[kind] in err and str(prefs) in err


def test_a_config_path_that_is_a_folder_is_one_error_line(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path), "--prompts", "p.jsonl"]) == 2
    assert capsys.readouterr().err.startswith(f"error: --config: cannot read {tmp_path}")
