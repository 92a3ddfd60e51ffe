"""The engine's command line and the web app's worker look for converted built-in models in the
same folder, set up either way (STEER_MODEL_CACHE_DIR, or STEER_VAR_DIR alone)."""

from pathlib import Path

import pytest

from webapp.environment import load
from workers.engine.cli_config import model_cache_dir


@pytest.mark.parametrize("variables", [
    {"STEER_VAR_DIR": "{tmp}/var"},
    {"STEER_VAR_DIR": "{tmp}/var", "STEER_MODEL_CACHE_DIR": "{tmp}/models"},
    {"STEER_MODEL_CACHE_DIR": "{tmp}/models"},
])
def test_the_command_line_and_the_worker_share_one_model_cache(tmp_path, variables):
    environ = {name: value.format(tmp=tmp_path) for name, value in variables.items()}
    environ["SECRET_KEY"] = "k" * 50
    web_app = load(environ, base_dir=tmp_path)
    assert model_cache_dir(None, environ).resolve() == web_app.model_cache_dir


def test_with_neither_set_both_use_var_models_under_where_they_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the command line runs in the repository, as the web app's base
    web_app = load({"SECRET_KEY": "k" * 50}, base_dir=Path.cwd())
    assert model_cache_dir(None, {}).resolve() == web_app.model_cache_dir
