"""Checks that the database and the broker answer, with messages a new user can act on."""

from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from django.db.utils import OperationalError


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def check_database() -> CheckResult:
    db = settings.DATABASES["default"]
    where = db["NAME"] if "sqlite" in db["ENGINE"] else f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db['NAME']}"
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CheckResult("database", False, f"cannot reach the database at {where}: {first_line.rstrip('.')}. "
                           "Check DATABASE_URL, or unset it to use the embedded SQLite file.")
    return CheckResult("database", True, f"database at {where} answers")


def check_broker(timeout_s: float = 3.0) -> CheckResult:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    try:
        with Connection(url, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
                        connect_timeout=timeout_s) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - kombu raises many transport-specific types
        reason = str(exc).strip().rstrip(".") or type(exc).__name__
        return CheckResult("broker", False, f"cannot reach the Celery broker at {_redact(url)}: {reason}. "
                           "Check CELERY_BROKER_URL, or unset it to use the embedded filesystem broker.")
    where = f"{settings.CELERY_BROKER_URL.split(':', 1)[0]} in {settings.STEER_VAR_DIR / 'broker'}" \
        if url.startswith("filesystem") else _redact(url)
    return CheckResult("broker", True, f"broker ({where}) answers")


def run_checks() -> list[CheckResult]:
    return [check_database(), check_broker()]
