"""Bad infrastructure settings give a clear error at start and change nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[3]


def manage(args, **env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(env_overrides)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.django_db
def test_preflight_passes_on_the_configured_stack(capsys):
    call_command("preflight")
    out = capsys.readouterr().out
    assert "ok  database" in out and "ok  broker" in out


@pytest.mark.django_db
def test_unreachable_broker_is_reported_by_preflight(settings, capsys):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    with pytest.raises(CommandError, match=r"preflight failed \(broker\)"):
        call_command("preflight")
    out = capsys.readouterr().out
    assert "ERR broker: cannot reach the Celery broker at redis://127.0.0.1:1/0" in out
    assert ".." not in out


def test_serve_refuses_to_start_with_an_unreachable_broker(tmp_path):
    result = manage(["serve", "--bind", "127.0.0.1:0"], STEER_VAR_DIR=str(tmp_path),
                    CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assert result.returncode != 0
    assert "cannot reach the Celery broker" in result.stderr
    assert "Steer is up" not in result.stdout


def test_invalid_database_url_stops_manage_py_with_a_clear_message(tmp_path):
    result = manage(["migrate"], STEER_VAR_DIR=str(tmp_path), DATABASE_URL="mysql://root@localhost/steer")
    assert result.returncode != 0
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Steer cannot start: DATABASE_URL has the scheme 'mysql'; Steer supports postgres://USER@HOST:PORT/NAME "
        "and sqlite:///PATH."]
    assert not (tmp_path / "steer.sqlite3").exists(), "nothing was created"


def test_unreachable_database_is_reported_by_preflight(tmp_path):
    result = manage(["preflight"], STEER_VAR_DIR=str(tmp_path),
                    DATABASE_URL="postgres://postgres@127.0.0.1:1/steer")
    assert result.returncode != 0
    assert "cannot reach the database at 127.0.0.1:1/steer" in result.stdout + result.stderr
