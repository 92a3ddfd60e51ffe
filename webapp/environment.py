"""Everything Steer reads from the process environment, parsed in one place.

``load(environ)`` is a pure function of a mapping so that tests can check how each
variable switches the stack without touching ``os.environ``. ``webapp.settings`` is the
only caller with the real environment.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
BROKER_SCHEMES = {"redis", "rediss", "filesystem", "amqp", "pyamqp"}
# Every variable Steer reads (docker-compose.yml and the README are checked against it).
VARIABLES = (
    "DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS",
    "STEER_VAR_DIR", "STEER_CHECKPOINT_DIR", "STEER_ARTIFACT_DIR", "STEER_MODEL_CACHE_DIR", "STEER_TRUSTED_PROXIES",
    "STEER_HTTPS",
)


@dataclass(frozen=True)
class Environment:
    base_dir: Path
    var_dir: Path
    debug: bool
    secret_key: str
    allowed_hosts: list[str]
    csrf_trusted_origins: list[str]
    database: dict
    broker_url: str
    broker_transport_options: dict
    checkpoint_dir: Path
    artifact_dir: Path  # files attached to runs (webapp.experiments.artifacts)
    model_cache_dir: Path
    uses_embedded_database: bool
    uses_embedded_broker: bool
    trusted_proxies: int
    https: bool = False  # served over HTTPS: cookies only over HTTPS, the proxy's X-Forwarded-Proto believed


def parse_bool(name: str, raw: str | None, default: bool) -> bool:
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def parse_count(name: str, raw: str | None, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    if not (raw.strip().isascii() and raw.strip().isdigit()):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number (0, 1, 2, ...).")
    return int(raw)


def parse_list(raw: str | None, default: list[str]) -> list[str]:
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# SQLite as Steer runs it: WAL (readers beside the one writer), and every transaction taking the
# write lock at BEGIN (IMMEDIATE), so two writers queue for up to ``timeout`` seconds rather than one
# failing "database is locked" when a read-then-write transaction tries to upgrade its lock.
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}


def database_config(url: str | None, var_dir: Path) -> dict:
    """The Django DATABASES['default'] entry: SQLite in WAL mode unless a URL is given; a
    ``sqlite:///PATH`` URL gets the same options (``SQLITE_OPTIONS``)."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(var_dir / "steer.sqlite3"),
            "OPTIONS": dict(SQLITE_OPTIONS),
            # A file, not memory, so worker processes started by tests see the test database.
            "TEST": {"NAME": str(var_dir / "test-steer.sqlite3")},
        }
    scheme = urlsplit(url).scheme.lower()
    if scheme not in {"postgres", "postgresql", "pgsql", "sqlite"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL has the scheme {scheme or '(none)'!r}; Steer supports "
            "postgres://USER@HOST:PORT/NAME and sqlite:///PATH."
        )
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"DATABASE_URL could not be parsed: {exc}") from exc
    if scheme != "sqlite" and not config.get("NAME"):
        raise ImproperlyConfigured(
            "DATABASE_URL names no database; add it after the host, e.g. postgres://postgres@127.0.0.1:5432/steer."
        )
    if scheme == "sqlite":
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
    return config


def broker_config(url: str | None, var_dir: Path) -> tuple[str, dict]:
    """Celery broker URL and transport options: kombu's filesystem transport by default."""
    if not url:
        folder = var_dir / "broker"
        return "filesystem://", {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    scheme = urlsplit(url).scheme.lower()
    if scheme not in BROKER_SCHEMES:
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL has the scheme {scheme or '(none)'!r}; use redis://HOST:6379/0 "
            "(or leave it unset for the embedded filesystem broker)."
        )
    options = {"visibility_timeout": 6 * 3600} if scheme.startswith("redis") else {}
    return url, options


def secret_key(raw: str | None, var_dir: Path) -> str:
    """The configured key, else one generated once into var/secret_key (never committed)."""
    if raw:
        return raw
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    # Created 0600 and exclusively: never readable by others, not even for the moment between
    # a write and a chmod; and of two processes starting at once (web and worker), the second
    # reads the first one's key instead of writing its own.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_when_written(path)
    with os.fdopen(fd, "w") as file:
        file.write(key)
    return key


def _read_when_written(path: Path, tries: int = 50) -> str:
    """The key another process has just created (it may not have written it yet)."""
    for _ in range(tries):
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.02)
    raise ImproperlyConfigured(f"{path} is empty; delete it (a new key is generated) or set SECRET_KEY.")


def load(environ: Mapping[str, str], base_dir: Path) -> Environment:
    var_dir = Path(environ.get("STEER_VAR_DIR") or base_dir / "var").resolve()
    database = database_config(environ.get("DATABASE_URL"), var_dir)
    broker_url, transport_options = broker_config(environ.get("CELERY_BROKER_URL"), var_dir)
    return Environment(
        base_dir=base_dir,
        var_dir=var_dir,
        debug=parse_bool("DEBUG", environ.get("DEBUG"), default=False),
        secret_key=secret_key(environ.get("SECRET_KEY"), var_dir),
        allowed_hosts=parse_list(environ.get("ALLOWED_HOSTS"), ["localhost", "127.0.0.1", "[::1]"]),
        csrf_trusted_origins=parse_list(environ.get("CSRF_TRUSTED_ORIGINS"), []),
        database=database,
        broker_url=broker_url,
        broker_transport_options=transport_options,
        checkpoint_dir=Path(environ.get("STEER_CHECKPOINT_DIR") or var_dir / "checkpoints").resolve(),
        artifact_dir=Path(environ.get("STEER_ARTIFACT_DIR") or var_dir / "artifacts").resolve(),
        model_cache_dir=Path(environ.get("STEER_MODEL_CACHE_DIR") or var_dir / "models").resolve(),
        uses_embedded_database=not environ.get("DATABASE_URL"),
        uses_embedded_broker=not environ.get("CELERY_BROKER_URL"),
        trusted_proxies=parse_count("STEER_TRUSTED_PROXIES", environ.get("STEER_TRUSTED_PROXIES"), 0),
        https=parse_bool("STEER_HTTPS", environ.get("STEER_HTTPS"), default=False),
    )
