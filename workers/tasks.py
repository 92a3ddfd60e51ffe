"""Celery tasks: thin shells that take ids, re-read state and call services or the engine."""

import re
import socket

from django.conf import settings

from workers.celery_app import app

NONCE = re.compile(r"^[0-9a-f]{8,64}$")


@app.task(name="workers.tasks.ping", acks_late=True)
def ping(nonce: str) -> str:
    """Prove a worker consumes from the broker: write var/pings/<nonce> holding the host name."""
    if not NONCE.match(nonce):
        raise ValueError("nonce must be 8-64 lowercase hex characters")
    folder = settings.STEER_VAR_DIR / "pings"
    folder.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    (folder / nonce).write_text(host)
    return host
