"""Where the engine's commands cache the built-in models they convert from GGUF: the web app's
worker reads STEER_MODEL_CACHE_DIR (README), so the commands read it too."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from workers.engine import trainer
from workers.engine.__main__ import main
from workers.engine.cli_config import model_cache_dir


@pytest.mark.parametrize(
    "given, environ, expected",
    [
        (None, {}, Path("var/models")),
        (None, {"STEER_MODEL_CACHE_DIR": "/srv/models"}, Path("/srv/models")),
        (
            None,
            {"STEER_MODEL_CACHE": "/old/models"},
            Path("/old/models"),
        ),  # the name the commands read before
        (
            None,
            {
                "STEER_MODEL_CACHE_DIR": "/srv/models",
                "STEER_MODEL_CACHE": "/old/models",
            },
            Path("/srv/models"),
        ),
        (
            None,
            {"STEER_MODEL_CACHE_DIR": "", "STEER_MODEL_CACHE": "/old/models"},
            Path("/old/models"),
        ),  # empty: unset
        (Path("here"), {"STEER_MODEL_CACHE_DIR": "/srv/models"}, Path("here")),
    ],
)
def test_the_option_wins_then_the_web_apps_variable_then_the_old_name(
    given, environ, expected
):
    assert model_cache_dir(given, environ) == expected


@pytest.fixture
def cache_dir_train_gets(monkeypatch):
    """The model_cache_dir the train command hands the trainer (which is not run)."""
    seen = []

    def fake_train(
        config, prompts, callbacks, *, output_dir, model_cache_dir, eval_prompts
    ):
        seen.append(model_cache_dir)
        return SimpleNamespace(
            steps_completed=config.train.total_steps, final_checkpoint=None
        )

    monkeypatch.setattr(trainer, "train", fake_train)
    monkeypatch.delenv("STEER_MODEL_CACHE", raising=False)
    return seen


def run_train(tiny_cfg, tmp_path, *options) -> int:
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "a"}) + "\n")
    (tmp_path / "cfg.json").write_text(json.dumps(tiny_cfg()))
    return main(
        [
            "train",
            "--config",
            str(tmp_path / "cfg.json"),
            "--prompts",
            str(tmp_path / "p.jsonl"),
            "--output-dir",
            str(tmp_path / "run"),
            *options,
        ]
    )


def test_train_caches_where_the_workers_steer_model_cache_dir_says(
    tiny_cfg, tmp_path, monkeypatch, cache_dir_train_gets
):
    """The command read STEER_MODEL_CACHE alone: set for the worker, the variable was not heard,
    and the model was converted a second time into ./var/models."""
    monkeypatch.setenv("STEER_MODEL_CACHE_DIR", str(tmp_path / "models"))
    assert run_train(tiny_cfg, tmp_path) == 0
    assert (
        run_train(tiny_cfg, tmp_path, "--model-cache-dir", str(tmp_path / "mine")) == 0
    )
    assert cache_dir_train_gets == [tmp_path / "models", tmp_path / "mine"]


def test_the_help_names_both_variables(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert (
        "$STEER_MODEL_CACHE_DIR, as the web app's worker reads it, else $STEER_MODEL_CACHE, else var/models"
        in said
    )
