"""Settings switch on the environment: embedded defaults, or the real stack."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from webapp.environment import VARIABLES, load


def test_no_variables_gives_sqlite_wal_and_filesystem_broker(tmp_path):
    env = load({"STEER_VAR_DIR": str(tmp_path)}, base_dir=Path("."))
    assert env.database["ENGINE"] == "django.db.backends.sqlite3"
    assert env.database["NAME"] == str(tmp_path / "steer.sqlite3")
    assert "journal_mode=WAL" in env.database["OPTIONS"]["init_command"]
    assert env.broker_url == "filesystem://"
    assert env.broker_transport_options["data_folder_in"] == str(tmp_path / "broker" / "queue")
    assert env.uses_embedded_database and env.uses_embedded_broker


def test_a_sqlite_url_runs_as_the_embedded_database_does(tmp_path):
    """WAL, IMMEDIATE transactions and a lock timeout for a sqlite:/// URL too: without them two
    requests writing at once (e.g. one Idempotency-Key sent twice) failed 'database is locked'."""
    env = load({"STEER_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/other.sqlite3"},
               base_dir=Path("."))
    assert env.database["ENGINE"] == "django.db.backends.sqlite3"
    assert env.database["NAME"] == f"{tmp_path}/other.sqlite3"
    options = env.database["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE" and options["timeout"] == 20
    assert "journal_mode=WAL" in options["init_command"]
    assert not env.uses_embedded_database


def test_database_and_broker_urls_switch_to_postgres_and_redis(tmp_path):
    env = load(
        {
            "STEER_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://steer:pw@db.internal:5433/steer",
            "CELERY_BROKER_URL": "redis://cache.internal:6379/2",
        },
        base_dir=Path("."),
    )
    assert env.database["ENGINE"] == "django.db.backends.postgresql"
    assert (env.database["HOST"], env.database["PORT"], env.database["NAME"]) == ("db.internal", 5433, "steer")
    assert env.broker_url == "redis://cache.internal:6379/2"
    assert env.broker_transport_options["visibility_timeout"] > 3600
    assert not env.uses_embedded_database and not env.uses_embedded_broker


def test_run_artifacts_live_under_the_var_dir_unless_a_folder_is_named(tmp_path):
    assert load({"STEER_VAR_DIR": str(tmp_path)}, base_dir=Path(".")).artifact_dir == tmp_path.resolve() / "artifacts"
    named = load({"STEER_VAR_DIR": str(tmp_path), "STEER_ARTIFACT_DIR": str(tmp_path / "files")}, base_dir=Path("."))
    assert named.artifact_dir == tmp_path.resolve() / "files"


def test_debug_is_off_unless_asked(tmp_path):
    assert load({"STEER_VAR_DIR": str(tmp_path)}, base_dir=Path(".")).debug is False
    assert load({"STEER_VAR_DIR": str(tmp_path), "DEBUG": "1"}, base_dir=Path(".")).debug is True


def test_secret_key_is_generated_once_into_var(tmp_path):
    first = load({"STEER_VAR_DIR": str(tmp_path)}, base_dir=Path(".")).secret_key
    second = load({"STEER_VAR_DIR": str(tmp_path)}, base_dir=Path(".")).secret_key
    assert first == second and len(first) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_the_generated_key_is_never_readable_by_others_even_while_it_is_written(tmp_path, monkeypatch):
    import os

    modes = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, flags, mode=0o777: modes.append(mode) or real_open(path, flags, mode))
    old_umask = os.umask(0)  # the most permissive umask: the file's mode is the one it is created with
    try:
        load({"STEER_VAR_DIR": str(tmp_path)}, base_dir=Path("."))
    finally:
        os.umask(old_umask)
    assert modes == [0o600]
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_of_two_processes_generating_the_key_at_once_the_second_reads_the_firsts(tmp_path, monkeypatch):
    (tmp_path / "secret_key").write_text("the-first-process-key")
    monkeypatch.setattr(Path, "exists", lambda self: False)  # both saw no file, the other created it first
    assert load({"STEER_VAR_DIR": str(tmp_path)}, base_dir=Path(".")).secret_key == "the-first-process-key"


def test_secret_key_from_environment_wins(tmp_path):
    env = load({"STEER_VAR_DIR": str(tmp_path), "SECRET_KEY": "from-env"}, base_dir=Path("."))
    assert env.secret_key == "from-env"
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    "url, words",
    [
        ("mysql://root@localhost/steer", "scheme 'mysql'"),
        ("localhost:5432/steer", "scheme"),
        ("postgres://postgres@127.0.0.1:5432", "names no database"),
    ],
)
def test_invalid_database_url_is_refused_with_a_clear_message(tmp_path, url, words):
    with pytest.raises(ImproperlyConfigured, match=words):
        load({"STEER_VAR_DIR": str(tmp_path), "DATABASE_URL": url}, base_dir=Path("."))


def test_invalid_broker_url_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_URL"):
        load({"STEER_VAR_DIR": str(tmp_path), "CELERY_BROKER_URL": "kafka://x"}, base_dir=Path("."))


def test_invalid_debug_value_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        load({"STEER_VAR_DIR": str(tmp_path), "DEBUG": "maybe"}, base_dir=Path("."))


def test_trusted_proxies_default_to_none_and_must_be_a_count(tmp_path):
    base = {"STEER_VAR_DIR": str(tmp_path)}
    assert load(base, base_dir=Path(".")).trusted_proxies == 0
    assert load({**base, "STEER_TRUSTED_PROXIES": "1"}, base_dir=Path(".")).trusted_proxies == 1
    for bad in ("-1", "one", "²"):
        with pytest.raises(ImproperlyConfigured, match="STEER_TRUSTED_PROXIES"):
            load({**base, "STEER_TRUSTED_PROXIES": bad}, base_dir=Path("."))


def test_https_is_off_by_default_and_must_be_a_boolean(tmp_path):
    base = {"STEER_VAR_DIR": str(tmp_path)}
    assert load(base, base_dir=Path(".")).https is False
    assert load({**base, "STEER_HTTPS": "1"}, base_dir=Path(".")).https is True
    with pytest.raises(ImproperlyConfigured, match="STEER_HTTPS"):
        load({**base, "STEER_HTTPS": "https"}, base_dir=Path("."))


@pytest.mark.parametrize("https, proxies, secure, header", [
    ("0", "0", False, None), ("1", "0", True, None), ("1", "1", True, ["HTTP_X_FORWARDED_PROTO", "https"]),
    ("0", "1", False, None),
])
def test_https_makes_cookies_secure_and_believes_only_a_trusted_proxys_scheme(tmp_path, https, proxies, secure,
                                                                              header):
    """Settings as a fresh process reads them: X-Forwarded-Proto is the client's to write unless a
    trusted proxy sets it, so it counts only with both variables."""
    script = ("import json, django; from django.conf import settings; django.setup(); print(json.dumps("
              "[settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SECURE_PROXY_SSL_HEADER]))")
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env |= {"DJANGO_SETTINGS_MODULE": "webapp.settings", "STEER_VAR_DIR": str(tmp_path), "STEER_HTTPS": https,
            "STEER_TRUSTED_PROXIES": proxies}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert json.loads(out.stdout) == [secure, secure, header]
