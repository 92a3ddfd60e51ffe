"""The CLI's model cache follows STEER_VAR_DIR as the web app's does (var_dir/models), after the
two cache variables and before ./var/models."""

from pathlib import Path

import pytest

from workers.engine.cli_config import model_cache_dir


@pytest.mark.parametrize(("environ", "expected"), [
    ({"STEER_VAR_DIR": "/var/lib/steer"}, Path("/var/lib/steer/models")),
    ({"STEER_VAR_DIR": "/var/lib/steer", "STEER_MODEL_CACHE_DIR": "/srv/models"}, Path("/srv/models")),
    ({"STEER_VAR_DIR": "/var/lib/steer", "STEER_MODEL_CACHE": "/old/models"}, Path("/old/models")),
    ({"STEER_VAR_DIR": ""}, Path("var/models")),  # empty: unset
    ({}, Path("var/models")),
])
def test_without_a_cache_variable_the_cache_is_in_steer_var_dir(environ, expected):
    assert model_cache_dir(None, environ) == expected

